# Edge cases of the resolver that the crash tests do not reach.
#
# 1. A busy prepared transaction: the resolver's COMMIT PREPARED (and
#    ROLLBACK PREPARED) meets SQLSTATE 55000 "prepared transaction with
#    identifier ... is busy" because another session on the participant is
#    finishing that very prepared transaction.  That session is held in the
#    middle of its COMMIT PREPARED / ROLLBACK PREPARED, after the gxact is
#    locked by it and its record is written, by a synchronous standby that
#    does not exist (synchronous_standby_names = 'nobody', and
#    synchronous_commit = on for that session only).  The resolver must
#    report "busy", record no failure of the server (no backoff, no
#    last_error), keep the decision while the prepared transaction exists,
#    and forget it once a later pass sees it gone.
#
# 2. DROP DATABASE of a database with pg_dtx whose resolver worker is in the
#    middle of a pass: the worker waits for the result of its COMMIT
#    PREPARED (held on the participant as above), or for a connection to a
#    frozen participant (SIGSTOP); and CREATE DATABASE ... TEMPLATE of such
#    a database.  With a transaction in doubt, DROP DATABASE is refused at
#    once (its decision would go with the database, and nothing would ever
#    finish its prepared transactions), and succeeds once the resolver has
#    finished it; without, it succeeds within seconds, ending the worker.
#    CREATE DATABASE ... TEMPLATE always succeeds.  The launcher goes on
#    serving the other databases.
#
# Times of the DDL are printed with diag.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster;

$PostgreSQL::Test::Utils::timeout_default = 60;

# a held PREPARE waits until release_stall() (or this many seconds)
my $HOLD = 60;
my $BUSY = 'busy: another session is finishing it';

# The background resolver starts off: the passes of part 1 are only those
# of dtx.resolve().
my $coord = new_coordinator('coord',
	extra_conf => "dtx.resolver_interval = 0\nmax_connections = 40\n");
# pa can stream WAL, so that synchronous_standby_names makes commits wait
my $pa = new_participant('pa',
	extra_conf => "wal_level = replica\nmax_wal_senders = 2\n");
my $pb = new_participant('pb');
my $pc = new_participant('pc');
my %node = (pa => $pa, pb => $pb, pc => $pc);
create_ledger($_) for ($pa, $pb, $pc);
add_server($coord, $_, $node{$_}) for qw(pa pb);

# A frozen pc must be resumed whatever happens, or the teardown hangs.
my $pc_frozen = 0;

END
{
	signal_node($pc, 'CONT') if $pc_frozen;
}

# --- helpers -------------------------------------------------------------------

# A transfer tagged $o{tag} in database $o{db} of coord: its $o{victim} leg
# prepares at once while the PREPARE of its $o{staller} leg is held.  Once
# the victim prepared, $o{action} is applied to it: "terminate" ends the
# session that prepared (the coordinator cannot finish it), "sigstop"
# freezes the whole server.  Then the staller is released: with
# $o{abort} its PREPARE fails and the transaction aborts (the victim's
# ROLLBACK PREPARED cannot be sent: no decision, left prepared), else it
# commits (the victim's COMMIT PREPARED is not confirmed: in doubt).
# $o{prefix} is SQL run first in the client's session, $o{before_release}
# a sub called just before the release.  Returns the victim's global id and the client's exit code and stderr.
sub in_doubt
{
	my (%o) = @_;
	my $victim = $node{ $o{victim} };
	my $before = gid_set($victim);
	my $sql = ($o{prefix} // '')
	  . transfer_sql(
		$o{tag},
		[ $o{staller}, -1, $o{abort} ? -$HOLD : $HOLD ],
		[ $o{victim}, 1 ]);
	my $h = start_sql($coord, $sql, dbname => $o{db} // 'postgres');
	my $gid = wait_new_gid($victim, $before);
	if (($o{action} // 'terminate') eq 'terminate')
	{
		$victim->safe_psql('postgres',
			    'SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity '
			  . 'WHERE query LIKE '
			  . quote_literal("%PREPARE TRANSACTION '$gid'%"));
	}
	else
	{
		signal_node($victim, 'STOP');
		$pc_frozen = 1 if $victim == $pc;
	}
	$o{before_release}->() if $o{before_release};
	release_stall($node{ $o{staller} }, $o{tag});
	my ($rc, undef, $err) = finish_sql($h);
	return ($gid, $rc, $err);
}

# Starts psql on $node running, in a session named $app with
# synchronous_commit = on, each of @sql as its own command.
sub start_sync_session
{
	my ($node, $app, @sql) = @_;
	return start_cmd(
		[
			'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1',
			'-d', $node->connstr('postgres') . " application_name=$app",
			'-c', 'SET synchronous_commit = on',
			map { ('-c', $_) } @sql
		]);
}

# The pid of $node's session $app once it waits for the synchronous
# standby (undef if it does not within 20 s).
sub wait_syncrep
{
	my ($node, $app) = @_;
	return undef
	  unless defined poll_until(
		$node, 'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = '$app' AND wait_event = 'SyncRep'",
		'1', 20);
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE application_name = '$app'");
}

# pa waits for a synchronous standby that does not exist: in every session
# (default), or with local => 1 only in sessions that SET synchronous_commit
# = on.  Returns once a probe commit (a row 'sync-probe-$label' in pa's
# ledger) waited, so that the setting is in force; true if it did.
sub pa_sync_on
{
	my ($label, %o) = @_;
	$pa->safe_psql('postgres',
		    "ALTER SYSTEM SET synchronous_standby_names = 'nobody';"
		  . ($o{local} ? 'ALTER SYSTEM SET synchronous_commit = local;' : '')
		  . 'SELECT pg_reload_conf();');
	my $probe = start_sync_session($pa, "probe_$label",
		"INSERT INTO ledger VALUES ('sync-probe-$label', 0)");
	my $pid = wait_syncrep($pa, "probe_$label");
	$pa->safe_psql('postgres', "SELECT pg_cancel_backend($pid)") if $pid;
	finish_sql($probe, 20);
	return $pid ? 1 : 0;
}

# pa no longer waits for a standby: every waiting session goes on.
sub pa_sync_off
{
	$pa->safe_psql(
		'postgres', q{
		ALTER SYSTEM RESET synchronous_standby_names;
		ALTER SYSTEM RESET synchronous_commit;
		SELECT pg_reload_conf();
	});
	return;
}

# The pid of the resolver worker of database $db of coord once it has been
# in its pass for half a second (undef if none is within $timeout s).
sub worker_in_slow_pass
{
	my ($db, $timeout) = @_;
	my $query = qq{
		SELECT coalesce(min(pid), 0) FROM pg_stat_activity
		 WHERE backend_type = 'pg_dtx resolver' AND datname = '$db'
		   AND state = 'active'
		   AND clock_timestamp() - query_start > interval '0.5 s'};
	my $end = time() + ($timeout // 20);
	while (time() < $end)
	{
		my $pid = $coord->safe_psql('postgres', $query);
		return $pid if $pid;
		usleep(50_000);
	}
	diag("no resolver worker of database $db in a slow pass");
	return undef;
}

# Runs $sql on coord's database postgres; returns (exit code, stderr,
# seconds it took), with a limit of 60 s.
sub timed_psql
{
	my ($sql) = @_;
	my ($out, $err, $timed_out);
	my $t0 = time();
	my $rc = $coord->psql(
		'postgres', $sql,
		stdout => \$out,
		stderr => \$err,
		timeout => 60,
		timed_out => \$timed_out);
	$rc = -1 if $timed_out;
	return ($rc, $err, time() - $t0);
}

# Tries DROP DATABASE $db every 0.2 s until it succeeds (the resolver's
# next pass must first see nothing in doubt); true on success.
sub drop_when_allowed
{
	my ($db, $timeout) = @_;
	my $end = time() + $timeout;
	while (time() < $end)
	{
		my ($rc, $err) = timed_psql("DROP DATABASE $db");
		return 1 if $rc == 0;
		diag("DROP DATABASE $db: $err") if $err !~ /distributed transaction/;
		usleep(200_000);
	}
	return 0;
}

sub launcher_pid
{
	return $coord->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_dtx resolver launcher'"
	);
}

# --- 1. busy prepared transactions ------------------------------------------------

{
	# gid_c: decided (commit), in doubt on pa; gid_r: undecided, its local
	# transaction aborted, left prepared on pa
	my ($gid_c, $rc_c, $err_c) =
	  in_doubt(tag => 'busy-c', victim => 'pa', staller => 'pb');
	is($rc_c, 0, 'busy-c: the client committed');
	like($err_c, qr/has not confirmed COMMIT PREPARED/,
		'busy-c: with pa in doubt');
	my ($gid_r, $rc_r) =
	  in_doubt(tag => 'busy-r', victim => 'pa', staller => 'pb', abort => 1);
	isnt($rc_r, 0, 'busy-r: the client transaction failed');
	ok(gid_set($pa)->{$gid_c} && gid_set($pa)->{$gid_r},
		'busy: both prepared transactions are left on pa');
	is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.decisions'),
		'1', 'busy: one decision (busy-c)');

	# A session that commits with synchronous_commit = on waits for a
	# standby that does not exist; the resolver's sessions do not.
	ok(pa_sync_on('busy', local => 1),
		'busy: a commit with synchronous_commit = on waits on pa');

	# two sessions on pa finish the two prepared transactions, and hang
	my $busy_c = start_sync_session($pa, 'busy_c', "COMMIT PREPARED '$gid_c'");
	my $busy_r =
	  start_sync_session($pa, 'busy_r', "ROLLBACK PREPARED '$gid_r'");
	my $pid_c = wait_syncrep($pa, 'busy_c');
	my $pid_r = wait_syncrep($pa, 'busy_r');
	ok($pid_c && $pid_r,
		'busy: COMMIT PREPARED and ROLLBACK PREPARED hang on pa');
	ok(gid_set($pa)->{$gid_c} && gid_set($pa)->{$gid_r},
		'busy: pa still lists both prepared transactions');

	# The same error from another session, for reference.
	my (undef, undef, $other) = $pa->psql('postgres',
		"\\set VERBOSITY verbose\nCOMMIT PREPARED '$gid_c'");
	like(
		$other,
		qr/55000: prepared transaction with identifier "\Q$gid_c\E" is busy/,
		'busy: a third session meets 55000 "is busy" on pa');

	my $offset = -s $coord->logfile;
	my $resolve =
	  q{SELECT coalesce(server, '') || '|' || coalesce(global_id, '') || '|' || action || '|' || outcome
	      FROM dtx.resolve() ORDER BY action, global_id};
	my $expect_both = join("\n",
		"pa|$gid_c|commit|$BUSY",
		"pa|$gid_r|rollback|$BUSY");
	for my $pass (1, 2)
	{
		is($coord->safe_psql('postgres', $resolve),
			$expect_both,
			"busy: dtx.resolve() pass $pass reports both as busy, and nothing else"
		);
		is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.decisions'),
			'1', "busy: pass $pass keeps the decision");
		is( $coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.resolver_status'),
			'0', "busy: pass $pass records no failure in dtx.resolver_status");
		is( $coord->safe_psql(
				'postgres',
				qq{SELECT count(*) FILTER (WHERE global_id = '$gid_c' AND decision = 'commit')
				          || '|' || count(failures) || '|' || count(last_error) || '|' || count(next_attempt)
				     FROM dtx.in_doubt WHERE server = 'pa'}),
			'1|0|0|0',
			"busy: pass $pass: dtx.in_doubt shows busy-c on pa, and no failure, error or backoff for pa"
		);
	}
	ok(gid_set($pa)->{$gid_c} && gid_set($pa)->{$gid_r},
		'busy: the resolver left both prepared transactions alone');
	unlike(
		slurp_file($coord->logfile, $offset),
		qr/pg_dtx resolver: server "pa"/,
		'busy: the resolver logged no failure of pa');

	# The COMMIT PREPARED session is let go: it finishes its commit (the
	# wait is cancelled, the transaction is already committed on pa).
	$pa->safe_psql('postgres', "SELECT pg_cancel_backend($pid_c)");
	my ($rc, undef, $err) = finish_sql($busy_c, 20);
	is($rc, 0, 'busy-c: the other session finished COMMIT PREPARED');
	like($err, qr/canceling wait for synchronous replication/,
		'busy-c: after its wait for the standby was cancelled');
	ok(!gid_set($pa)->{$gid_c}, 'busy-c: no longer prepared on pa');
	is( $coord->safe_psql('postgres', $resolve),
		join("\n",
			'||forget|1 finished decision deleted',
			"pa|$gid_r|rollback|$BUSY"),
		'busy: the next pass forgets the decision, and reports busy-r still busy'
	);
	is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.decisions'),
		'0', 'busy-c: no decision left');
	is(ledger_rows($pa, 'busy-c'), '1', 'busy-c: committed on pa');
	is(ledger_rows($pb, 'busy-c'), '1', 'busy-c: committed on pb');

	# The background resolver meets the busy ROLLBACK PREPARED as well: no
	# backoff either.
	$offset = -s $coord->logfile;
	set_resolver_interval($coord, '1s');
	$coord->wait_for_log(
		qr/rollback prepared transaction \Q$gid_r\E on server "pa": \Q$BUSY\E/,
		$offset);
	ok(1, 'busy-r: a background pass reports it busy');
	is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.resolver_status'),
		'0', 'busy-r: the background pass records no failure');

	# The other session is let go by dropping the synchronous standby.
	pa_sync_off();
	($rc) = finish_sql($busy_r, 20);
	is($rc, 0, 'busy-r: the other session finished ROLLBACK PREPARED');
	ok( defined poll_until(
			$pa, 'postgres', 'SELECT count(*) FROM pg_prepared_xacts', '0', 10),
		'busy: nothing prepared on pa');
	is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.resolve()'),
		'0', 'busy: a last pass has nothing to do');
	is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.decisions'),
		'0', 'busy: no decision left');
	is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.resolver_status'),
		'0', 'busy: no backoff left');
	is(ledger_rows($pa, 'busy-r'), '0', 'busy-r: rolled back on pa');
	is(ledger_rows($pb, 'busy-r'), '0', 'busy-r: rolled back on pb');
	unlike(
		slurp_file($coord->logfile),
		qr/(?:\Q$gid_c\E|\Q$gid_r\E) on server "pa": (?:done|failed)/,
		'busy: the resolver never finished nor failed on either');
}

# --- 2. DROP DATABASE and CREATE DATABASE ... TEMPLATE during a pass --------------

{
	# edb: pg_dtx with a transaction in doubt on pc, then pc frozen: its
	# worker waits for pc in every pass.  edb2: pg_dtx on pa and pb.
	for my $db (qw(edb edb2))
	{
		$coord->safe_psql('postgres', "CREATE DATABASE $db");
		$coord->safe_psql($db, 'CREATE EXTENSION pg_dtx');
	}
	add_server($coord, $_, $node{$_}, coord_dbname => 'edb') for qw(pb pc);
	add_server($coord, $_, $node{$_}, coord_dbname => 'edb2') for qw(pa pb);
	my $launcher = launcher_pid();
	ok($launcher, 'ddl: the launcher runs');

	# sdb: pg_dtx with a transaction in doubt on pa, whose COMMIT PREPARED
	# by sdb's worker hangs on pa (waiting for a standby): the worker waits
	# for a result in the middle of its pass.
	$coord->safe_psql('postgres', 'CREATE DATABASE sdb');
	$coord->safe_psql('sdb', 'CREATE EXTENSION pg_dtx');
	add_server($coord, $_, $node{$_}, coord_dbname => 'sdb') for qw(pa pb);
	my $sync_on;
	my ($gid_s, $rc_s) = in_doubt(
		tag => 'ddl-s',
		db => 'sdb',
		victim => 'pa',
		staller => 'pb',
		before_release => sub { $sync_on = pa_sync_on('ddl') });
	ok($sync_on, 'ddl-s: commits wait on pa');
	is($rc_s, 0, 'ddl-s: the client committed');
	ok( defined poll_until(
			$pa, 'postgres',
			q{SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pg_dtx_resolver%' AND wait_event = 'SyncRep'},
			'1', 20),
		"ddl-s: sdb's worker waits for its COMMIT PREPARED on pa");
	my $offset = -s $coord->logfile;
	my $worker = $coord->safe_psql('postgres',
		"SELECT coalesce(min(pid), 0) FROM pg_stat_activity WHERE backend_type = 'pg_dtx resolver' AND datname = 'sdb'"
	);
	ok($worker, 'ddl-s: the worker of sdb is in the middle of a pass');
	my ($drc, $derr, $took) = timed_psql('DROP DATABASE sdb');
	isnt($drc, 0, 'ddl-s: DROP DATABASE sdb is refused while a transaction is in doubt there');
	like($derr, qr/database "sdb" (has 1|may have) distributed transaction/,
		'ddl-s: the error says why');
	cmp_ok($took, '<', 15, 'ddl-s: the refusal takes less than 15 s');
	pa_sync_off();
	ok( defined poll_until(
			$pa, 'postgres',
			"SELECT count(*) FROM pg_prepared_xacts WHERE gid = '$gid_s'",
			'0', 20),
		'ddl-s: the COMMIT PREPARED on pa finishes once pa stops waiting');
	ok(drop_when_allowed('sdb', 30),
		'ddl-s: DROP DATABASE sdb succeeds once the resolver has finished its transaction');
	is(ledger_rows($pa, 'ddl-s'), '1', 'ddl-s: committed on pa');
	is(ledger_rows($pb, 'ddl-s'), '1', 'ddl-s: committed on pb');

	# the client gives up on pc after 1 s, and wakes the resolver
	my ($gid_e, $rc, $err) = in_doubt(
		tag => 'ddl-e',
		db => 'edb',
		victim => 'pc',
		staller => 'pb',
		action => 'sigstop',
		prefix => "SET dtx.commit_timeout = '1s';\n");
	is($rc, 0, 'ddl-e: the client committed');
	like($err, qr/server "pc" has not confirmed COMMIT PREPARED/,
		'ddl-e: with pc in doubt (frozen)');

	($drc, $derr, $took) = timed_psql('DROP DATABASE edb');
	isnt($drc, 0, 'ddl-e: DROP DATABASE edb is refused while pc holds its transaction in doubt');
	like($derr, qr/database "edb" (has 1|may have) distributed transaction/,
		'ddl-e: the error says why');
	cmp_ok($took, '<', 15, 'ddl-e: the refusal takes less than 15 s');

	# tdb: pg_dtx with pc (frozen) as its only server; its worker waits
	# for pc in its first passes.
	$coord->safe_psql('postgres', 'CREATE DATABASE tdb');
	$coord->safe_psql('tdb', 'CREATE EXTENSION pg_dtx');
	add_server($coord, 'pc', $pc, coord_dbname => 'tdb');
	$offset = -s $coord->logfile;
	$worker = worker_in_slow_pass('tdb');
	ok($worker, 'ddl: the worker of tdb is in the middle of a pass');
	($drc, $derr, $took) = timed_psql('CREATE DATABASE tclone TEMPLATE tdb');
	is($drc, 0, 'ddl: CREATE DATABASE tclone TEMPLATE tdb succeeds during the pass');
	is($derr, '', 'ddl: without any message');
	cmp_ok($took, '<', 15, 'ddl: CREATE DATABASE ... TEMPLATE takes less than 15 s');
	diag(sprintf('ddl: CREATE DATABASE ... TEMPLATE during a pass took %.2f s', $took));
	$worker //= 0;
	like(slurp_file($coord->logfile, $offset),
		qr/\[$worker\].*FATAL:\s+terminating background worker "pg_dtx resolver" due to administrator command/,
		'ddl: the worker of tdb was ended in the middle of its pass');
	is($coord->safe_psql('tclone',
			"SELECT extname FROM pg_extension WHERE extname = 'pg_dtx'"),
		'pg_dtx', 'ddl: the copy has pg_dtx');
	($drc, $derr, $took) = timed_psql('DROP DATABASE tclone');
	is($drc, 0, 'ddl: DROP DATABASE tclone succeeds');
	cmp_ok($took, '<', 15, 'ddl: DROP DATABASE tclone takes less than 15 s');

	# ndb: pg_dtx with pc (frozen) as its only server and nothing in doubt:
	# dropping it ends its worker in the middle of its pass
	$coord->safe_psql('postgres', 'CREATE DATABASE ndb');
	$coord->safe_psql('ndb', 'CREATE EXTENSION pg_dtx');
	add_server($coord, 'pc', $pc, coord_dbname => 'ndb');
	$offset = -s $coord->logfile;
	$worker = worker_in_slow_pass('ndb');
	ok($worker, 'ddl: the worker of ndb is in the middle of a pass');
	($drc, $derr, $took) = timed_psql('DROP DATABASE ndb');
	is($drc, 0, 'ddl: DROP DATABASE ndb succeeds during the pass');
	is($derr, '', 'ddl: without any message');
	cmp_ok($took, '<', 15, 'ddl: DROP DATABASE ndb takes less than 15 s');
	diag(sprintf('ddl: DROP DATABASE during a pass took %.2f s', $took));
	$worker //= 0;
	is($coord->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE pid = $worker"),
		'0', 'ddl: the worker of ndb is gone');
	like(slurp_file($coord->logfile, $offset),
		qr/\[$worker\].*FATAL:\s+terminating background worker "pg_dtx resolver" due to administrator command/,
		'ddl: it was ended in the middle of its pass');

	# the launcher goes on serving the other databases: a transaction left
	# in doubt in edb2 is finished by the background resolver
	is(launcher_pid(), $launcher, 'ddl: the same launcher runs');
	my $gid_2;
	($gid_2, $rc) =
	  in_doubt(tag => 'ddl-2', db => 'edb2', victim => 'pb', staller => 'pa');
	is($rc, 0, 'ddl-2: the client committed');
	ok( defined poll_until(
			$pb, 'postgres',
			"SELECT count(*) FROM pg_prepared_xacts WHERE gid = '$gid_2'",
			'0', 30),
		'ddl-2: the background resolver finished it on pb');
	is(ledger_rows($pb, 'ddl-2'), '1', 'ddl-2: committed on pb');
	is(ledger_rows($pa, 'ddl-2'), '1', 'ddl-2: committed on pa');
	ok( defined poll_until(
			$coord, 'edb2', 'SELECT count(*) FROM dtx.decisions', '0', 20),
		'ddl-2: no decision left in edb2');
	is(launcher_pid(), $launcher, 'ddl: still the same launcher');
	unlike(
		slurp_file($coord->logfile),
		qr/PANIC|was terminated by signal|terminating any other active server processes/,
		'ddl: no crash of the coordinator');

	signal_node($pc, 'CONT');
	$pc_frozen = 0;

	# edb's resolver finishes its transaction on pc now: then edb may go
	ok( defined poll_until(
			$pc, 'postgres',
			"SELECT count(*) FROM pg_prepared_xacts WHERE gid = '$gid_e'",
			'0', 30),
		'ddl-e: committed on pc by the resolver of edb once pc is back');
	is(ledger_rows($pc, 'ddl-e'), '1', 'ddl-e: committed on pc');
	ok(drop_when_allowed('edb', 30),
		'ddl-e: DROP DATABASE edb succeeds once nothing is in doubt there');
	is(prepared_xacts($_), '0', 'ddl: nothing prepared on ' . $_->name)
	  for ($pa, $pb, $pc);
}

done_testing();
