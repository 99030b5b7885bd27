# The detector of deadlocks across servers must not break a wait that is not
# a deadlock.  A bank-style workload with long waits and no cycle: 8 pgbench
# clients move money between two hot accounts on each of three participants,
# every transaction touching its two participants in one global order (pa,
# then pb, then pc) and one row on each, with a pause while it holds the
# first row; so transactions queue behind each other's row locks, often for
# longer than the check interval, but no cycle can form.  With
# deadlock_timeout at 20 ms and dtx.deadlock_check_interval at 100 ms,
# waiting backends run the detector many times (counted from the participants' connection logs:
# the detector connects as pg_dtx_resolver:..., and the resolver itself is
# off here).  Then:
#
#   - no transaction failed with 40P01 (nor any other error: a pgbench client
#     stops at its first other error), none was cancelled;
#   - at least 100 transfers committed (about 1000 on an idle 2-CPU machine);
#   - the total balance is unchanged, nothing is left prepared, and a resolver
#     pass has nothing to commit or roll back;
#   - a true cycle (two transactions, two servers, opposite orders) formed
#     right after, with the same settings, is broken with 40P01: the detector
#     was active.

use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use DtxCluster;

$PostgreSQL::Test::Utils::timeout_default = 60;

my $CLIENTS       = 8;
my $DURATION      = 20;     # seconds of pgbench
my $MIN_TRANSFERS = 100;    # committed transfers required
my $INITIAL       = 1_000_000;

# low thresholds everywhere; statement logging off (PostgreSQL::Test::Cluster
# turns it on), connections logged on the participants
my $quiet = "log_statement = none\ndeadlock_timeout = 20ms\n";
my $coord = new_coordinator('coord',
	extra_conf => $quiet
	  . "dtx.resolver_interval = 0\ndtx.deadlock_check_interval = 100ms\n");
my @names = qw(pa pb pc);
my %node;
for my $name (@names)
{
	$node{$name} = new_participant(
		$name,
		accounts => { 1 => $INITIAL, 2 => $INITIAL },
		extra_conf => $quiet . "log_connections = on\n");
	add_server($coord, $name, $node{$name});
}
is($coord->safe_psql('postgres', 'SHOW dtx.deadlock_check_interval'),
	'100ms', 'dtx.deadlock_check_interval is 100ms');

sub total_balance
{
	my $sum = 0;
	$sum += $node{$_}->safe_psql('postgres', 'SELECT sum(balance) FROM accounts')
	  for @names;
	return $sum;
}

# connections of the deadlock detector to the participants, from their logs
sub detector_connections
{
	my ($offsets) = @_;
	my $n = 0;
	for my $name (@names)
	{
		my $log = slurp_file($node{$name}->logfile, $offsets->{$name});
		$n += () = $log =~ /connection authorized: .*application_name=pg_dtx_resolver:/g;
	}
	return $n;
}

sub log_offsets
{
	return { map { $_ => -s $node{$_}->logfile } @names };
}

# --- the workload ---------------------------------------------------------------

# s1 < s2: the participants in their global order; a1, a2: the hot accounts
my $script = $PostgreSQL::Test::Utils::tmp_check . '/transfer.sql';
append_to_file(
	$script, q{
\set s1 random(1, 2)
\set s2 random(:s1 + 1, 3)
\set a1 random(1, 2)
\set a2 random(1, 2)
\set amount random(-50, 50)
BEGIN;
SELECT dtx.exec((ARRAY['pa', 'pb', 'pc'])[:s1], 'UPDATE accounts SET balance = balance - $1 WHERE id = $2', :amount, :a1);
SELECT pg_sleep(0.05);
SELECT dtx.exec((ARRAY['pa', 'pb', 'pc'])[:s2], 'UPDATE accounts SET balance = balance + $1 WHERE id = $2', :amount, :a2);
COMMIT;
});

my $offsets = log_offsets();
my $coord_offset = -s $coord->logfile;
my $t0 = time();
my ($stdout, $stderr) = ('', '');
my $pgbench_ok = IPC::Run::run(
	[
		'pgbench', '-n', '-h', $coord->host, '-p', $coord->port,
		'-c', $CLIENTS, '-j', 2, '-T', $DURATION, '--failures-detailed',
		'-f', $script, 'postgres'
	],
	'>', \$stdout, '2>', \$stderr);
diag(sprintf('pgbench ran %.1f s', time() - $t0));
note("pgbench stdout:\n$stdout\npgbench stderr:\n$stderr");
ok($pgbench_ok, 'pgbench exits with status 0');

my ($processed) = $stdout =~ /number of transactions actually processed: (\d+)/;
my ($failed)    = $stdout =~ /number of failed transactions: (\d+)/;
my ($deadlocks) = $stdout =~ /number of deadlock failures: (\d+)/;
ok(defined $processed && defined $failed && defined $deadlocks,
	'pgbench reports transactions, failures and deadlock failures');
unlike($stderr, qr/aborted|error/i, 'no pgbench client stopped on an error');
is($deadlocks, 0, 'no transaction failed with 40P01');
is($failed, 0, 'no transaction failed at all');
cmp_ok($processed // 0, '>=', $MIN_TRANSFERS,
	"at least $MIN_TRANSFERS transfers committed");

my $coord_log = slurp_file($coord->logfile, $coord_offset);
unlike($coord_log, qr/deadlock detected/, 'the coordinator logged no deadlock');
unlike($coord_log, qr/could not look for a distributed deadlock/,
	'every deadlock check could run');
for my $name (@names)
{
	unlike(slurp_file($node{$name}->logfile, $offsets->{$name}),
		qr/deadlock detected|canceling statement/,
		"no deadlock and no cancelled statement on $name");
}

my $checks = detector_connections($offsets);
diag("the deadlock detector connected $checks times to the participants ("
	  . scalar(@names)
	  . ' per check), for '
	  . ($processed // 0)
	  . ' transfers');
cmp_ok($checks, '>=', 3 * 20,
	'the detector ran at least 20 checks during the workload');

is(total_balance(), 3 * 2 * $INITIAL, 'the total balance is unchanged');
is(prepared_xacts($node{$_}), '0', "nothing left prepared on $_") for @names;
my $actions = $coord->safe_psql('postgres',
	'SELECT action FROM dtx.resolve() ORDER BY 1');
unlike($actions, qr/commit|rollback/,
	'a resolver pass finds nothing to commit or roll back');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.decisions'),
	'0', 'no decision left after the pass');

# --- a true cycle, same settings: broken with 40P01 ---------------------------

my $s1 = background_session($coord, verbose => 1, begin => 1);
my $s2 = background_session($coord, verbose => 1, begin => 1);
$s1->query_safe(update_sql('pa', 1));
$s2->query_safe(update_sql('pb', 1));
$s1->query_until(qr/go1/, "\\echo go1\n" . update_sql('pb', 1) . ";\n");
# s1 waits before s2 closes the cycle: s2's waiting statement is the later one
poll_until($coord, 'postgres',
	q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND backend_type = 'client backend'}, '1');
$t0 = time();
$s2->query_until(qr/go2/, "\\echo go2\n" . update_sql('pa', 1) . ";\n");
ok( $coord->poll_query_until(
		'postgres',
		q{SELECT count(*) = 0 FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND backend_type = 'client backend'}
	),
	'the cycle is broken');
my $elapsed = time() - $t0;
cmp_ok($elapsed, '<', 10, sprintf('within %.1f s', $elapsed));
$s2->query('SELECT 1');
like($s2->{stderr}, qr/ERROR:  40P01: distributed deadlock detected/,
	'the younger transaction fails with 40P01');
$s2->query('ROLLBACK');
my (undef, $ret) = $s1->query('COMMIT');
is($ret, 0, 'the older one commits');
$s1->quit;
$s2->quit;
is(total_balance(), 3 * 2 * $INITIAL + 2,
	'the older transaction committed on both servers, the victim nowhere');
is(prepared_xacts($node{$_}), '0', "finally nothing prepared on $_") for @names;

done_testing();
