# The core commit protocol of pg_dtx, on real clusters: a coordinator
# "coord" and the participants pa and pb (log_statement = all, so that the
# statements pg_dtx sends them can be read back from their logs) and pc
# (max_prepared_transactions = 0).  Participants are crashed for real
# (SIGKILL to every process, or an immediate shutdown) at the moments that
# matter, and every scenario ends by checking the data on every node and
# that nothing is left prepared anywhere.
#
#   1. commit, rollback, remote errors (immediate and at PREPARE), a local
#      commit that fails once the participants were asked to PREPARE
#   2. a participant crashed before PREPARE
#   3. a participant crashed after PREPARE, before COMMIT PREPARED
#      (dtx.resolve(); the background resolver at the end of the file); a
#      participant crashed during its PREPARE; a frozen participant and
#      dtx.commit_timeout
#   4. savepoints and isolation levels
#   5. read-only participants, one-phase and two-phase commit, from the
#      participants' logs; a one-phase COMMIT whose answer is lost (08007)
#   6. a participant with max_prepared_transactions = 0
#   7. a hot standby coordinator
#   8. connection reuse, no remote session left in a transaction
#
# The background resolver is off (dtx.resolver_interval = 0) until the last
# scenario, so that dtx.decisions only changes when the test says so.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster qw(new_participant add_server balance prepared_xacts node_pids sq sq_send sq_wait);

my $started = time;

# seconds a stalled PREPARE sleeps (deferred trigger on ledger)
my $STALL = 2;

# --- nodes -------------------------------------------------------------------

my $coord = PostgreSQL::Test::Cluster->new('coord');
$coord->init(allows_streaming => 1);
$coord->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pg_dtx'
max_prepared_transactions = 20
dtx.resolver_interval = 0
});
$coord->start;
$coord->safe_psql('postgres',
	'CREATE EXTENSION pg_dtx; CREATE TABLE local_log (note text PRIMARY KEY);'
);

# restart_after_crash: a participant backend killed by SIGKILL makes its
# server restart by itself (the TAP default is off).
my $pconf = "log_statement = 'all'\nrestart_after_crash = on\n";
my $pa = new_participant('pa',
	accounts => { 1 => 1000, 2 => 500 },
	extra_conf => $pconf);
my $pb = new_participant('pb', accounts => { 1 => 300 }, extra_conf => $pconf);
my $pc = new_participant('pc',
	accounts => { 1 => 50 },
	extra_conf => "max_prepared_transactions = 0\n");
my %node = (pa => $pa, pb => $pb, pc => $pc);

# ledger: one row per transfer leg; a row with stall > 0 makes PREPARE
# TRANSACTION (or COMMIT) of its transaction sleep that many seconds.
# dcheck: a unique constraint checked at PREPARE.  ledger_note(): a SELECT
# that writes.
for my $p ($pa, $pb)
{
	$p->safe_psql(
		'postgres', q{
		CREATE TABLE ledger (tag text PRIMARY KEY, amount bigint NOT NULL,
		                     stall float8 NOT NULL DEFAULT 0);
		CREATE FUNCTION ledger_stall() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM pg_sleep(NEW.stall);
			RETURN NULL;
		END $$;
		CREATE CONSTRAINT TRIGGER ledger_stall AFTER INSERT ON ledger
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
			WHEN (NEW.stall > 0) EXECUTE FUNCTION ledger_stall();
		CREATE TABLE dcheck (k int UNIQUE DEFERRABLE INITIALLY DEFERRED);
		CREATE FUNCTION ledger_note(t text) RETURNS text LANGUAGE sql AS
			$$ INSERT INTO ledger (tag, amount) VALUES (t, 0) RETURNING tag $$;
	});
}

add_server($coord, $_, $node{$_}) for qw(pa pb pc);

my $coordid = $coord->safe_psql('postgres', 'SELECT dtx.coordinator_id()');
my $dboid = $coord->safe_psql('postgres',
	"SELECT oid FROM pg_database WHERE datname = 'postgres'");
my $uid = $coord->safe_psql('postgres',
	'SELECT oid FROM pg_roles WHERE rolname = current_user');
my %srvoid;
$srvoid{$_} = $coord->safe_psql('postgres',
	"SELECT oid FROM pg_foreign_server WHERE srvname = '$_'")
  for qw(pa pb pc);

# --- helpers -----------------------------------------------------------------

# SQL on the coordinator; returns (rc, stdout, stderr) and never dies.
sub coord_sql
{
	my ($sql, %opts) = @_;
	my ($rc, $out, $err) = $coord->psql('postgres', $sql, %opts);
	return ($rc, $out, $err);
}

sub ledger_count
{
	my ($n, $tag) = @_;
	return $n->safe_psql('postgres',
		"SELECT count(*) FROM ledger WHERE tag = '$tag'");
}

sub local_count
{
	my ($note) = @_;
	return $coord->safe_psql('postgres',
		"SELECT count(*) FROM local_log WHERE note = '$note'");
}

sub decisions
{
	return $coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.decisions');
}

# pg_dtx sessions of $n in a transaction (idle in transaction, aborted...)
sub remote_in_xact
{
	my ($n) = @_;
	return $n->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pg\\_dtx:%' AND state LIKE 'idle in transaction%'"
	);
}

# Nothing prepared on any participant, no remote session left in a
# transaction on pa and pb.
sub all_clean
{
	my ($label) = @_;
	is(prepared_xacts($_), 0, "$label: nothing prepared on " . $_->name)
	  for ($pa, $pb, $pc);
	is(remote_in_xact($_), 0,
		"$label: no pg_dtx session left in a transaction on " . $_->name)
	  for ($pa, $pb);
	return;
}

# One resolver pass now; its rows as "server|global_id|action|outcome".
sub resolve
{
	return $coord->safe_psql('postgres',
		'SELECT server, global_id, action, outcome FROM dtx.resolve() ORDER BY 1, 2'
	);
}

# Crash $n: SIGKILL to its postmaster and every process it started, at once;
# waits until they are gone (a zombie postmaster still counts: it would
# make the next start refuse the lock file).  $n->start recovers it.
sub crash
{
	my ($n) = @_;
	my @pids = node_pids($n);
	kill('KILL', @pids);
	$n->kill9;
	my $end = time + 30;
	while (time < $end && grep { -e "/proc/$_" } @pids)
	{
		usleep(50_000);
	}
	return;
}

# Waits until $sql on $n returns $expected (default 't'), at most $timeout
# seconds (default 30); true when it did.
sub wait_for
{
	my ($n, $sql, $expected, $timeout) = @_;
	$expected //= 't';
	my $end = time + ($timeout // 30);
	my $out;
	while (time < $end)
	{
		(undef, $out) = $n->psql('postgres', $sql);
		return 1 if defined $out && $out eq $expected;
		usleep(50_000);
	}
	diag("timed out on " . $n->name . ": $sql\nexpected $expected, got "
		  . ($out // 'nothing'));
	return 0;
}

# A psql session on the coordinator that survives errors.
sub session
{
	my $s = $coord->background_psql('postgres', on_error_stop => 0);
	$s->{pid} = $s->query_safe('SELECT pg_backend_pid()');
	return $s;
}

# application_name of the remote sessions of coordinator backend $pid
sub appname
{
	my ($pid) = @_;
	return "pg_dtx:$coordid:$dboid:$pid";
}

# The global id pg_dtx gives participant $n (from 1) of transaction $xid.
# The global id of participant $n of local transaction $xid, up to its
# nonce (random, chosen at commit): a prefix, "..._<n>_".
sub gid
{
	my ($xid, $server, $n) = @_;
	return "dtx_${coordid}_${dboid}_${xid}_$srvoid{$server}_${uid}_${n}_";
}

# Log position of $n now, and the log of $n written by pg_dtx sessions
# since $pos.
sub log_pos
{
	my ($n) = @_;
	return -s $n->logfile;
}

sub dtx_log_since
{
	my ($n, $pos) = @_;
	my $log = slurp_file($n->logfile, $pos);
	return join("\n", grep { /\bpg_dtx:/ } split(/\n/, $log));
}

my $PREPARE = qr/PREPARE TRANSACTION 'dtx_/;
my $COMMIT_PREPARED = qr/COMMIT PREPARED 'dtx_/;
# a plain COMMIT, possibly after queued commands ("RELEASE ...; COMMIT")
my $COMMIT = qr/: (?:[^\n]*; )?COMMIT$/m;

# --- 1. commit, rollback, remote errors --------------------------------------

{
	my ($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance - $1 WHERE id = $2', 100, 1);
		SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + $1 WHERE id = $2', 100, 1);
		INSERT INTO local_log VALUES ('s1 commit');
		SELECT 'xid=' || pg_current_xact_id();
		COMMIT;
	});
	is($rc, 0, '1 commit: COMMIT succeeds');
	is($err, '', '1 commit: no warning');
	my ($xid) = $out =~ /xid=(\d+)/;
	is(balance($pa, 1), 900, '1 commit: pa debited');
	is(balance($pb, 1), 400, '1 commit: pb credited');
	is(local_count('s1 commit'), 1, '1 commit: local row committed');
	is( $coord->safe_psql(
			'postgres',
			"SELECT coordinator_id = $coordid AND servers = ARRAY[$srvoid{pa}, $srvoid{pb}]::oid[] AND userids = ARRAY[$uid, $uid]::oid[] FROM dtx.decisions WHERE xid = '$xid'"
		),
		't',
		'1 commit: the decision names the coordinator, both servers and the user');
	# every participant confirmed COMMIT PREPARED: nothing is in doubt, even
	# before a resolver pass deletes the decision
	is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.in_doubt'),
		0, '1 commit: dtx.in_doubt is empty after a fully confirmed commit');
	all_clean('1 commit');
	my $r = resolve();
	unlike($r, qr/\|(commit|rollback)\|/,
		'1 commit: the resolver finds nothing to finish');
	is(decisions(), 0, '1 commit: the decision is gone after a resolver pass');

	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = 0 WHERE id = 1');
		SELECT dtx.exec('pb', 'UPDATE accounts SET balance = 0 WHERE id = 1');
		INSERT INTO local_log VALUES ('s1 rollback');
		ROLLBACK;
	});
	is($rc, 0, '1 rollback: ROLLBACK succeeds');
	is(balance($pa, 1), 900, '1 rollback: pa unchanged');
	is(balance($pb, 1), 400, '1 rollback: pb unchanged');
	is(local_count('s1 rollback'), 0, '1 rollback: no local row');
	is(decisions(), 0, '1 rollback: no decision');
	all_clean('1 rollback');

	# a remote error while the transaction runs
	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 2');
		INSERT INTO local_log VALUES ('s1 error');
		SELECT dtx.exec('pb', 'INSERT INTO accounts VALUES (1, 0)');
		COMMIT;
	});
	isnt($rc, 0, '1 remote error: the transaction fails');
	like($err, qr/duplicate key value violates unique constraint/,
		'1 remote error: the remote error is reported');
	like($err, qr/server "pb"/, '1 remote error: the server is named');
	is(balance($pa, 2), 500, '1 remote error: pa unchanged');
	is(balance($pb, 1), 400, '1 remote error: pb unchanged');
	is(local_count('s1 error'), 0, '1 remote error: no local row');
	all_clean('1 remote error');

	# a remote error at PREPARE TRANSACTION (deferred unique constraint)
	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 2');
		SELECT dtx.exec('pb', 'INSERT INTO dcheck VALUES (1), (1)');
		INSERT INTO local_log VALUES ('s1 prepare error');
		COMMIT;
	});
	isnt($rc, 0, '1 error at PREPARE: COMMIT fails');
	like(
		$err,
		qr/could not prepare the transaction on server "pb": duplicate key value/,
		'1 error at PREPARE: the error names the server and the remote error');
	is(balance($pa, 2), 500, '1 error at PREPARE: pa rolled back');
	is($pb->safe_psql('postgres', 'SELECT count(*) FROM dcheck'),
		0, '1 error at PREPARE: pb rolled back');
	is(local_count('s1 prepare error'), 0, '1 error at PREPARE: no local row');
	is(decisions(), 0, '1 error at PREPARE: no decision');
	all_clean('1 error at PREPARE');

	# the local commit fails after the participants were asked to PREPARE:
	# a SERIALIZABLE write skew on the coordinator is caught at COMMIT (by
	# the decision's insert or by the local commit's own check)
	$coord->safe_psql('postgres',
		'CREATE TABLE skew (id int PRIMARY KEY, v int); INSERT INTO skew VALUES (1, 0), (2, 0);'
	);
	my ($s1, $s2) = (session(), session());
	for my $x ([ $s1, 1 ], [ $s2, 2 ])
	{
		my ($s, $id) = @$x;
		sq(
			$s, qq{
			BEGIN ISOLATION LEVEL SERIALIZABLE;
			SELECT sum(v) FROM skew;
			UPDATE skew SET v = 1 WHERE id = $id;
			SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES (\$1, \$2)', 's1 skew $id', 1);
			SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES (\$1, \$2)', 's1 skew $id', 1);
		});
	}
	my ($o1, $e1) = sq($s1, 'COMMIT;');
	my ($qa, $qb) = (log_pos($pa), log_pos($pb));
	my ($o2, $e2) = sq($s2, 'COMMIT;');
	my $l2 = dtx_log_since($pa, $qa) . "\n" . dtx_log_since($pb, $qb);
	$s1->quit;
	$s2->quit;
	is($e1, '', '1 local commit failure: the first transaction commits');
	like($e2, qr/ERROR:\s+could not serialize access/,
		'1 local commit failure: the second fails at its local commit');
	# the conflict may be caught before the PREPAREs go out or after:
	# whatever was prepared is rolled back
	is(scalar(() = $l2 =~ /ROLLBACK PREPARED 'dtx_/g),
		scalar(() = $l2 =~ /PREPARE TRANSACTION 'dtx_/g),
		'1 local commit failure: whatever pa and pb had prepared is rolled back');
	is(ledger_count($pa, 's1 skew 1') . ledger_count($pb, 's1 skew 1'),
		'11', '1 local commit failure: the first committed on pa and pb');
	is(ledger_count($pa, 's1 skew 2') . ledger_count($pb, 's1 skew 2'),
		'00', '1 local commit failure: the second rolled back on pa and pb');
	is($coord->safe_psql('postgres', 'SELECT v FROM skew ORDER BY id'),
		"1\n0", '1 local commit failure: locally too');
	all_clean('1 local commit failure');
	resolve();
	is(decisions(), 0, '1 local commit failure: no decision left');
}

# --- 2. a participant crashed before PREPARE ---------------------------------

{
	my $s = session();
	my ($out, $err) = sq(
		$s, q{
		BEGIN;
		SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's2', -5);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's2', 5);
		INSERT INTO local_log VALUES ('s2');
	});
	is($err, '', '2: both statements ran');

	crash($pb);
	($out, $err) = sq($s, 'COMMIT;');
	like($err, qr/ERROR:.*server "pb"/,
		'2 crash before PREPARE: COMMIT fails, naming the crashed server');
	# pg_dtx cannot tell whether the PREPARE it sent reached pb before the
	# connection broke: a WARNING about pb's possibly prepared transaction is
	# fair; nothing may be said about pa, nor that anything committed.
	unlike($err, qr/WARNING:[^\n]*(committed|server "pa")/,
		'2 crash before PREPARE: no warning about a commit or about pa');
	is(ledger_count($pa, 's2'), 0, '2 crash before PREPARE: pa unchanged');
	is(prepared_xacts($pa), 0, '2 crash before PREPARE: nothing prepared on pa');
	is(local_count('s2'), 0, '2 crash before PREPARE: no local row');

	$pb->start;
	is(ledger_count($pb, 's2'), 0, '2 crash before PREPARE: pb unchanged after restart');
	is(decisions(), 0, '2 crash before PREPARE: no decision');
	all_clean('2 crash before PREPARE');
	unlike(resolve(), qr/\|commit\|/, '2 crash before PREPARE: the resolver commits nothing');

	# the same session reconnects to the restarted server
	($out, $err) = sq(
		$s, q{
		BEGIN;
		SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's2 again', -5);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's2 again', 5);
		COMMIT;
	});
	is($err, '', '2 crash before PREPARE: the next transaction of the session commits');
	is(ledger_count($pa, 's2 again') + ledger_count($pb, 's2 again'),
		2, '2 crash before PREPARE: ... on both servers');
	$s->quit;
}

# --- 3. a participant crashed after PREPARE ----------------------------------

# Runs a transfer pa -> pb tagged $tag whose PREPARE stalls on pb; once pa
# has prepared, $kill->() takes pa down.  Returns the client's stderr and
# whether COMMIT succeeded.
sub transfer_killing_pa
{
	my ($tag, $kill) = @_;
	my $s = session();
	my ($out, $err) = sq(
		$s, qq{
		BEGIN;
		SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES (\$1, \$2)', '$tag', -10);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount, stall) VALUES (\$1, \$2, \$3)', '$tag', 10, $STALL);
		INSERT INTO local_log VALUES ('$tag');
		SELECT 'xid:' || pg_current_xact_id();
	});
	is($err, '', "$tag: statements ran");
	my ($xid) = $out =~ /xid:(\d+)/;
	sq_send($s, 'COMMIT;');
	ok( wait_for(
			$pa,
			"SELECT count(*) = 1 FROM pg_prepared_xacts WHERE starts_with(gid, '"
			  . gid($xid, 'pa', 1) . "')"),
		"$tag: pa prepared while pb's PREPARE stalls");
	# let pa's answer reach the coordinator
	usleep(300_000);
	is( $coord->safe_psql('postgres',
			"SELECT state || ' ' || query FROM pg_stat_activity WHERE pid = $s->{pid}"),
		'active COMMIT;',
		"$tag: COMMIT still waiting on pb when pa goes down");
	$kill->();
	my $t = time;
	($out, $err) = sq_wait($s);
	diag(sprintf("$tag: COMMIT returned %.1fs after pa went down", time - $t));
	my $committed = $err !~ /ERROR/;
	$s->quit;
	return ($err, $committed, $xid);
}

# pa crashed (SIGKILL) once it prepared, while pb's PREPARE is slow
{
	my ($err, $committed, $xid) = transfer_killing_pa('s3 kill', sub { crash($pa) });
	if ($committed)
	{
		like(
			$err,
			qr/WARNING:\s+committed, but server "pa" has not confirmed COMMIT PREPARED/,
			'3 kill after PREPARE: COMMIT succeeds with the WARNING naming pa');
		is(local_count('s3 kill'), 1, '3 kill after PREPARE: committed locally');
		is( $coord->safe_psql(
				'postgres',
				"SELECT count(*) FROM dtx.in_doubt WHERE server = 'pa' AND starts_with(global_id, '"
				  . gid($xid, 'pa', 1) . "')"),
			1,
			'3 kill after PREPARE: dtx.in_doubt shows pa in doubt');
		is(ledger_count($pb, 's3 kill'), 1, '3 kill after PREPARE: pb committed');
	}
	else
	{
		like($err, qr/ERROR:.*server "pa"/,
			'3 kill after PREPARE: COMMIT fails, naming pa');
		is(local_count('s3 kill'), 0, '3 kill after PREPARE: no local row');
		is(decisions(), 0, '3 kill after PREPARE: no decision');
		is(ledger_count($pb, 's3 kill'), 0, '3 kill after PREPARE: pb rolled back');
	}
	diag('3 kill after PREPARE: the client saw ' . ($committed ? 'a commit' : 'a failure'));

	$pa->start;
	is(prepared_xacts($pa), 1, '3 kill after PREPARE: pa still holds its prepared transaction after restart');
	my $r = resolve();
	my $expect = $committed ? 'commit' : 'rollback';
	like($r, qr/^pa\|dtx_${coordid}_${dboid}_\d+_$srvoid{pa}_${uid}_1_\d+\|$expect\|done$/m,
		"3 kill after PREPARE: dtx.resolve() runs $expect on pa");
	my $n = $committed ? 1 : 0;
	is(ledger_count($pa, 's3 kill'), $n, "3 kill after PREPARE: pa ends " . ($committed ? 'committed' : 'rolled back'));
	is(ledger_count($pb, 's3 kill'), $n, "3 kill after PREPARE: pb ends " . ($committed ? 'committed' : 'rolled back'));
	is(local_count('s3 kill'), $n, '3 kill after PREPARE: the local row agrees');
	is(decisions(), 0, '3 kill after PREPARE: no decision left');
	is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.in_doubt'),
		0, '3 kill after PREPARE: nothing in doubt');
	all_clean('3 kill after PREPARE');
}

# pb crashed during its slow PREPARE: pa had prepared, pb never did
{
	my $s = session();
	my ($out, $err) = sq(
		$s, qq{
		BEGIN;
		SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES (\$1, \$2)', 's3 kill pb', -10);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount, stall) VALUES (\$1, \$2, \$3)', 's3 kill pb', 10, 30);
	});
	sq_send($s, 'COMMIT;');
	ok( wait_for(
			$pa,
			"SELECT count(*) > 0 FROM pg_prepared_xacts WHERE gid LIKE 'dtx\\_$coordid\\_%'"
		),
		'3 kill during PREPARE: pa prepared');
	ok( wait_for(
			$pb,
			"SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'PREPARE TRANSACTION%' AND wait_event = 'PgSleep'"
		),
		'3 kill during PREPARE: pb sleeps in its PREPARE');
	crash($pb);
	($out, $err) = sq_wait($s);
	like($err, qr/ERROR:.*server "pb"/,
		'3 kill during PREPARE: COMMIT fails, naming pb');
	unlike($err, qr/WARNING:[^\n]*(committed|server "pa")/,
		'3 kill during PREPARE: no warning about a commit or about pa');
	is(prepared_xacts($pa), 0,
		'3 kill during PREPARE: pa rolled back without the resolver');
	$pb->start;
	is(prepared_xacts($pb), 0, '3 kill during PREPARE: nothing prepared on pb after restart');
	unlike(resolve(), qr/\|commit\|/, '3 kill during PREPARE: the resolver commits nothing');
	is(ledger_count($pa, 's3 kill pb') + ledger_count($pb, 's3 kill pb'),
		0, '3 kill during PREPARE: no row anywhere');
	is(decisions(), 0, '3 kill during PREPARE: no decision');
	all_clean('3 kill during PREPARE');
	$s->quit;
}

# pa frozen (SIGSTOP on its pg_dtx backend) once it prepared: COMMIT
# PREPARED gets no answer, and dtx.commit_timeout bounds the client's wait
{
	my $s = session();
	my ($out, $err) = sq(
		$s, qq{
		SET dtx.commit_timeout = '1s';
		BEGIN;
		SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES (\$1, \$2)', 's3 frozen', -10);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount, stall) VALUES (\$1, \$2, \$3)', 's3 frozen', 10, $STALL);
		INSERT INTO local_log VALUES ('s3 frozen');
		SELECT 'xid:' || pg_current_xact_id();
	});
	my ($xid) = $out =~ /xid:(\d+)/;
	my $remote = $pa->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE application_name = '"
		  . appname($s->{pid}) . "'");
	sq_send($s, 'COMMIT;');
	ok(wait_for($pa, "SELECT count(*) = 1 FROM pg_prepared_xacts WHERE starts_with(gid, '" . gid($xid, 'pa', 1) . "')"),
		'3 frozen: pa prepared');
	kill('STOP', $remote);
	my $t = time;
	($out, $err) = sq_wait($s);
	my $took = time - $t;
	diag(sprintf('3 frozen: COMMIT returned %.1fs after pa froze', $took));
	like(
		$err,
		qr/WARNING:\s+committed, but server "pa" has not confirmed COMMIT PREPARED\nDETAIL:\s+Global id \Q@{[gid($xid, 'pa', 1)]}\E\d+: no answer within dtx.commit_timeout/,
		'3 frozen: COMMIT succeeds with the WARNING naming pa and the timeout');
	unlike($err, qr/ERROR/, '3 frozen: no error');
	ok($took < $STALL + 8, '3 frozen: the wait is bounded');
	is(ledger_count($pb, 's3 frozen'), 1, '3 frozen: pb committed');
	is(local_count('s3 frozen'), 1, '3 frozen: committed locally');
	is( $coord->safe_psql(
			'postgres',
			"SELECT count(*) FROM dtx.in_doubt WHERE server = 'pa' AND starts_with(global_id, '"
			  . gid($xid, 'pa', 1) . "')"),
		1,
		'3 frozen: dtx.in_doubt shows pa in doubt');
	# the frozen backend resumes with COMMIT PREPARED in its input while the
	# resolver may try the same
	kill('CONT', $remote);
	resolve();
	ok(wait_for($pa, "SELECT count(*) = 1 FROM ledger WHERE tag = 's3 frozen'"),
		'3 frozen: pa ends committed');
	resolve();
	is(decisions(), 0, '3 frozen: no decision left');
	my ($o2, $e2) = sq(
		$s, q{
		BEGIN;
		SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's3 frozen next', 1);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's3 frozen next', 1);
		COMMIT;
	});
	is($e2, '', '3 frozen: the session\'s next transaction commits');
	$s->quit;
	resolve();
	all_clean('3 frozen');
}

# --- 4. savepoints and isolation levels --------------------------------------

{
	my $a1 = balance($pa, 1);
	my $b1 = balance($pb, 1);
	my ($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1');
		SAVEPOINT s1;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 10 WHERE id = 1');
		SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + 10 WHERE id = 1');
		SAVEPOINT s2;
		SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + 20 WHERE id = 1');
		ROLLBACK TO SAVEPOINT s1;
		SELECT 'after rollback to: ' || a.b || ' ' || b.b
		  FROM dtx.query('pa', 'SELECT balance FROM accounts WHERE id = 1') AS a(b bigint),
		       dtx.query('pb', 'SELECT balance FROM accounts WHERE id = 1') AS b(b bigint);
		SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + 100 WHERE id = 1');
		SAVEPOINT s3;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1000 WHERE id = 1');
		RELEASE SAVEPOINT s3;
		SAVEPOINT s4;
		SELECT dtx.exec('pa', 'INSERT INTO accounts VALUES (1, 0)');
		ROLLBACK TO SAVEPOINT s4;
		SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + 10000 WHERE id = 1');
		COMMIT;
	}, on_error_stop => 0);
	is($rc, 0, '4 savepoints: COMMIT succeeds');
	like($out, qr/after rollback to: @{[$a1 + 1]} $b1/,
		'4 savepoints: ROLLBACK TO undoes the work on both participants at once');
	like($err, qr/duplicate key/, '4 savepoints: the error inside a savepoint was reported');
	is(balance($pa, 1), $a1 + 1001, '4 savepoints: pa has the kept and released work');
	is(balance($pb, 1), $b1 + 10100, '4 savepoints: pb has the work after the rollback');

	# a PL/pgSQL exception block rolls back both participants
	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		DO $$
		BEGIN
			PERFORM dtx.exec('pa', 'UPDATE accounts SET balance = balance + 7 WHERE id = 1');
			PERFORM dtx.exec('pb', 'UPDATE accounts SET balance = balance + 7 WHERE id = 1');
			PERFORM dtx.exec('pb', 'INSERT INTO accounts VALUES (1, 0)');
		EXCEPTION WHEN unique_violation THEN
			RAISE NOTICE 'caught';
		END $$;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 3 WHERE id = 2');
		COMMIT;
	});
	is($rc, 0, '4 exception block: COMMIT succeeds');
	is(balance($pa, 1), $a1 + 1001, '4 exception block: pa rolled back to the block start');
	is(balance($pb, 1), $b1 + 10100, '4 exception block: pb rolled back to the block start');
	is(balance($pa, 2), 503, '4 exception block: the work after the block committed');
	resolve();
	all_clean('4 savepoints');

	# isolation levels and read-only mode reach the remote transactions
	my %want = (
		'READ COMMITTED' => 'read committed',
		'REPEATABLE READ' => 'repeatable read',
		'SERIALIZABLE' => 'serializable');
	for my $level (sort keys %want)
	{
		is( $coord->safe_psql(
				'postgres', qq{
			BEGIN ISOLATION LEVEL $level;
			SELECT a.l || '/' || b.l
			  FROM dtx.query('pa', 'SHOW transaction_isolation') AS a(l text),
			       dtx.query('pb', 'SHOW transaction_isolation') AS b(l text);
			COMMIT;}),
			"$want{$level}/$want{$level}",
			"4 isolation: $level on both participants");
	}
	is( $coord->safe_psql(
			'postgres', q{
		BEGIN READ ONLY;
		SELECT l FROM dtx.query('pa', 'SHOW transaction_read_only') AS t(l text);
		COMMIT;}),
		'on',
		'4 isolation: READ ONLY reaches the participant');
	($rc, $out, $err) = coord_sql(q{
		BEGIN READ ONLY;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = 0 WHERE id = 1');
		COMMIT;
	});
	like($err, qr/cannot execute UPDATE in a read-only transaction/,
		'4 isolation: a write in a READ ONLY transaction is refused remotely');
	is(balance($pa, 1), $a1 + 1001, '4 isolation: ... and changes nothing');

	# REPEATABLE READ: the remote snapshot is held for the whole transaction
	my $s = session();
	my $q = q{SELECT b FROM dtx.query('pa', 'SELECT balance FROM accounts WHERE id = 2') AS t(b bigint);};
	sq($s, 'BEGIN ISOLATION LEVEL REPEATABLE READ;');
	my ($first) = sq($s, $q);
	$pa->safe_psql('postgres', 'UPDATE accounts SET balance = balance + 7 WHERE id = 2');
	my ($second) = sq($s, $q);
	sq($s, 'COMMIT;');
	is($second, $first, '4 repeatable read: a remote change made meanwhile is not seen');
	sq($s, 'BEGIN ISOLATION LEVEL READ COMMITTED;');
	($first) = sq($s, $q);
	$pa->safe_psql('postgres', 'UPDATE accounts SET balance = balance + 7 WHERE id = 2');
	($second) = sq($s, $q);
	sq($s, 'COMMIT;');
	is($second, $first + 7, '4 read committed: a remote change made meanwhile is seen');
	$s->quit;
	all_clean('4 isolation');
}

# --- 5. read-only, one-phase and two-phase paths -----------------------------

{
	my ($rc, $out, $err, $posa, $posb, $la, $lb, $d);

	# only reads: COMMIT on both, no PREPARE, no decision
	$d = decisions();
	($posa, $posb) = (log_pos($pa), log_pos($pb));
	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT * FROM dtx.query('pa', 'SELECT balance FROM accounts WHERE id = 1') AS t(b bigint);
		SELECT * FROM dtx.query('pb', 'SELECT balance FROM accounts WHERE id = 1') AS t(b bigint);
		COMMIT;
	});
	is($rc, 0, '5 readers: COMMIT succeeds');
	($la, $lb) = (dtx_log_since($pa, $posa), dtx_log_since($pb, $posb));
	unlike($la . $lb, $PREPARE, '5 readers: no PREPARE TRANSACTION');
	like($la, $COMMIT, '5 readers: pa gets COMMIT');
	like($lb, $COMMIT, '5 readers: pb gets COMMIT');
	is(decisions(), $d, '5 readers: no decision');

	# one writer (pb), one reader (pa), no local write: one phase
	($posa, $posb) = (log_pos($pa), log_pos($pb));
	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT * FROM dtx.query('pa', 'SELECT balance FROM accounts WHERE id = 1') AS t(b bigint);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's5 one writer', 1);
		SELECT 'xid:' || coalesce(pg_current_xact_id_if_assigned()::text, 'none');
		COMMIT;
	});
	is($rc, 0, '5 one writer: COMMIT succeeds');
	like($out, qr/xid:none/, '5 one writer: the local transaction wrote nothing');
	($la, $lb) = (dtx_log_since($pa, $posa), dtx_log_since($pb, $posb));
	unlike($la, $PREPARE, '5 one writer: no PREPARE on the reader pa');
	like($la, $COMMIT, '5 one writer: the reader pa gets COMMIT');
	unlike($lb, $PREPARE, '5 one writer: no PREPARE on the writer pb');
	unlike($lb, $COMMIT_PREPARED, '5 one writer: no COMMIT PREPARED on pb');
	like($lb, $COMMIT, '5 one writer: pb commits in one phase');
	is(ledger_count($pb, 's5 one writer'), 1, '5 one writer: pb committed');
	is(decisions(), $d, '5 one writer: no decision');

	# two writers: PREPARE TRANSACTION on both, under the documented global ids
	($posa, $posb) = (log_pos($pa), log_pos($pb));
	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's5 two writers', -1);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's5 two writers', 1);
		SELECT 'xid:' || pg_current_xact_id();
		COMMIT;
	});
	is($rc, 0, '5 two writers: COMMIT succeeds');
	my ($xid) = $out =~ /xid:(\d+)/;
	($la, $lb) = (dtx_log_since($pa, $posa), dtx_log_since($pb, $posb));
	my ($gida, $gidb) = (gid($xid, 'pa', 1), gid($xid, 'pb', 2));
	like($la, qr/PREPARE TRANSACTION '\Q$gida\E\d+'/, "5 two writers: pa gets PREPARE TRANSACTION '$gida<nonce>'");
	like($lb, qr/PREPARE TRANSACTION '\Q$gidb\E\d+'/, "5 two writers: pb gets PREPARE TRANSACTION '$gidb<nonce>'");
	like($la, qr/COMMIT PREPARED '\Q$gida\E\d+'/, '5 two writers: pa gets COMMIT PREPARED');
	like($lb, qr/COMMIT PREPARED '\Q$gidb\E\d+'/, '5 two writers: pb gets COMMIT PREPARED');
	{
		my ($na) = $la =~ /PREPARE TRANSACTION '\Q$gida\E(\d+)'/;
		my ($nb) = $lb =~ /PREPARE TRANSACTION '\Q$gidb\E(\d+)'/;
		ok(defined $na && defined $nb && $na eq $nb && $na > 0,
			'5 two writers: both global ids carry the same non-zero nonce');
	}
	unlike($la . $lb, $COMMIT, '5 two writers: no plain COMMIT');
	is(decisions(), $d + 1, '5 two writers: one decision recorded');
	is(ledger_count($pa, 's5 two writers') + ledger_count($pb, 's5 two writers'),
		2, '5 two writers: both committed');

	# one writer plus a local write: two phases, the reader still not prepared
	$d = decisions();
	($posa, $posb) = (log_pos($pa), log_pos($pb));
	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT * FROM dtx.query('pa', 'SELECT balance FROM accounts WHERE id = 1') AS t(b bigint);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's5 local write', 1);
		INSERT INTO local_log VALUES ('s5 local write');
		COMMIT;
	});
	is($rc, 0, '5 local write: COMMIT succeeds');
	($la, $lb) = (dtx_log_since($pa, $posa), dtx_log_since($pb, $posb));
	unlike($la, $PREPARE, '5 local write: no PREPARE on the reader pa');
	like($lb, $PREPARE, '5 local write: pb is prepared');
	like($lb, $COMMIT_PREPARED, '5 local write: pb gets COMMIT PREPARED');
	is(decisions(), $d + 1, '5 local write: one decision recorded');
	is(ledger_count($pb, 's5 local write') . local_count('s5 local write'),
		'11', '5 local write: pb and the local row committed');

	# a SELECT that writes (through a function) makes pa a writer
	$d = decisions();
	($posa, $posb) = (log_pos($pa), log_pos($pb));
	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT * FROM dtx.query('pa', 'SELECT ledger_note($1)', 's5 select writes') AS t(tag text);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's5 select writes', 1);
		COMMIT;
	});
	is($rc, 0, '5 select that writes: COMMIT succeeds');
	($la, $lb) = (dtx_log_since($pa, $posa), dtx_log_since($pb, $posb));
	like($la, $PREPARE, '5 select that writes: pa is prepared');
	like($lb, $PREPARE, '5 select that writes: pb is prepared');
	is(decisions(), $d + 1, '5 select that writes: one decision recorded');
	is(ledger_count($pa, 's5 select writes') + ledger_count($pb, 's5 select writes'),
		2, '5 select that writes: both committed');

	resolve();
	is(decisions(), 0, '5: no decision left after a resolver pass');
	all_clean('5 paths');

	# one-phase COMMIT whose answer is lost: 08007.  pb's backend is frozen
	# (SIGSTOP) before COMMIT reaches it, then killed.
	my $s = session();
	my ($o, $e) = sq($s, q{
		BEGIN;
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's5 lost', 1);
	});
	my $remote = $pb->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE application_name = '"
		  . appname($s->{pid}) . "'");
	like($remote, qr/^\d+$/, '5 lost answer: one remote backend on pb');
	kill('STOP', $remote);
	sq_send($s, "\\set VERBOSITY verbose\nCOMMIT;");
	ok( wait_for(
			$coord,
			"SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE pid = $s->{pid} AND query LIKE 'COMMIT%'"
		),
		'5 lost answer: the coordinator waits for pb\'s COMMIT');
	kill('KILL', $remote);
	($o, $e) = sq_wait($s);
	like($e, qr/ERROR:\s+08007: lost the connection to server "pb" while committing/,
		'5 lost answer: COMMIT fails with SQLSTATE 08007');
	like($e, qr/may or may not have committed/, '5 lost answer: the detail says the outcome is unknown');
	$s->quit;
	ok(wait_for($pb, 'SELECT NOT pg_is_in_recovery()'), '5 lost answer: pb back after its crash restart');
	is(ledger_count($pb, 's5 lost'), 0, '5 lost answer: the COMMIT never ran on pb');
	all_clean('5 lost answer');
}

# --- 6. a participant with max_prepared_transactions = 0 --------------------

{
	my $posa = log_pos($pa);
	my $a1 = balance($pa, 1);
	my ($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1');
		SELECT dtx.exec('pc', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1');
		COMMIT;
	});
	isnt($rc, 0, '6 two writers: COMMIT fails');
	like($err, qr/ERROR:\s+server "pc" does not allow prepared transactions/,
		'6 two writers: the error names pc');
	like($err, qr/HINT:\s+Set max_prepared_transactions on server "pc"/,
		'6 two writers: with a hint');
	unlike(dtx_log_since($pa, $posa), $PREPARE, '6 two writers: nothing was prepared on pa');
	is(balance($pc, 1), 50, '6 two writers: pc unchanged');
	is(balance($pa, 1), $a1, '6 two writers: pa unchanged');

	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT dtx.exec('pc', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1');
		INSERT INTO local_log VALUES ('s6 local');
		COMMIT;
	});
	like($err, qr/server "pc" does not allow prepared transactions/,
		'6 pc and a local write: COMMIT fails');
	is(balance($pc, 1) . local_count('s6 local'), '500', '6 pc and a local write: nothing changed');

	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT * FROM dtx.query('pa', 'SELECT balance FROM accounts WHERE id = 1') AS t(b bigint);
		SELECT dtx.exec('pc', 'UPDATE accounts SET balance = balance + 5 WHERE id = 1');
		COMMIT;
	});
	is($rc, 0, '6 pc the only writer: COMMIT succeeds (one phase)');
	is($err, '', '6 pc the only writer: no warning');
	is(balance($pc, 1), 55, '6 pc the only writer: pc committed');
	is(balance($pa, 1), $a1, '6: pa unchanged');
	is(decisions(), 0, '6: no decision');
	all_clean('6 no prepared transactions');
}

# --- 7. a hot standby coordinator --------------------------------------------

{
	$coord->backup('standby_backup');
	my $standby = PostgreSQL::Test::Cluster->new('coord_standby');
	$standby->init_from_backup($coord, 'standby_backup', has_streaming => 1);
	$standby->start;
	$coord->wait_for_catchup($standby);
	is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'),
		't', '7: the standby is in recovery');

	my $a1 = balance($pa, 1);
	my ($rc, $out, $err) = $standby->psql(
		'postgres', q{\set VERBOSITY verbose
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = 0 WHERE id = 1');});
	isnt($rc, 0, '7 dtx.exec on the standby: fails');
	like($err, qr/ERROR:\s+25006: cannot run dtx\.exec on a hot standby/,
		'7 dtx.exec on the standby: clear error, SQLSTATE 25006');
	like($err, qr/HINT:.*dtx\.query works here/, '7 dtx.exec on the standby: the hint points to dtx.query');

	is( $standby->safe_psql(
			'postgres', q{
		BEGIN;
		SELECT a.b || ' ' || b.b
		  FROM dtx.query('pa', 'SELECT balance FROM accounts WHERE id = 1') AS a(b bigint),
		       dtx.query('pb', 'SELECT balance FROM accounts WHERE id = 1') AS b(b bigint);
		COMMIT;}),
		$a1 . ' ' . balance($pb, 1),
		'7 dtx.query on the standby: reads both participants');
	is($standby->safe_psql('postgres',
			q{SELECT count(*) FROM dtx.query('pa', 'SELECT 1') AS t(x int)}),
		1, '7 dtx.query on the standby: outside a transaction block too');

	($rc, $out, $err) = $standby->psql('postgres',
		q{SELECT * FROM dtx.query('pa', 'UPDATE accounts SET balance = 0 WHERE id = 1 RETURNING balance') AS t(b bigint);}
	);
	isnt($rc, 0, '7 a write through dtx.query on the standby: fails');
	is(balance($pa, 1), $a1, '7 a write through dtx.query on the standby: pa unchanged');
	all_clean('7 standby');
	$standby->stop;
}

# --- 8. connection reuse ------------------------------------------------------

{
	my $s = session();
	my $app = appname($s->{pid});
	my (%pids_a, %pids_b, @bad);
	my @xacts = (
		q{BEGIN; SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 2');
		  SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance - 1 WHERE id = 1'); COMMIT;},
		q{BEGIN; SELECT dtx.exec('pa', 'UPDATE accounts SET balance = 0 WHERE id = 2');
		  SELECT dtx.exec('pb', 'UPDATE accounts SET balance = 0 WHERE id = 1'); ROLLBACK;},
		q{BEGIN; SELECT * FROM dtx.query('pa', 'SELECT 1') AS t(x int);
		  SELECT * FROM dtx.query('pb', 'SELECT 1') AS t(x int); COMMIT;},
		q{BEGIN; SELECT * FROM dtx.query('pa', 'SELECT 1') AS t(x int);
		  SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1'); COMMIT;},
		q{BEGIN; SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 2');
		  SELECT dtx.exec('pb', 'SELECT no_such_column FROM accounts'); COMMIT;},
		q{BEGIN; SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 2');
		  SAVEPOINT x; SELECT dtx.exec('pb', 'INSERT INTO accounts VALUES (1, 0)'); ROLLBACK TO x;
		  SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance - 1 WHERE id = 1'); COMMIT;},
		q{BEGIN; SELECT dtx.exec('pa', 'INSERT INTO dcheck VALUES (9), (9)');
		  SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1'); COMMIT;},
		q{SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 2');},
		q{SELECT * FROM dtx.query('pb', 'SELECT 1') AS t(x int);},
		q{BEGIN; SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 2');
		  SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance - 1 WHERE id = 1');
		  INSERT INTO local_log VALUES ('s8'); COMMIT;},
	);
	my $i = 0;
	for my $x (@xacts, @xacts)
	{
		$i++;
		sq($s, $x);
		for my $p ([ $pa, \%pids_a ], [ $pb, \%pids_b ])
		{
			my ($n, $seen) = @$p;
			my @rows = split /\n/, $n->safe_psql('postgres',
				"SELECT pid || ' ' || state FROM pg_stat_activity WHERE application_name = '$app'"
			);
			for my $row (@rows)
			{
				my ($pid, $state) = split / /, $row, 2;
				$seen->{$pid}++;
				push @bad, "transaction $i: " . $n->name . " session $pid is $state"
				  if $state ne 'idle';
			}
			push @bad, "transaction $i: " . $n->name . " has " . scalar(@rows) . " sessions"
			  if @rows > 1;
		}
	}
	is(scalar(keys %pids_a), 1, '8: one remote backend on pa for all the session\'s transactions')
	  or diag('pa backends: ' . join(' ', sort keys %pids_a));
	is(scalar(keys %pids_b), 1, '8: one remote backend on pb for all the session\'s transactions')
	  or diag('pb backends: ' . join(' ', sort keys %pids_b));
	is(join("\n", @bad), '', '8: the remote sessions are idle after every commit and rollback');

	# a second coordinator backend has its own remote session
	my $s2 = session();
	sq($s2, q{BEGIN; SELECT * FROM dtx.query('pa', 'SELECT 1') AS t(x int); COMMIT;});
	is( $pa->safe_psql(
			'postgres',
			"SELECT string_agg(application_name, ',' ORDER BY application_name) FROM pg_stat_activity WHERE application_name LIKE 'pg\\_dtx:%'"
		),
		join(',', sort(appname($s->{pid}), appname($s2->{pid}))),
		'8: one pg_dtx session on pa per coordinator backend');
	$s2->quit;
	ok( wait_for(
			$pa,
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = '"
			  . appname($s2->{pid}) . "'"),
		'8: the remote session ends with its coordinator backend');
	$s->quit;
	resolve();
	is(decisions(), 0, '8: no decision left');
	all_clean('8 connection reuse');
}

# --- 3 (continued). the background resolver finishes a crash -------------------

{
	$coord->safe_psql('postgres',
		"ALTER SYSTEM SET dtx.resolver_interval = '1s'; SELECT pg_reload_conf();");
	my $t0;
	my ($err, $committed) = transfer_killing_pa('s3 stop', sub { $pa->stop('immediate'); $t0 = time; });
	if ($committed)
	{
		like(
			$err,
			qr/WARNING:\s+committed, but server "pa" has not confirmed COMMIT PREPARED/,
			'3 stop after PREPARE: COMMIT succeeds with the WARNING naming pa');
	}
	else
	{
		like($err, qr/ERROR:.*server "pa"/, '3 stop after PREPARE: COMMIT fails, naming pa');
	}
	diag('3 stop after PREPARE: the client saw ' . ($committed ? 'a commit' : 'a failure'));
	$pa->start;
	my $n = $committed ? 1 : 0;
	ok( wait_for(
			$pa,
			"SELECT (SELECT count(*) FROM pg_prepared_xacts) = 0 AND (SELECT count(*) FROM ledger WHERE tag = 's3 stop') = $n"
		),
		'3 stop after PREPARE: the background resolver finishes pa');
	ok(wait_for($coord, 'SELECT count(*) = 0 FROM dtx.decisions'),
		'3 stop after PREPARE: the decision is deleted');
	diag(sprintf('3 stop after PREPARE: finished %.1fs after pa went down', time - $t0));
	is(ledger_count($pb, 's3 stop'), $n, '3 stop after PREPARE: pb agrees');
	is(local_count('s3 stop'), $n, '3 stop after PREPARE: the local row agrees');
	all_clean('3 stop after PREPARE');
}

diag(sprintf('002_core: %.1fs', time - $started));
done_testing();
