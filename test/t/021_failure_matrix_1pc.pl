# Failure matrix, one-phase commit: the read-only probe (in the pipeline of
# b's query) and COMMIT on
# participant b (behind test/faults/proto_proxy.py), cut before they reach
# b, held (then released, or until the client's timeout), or run with their
# answer dropped, and with b or the coordinator crashed while the command
# (or its answer) is held.  Two workloads: a writes and b only reads (b gets
# the probe, then COMMIT as a reader of a one-phase commit), and a reads
# while b writes (b commits in one phase: a lost answer is 08007).  The
# cells and their outcomes are in test/README.md; the checks are in
# test/lib/FailureMatrix.pm.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DtxCluster;
use FailureMatrix;

my $m = FailureMatrix::setup();

# the read-only probe travels with b's query (from 1.2): the statement's timeout bounds it
my $stmt_timeout = "SET statement_timeout = '600ms';\n";
my $commit_timeout = "SET dtx.commit_timeout = '600ms';\n";

my @cells = (
	# the read-only probe on b, which only read; a wrote
	[ probe_cut          => probe => 'cut',         expect => 'error' ],
	[ probe_drop_answer  => probe => 'drop_answer', expect => 'error' ],
	[ probe_hold_release => probe => 'hold',        then => 'release', expect => 'committed', final => 'applied' ],
	[ probe_hold_timeout => probe => 'hold',        then => 'timeout', settings => $stmt_timeout, expect => 'error' ],
	[ probe_hold_crash_b => probe => 'hold',        crash => 'participant', expect => 'error' ],
	[ probe_hold_crash_coord => probe => 'hold',    crash => 'coordinator', expect => 'unknown' ],

	# COMMIT of the reader b, sent with the writer a's one-phase COMMIT:
	# a is committed, so is the transaction
	[ commit_reader_cut          => commit => 'cut',         expect => 'committed', final => 'applied' ],
	[ commit_reader_drop_answer  => commit => 'drop_answer', expect => 'committed', final => 'applied' ],
	[ commit_reader_hold_timeout => commit => 'hold',        then => 'timeout', settings => $commit_timeout, expect => 'committed', final => 'applied' ],
	[ commit_reader_hold_crash_b => commit => 'hold',        crash => 'participant', expect => 'committed', final => 'applied' ],
	[ commit_reader_hold_crash_coord => commit => 'hold',    crash => 'coordinator', expect => 'unknown', final => 'applied' ],

	# one-phase COMMIT of the only writer b (a only read)
	[ commit_cut          => commit => 'cut',         workload => 'writer_b', expect => 'unknown' ],
	[ commit_drop_answer  => commit => 'drop_answer', workload => 'writer_b', expect => 'unknown', final => 'applied' ],
	[ commit_hold_release => commit => 'hold',        workload => 'writer_b', then => 'release', expect => 'committed', final => 'applied' ],
	[ commit_hold_timeout => commit => 'hold',        workload => 'writer_b', then => 'timeout', settings => $commit_timeout, expect => 'unknown', final => 'applied' ],
	[ commit_hold_crash_b => commit => 'hold',        workload => 'writer_b', crash => 'participant', expect => 'unknown' ],
	[ commit_hold_crash_coord => commit => 'hold',    workload => 'writer_b', crash => 'coordinator', expect => 'unknown', final => 'applied' ],
	[ commit_hold_answer_crash_b => commit => 'hold_answer', workload => 'writer_b', crash => 'participant', expect => 'unknown', final => 'applied' ],
	[ commit_hold_answer_crash_coord => commit => 'hold_answer', workload => 'writer_b', crash => 'coordinator', expect => 'unknown', final => 'applied' ],
);

my @only = split /,/, ($ENV{MATRIX_CELLS} // '');
for my $cell (@cells)
{
	my ($name, $cmd, $action, %c) = @$cell;
	next if @only && !grep { $_ eq $name } @only;
	FailureMatrix::run_cell(
		$m,
		{
			name     => $name,
			cmd      => $cmd,
			action   => $action,
			workload => 'reader_b',
			final    => 'none',
			%c
		});
}
FailureMatrix::print_table($m);

done_testing();
