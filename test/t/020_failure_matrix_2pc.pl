# Failure matrix, two-phase commit: a transfer writing on participants a and
# b (b behind test/faults/proto_proxy.py), with b's BEGIN (pipelined with the
# first statement), PREPARE TRANSACTION and COMMIT PREPARED cut before they
# reach b, held (then released, or until the client's timeout), or run with
# their answer dropped, and with b or the coordinator crashed while the
# command (or its answer) is held; and the ROLLBACK PREPARED the coordinator
# sends to b when a's PREPARE is refused.  The cells and their outcomes are
# in test/README.md; the checks are in test/lib/FailureMatrix.pm.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DtxCluster;
use FailureMatrix;

my $m = FailureMatrix::setup();

my $stmt_timeout = "SET statement_timeout = '600ms';\n";
my $prep_timeout = "SET dtx.prepare_timeout = '600ms';\n";
my $commit_timeout = "SET dtx.commit_timeout = '600ms';\n";
my $async = "SET dtx.synchronous_commit_prepared = off;\n";

my @cells = (
	# BEGIN ISOLATION LEVEL ... with the INSERT on b, in one pipeline
	[ begin_cut          => begin => 'cut',         expect => 'error' ],
	[ begin_drop_answer  => begin => 'drop_answer', expect => 'error' ],
	[ begin_hold_release => begin => 'hold',        then => 'release', expect => 'committed', final => 'applied' ],
	[ begin_hold_timeout => begin => 'hold',        then => 'timeout', settings => $stmt_timeout, expect => 'error' ],
	[ begin_hold_crash_b => begin => 'hold',        crash => 'participant', expect => 'error' ],
	[ begin_hold_crash_coord => begin => 'hold',    crash => 'coordinator', expect => 'unknown' ],

	# PREPARE TRANSACTION on b (a prepares at the same time)
	[ prepare_cut          => prepare => 'cut',         expect => 'error' ],
	[ prepare_drop_answer  => prepare => 'drop_answer', expect => 'error' ],
	[ prepare_hold_release => prepare => 'hold',        then => 'release', expect => 'committed', final => 'applied' ],
	[ prepare_hold_timeout => prepare => 'hold',        then => 'timeout', settings => $prep_timeout, expect => 'error' ],
	[ prepare_hold_crash_b => prepare => 'hold',        crash => 'participant', expect => 'error' ],
	[ prepare_hold_crash_coord => prepare => 'hold',    crash => 'coordinator', expect => 'unknown' ],
	[ prepare_hold_answer_crash_b => prepare => 'hold_answer', crash => 'participant', expect => 'error' ],
	[ prepare_hold_answer_crash_coord => prepare => 'hold_answer', crash => 'coordinator', expect => 'unknown' ],

	# COMMIT PREPARED on b, after the local commit (the decision)
	[ commit_prepared_cut          => commit_prepared => 'cut',         expect => 'warning', final => 'applied' ],
	[ commit_prepared_drop_answer  => commit_prepared => 'drop_answer', expect => 'warning', final => 'applied' ],
	[ commit_prepared_hold_release => commit_prepared => 'hold',        then => 'release', expect => 'committed', final => 'applied' ],
	[ commit_prepared_hold_timeout => commit_prepared => 'hold',        then => 'timeout', settings => $commit_timeout, expect => 'warning', final => 'applied' ],
	[ commit_prepared_hold_crash_b => commit_prepared => 'hold',        crash => 'participant', expect => 'warning', final => 'applied' ],
	[ commit_prepared_hold_crash_coord => commit_prepared => 'hold',    crash => 'coordinator', expect => 'unknown', final => 'applied' ],
	[ commit_prepared_hold_answer_crash_b => commit_prepared => 'hold_answer', crash => 'participant', expect => 'warning', final => 'applied' ],
	[ commit_prepared_hold_answer_crash_coord => commit_prepared => 'hold_answer', crash => 'coordinator', expect => 'unknown', final => 'applied' ],

	# the same with dtx.synchronous_commit_prepared = off: COMMIT returns once
	# COMMIT PREPARED is sent; the answer is given up at the session's end
	[ async_commit_prepared_cut          => commit_prepared => 'cut',         settings => $async, expect => 'committed', final => 'applied' ],
	[ async_commit_prepared_drop_answer  => commit_prepared => 'drop_answer', settings => $async, expect => 'committed', final => 'applied' ],
	[ async_commit_prepared_hold_crash_b => commit_prepared => 'hold',        settings => $async, crash => 'participant', expect => 'committed', final => 'applied' ],
	[ async_commit_prepared_hold_crash_coord => commit_prepared => 'hold',    settings => $async, crash => 'coordinator', expect => 'committed', final => 'applied' ],

	# ROLLBACK PREPARED on b: a's PREPARE is refused, b was prepared
	[ rollback_prepared_cut          => rollback_prepared => 'cut',         workload => 'refused', expect => 'error' ],
	[ rollback_prepared_drop_answer  => rollback_prepared => 'drop_answer', workload => 'refused', expect => 'error' ],
	[ rollback_prepared_hold_release => rollback_prepared => 'hold',        workload => 'refused', then => 'release', expect => 'error' ],
	[ rollback_prepared_hold_timeout => rollback_prepared => 'hold',        workload => 'refused', then => 'timeout', settings => $commit_timeout, expect => 'error' ],
	[ rollback_prepared_hold_crash_b => rollback_prepared => 'hold',        workload => 'refused', crash => 'participant', expect => 'error' ],
	[ rollback_prepared_hold_crash_coord => rollback_prepared => 'hold',    workload => 'refused', crash => 'coordinator', expect => 'unknown' ],
	[ rollback_prepared_hold_answer_crash_coord => rollback_prepared => 'hold_answer', workload => 'refused', crash => 'coordinator', expect => 'unknown' ],
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
			workload => 'transfer',
			final    => 'none',
			%c
		});
}
FailureMatrix::print_table($m);

done_testing();
