# Failure matrix, the resolver: a transfer left in doubt on participant b
# (behind test/faults/proto_proxy.py) with a decision (its COMMIT PREPARED
# cut: "decided") or without (its PREPARE's answer dropped: "undecided"),
# then a dtx.resolve() pass whose listing of b (the first or the second of
# the pass), COMMIT PREPARED or ROLLBACK PREPARED is cut, held or answered
# into the void, with b or the coordinator crashed while it is held.  A pass
# whose listing failed must not act on b.  The cells and their outcomes are
# in test/README.md; the checks are in test/lib/FailureMatrix.pm.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DtxCluster;
use FailureMatrix;

my $m = FailureMatrix::setup();

my @decided = (setup => [ 'commit_prepared', 'cut' ], final => 'applied');
my @undecided = (setup => [ 'prepare', 'drop_answer' ], final => 'none');

my @cells = (
	# the listing of b (SELECT gid FROM pg_catalog.pg_prepared_xacts ...)
	[ listing_cut                 => listing => 'cut',         @decided,   pass_fails => 1 ],
	[ listing_second_cut          => listing => 'cut',         @decided,   pass_fails => 1, rule_opts => 'nth=2' ],
	[ listing_drop_answer         => listing => 'drop_answer', @undecided, pass_fails => 1 ],
	[ listing_second_drop_answer  => listing => 'drop_answer', @undecided, pass_fails => 1, rule_opts => 'nth=2' ],
	[ listing_hold_release        => listing => 'hold',        @decided,   b_after => 0 ],
	[ listing_hold_crash_b        => listing => 'hold',        @decided,   crash => 'participant', pass_fails => 1 ],
	[ listing_hold_crash_coord    => listing => 'hold',        @undecided, crash => 'coordinator', b_after => 1 ],

	# the resolver's COMMIT PREPARED / ROLLBACK PREPARED on b
	[ resolver_commit_prepared_cut         => commit_prepared => 'cut',         @decided, b_after => 1 ],
	[ resolver_commit_prepared_drop_answer => commit_prepared => 'drop_answer', @decided, b_after => 0 ],
	[ resolver_commit_prepared_hold_crash_coord => commit_prepared => 'hold',   @decided, crash => 'coordinator', b_after => 0 ],
	[ resolver_rollback_prepared_cut         => rollback_prepared => 'cut',         @undecided, b_after => 1 ],
	[ resolver_rollback_prepared_drop_answer => rollback_prepared => 'drop_answer', @undecided, b_after => 0 ],
	[ resolver_rollback_prepared_hold_crash_b => rollback_prepared => 'hold',       @undecided, crash => 'participant', b_after => 1 ],
);

my @only = split /,/, ($ENV{MATRIX_CELLS} // '');
for my $cell (@cells)
{
	my ($name, $cmd, $action, %c) = @$cell;
	next if @only && !grep { $_ eq $name } @only;
	FailureMatrix::run_resolver_cell(
		$m,
		{
			name     => $name,
			cmd      => $cmd,
			action   => $action,
			workload => 'transfer',
			%c
		});
}
FailureMatrix::print_table($m);

done_testing();
