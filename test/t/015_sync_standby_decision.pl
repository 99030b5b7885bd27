# With a synchronous standby, no participant may commit before the decision
# is on that standby, whatever the session's synchronous_commit: otherwise a
# failover right then loses the decision, and the promoted standby's
# resolver rolls back the participants that have not committed yet while
# the others did.  A session with synchronous_commit = local (or off) used
# to skip that wait.  If the wait is cancelled, COMMIT PREPARED is not sent
# (the client is told); the resolver commits only once the standby has the
# decision.
#
# The standby's WAL receiver is frozen (SIGSTOP) to hold the decision back.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster;

$PostgreSQL::Test::Utils::timeout_default = 60;

my $coord = new_coordinator('coord', allows_streaming => 1);
set_resolver_interval($coord, '1s');

my $standby = new_sync_standby($coord, 'standby');

my $pa = new_participant('pa');
my $pb = new_participant('pb');
create_ledger($_) for ($pa, $pb);
add_server($coord, 'pa', $pa);
add_server($coord, 'pb', $pb);
$coord->safe_psql('postgres',
	transfer_sql('warmup', [ 'pa', -1 ], [ 'pb', 1 ]));
$coord->wait_for_catchup($standby);

# the standby stops receiving WAL
my $walreceiver =
  $standby->safe_psql('postgres', 'SELECT pid FROM pg_stat_wal_receiver');
ok($walreceiver =~ /^\d+$/, 'the standby has a WAL receiver');
kill('STOP', $walreceiver);

my $before_pa = gid_set($pa);
my $h = start_sql($coord,
	"SET synchronous_commit = local;\n"
	  . transfer_sql('s1', [ 'pa', -1 ], [ 'pb', 1 ]));
ok(defined wait_new_gid($pa, $before_pa), 's1 prepared on pa');

# give a wrong COMMIT PREPARED every chance to arrive
sleep(2);
is(ledger_rows($pa, 's1') . '/' . ledger_rows($pb, 's1'),
	'0/0', 'no participant committed s1 while the standby lacks its decision');
is(prepared_xacts($pa) . '/' . prepared_xacts($pb),
	'1/1', 's1 is still prepared on both');
ok(!sql_done($h),
	'COMMIT waits for the standby although synchronous_commit = local');

# the client gives up waiting
$coord->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
);
my ($rc, $out, $err) = finish_sql($h, 30);
is($rc, 0, 'COMMIT returns after the cancel (the local commit stands)');
like($err, qr/the decision has not reached the synchronous standby/,
	'the client is told that COMMIT PREPARED was not sent');
sleep(3);    # three resolver intervals
is(ledger_rows($pa, 's1') . '/' . ledger_rows($pb, 's1'),
	'0/0', 'neither the backend nor the resolver committed anything meanwhile');
is(prepared_xacts($pa) . '/' . prepared_xacts($pb),
	'1/1', 's1 is still prepared on both');

# the standby catches up: the resolver finishes s1
kill('CONT', $walreceiver);
ok( defined poll_until(
		$pa, 'postgres', 'SELECT count(*) FROM pg_prepared_xacts', '0', 30)
	  && defined poll_until(
		$pb, 'postgres', 'SELECT count(*) FROM pg_prepared_xacts', '0', 30),
	'the resolver finished s1 once the standby had the decision');
is(ledger_rows($pa, 's1') . '/' . ledger_rows($pb, 's1'),
	'1/1', 's1 is committed on both');
ok( defined poll_until(
		$coord, 'postgres', 'SELECT count(*) = 0 FROM dtx.decisions'),
	'its decision is gone');

done_testing();
