# dtx.send under faults: statements sent in pipeline mode to pa and pb and
# read later.  A participant lost before the results are read (crashed, or
# its session terminated); the coordinator crashed while a pipelined PREPARE
# stalls; a cancel while a sent statement waits on a lock (at dtx.wait, at
# COMMIT, and at the COMMIT of a transfer in one statement); a deadlock across the two participants between two sessions
# whose blocked statements were only sent, broken by the deadlock detector
# while both wait at COMMIT; with dtx.synchronous_commit_prepared off, the
# next transaction's statement sent behind a COMMIT PREPARED whose answer a
# proxy holds, and the next transaction rolled back while it is held; a
# transfer in one statement, whose participant reports itself idle after the
# send, and with pb lost before it answers.  Nothing is half applied,
# nothing is left prepared.
# Participants pa and pb.
#
# One scenario of the core commit protocol; what the core scenarios share
# (nodes, checks) is in test/README.md (Layout) and in DtxCluster's core_cluster.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster qw(:DEFAULT :core);

my %n = core_cluster(qw(pa pb));
my ($coord, $pa, $pb) = @n{qw(coord pa pb)};
$coord->append_conf('postgresql.conf', "dtx.deadlock_check_interval = 300ms\n");
$coord->reload;

# the statements of a transfer tagged $tag written with dtx.send
sub send_transfer
{
	my ($tag, %o) = @_;
	return sprintf(
		"SELECT dtx.send_expect('pa', 1, 'INSERT INTO ledger (tag, amount) VALUES (\$1, -1)', %s::text);\n"
		  . "SELECT dtx.send_expect('pb', 1, 'INSERT INTO ledger (tag, amount, stall) VALUES (\$1, 1, \$2)', %s::text, %s::float8);\n",
		quote_literal($tag), quote_literal($tag), $o{stall} // 0);
}

# 1. the happy path: one COMMIT, both applied, a decision confirmed
{
	my ($rc, $out, $err) = coord_sql("BEGIN;\n" . send_transfer('s1') . "COMMIT;");
	is($rc, 0, '1 transfer: COMMIT succeeds');
	is($err, '', '1 transfer: no warning');
	is(ledger_count($pa, 's1') . '/' . ledger_count($pb, 's1'), '1/1', '1 transfer: applied on both');
	all_clean('1 transfer');
	resolve();
	is(decisions(), 0, '1 transfer: its decision retired by a resolver pass');
}

# 1b. how PREPARE travels depends on whether the sends' answers are in at
# COMMIT: when they are (the client paused), each participant gets PREPARE
# alone, in the simple protocol; when pb's are still on the way (its last
# statement sleeps), pb's PREPARE joins its pipeline.  Both ways, the
# transfer is applied on both and nothing is left prepared.
{
	my $s = session();
	my ($pa_off, $pb_off) = (-s $pa->logfile, -s $pb->logfile);
	sq($s, "BEGIN;\n" . send_transfer('s1b') . "SELECT pg_sleep(0.3);");
	my ($out, $err) = sq($s, 'COMMIT;');
	is($err, '', '1b answers in: COMMIT succeeds');
	is(ledger_count($pa, 's1b') . '/' . ledger_count($pb, 's1b'), '1/1', '1b answers in: applied on both');
	like(substr(slurp_file($pa->logfile), $pa_off), qr/statement: PREPARE TRANSACTION 'dtx_/,
		'1b answers in: pa gets PREPARE alone');
	like(substr(slurp_file($pb->logfile), $pb_off), qr/statement: PREPARE TRANSACTION 'dtx_/,
		'1b answers in: pb gets PREPARE alone');

	$pb_off = -s $pb->logfile;
	($out, $err) = sq($s,
		"BEGIN;\n" . send_transfer('s1c') . "SELECT dtx.send('pb', 'SELECT pg_sleep(0.5)');\nCOMMIT;");
	is($err, '', '1b answers on the way: COMMIT succeeds');
	is(ledger_count($pa, 's1c') . '/' . ledger_count($pb, 's1c'), '1/1',
		'1b answers on the way: applied on both');
	like(substr(slurp_file($pb->logfile), $pb_off), qr/execute <unnamed>: PREPARE TRANSACTION 'dtx_/,
		'1b answers on the way: pb\'s PREPARE joins its pipeline');
	all_clean('1b');
	resolve();		# retires the two decisions
	$s->quit;
}

# 2. pa crashed after the sends, before they are read: COMMIT fails naming
# pa, pb keeps nothing
{
	my $s = session();
	sq($s, "BEGIN;\n" . send_transfer('s2'));
	crash($pa);
	my ($out, $err) = sq($s, 'COMMIT;');
	like($err, qr/ERROR:.*server "pa"/, '2 crash before collection: COMMIT fails naming pa');
	$pa->start;
	is(ledger_count($pa, 's2') . '/' . ledger_count($pb, 's2'), '0/0',
		'2 crash before collection: applied nowhere');
	is(decisions(), 0, '2 crash before collection: no decision');
	all_clean('2 crash before collection');
	$s->quit;
}

# 3. pb's session terminated while a sent statement runs: dtx.wait fails
# naming pb; ROLLBACK leaves nothing
{
	my $s = session();
	sq($s, "BEGIN;\n" . send_transfer('s3') . "SELECT dtx.send('pb', 'SELECT pg_sleep(5)');");
	my $pid = session_pid($pb, appname($s->{pid}), "wait_event = 'PgSleep'", 10);
	$pb->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	my ($out, $err) = sq($s, 'SELECT dtx.wait();');
	like($err, qr/ERROR:.*server "pb"/, '3 session lost before collection: dtx.wait fails naming pb');
	sq($s, 'ROLLBACK;');
	is(ledger_count($pa, 's3') . '/' . ledger_count($pb, 's3'), '0/0',
		'3 session lost before collection: applied nowhere');
	all_clean('3 session lost before collection');
	# the next transaction on the same session works
	($out, $err) = sq($s, "BEGIN;\n" . send_transfer('s3b') . "COMMIT;");
	is($err, '', '3 session lost before collection: the next transfer commits');
	is(ledger_count($pa, 's3b') . '/' . ledger_count($pb, 's3b'), '1/1',
		'3 session lost before collection: the next transfer is applied');
	$s->quit;
}

# 4. the coordinator crashed while pb's pipelined PREPARE stalls (pa has
# prepared): after the restart a resolver pass rolls both back
{
	my $h = start_sql($coord, "BEGIN;\n" . send_transfer('s4', stall => 3) . "COMMIT;\n");
	ok(wait_for($pa, 'SELECT count(*) > 0 FROM pg_prepared_xacts'),
		'4 coordinator crash: pa prepared through the pipeline');
	crash($coord);
	finish_sql($h, 10);
	$coord->start;
	# pb's stalled PREPARE ends: prepared, or cancelled by the dying
	# backend (libpq 17+ cancels; it may notice its postmaster's death
	# before its own SIGKILL lands, and then rolls back what it can)
	ok( wait_for(
			$pb,
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name LIKE 'pg\\_dtx:%' AND state = 'active'",
			't', 10),
		'4 coordinator crash: pb\'s stalled PREPARE has ended');
	my $r = resolve();
	unlike($r, qr/\|commit\|/, '4 coordinator crash: the resolver commits nothing');
	is(ledger_count($pa, 's4') . '/' . ledger_count($pb, 's4'), '0/0',
		'4 coordinator crash: applied nowhere');
	all_clean('4 coordinator crash');
}

# 5. a cancel while a sent statement waits on a row lock held on pb: at
# dtx.wait, at COMMIT, and at the COMMIT of a transfer in one statement (one
# client round trip); the lock holder's transaction is untouched.  Each sent
# statement ends with its own sync, and the participant's answer to it is
# where it notices a coordinator that gave up the connection (the rollback
# closes it when it cannot cancel): once the lock is released, the PREPARE
# queued behind the statement does not run.
for my $where ('dtx.wait', 'COMMIT', 'one statement')
{
	my $holder = background_session($pb, begin => 1);
	$holder->query_safe('SELECT * FROM accounts WHERE id = 1 FOR UPDATE');
	my $s = session();
	my @sends = (
		"dtx.send('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1')",
		"dtx.send('pb', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1')");
	my $t0;
	if ($where eq 'one statement')
	{
		$t0 = time;
		sq_send($s, 'SELECT ' . join(', ', @sends) . ';');
	}
	else
	{
		sq($s, "BEGIN;\n" . join('', map { "SELECT $_;\n" } @sends));
		$t0 = time;
		sq_send($s, $where eq 'COMMIT' ? 'COMMIT;' : 'SELECT dtx.wait();');
	}
	my $blocked = session_pid($pb, appname($s->{pid}), "wait_event_type = 'Lock'", 10);
	ok(defined $blocked, "5 cancel at $where: the sent UPDATE waits on pb's lock");
	$coord->safe_psql('postgres', "SELECT pg_cancel_backend($s->{pid})");
	my ($out, $err) = sq_wait($s);
	my $took = time - $t0;
	like($err, qr/canceling statement due to user request/, "5 cancel at $where: cancelled");
	cmp_ok($took, '<', 5, "5 cancel at $where: within seconds");
	sq($s, 'ROLLBACK;') unless $where eq 'one statement';
	is($holder->query_safe('SELECT balance FROM accounts WHERE id = 1'), 300,
		"5 cancel at $where: the lock holder still sees its row unchanged");
	$holder->query_safe('COMMIT');
	ok( wait_for(
			$pb,
			'SELECT count(*) FROM pg_stat_activity WHERE application_name = '
			  . quote_literal(appname($s->{pid})) . " AND state <> 'idle'",
			0, 10),
		"5 cancel at $where: pb's session has nothing left to run once the lock is released");
	is(balance($pa, 1) . '/' . balance($pb, 1), '1000/300', "5 cancel at $where: nothing applied");
	all_clean("5 cancel at $where");
	$s->quit;
	$holder->quit;
}

# 6. a deadlock across pa and pb whose waiting statements were only sent:
# both sessions wait at COMMIT; the detector picks one victim (40P01), the
# other commits
{
	my @s = map { session() } 1 .. 2;
	$_->query_safe("SET statement_timeout = '20s'") for @s;
	sq($s[0], "BEGIN;\nSELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1');");
	sq($s[1], "BEGIN;\nSELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1');");
	sq($s[0], "SELECT dtx.send('pb', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1');");
	sq($s[1], "SELECT dtx.send('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1');");
	my $t0 = time;
	sq_send($_, 'COMMIT;') for @s;
	my @r = map { [ sq_wait($_) ] } @s;
	my $took = time - $t0;
	my @victims = grep { $r[$_][1] =~ /distributed deadlock detected/ } 0 .. 1;
	is(scalar(@victims), 1, '6 deadlock of sent statements: exactly one victim');
	cmp_ok($took, '<', 10, '6 deadlock of sent statements: broken before statement_timeout');
	my $winner = 1 - ($victims[0] // 0);
	is($r[$winner][1], '', '6 deadlock of sent statements: the other commits');
	is(balance($pa, 1) . '/' . balance($pb, 1), '1001/301',
		'6 deadlock of sent statements: only the winner applied, on both');
	all_clean('6 deadlock of sent statements');
	$_->quit for @s;
}

# A session with dtx.synchronous_commit_prepared off and a minute of
# dtx.commit_timeout whose transfer $tag (pa and pbx, the server pbx behind
# a new protocol proxy in front of pb) has committed, the answer to its
# COMMIT PREPARED on pb held by the proxy.  Returns the proxy and the session.
sub commit_with_held_answer
{
	my ($tag, $label) = @_;
	my $proxy = start_proto_proxy($pb);
	if ($coord->safe_psql('postgres', "SELECT count(*) FROM pg_foreign_server WHERE srvname = 'pbx'") eq '0')
	{
		add_server($coord, 'pbx', $pb,
			server_options => { host => '127.0.0.1', port => $proxy->{port} });
	}
	else
	{
		$coord->safe_psql('postgres', "ALTER SERVER pbx OPTIONS (SET port '$proxy->{port}')");
	}
	my $s = session();
	$s->query_safe('SET dtx.synchronous_commit_prepared = off');
	$s->query_safe("SET dtx.commit_timeout = '60s'");
	proxy_ctl($proxy, 'rule commit_prepared hold_answer');
	my ($out, $err) = sq($s,
		"BEGIN;\nSELECT dtx.send('pa', 'INSERT INTO ledger (tag, amount) VALUES (''$tag'', -1)');\n"
		  . "SELECT dtx.send('pbx', 'INSERT INTO ledger (tag, amount) VALUES (''$tag'', 1)');\nCOMMIT;");
	is($err, '', "$label: COMMIT returns, COMMIT PREPARED left in flight");
	my $end = time + 10;
	usleep(20_000) while proxy_status($proxy)->{held} < 1 && time < $end;
	is(proxy_status($proxy)->{held}, 1, "$label: the proxy holds the answer to COMMIT PREPARED");
	return ($proxy, $s);
}

# 7. dtx.synchronous_commit_prepared off: the next transaction's first
# statement goes into the pipeline behind the COMMIT PREPARED left in flight,
# without waiting for its answer (held here by a proxy in front of pb), and
# still reads the earlier transaction's writes
{
	my ($proxy, $s) = commit_with_held_answer('s7', '7 async');
	my ($out, $err);

	sq_send($s, "BEGIN;\nSELECT dtx.send('pbx', 'INSERT INTO ledger (tag, amount) VALUES (''s7b'', 1)');");
	ok( wait_for(
			$pb,
			"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%s7b%' AND state = 'idle in transaction'",
			1, 10),
		'7 async: the next statement ran on pb while the answer to COMMIT PREPARED was still held');
	proxy_ctl($proxy, 'release');
	($out, $err) = sq_wait($s);
	is($err, '', '7 async: dtx.send returned');
	($out, $err) = sq($s,
		"SELECT n FROM dtx.query('pbx', 'SELECT count(*) FROM ledger WHERE tag LIKE ''s7%''') AS t(n bigint);\nCOMMIT;");
	is($out, '2', "7 async: the earlier transaction's write and the new one are seen on the same connection");
	is($err, '', '7 async: the second transaction commits');
	is(ledger_count($pa, 's7') . '/' . ledger_count($pb, 's7') . '/' . ledger_count($pb, 's7b'),
		'1/1/1', '7 async: both transactions applied');
	$s->quit;
	stop_proto_proxy($proxy);
	all_clean('7 async');
}

# 8. the same, but the next transaction rolls back while the answer to the
# earlier COMMIT PREPARED is still held: the rollback does not wait for it
# (dtx.commit_timeout is a minute here), the connection is given up and the
# resolver makes sure of the earlier transaction
{
	my ($proxy, $s) = commit_with_held_answer('s8', '8 rollback behind a held answer');
	my $pid = $s->query_safe('SELECT pg_backend_pid()');
	my ($out, $err);

	sq_send($s, "BEGIN;\nSELECT dtx.send('pbx', 'INSERT INTO ledger (tag, amount) VALUES (''s8b'', 1)');\nROLLBACK;");
	ok( wait_for(
			$coord,
			"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND state = 'idle' AND query LIKE 'ROLLBACK%'",
			1, 15),
		'8 rollback behind a held answer: ROLLBACK returns while the answer is still held');
	is(proxy_status($proxy)->{held}, 1, '8 rollback behind a held answer: the answer was never released');
	($out, $err) = sq_wait($s);
	unlike($err, qr/ERROR/, '8 rollback behind a held answer: no error');
	proxy_ctl($proxy, 'release');
	resolve();
	is(ledger_count($pa, 's8') . '/' . ledger_count($pb, 's8') . '/' . ledger_count($pb, 's8b'),
		'1/1/0', '8 rollback behind a held answer: the earlier transaction applied on both, the rolled back one nowhere');
	ok(wait_for($coord, 'SELECT count(*) FROM dtx.in_doubt', 0, 30),
		'8 rollback behind a held answer: nothing left in doubt');
	$s->quit;
	stop_proto_proxy($proxy);
	all_clean('8 rollback behind a held answer');
}

# 9. a transfer in one statement (one client round trip): each sent
# statement still ends with its own sync, so pb's session shows itself idle
# in transaction right after the send, while the client's statement goes on
# (case 5 covers the cancel this keeps clean).  And pb's session terminated
# while its sent statement runs: the commit fails naming pb.
{
	my $ins = "dtx.send_expect('%s', 1, 'INSERT INTO ledger (tag, amount) VALUES (\$1, %d)', '%s'::text)";
	my $s = session();
	sq_send($s, 'SELECT ' . sprintf($ins, 'pa', -1, 's9') . ', ' . sprintf($ins, 'pb', 1, 's9')
		  . ', pg_sleep(2);');
	ok( defined session_pid(
			$pb, appname($s->{pid}),
			"state = 'idle in transaction' AND query LIKE 'INSERT INTO ledger%'", 10),
		'9 one statement: pb\'s session is idle in transaction after the send, while the client\'s statement runs');
	my ($out, $err) = sq_wait($s);
	unlike($err, qr/ERROR|WARNING/, '9 one statement: no error');
	is(ledger_count($pa, 's9') . '/' . ledger_count($pb, 's9'), '1/1', '9 one statement: applied on both');

	sq_send($s, 'SELECT ' . sprintf($ins, 'pa', -1, 's9c') . ', ' . sprintf($ins, 'pb', 1, 's9c')
		  . ", dtx.send('pb', 'SELECT pg_sleep(5)');");
	my $pid = session_pid($pb, appname($s->{pid}), "wait_event = 'PgSleep'", 10);
	ok(defined $pid, '9 one statement, pb lost: the last statement sent to pb runs');
	$pb->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	($out, $err) = sq_wait($s);
	like($err, qr/ERROR:.*server "pb"/, '9 one statement, pb lost: the commit fails naming pb');
	is(ledger_count($pa, 's9c') . '/' . ledger_count($pb, 's9c'), '0/0',
		'9 one statement, pb lost: applied nowhere');
	$s->quit;
	all_clean('9 one statement, pb lost');
}

done_testing();
