# Deadlocks across servers: two (and three) transactions that wait on each
# other on different servers; one of them fails with 40P01 naming the cycle,
# the others commit, nothing stays prepared.  A long wait without a cycle is
# left alone.  dtx.lock excludes a second transaction until the first ends.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use DtxCluster qw(new_coordinator new_participant add_server balance prepared_xacts poll_until update_sql
  background_session);

my $coord = new_coordinator('coord',
	extra_conf => "dtx.resolver_interval = 0\ndtx.deadlock_check_interval = 1000\n");
my @parts;
for my $name (qw(pa pb pc))
{
	my $node = new_participant($name, accounts => { 1 => 1000, 2 => 1000 });
	add_server($coord, $name, $node);
	push @parts, $node;
}

# 1. Two transactions, two servers, opposite order.
my $s1 = background_session($coord, begin => 1);
my $s2 = background_session($coord, begin => 1);
$s1->query_safe(update_sql('pa', 1));
$s2->query_safe(update_sql('pb', 1));
$s1->query_until(qr/go1/, "\\echo go1\n" . update_sql('pb', 1) . ";\n");
# s1 waits before s2 closes the cycle: s2's waiting statement is the later one
poll_until($coord, 'postgres',
	q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND backend_type = 'client backend'}, '1');
my $t0 = time;
$s2->query_until(qr/go2/, "\\echo go2\n" . update_sql('pa', 1) . ";\n");

# s2 joined the cycle last: it must fail with 40P01 within the check interval + a bit
ok( $coord->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND backend_type = 'client backend'}),
	'the deadlock is broken');
my $elapsed = time - $t0;
cmp_ok($elapsed, '<', 1 + 1 + 1 + 10, "broken after ${elapsed}s (deadlock_timeout + dtx.deadlock_check_interval + 1 s, plus slack for a loaded machine)");
my ($out, $ret) = $s2->query('SELECT 1');
like($s2->{stderr}, qr/distributed deadlock detected/, 'the youngest transaction fails with the deadlock error');
$s2->query('ROLLBACK');
$s1->query_safe('COMMIT');
is(balance($parts[0], 1), 1001, 'the other transaction committed on pa');
is(balance($parts[1], 1), 1001, 'and on pb');
$s1->quit;
$s2->quit;

# the SQLSTATE, from a client that reports it
my $log = slurp_file($coord->logfile);
like($log, qr/ERROR:  distributed deadlock detected/, 'the error is logged');
like($log, qr/DETAIL:  transaction of backend \S+ waits on server "p[ab]" for transaction of backend \S+; transaction of backend/,
	'the detail names the cycle');

# 2. Three transactions, three servers.
my @s = map { background_session($coord, begin => 1) } 1 .. 3;
$s[0]->query_safe(update_sql('pa', 2));
$s[1]->query_safe(update_sql('pb', 2));
$s[2]->query_safe(update_sql('pc', 2));
my $waits = q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND backend_type = 'client backend'};
$s[0]->query_until(qr/w0/, "\\echo w0\n" . update_sql('pb', 2) . ";\n");
poll_until($coord, 'postgres', $waits, '1');
$s[1]->query_until(qr/w1/, "\\echo w1\n" . update_sql('pc', 2) . ";\n");
poll_until($coord, 'postgres', $waits, '2');
$s[2]->query_until(qr/w2/, "\\echo w2\n" . update_sql('pa', 2) . ";\n");
# the third joined the cycle last: it is the victim; then the second goes on,
# and once it commits, the first
my $deadline = time + 30;
while (time < $deadline)
{
	my @found = (slurp_file($coord->logfile) =~ /distributed deadlock detected/g);
	last if @found >= 2;
	sleep 0.2;
}
my @found = (slurp_file($coord->logfile) =~ /distributed deadlock detected/g);
is(scalar(@found), 2, 'the three-server cycle is broken');
like(slurp_file($coord->logfile), qr/waits on server "pa".*waits on server "pb".*waits on server "pc"/,
	'the detail names the three servers of the cycle');
my $failed = 0;
for my $i (2, 1, 0)
{
	$s[$i]->query('SELECT 1');
	if ($s[$i]->{stderr} =~ /distributed deadlock detected/)
	{
		$failed++;
		$s[$i]->query('ROLLBACK');
	}
	else
	{
		$s[$i]->query_safe('COMMIT');
	}
	$s[$i]->quit;
}
is($failed, 1, 'exactly one of the three transactions was cancelled');
my $sum = 0;
$sum += balance($_, 2) for @parts;
is($sum, 3000 + 4, 'the two others committed everywhere (two updates each), the victim nowhere');

# 3. A long wait without a cycle is not cancelled.
$s1 = background_session($coord, begin => 1);
$s2 = background_session($coord, begin => 1);
$s1->query_safe(update_sql('pa', 1));
$s2->query_until(qr/w/, "\\echo w\n" . update_sql('pa', 1) . ";\n");
sleep 4;
# (a check in progress may show another wait event for a moment)
ok( defined poll_until(
		$coord, 'postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND state = 'active'},
		'1', 5),
	'the waiter still waits after four check intervals');
$s1->query_safe('COMMIT');
($out, $ret) = $s2->query('SELECT 1');
unlike($s2->{stderr}, qr/deadlock/, 'no deadlock reported without a cycle');
$s2->query_safe('COMMIT');
is(balance($parts[0], 1), 1003, 'both committed');
$s1->quit;
$s2->quit;

# 4. dtx.lock excludes a second transaction on every listed server.
$s1 = background_session($coord, begin => 1);
$s1->query_safe(q{SELECT dtx.lock(ARRAY['pa', 'pb', 'pc'], 99)});
$s2 = background_session($coord, begin => 1);
is($s2->query_safe(q{SELECT dtx.try_lock(ARRAY['pc'], 99)}), 'f', 'try_lock fails while another transaction holds the lock');
$s2->query_safe('ROLLBACK');
$s2->query_safe('BEGIN');
$s2->query_until(qr/w/, "\\echo w\nSELECT dtx.lock(ARRAY['pb'], 99);\n");
ok( defined poll_until(
		$coord, 'postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND state = 'active'},
		'1', 20),
	'dtx.lock waits while another transaction holds the lock');
sleep 1;
ok( defined poll_until(
		$coord, 'postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND state = 'active'},
		'1', 5),
	'and still waits a second later');
$s1->query_safe('COMMIT');
($out, $ret) = $s2->query('SELECT 1');
is($ret, 0, 'the waiter gets the lock once the holder committed');
$s2->query_safe('COMMIT');
$s1->quit;
$s2->quit;

is(prepared_xacts($_), 0, 'nothing left prepared on ' . $_->name) for @parts;

done_testing();
