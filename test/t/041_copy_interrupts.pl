# Nothing hangs: COPY to or from the client through dtx.exec/dtx.query is
# refused at once (the connection stays usable), and a backend waiting on a
# participant yields promptly to pg_cancel_backend and pg_terminate_backend
# in each kind of wait (a remote statement blocked on a lock, a PREPARE held
# by a deferred trigger, ROLLBACK TO SAVEPOINT on a paused participant).

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster;

# restart_after_crash: a backend that never ends is killed (see below)
my $coord = new_coordinator('coord',
	extra_conf => "dtx.resolver_interval = 0\nrestart_after_crash = on\n");
my $p1 = new_participant('p1', accounts => { 1 => 1000 });
my $p2 = new_participant('p2', accounts => { 1 => 1000 });
add_server($coord, 'p1', $p1);
add_server($coord, 'p2', $p2);
create_ledger($_) for ($p1, $p2);
$p1->safe_psql('postgres', 'CREATE TABLE t (a int)');

# 1. COPY through dtx.exec and dtx.query ends with 0A000, quickly.
my @copies = (
	[ 'exec',  q{SELECT dtx.exec('p1', 'COPY t FROM STDIN')} ],
	[ 'exec',  q{SELECT dtx.exec('p1', 'COPY accounts TO STDOUT')} ],
	[ 'query', q{SELECT * FROM dtx.query('p1', 'COPY t FROM STDIN') AS x(a int)} ],
	[ 'query', q{SELECT * FROM dtx.query('p1', 'COPY (SELECT 1) TO STDOUT') AS x(a int)} ],
);
my $n = 0;
for my $c (@copies)
{
	my ($fn, $sql) = @$c;
	my $app = 'copy_' . ++$n;
	my $t0 = time;
	my $h = start_sql($coord,
		"\\set VERBOSITY verbose\nSET application_name = '$app';\nSET statement_timeout = '3s';\n$sql;\n");
	my ($rc, $out, $err, $secs) = timed_finish($h, $t0, 8);
	ok(defined $rc && $rc != 0, "copy: $sql fails");
	like($err, qr/ERROR:  0A000: COPY FROM STDIN and COPY TO STDOUT are not supported through pg_dtx/,
		"copy: $fn refuses it with 0A000");
	cmp_ok($secs, '<', 3, sprintf('copy: refused after %.1fs', $secs));
	next if defined $rc;
	# a backend that ignores cancel and terminate would spin for the rest
	# of the test: killed (the coordinator restarts)
	my $pid = session_pid($coord, $app, undef, 1);
	kill('KILL', $pid) if $pid;
	poll_until($coord, 'postgres', 'SELECT true');
}

# Any other result without rows nor command status (an empty statement)
# ends the command with an error too.
for my $sql (q{SELECT dtx.exec('p1', '')}, q{SELECT * FROM dtx.query('p1', ' -- nothing') AS x(a int)})
{
	my ($rc, $out, $err) = $coord->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	like($err, qr/ERROR:  42601: the statement for server "p1" is empty/, "empty: $sql is refused");
}
is($coord->safe_psql('postgres', q{SELECT dtx.exec('p1', 'INSERT INTO t SELECT 0 WHERE false')}),
	'0', 'empty: the coordinator is still up');

# In a transaction: the failed COPY is rolled back to the savepoint, the
# connection and the remote transaction go on.
my ($ret, $out, $err) = $coord->psql('postgres', q{
	BEGIN;
	SELECT dtx.exec('p1', 'INSERT INTO t VALUES (1)');
	SAVEPOINT s;
	SELECT dtx.exec('p1', 'COPY t FROM STDIN');
	ROLLBACK TO SAVEPOINT s;
	SELECT * FROM dtx.query('p1', 'COPY t TO STDOUT') AS x(a int);
	ROLLBACK TO SAVEPOINT s;
	SELECT dtx.exec('p1', 'INSERT INTO t VALUES (2)');
	SELECT dtx.exec('p2', 'INSERT INTO ledger (tag, amount) VALUES (''copy'', 1)');
	COMMIT;
}, on_error_stop => 0, timeout => 20, timed_out => \my $timed_out);
ok(!$timed_out, 'copy: the transaction did not hang');
is($p1->safe_psql('postgres', 'SELECT string_agg(a::text, \',\' ORDER BY a) FROM t'),
	'1,2', 'copy: the transaction around the refused COPYs committed');
is(ledger_rows($p2, 'copy'), 1, 'copy: the other participant committed');
is(prepared_xacts($p1) + prepared_xacts($p2), 0, 'copy: nothing left prepared');

# 2. Interrupts, for each kind of wait.
sub victim
{
	my ($app, $sql) = @_;
	return start_sql($coord,
		"SET application_name = '$app';\nSET dtx.commit_timeout = '20s';\n$sql",
		on_error_stop => 1);
}

sub interrupt
{
	my ($what, $signal, $pid, $h) = @_;
	my $t0 = time;
	$coord->safe_psql('postgres', "SELECT pg_${signal}_backend($pid)");
	my ($rc, $o, $e, $secs) = timed_finish($h, $t0, 25);
	ok(defined $rc && $rc != 0, "$what/$signal: the session ends with an error");
	cmp_ok($secs, '<', 3, sprintf('%s/%s: ended %.1fs after the signal', $what, $signal, $secs));
	return $e;
}

for my $signal ('cancel', 'terminate')
{
	# a remote statement blocked on a lock on the participant
	my $locker = $p1->background_psql('postgres');
	$locker->query_safe('BEGIN; LOCK TABLE accounts');
	my $h = victim("lock_$signal",
		"SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1');\n");
	my $remote = $p1->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'});
	ok($remote, "lock/$signal: the remote statement waits on the lock");
	my $pid = session_pid($coord, "lock_$signal");
	interrupt('lock', $signal, $pid, $h);
	$locker->query_safe('ROLLBACK');
	$locker->quit;

	# a PREPARE held by a deferred constraint trigger
	my $tag = "stall_$signal";
	$h = victim($tag, transfer_sql($tag, [ 'p1', -5, 30 ], [ 'p2', 5, 0 ]));
	ok( $p1->poll_query_until('postgres',
			q{SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'PREPARE TRANSACTION%' AND state = 'active'}),
		"prepare/$signal: the PREPARE is held");
	$pid = session_pid($coord, $tag);
	interrupt('prepare', $signal, $pid, $h);
	release_stall($p1, $tag);

	# ROLLBACK TO SAVEPOINT on a paused participant
	my $app = "rollback_to_$signal";
	$h = victim($app, q{
		BEGIN;
		SAVEPOINT s;
		SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1');
		SELECT pg_sleep(0.5);
		ROLLBACK TO SAVEPOINT s;
		COMMIT;
	});
	$pid = session_pid($coord, $app, q{query LIKE '%pg_sleep%'});
	signal_node($p1, 'STOP');
	$pid = session_pid($coord, $app, q{query LIKE 'ROLLBACK TO%'});
	usleep(300_000);
	interrupt('rollback_to', $signal, $pid, $h);
	signal_node($p1, 'CONT');
}

# What the cancelled PREPAREs may have left is rolled back by the resolver.
$coord->safe_psql('postgres', 'SELECT * FROM dtx.resolve()');
ok(poll_until($p1, 'postgres', 'SELECT count(*) = 0 FROM pg_prepared_xacts'),
	'interrupts: nothing left prepared on p1');
is(prepared_xacts($p2), 0, 'interrupts: nothing left prepared on p2');
is(balance($p1, 1), 1000, 'interrupts: p1 unchanged');
is(ledger_rows($p1, 'stall%') + ledger_rows($p2, 'stall%'), 0, 'interrupts: no transfer committed');

done_testing();
