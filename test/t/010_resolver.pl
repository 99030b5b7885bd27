# The resolver against real crashes: coordinators, participants and the
# resolver's own processes are killed at the moments that matter, and every
# distributed transaction must end committed everywhere or nowhere, with
# nothing left prepared and no decision left behind.
#
# Cases (numbered as in the resolver's test plan; 6, the race, is
# 011_resolver_race.pl): 1 coordinator crash before the local commit (1b:
# with its WAL not yet written; 1c: the same, rolled back by the first pass
# after the restart), 2 coordinator crash after it, 3 participant
# crash after PREPARE, 4 participant down for long (4b: hanging), 5 two
# coordinators and two databases sharing participants, 7 resolver processes
# killed and crashes in the middle of a pass, 8 slow PREPARE against a
# dtx.resolve() loop, 9 dtx.resolve() with the background resolver off,
# 10 failover to a synchronous standby.
#
# The nodes: a coordinator "coord" (streaming-capable for the failover case,
# restart_after_crash on so that a killed worker crash-restarts it), three
# participants pa, pb, pc, a second coordinator "coord2" with two databases,
# and at the end a synchronous standby of coord.
#
# A transfer writes one ledger row per participant (create_ledger); a row
# with stall > 0 holds that participant's PREPARE (deferred trigger) until
# the test releases it, which holds the transaction between "the others
# prepared" and the local commit for as long as the test needs, whatever the
# load of the machine.  Times measured here are printed with diag.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster;

# waits of PostgreSQL::Test::Cluster (wait_for_log, wait_for_catchup, ...)
$PostgreSQL::Test::Utils::timeout_default = 60;

# A held PREPARE waits until release_stall() (or this many seconds); a
# slow one takes $SLOW seconds.
my $HOLD = 60;
my $SLOW = 1.5;

my $coord = PostgreSQL::Test::Cluster->new('coord');
$coord->init(allows_streaming => 1);
$coord->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'pg_dtx'
max_prepared_transactions = 20
max_connections = 30
restart_after_crash = on
});
$coord->start;
$coord->safe_psql('postgres', 'CREATE EXTENSION pg_dtx');
set_resolver_interval($coord, '1s');

# pa can stream WAL, so that a synchronous_standby_names naming nobody makes
# its commits wait (case 7)
my $pa = new_participant('pa',
	extra_conf => "wal_level = replica\nmax_wal_senders = 2\n");
my $pb = new_participant('pb');
my $pc = new_participant('pc');
my %node = (pa => $pa, pb => $pb, pc => $pc);
create_ledger($_) for ($coord, $pa, $pb, $pc);
add_server($coord, $_, $node{$_}) for qw(pa pb pc);

# A first transfer opens the servers' identities and warms everything up.
$coord->safe_psql('postgres',
	transfer_sql('warmup', [ 'pa', -1 ], [ 'pb', 1 ], [ 'pc', 0 ]));

# --- helpers -----------------------------------------------------------------

# Starts a transfer tagged $tag on coordinator $c (database $db) whose
# $victim leg is prepared at once while the PREPARE of its $staller leg is
# held; waits until the victim prepared, applies $action to it (terminate:
# end the session that prepared; crash: SIGKILL the whole participant;
# stop: clean shutdown; sigstop: freeze it), releases the staller, and
# returns the background session and the victim's global id.
sub in_doubt_start
{
	my (%o) = @_;
	my $c = $o{coord} // $coord;
	my $victim = $node{ $o{victim} } // $o{victim_node};
	my $before = gid_set($victim);
	my $h = start_sql(
		$c,
		transfer_sql(
			$o{tag},
			[ $o{staller}, -1, $HOLD ],
			[ $o{victim}, 1 ]),
		dbname => $o{dbname} // 'postgres');
	my $gid = wait_new_gid($victim, $before);
	my $action = $o{action} // 'terminate';
	if ($action eq 'terminate')
	{
		terminate_preparer($victim, $gid);
	}
	elsif ($action eq 'crash')
	{
		crash_node($victim);
	}
	elsif ($action eq 'stop')
	{
		$victim->stop('fast');
	}
	elsif ($action eq 'sigstop')
	{
		signal_node($victim, 'STOP');
	}
	release_stall($node{ $o{staller} }, $o{tag});
	return ($h, $gid);
}

# in_doubt_start, then waits for the client: its COMMIT must succeed with
# the WARNING that the victim did not confirm.  Returns the global id.
sub make_in_doubt
{
	my (%o) = @_;
	my ($h, $gid) = in_doubt_start(%o);
	my ($rc, $out, $err) = finish_sql($h);
	is($rc, 0, "$o{tag}: the client's COMMIT succeeds");
	like(
		$err,
		qr/committed, but server "$o{victim}" has not confirmed COMMIT PREPARED/,
		"$o{tag}: with a WARNING naming $o{victim}");
	return $gid;
}

# The rows of transfer $tag on each of @names: all 1 (committed) or all 0.
sub check_outcome
{
	my ($tag, $want, @names) = @_;
	for my $n (@names)
	{
		my $node = $n eq 'coord' ? $coord : $node{$n};
		is(ledger_rows($node, $tag), $want,
			"$tag: " . ($want ? 'committed' : 'rolled back') . " on $n");
	}
	return;
}

# Waits until transfer $tag is visible (committed) on every participant in
# @names; returns the seconds it took (undef: never).
sub wait_committed
{
	my ($tag, $timeout, @names) = @_;
	my $start = time();
	for my $n (@names)
	{
		my $left = $timeout - (time() - $start);
		return undef
		  unless defined poll_until(
			$node{$n}, 'postgres',
			'SELECT count(*) FROM ledger WHERE tag = ' . quote_literal($tag),
			'1', $left > 1 ? $left : 1);
	}
	return time() - $start;
}

# The end of every scenario: nothing prepared on any participant, and the
# coordinators' decision tables empty (after a pass when asked: decisions
# finished by their own backend go at the next pass).
sub check_clean
{
	my ($label, %o) = @_;
	for my $n (qw(pa pb pc))
	{
		ok( defined poll_until(
				$node{$n}, 'postgres',
				'SELECT count(*) FROM pg_prepared_xacts', '0', 20),
			"$label: nothing prepared on $n");
	}
	for my $c (@{ $o{coords} // [$coord] })
	{
		for my $db (@{ $o{dbs} // ['postgres'] })
		{
			$c->safe_psql($db, 'SELECT count(*) FROM dtx.resolve()')
			  if $o{resolve};
			ok( defined poll_until(
					$c, $db, 'SELECT count(*) FROM dtx.decisions', '0', 20),
				"$label: no decision left on " . $c->name . " ($db)");
		}
	}
	return;
}

# Another transaction that writes commits on coordinator $c, which flushes
# its WAL so far: the transaction id of a transaction in flight is then
# durable, as on any busy coordinator.  (Case 1b is the crash without it.)
sub flush_wal
{
	my ($c) = @_;
	$c->safe_psql('postgres',
		"INSERT INTO ledger VALUES ('wal-flush-' || pg_current_xact_id(), 0)");
	return;
}

# "failures|seconds until the next attempt" of the resolver's backoff for
# server $name on coord ("0|0" when there is none).
sub backoff_of
{
	my ($name) = @_;
	return $coord->safe_psql(
		'postgres', qq{
		SELECT coalesce(max(failures), 0) || '|' ||
		       coalesce(max(greatest(0, extract(epoch FROM next_attempt - now()))), 0)
		  FROM dtx.resolver_status s JOIN pg_foreign_server f ON f.oid = s.server_id
		 WHERE f.srvname = '$name'});
}

# Waits until no session of $node is running PREPARE TRANSACTION any more
# (a released PREPARE whose coordinator died has finished).
sub wait_prepares_done
{
	my ($node) = @_;
	return poll_until(
		$node, 'postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%PREPARE TRANSACTION%' AND pid <> pg_backend_pid()},
		'0', 30);
}

# Waits until $c accepts connections again (after a crash-restart).
sub wait_up
{
	my ($c, $timeout) = @_;
	return defined poll_until($c, 'postgres', 'SELECT 1', '1', $timeout // 30);
}

# --- 1. coordinator crash after the PREPAREs, before the local commit -----------

{
	# pa prepares at once, pb's PREPARE is held; the coordinator dies
	# meanwhile.
	my $sql = transfer_sql('c1', [ 'pa', -5 ], [ 'pb', 5, $HOLD ]);
	$sql =~ s/COMMIT;/INSERT INTO ledger VALUES ('c1', 0);\nCOMMIT;/;
	my $before = gid_set($pa);
	my $h = start_sql($coord, $sql);
	ok(defined wait_new_gid($pa, $before), 'c1: pa prepared');
	flush_wal($coord);
	$coord->stop('immediate');
	release_stall($pb, 'c1');
	my ($rc) = finish_sql($h);
	isnt($rc, 0, 'c1: the client lost its transaction');
	my $t0 = time();
	$coord->start;

	# pb's PREPARE finishes once released, with nobody to answer to: it
	# must be rolled back as well.
	wait_prepares_done($pb);
	my $took = poll_until($pb, 'postgres',
		'SELECT count(*) FROM pg_prepared_xacts', '0', 30);
	my $took_a = poll_until($pa, 'postgres',
		'SELECT count(*) FROM pg_prepared_xacts', '0', 30);
	ok(defined $took && defined $took_a,
		'c1: the background resolver rolled back both prepared transactions');
	diag(sprintf('c1: rolled back everywhere %.1f s after the restart',
			time() - $t0));
	check_outcome('c1', 0, qw(coord pa pb));
	check_clean('c1');
}

# 1b. The same crash while the coordinator's WAL for the transaction is still
# in its buffers (WAL writer and background writer frozen): after the
# restart the transaction id is handed out again.  pg_dtx does not make the
# xid durable before PREPARE; the global ids carry a nonce instead.  With the
# background resolver off, another distributed transaction is given the very
# same xid while the dead one's prepared transactions still exist: it must
# prepare and commit (its global ids differ by their nonce), and the next
# pass must roll the dead one's back, never commit them by the other's
# decision.
#
# The crash of 1b and 1c: transfer $tag prepares on pa, pb's PREPARE is held,
# and the coordinator is killed with the transaction's WAL in its buffers.
# Returns its global id on pa, its xid and nonce, and the next xid after the
# restart (at or below the xid when the WAL was indeed lost).
sub crash_with_wal_in_buffers
{
	my ($tag) = @_;
	set_resolver_interval($coord, '0');
	my @frozen = (backend_pids($coord, 'walwriter'),
		backend_pids($coord, 'background writer'));
	kill('STOP', @frozen);
	my $sql = transfer_sql($tag, [ 'pa', -5 ], [ 'pb', 5, $HOLD ]);
	$sql =~ s/COMMIT;/INSERT INTO ledger VALUES ('$tag', 0);\nCOMMIT;/;
	my $before = gid_set($pa);
	my $h = start_sql($coord, $sql);
	my $gid = wait_new_gid($pa, $before);
	crash_node($coord);
	release_stall($pb, $tag);
	finish_sql($h);
	$coord->start;
	my ($xid, $nonce) = $gid =~ /^dtx_\d+_\d+_(\d+)_\d+_\d+_\d+_(\d+)$/;
	ok(defined $nonce, "$tag: the global id $gid carries a nonce");
	$xid //= 0;
	my $next = $coord->safe_psql('postgres',
		'SELECT pg_snapshot_xmax(pg_current_snapshot())');
	diag("$tag: transaction $xid, next transaction id after the restart $next");
	return ($gid, $xid, $nonce, $next);
}

{
	my ($gid, $xid, $nonce, $next) = crash_with_wal_in_buffers('c1b');

  SKIP:
	{
		skip 'c1b: the WAL of the transaction reached the disk anyway', 10
		  if $next > $xid;

		wait_prepares_done($pb);
		is( $pa->safe_psql('postgres',
				"SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'dtx\\_%\\_${xid}\\_%'")
			  . $pb->safe_psql('postgres',
				"SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'dtx\\_%\\_${xid}\\_%'"),
			'11', 'c1b: the dead transaction is prepared on pa and pb');

		# burn transaction ids up to the dead one's
		for (my $n = $next; $n < $xid; $n++)
		{
			$coord->safe_psql('postgres', 'SELECT pg_current_xact_id()');
		}
		my ($rc, $out, $err) = $coord->psql(
			'postgres', q{
			BEGIN;
			INSERT INTO ledger VALUES ('c1b-next', 0);
			SELECT 'xid:' || pg_current_xact_id();
			SELECT dtx.exec('pa', 'INSERT INTO ledger VALUES ($1, 0)', 'c1b-next');
			SELECT dtx.exec('pb', 'INSERT INTO ledger VALUES ($1, 0)', 'c1b-next');
			COMMIT;
		});
		my ($xid2) = $out =~ /xid:(\d+)/;
		is($xid2, $xid, 'c1b: the next distributed transaction got the same xid');
		is($rc, 0, 'c1b: it commits although the dead one\'s prepared transactions are there')
		  or diag($err);
		$coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.resolve()');
		is( $pa->safe_psql('postgres',
				"SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE '%\\_$nonce'")
			  . $pb->safe_psql('postgres',
				"SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE '%\\_$nonce'"),
			'00', 'c1b: one dtx.resolve() rolled the dead transaction back on pa and pb');
		check_outcome('c1b', 0, qw(coord pa pb));
		check_outcome('c1b-next', 1, qw(coord pa pb));
	}
	# whatever happened, leave nothing of it for the next scenarios
	$coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.resolve()');
	for my $p ($pa, $pb)
	{
		for my $g (grep { /_${xid}_/ } keys %{ gid_set($p) })
		{
			$p->safe_psql('postgres', "ROLLBACK PREPARED '$g'");
		}
	}
	check_clean('c1b', resolve => 1);
	set_resolver_interval($coord, '1s');
}

# 1c. The same crash, and nothing runs after the restart: the dead
# transaction's xid is at or past the next one, so it belongs to no
# transaction and the very first pass rolls its prepared transactions back
# (xact_may_be_running), without waiting for the xid to be handed out again.
{
	my ($gid, $xid, $nonce, $next) = crash_with_wal_in_buffers('c1c');

  SKIP:
	{
		skip 'c1c: the WAL of the transaction reached the disk anyway', 4
		  if $next > $xid;

		wait_prepares_done($pb);
		my $out = $coord->safe_psql('postgres',
			q{SELECT server || ' ' || action FROM dtx.resolve() WHERE global_id LIKE '%\_' || }
			  . quote_literal($nonce) . ' ORDER BY 1');
		is($out, "pa rollback\npb rollback",
			'c1c: the first pass after the restart rolls the dead transaction back on pa and pb');
		check_outcome('c1c', 0, qw(coord pa pb));
	}
	$coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.resolve()');
	check_clean('c1c', resolve => 1);
	set_resolver_interval($coord, '1s');
}

# --- 2. coordinator crash after the local commit, before every COMMIT PREPARED

# pb prepares and is frozen (SIGSTOP) while pa's PREPARE stalls; the
# coordinator commits, pa commits, pb's COMMIT PREPARED sits unread; then
# the coordinator and pb are both killed (SIGKILL) and restarted.  The
# recovery time runs from the coordinator's start to "committed on pb".
for my $interval ('10s', '1s')
{
	my $tag = "c2-$interval";
	set_resolver_interval($coord, $interval);
	my ($h, $gid) = in_doubt_start(
		tag => $tag,
		victim => 'pb',
		staller => 'pa',
		action => 'sigstop');
	ok( defined poll_until(
			$pa, 'postgres',
			"SELECT count(*) FROM ledger WHERE tag = '$tag'", '1', 30),
		"$tag: committed on pa, so committed locally");
	crash_node($coord, $pb);
	finish_sql($h);
	$pb->start;
	ok(gid_set($pb)->{$gid}, "$tag: pb still holds its prepared transaction");
	my $t0 = time();
	$coord->start;
	my $took = wait_committed($tag, 40, 'pb');
	ok(defined $took, "$tag: committed on pb by the resolver after the restart");
	diag(sprintf(
			'c2: dtx.resolver_interval = %s: committed everywhere %.1f s after the coordinator restart',
			$interval, time() - $t0));
	check_outcome($tag, 1, qw(pa pb));
	check_clean($tag);
}
set_resolver_interval($coord, '1s');

# --- 3. participant crash after PREPARE ------------------------------------------

# pb prepares and is killed at once; the client's COMMIT succeeds with a
# WARNING; pb comes back and the resolver commits its part, at its next
# pass that is not held back by the backoff of the failed attempts.
{
	my $tag = 'c3';
	my $gid = make_in_doubt(
		tag => $tag,
		victim => 'pb',
		staller => 'pa',
		action => 'crash');
	check_outcome($tag, 1, qw(pa));
	$pb->start;
	my $t0 = time();
	my ($failures, $backoff) = split /\|/, backoff_of('pb');
	my $took = wait_committed($tag, 40, 'pb');
	ok(defined $took && $took < 1 + $backoff + 8,
		'c3: committed on pb within dtx.resolver_interval + its backoff + a few seconds of its return'
	);
	diag(sprintf(
			'c3: dtx.resolver_interval = 1s: committed on pb %.1f s after it came back (after %d failed attempts, next one due in %.1f s)',
			time() - $t0, $failures, $backoff));
	check_outcome($tag, 1, qw(pa pb));
	check_clean($tag);
}

# --- 4. a participant down for a long time -----------------------------------------

{
	my $tag = 'c4';
	my $gid = make_in_doubt(
		tag => $tag,
		victim => 'pb',
		staller => 'pa',
		action => 'stop');

	# the resolver keeps failing on pb, with a growing backoff
	ok( defined poll_until(
			$coord, 'postgres',
			qq{SELECT failures >= 2 AND next_attempt > now() AND last_error <> ''
			     FROM dtx.in_doubt WHERE server = 'pb'}, 't', 20),
		'c4: dtx.in_doubt shows failures and a next attempt in the future');
	my ($f1, $gid_seen) = split /\|/,
	  $coord->safe_psql('postgres',
		"SELECT failures, global_id FROM dtx.in_doubt WHERE server = 'pb'");
	is($gid_seen, $gid, 'c4: dtx.in_doubt names the global id prepared on pb');
	like(
		$coord->safe_psql('postgres',
			"SELECT last_error FROM dtx.resolver_status s JOIN pg_foreign_server f ON f.oid = s.server_id WHERE f.srvname = 'pb'"
		),
		qr/connect/,
		'c4: the last error says why');
	my $gap = $coord->safe_psql('postgres',
		"SELECT extract(epoch FROM next_attempt - last_attempt) FROM dtx.resolver_status s JOIN pg_foreign_server f ON f.oid = s.server_id WHERE f.srvname = 'pb'"
	);
	diag("c4: after $f1 failures the next attempt is ${gap}s after the last");

	# the other participants work normally meanwhile
	my ($rc, $out, $err) = $coord->psql('postgres',
		transfer_sql('c4-other', [ 'pa', -1 ], [ 'pc', 1 ]));
	is($rc, 0, 'c4: a transfer between pa and pc commits while pb is down');
	is($err, '', 'c4: without any warning');
	check_outcome('c4-other', 1, qw(pa pc));

	# an in-doubt transaction on pc is finished without waiting for pb
	my $t0 = time();
	make_in_doubt(
		tag => 'c4-pc',
		victim => 'pc',
		staller => 'pa',
		action => 'terminate');
	my $took = wait_committed('c4-pc', 20, 'pc');
	ok(defined $took, 'c4: an in-doubt transaction on pc is finished while pb is down');
	diag(sprintf('c4: pc finished %.1f s after its transaction started, pb still down',
			time() - $t0));

	ok( defined poll_until(
			$coord, 'postgres',
			"SELECT failures > $f1 AND next_attempt > now() FROM dtx.in_doubt WHERE server = 'pb'",
			't', 20),
		"c4: failures grow past $f1, with a later next attempt");
	is(ledger_rows($pa, $tag), 1, 'c4: committed on pa');

	# pb returns: committed at the next attempt
	my $next = $coord->safe_psql('postgres',
		"SELECT greatest(0, extract(epoch FROM next_attempt - now())) FROM dtx.in_doubt WHERE server = 'pb'"
	);
	$t0 = time();
	$pb->start;
	$took = wait_committed($tag, 40, 'pb');
	ok(defined $took, 'c4: committed on pb once it is back');
	diag(sprintf(
			'c4: committed on pb %.1f s after it came back (next attempt was due in %.1f s)',
			time() - $t0, $next));
	check_outcome($tag, 1, qw(pa pb));
	is( $coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.resolver_status'),
		'0', 'c4: no backoff left once pb answered');
	check_clean($tag);
}

# 4b. A participant that hangs (frozen: connections to it neither succeed
# nor fail until dtx.connect_timeout, made 20 s here) must not hold up the
# others either: an in-doubt transaction on pc is finished within a few
# seconds while pa hangs.
{
	my $tag = 'c4b';
	$coord->safe_psql('postgres',
		"ALTER SYSTEM SET dtx.connect_timeout = '20s'; SELECT pg_reload_conf();");
	signal_node($pa, 'STOP');
	my $t0 = time();
	make_in_doubt(
		tag => $tag,
		victim => 'pc',
		staller => 'pb',
		action => 'terminate');
	my $took = poll_until($pc, 'postgres',
		"SELECT count(*) FROM ledger WHERE tag = '$tag'", '1', 12);
	my $total = time() - $t0;
	ok(defined $took,
		'c4b: an in-doubt transaction on pc is finished within a few seconds while pa hangs'
	);
	diag(sprintf('c4b: with pa frozen, pc %s %.1f s after its transaction started',
			defined $took ? 'was finished' : 'was still in doubt', $total));
	signal_node($pa, 'CONT');
	$coord->safe_psql('postgres',
		'ALTER SYSTEM RESET dtx.connect_timeout; SELECT pg_reload_conf();');
	ok(defined wait_committed($tag, 30, 'pc'), 'c4b: committed on pc');
	check_outcome($tag, 1, qw(pb pc));
	check_clean($tag);
}

# 4c. The same within one pass: pa hangs and is first in the pass's order
# (no failure on record, lowest OID).  Its connection attempt must not hold
# up pc's protocol: pc's in-doubt transaction is committed while that very
# dtx.resolve() call still waits for pa, which it then reports as a
# connection timeout.
{
	my $tag = 'c4c';
	set_resolver_interval($coord, '0');
	make_in_doubt(
		tag => $tag,
		victim => 'pc',
		staller => 'pb',
		action => 'terminate');
	$coord->safe_psql('postgres', 'DELETE FROM dtx.resolver_status');
	is( $coord->safe_psql('postgres',
			"SELECT srvname FROM pg_foreign_server "
			  . "WHERE srvname IN ('pa', 'pb', 'pc') ORDER BY oid LIMIT 1"),
		'pa', 'c4c: pa comes first in the pass\'s order');
	is(ledger_rows($pc, $tag), 0, 'c4c: in doubt on pc before the pass');
	signal_node($pa, 'STOP');
	my $t0 = time();
	my $h = start_sql($coord,
		"SELECT server || ' ' || action || ' ' || outcome FROM dtx.resolve()");
	my $took = poll_until($pc, 'postgres',
		"SELECT count(*) FROM ledger WHERE tag = '$tag'", '1', 20);
	my $running = !sql_done($h);
	ok(defined $took, 'c4c: committed on pc by the pass');
	ok($running,
		'c4c: committed on pc while the same dtx.resolve() still waited for pa');
	my ($rc, $out, $err) = finish_sql($h);
	my $total = time() - $t0;
	is($rc, 0, 'c4c: dtx.resolve() returns') or diag($err);
	ok(defined $took && $total - $took > 1,
		'c4c: pc was committed well before the pass gave up on pa');
	like($out, qr/^pc commit done$/m, 'c4c: it reports the commit on pc');
	like($out, qr/^pa list failed: could not connect to server "pa": timeout/m,
		'c4c: and a connection timeout on pa');
	diag(sprintf('c4c: pa frozen: pc committed %.2f s after the pass started, '
			  . 'the pass returned after %.2f s', $took // -1, $total));
	signal_node($pa, 'CONT');
	set_resolver_interval($coord, '1s');
	check_outcome($tag, 1, qw(pb pc));
	check_clean($tag);
}

# --- 5. two coordinators, two databases, foreign prepared transactions ----------

# coord2 shares pa with coord and has pg_dtx in two databases.  While coord
# is down with two transactions in doubt on pa (one decided, one not),
# coord2's resolvers (background and dtx.resolve(), in both databases) must
# leave them alone, as well as prepared transactions that are not pg_dtx's
# and one of coord2's other database.  Each owner finishes its own.
my $coord2 = new_coordinator('coord2', extra_conf => "dtx.resolver_interval = 0\n");
$coord2->safe_psql('postgres', 'CREATE DATABASE db2');
$coord2->safe_psql('db2', 'CREATE EXTENSION pg_dtx');
for my $db ('postgres', 'db2')
{
	add_server($coord2, $_, $node{$_}, coord_dbname => $db) for qw(pa pc);
}
{
	my $id1 = $coord->safe_psql('postgres', 'SELECT dtx.coordinator_id()');
	my $id2 = $coord2->safe_psql('postgres', 'SELECT dtx.coordinator_id()');
	isnt($id1, $id2, 'c5: the two coordinators have different ids');
	my $db2oid = $coord2->safe_psql('postgres',
		"SELECT oid FROM pg_database WHERE datname = 'db2'");

	# coord: one decided and one undecided transaction left on pa, coord down
	set_resolver_interval($coord, '0');
	my $gid_a = make_in_doubt(
		tag => 'c5-a-commit',
		victim => 'pa',
		staller => 'pb',
		action => 'terminate');
	my $before = gid_set($pa);
	my $h = start_sql($coord,
		transfer_sql('c5-a-abort', [ 'pa', -1 ], [ 'pb', 1, $HOLD ]));
	my $gid_b = wait_new_gid($pa, $before);
	flush_wal($coord);
	$coord->stop('immediate');
	release_stall($pb, 'c5-a-abort');
	finish_sql($h);

	# prepared transactions that are nobody's or not of this database
	my @foreign = (
		'manual_c5',                           # not pg_dtx's
		"dtx_${id2}_${db2oid}_not_a_global_id", # coord2's prefix, malformed
		"dtx_${id2}_99999_1234_16400_10_1");    # coord2, a database it has not
	for my $i (0 .. $#foreign)
	{
		$pa->safe_psql('postgres',
			"BEGIN; INSERT INTO ledger VALUES ('c5-manual-$i', 0); PREPARE TRANSACTION '$foreign[$i]';"
		);
	}

	# coord2/db2 and coord2/postgres: a decided transaction each in doubt
	# on pa; then db2 is closed to connections, so that only the resolver of
	# coord2/postgres runs (and finishes its own: proof that it runs)
	my ($h_db2, $gid_db2) = in_doubt_start(
		coord => $coord2,
		dbname => 'db2',
		tag => 'c5-db2',
		victim => 'pa',
		staller => 'pc',
		action => 'terminate');
	my ($h_own, $gid_own) = in_doubt_start(
		coord => $coord2,
		tag => 'c5-own',
		victim => 'pa',
		staller => 'pc',
		action => 'terminate');
	is((finish_sql($h_db2))[0], 0, 'c5-db2: committed');
	is((finish_sql($h_own))[0], 0, 'c5-own: committed');
	$coord2->safe_psql('postgres',
		'ALTER DATABASE db2 WITH ALLOW_CONNECTIONS false');
	my $log_offset = -s $coord2->logfile;
	set_resolver_interval($coord2, '1s');
	ok(defined wait_committed('c5-own', 20, 'pa'),
		"c5: coord2's background resolver finished its own transaction");
	sleep(2);    # a few more passes
	my $out = $coord2->safe_psql('postgres', 'SELECT * FROM dtx.resolve()');
	my $gids = gid_set($pa);
	ok($gids->{$_}, "c5: $_ left alone on pa")
	  for ($gid_a, $gid_b, $gid_db2, @foreign);
	for my $g ($gid_a, $gid_b, $gid_db2, @foreign)
	{
		unlike($out, qr/\Q$g\E/, "c5: dtx.resolve() on coord2 did not touch $g");
	}
	my $log = slurp_file($coord2->logfile, $log_offset);
	for my $g ($gid_a, $gid_b, $gid_db2, @foreign)
	{
		unlike($log, qr/\Q$g\E/, "c5: coord2's resolver never mentions $g");
	}
	check_outcome('c5-own', 1, qw(pa pc));

	# coord2/db2 finishes its own
	$coord2->safe_psql('postgres',
		'ALTER DATABASE db2 WITH ALLOW_CONNECTIONS true');
	$out = $coord2->safe_psql('db2', 'SELECT action FROM dtx.resolve()');
	like($out, qr/commit/, 'c5: coord2/db2 commits its own');
	check_outcome('c5-db2', 1, qw(pa pc));
	ok(!gid_set($pa)->{$gid_db2}, 'c5: db2 transaction finished on pa');

	# coord comes back and finishes its two
	$coord->start;
	set_resolver_interval($coord, '1s');
	ok(defined wait_committed('c5-a-commit', 20, 'pa'),
		'c5: coord commits its decided transaction');
	ok( defined poll_until(
			$pa, 'postgres',
			"SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'dtx_${id1}_%'",
			'0', 20),
		'c5: coord finished both of its transactions on pa');
	check_outcome('c5-a-commit', 1, qw(pa pb));
	check_outcome('c5-a-abort', 0, qw(pa pb));
	is(scalar(grep { gid_set($pa)->{$_} } @foreign),
		scalar(@foreign), 'c5: the foreign prepared transactions are still there');
	$pa->safe_psql('postgres', "ROLLBACK PREPARED '$_'") for @foreign;
	check_clean('c5');
	for my $db ('postgres', 'db2')
	{
		is($coord2->safe_psql($db, 'SELECT count(*) FROM dtx.decisions'),
			'0', "c5: no decision left on coord2 ($db)");
	}
}

# --- 7. the resolver's own processes killed, crashes in the middle of a pass -----

# 7a. kill -9 of the launcher while a participant is in doubt and down:
# the coordinator crash-restarts, and the transaction is still finished.
{
	my $tag = 'c7a';
	make_in_doubt(tag => $tag, victim => 'pb', staller => 'pa', action => 'stop');
	my ($launcher) = backend_pids($coord, 'pg_dtx resolver launcher');
	ok($launcher, 'c7a: the launcher runs');
	$launcher //= 0;
	kill('KILL', $launcher) if $launcher;
	$pb->start;
	ok(wait_up($coord), 'c7a: the coordinator is back after its crash-restart');
	ok( defined poll_until(
			$coord, 'postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_dtx resolver launcher' AND pid <> $launcher",
			'1', 30),
		'c7a: a new launcher runs');
	ok(defined wait_committed($tag, 40, 'pb'), 'c7a: committed on pb');
	check_outcome($tag, 1, qw(pa pb));
	check_clean($tag);
}

# With the background resolver off: two decided transactions in doubt, one
# on pa ($tag-1), one on pb ($tag-2); then pa's commits wait for a
# synchronous standby that does not exist, after their commit record is
# written.  Returns the two global ids.
sub two_in_doubt_pa_stuck
{
	my ($tag) = @_;
	set_resolver_interval($coord, '0');
	my ($h1, $g1) = in_doubt_start(
		tag => "$tag-1",
		victim => 'pa',
		staller => 'pc',
		action => 'terminate');
	my ($h2, $g2) = in_doubt_start(
		tag => "$tag-2",
		victim => 'pb',
		staller => 'pc',
		action => 'terminate');
	is((finish_sql($h1))[0], 0, "$tag-1: committed");
	is((finish_sql($h2))[0], 0, "$tag-2: committed");
	$pa->safe_psql('postgres',
		"ALTER SYSTEM SET synchronous_standby_names = 'nobody'; SELECT pg_reload_conf();"
	);
	return ($g1, $g2);
}

# A pass of the background resolver that hangs in COMMIT PREPARED on pa
# (two_in_doubt_pa_stuck).  Returns the global ids in doubt on pa and pb.
sub two_in_doubt_and_pa_hanging
{
	my ($tag) = @_;
	my ($g1, $g2) = two_in_doubt_pa_stuck($tag);
	set_resolver_interval($coord, '1s');
	ok( defined poll_until(
			$pa, 'postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
			'1', 20),
		"$tag: a resolver pass hangs in COMMIT PREPARED on pa");
	return ($g1, $g2);
}

# 7b. kill -9 of the resolver worker in the middle of its pass.
{
	my $tag = 'c7b';
	two_in_doubt_and_pa_hanging($tag);
	my ($worker) = backend_pids($coord, 'pg_dtx resolver');
	ok($worker, 'c7b: the resolver worker is in its pass');
	kill('KILL', $worker) if $worker;
	$pa->safe_psql('postgres',
		'ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf();');
	ok(wait_up($coord), 'c7b: the coordinator is back after its crash-restart');
	ok(defined wait_committed("$tag-1", 40, 'pa'), 'c7b: committed on pa');
	ok(defined wait_committed("$tag-2", 40, 'pb'), 'c7b: committed on pb');
	check_outcome("$tag-1", 1, qw(pa pc));
	check_outcome("$tag-2", 1, qw(pb pc));
	check_clean($tag);
}

# 7c. The coordinator crashes in the middle of a pass, and pa crashes after
# writing its COMMIT PREPARED but before acknowledging it.
{
	my $tag = 'c7c';
	two_in_doubt_and_pa_hanging($tag);
	$pa->safe_psql('postgres', 'ALTER SYSTEM RESET synchronous_standby_names');
	crash_node($coord, $pa);
	$pa->start;
	$coord->start;
	ok(defined wait_committed("$tag-1", 40, 'pa'), 'c7c: committed on pa');
	ok(defined wait_committed("$tag-2", 40, 'pb'), 'c7c: committed on pb');
	check_outcome("$tag-1", 1, qw(pa pc));
	check_outcome("$tag-2", 1, qw(pb pc));
	check_clean($tag);
}

# 7d. A participant crashes right after it acknowledged the resolver's
# COMMIT PREPARED.
{
	my $tag = 'c7d';
	set_resolver_interval($coord, '0');
	my $gid = make_in_doubt(
		tag => $tag,
		victim => 'pb',
		staller => 'pa',
		action => 'terminate');
	my $offset = -s $coord->logfile;
	set_resolver_interval($coord, '1s');
	$coord->wait_for_log(
		qr/commit prepared transaction \Q$gid\E on server "pb": done/, $offset);
	crash_node($pb);
	$pb->start;
	check_outcome($tag, 1, qw(pa pb));
	check_clean($tag);
}

# 7e. A pass that spends long on one participant still finishes the others
# whose connections came up meanwhile: pb and pc are frozen while the pass
# connects, so that pa comes first and hangs in COMMIT PREPARED (up to the
# resolver's 15 s operation timeout), far past the 3 s connect timeout; pb's
# connection, which could not progress meanwhile, must not count that time.
{
	my $tag = 'c7e';
	two_in_doubt_pa_stuck($tag);
	signal_node($_, 'STOP') for ($pb, $pc);
	my $t0 = time();
	my $h = start_sql($coord,
		"SELECT server || ' ' || action || ' ' || outcome FROM dtx.resolve()");
	ok( defined poll_until(
			$pa, 'postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
			'1', 20),
		'c7e: the pass hangs in COMMIT PREPARED on pa');
	signal_node($_, 'CONT') for ($pb, $pc);
	my ($rc, $out, $err) = finish_sql($h, 60);
	my $total = time() - $t0;
	is($rc, 0, 'c7e: dtx.resolve() returns') or diag($err);
	diag(sprintf('c7e: the pass took %.1f s', $total));
	cmp_ok($total, '>', 3, 'c7e: it spent longer than the connect timeout on pa');
	like($out, qr/^pb commit done$/m, 'c7e: and still committed on pb');
	unlike($out, qr/could not connect/, 'c7e: no connection timed out');
	$pa->safe_psql('postgres',
		'ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf();');
	set_resolver_interval($coord, '1s');
	ok(defined wait_committed("$tag-1", 40, 'pa'), 'c7e: committed on pa');
	check_outcome("$tag-1", 1, qw(pa pc));
	check_outcome("$tag-2", 1, qw(pb pc));
	check_clean($tag);
}

# --- 8. a slow PREPARE while dtx.resolve() runs in a loop ----------------------

# Two transfers whose PREPAREs stall (one on pa, one on pb) commit while
# another session runs dtx.resolve() over and over (and the background
# resolver every second): the resolver must never roll back any of it.
{
	my $offset = -s $coord->logfile;
	my $h1 = start_sql($coord,
		transfer_sql('c8-1', [ 'pa', -1, $SLOW ], [ 'pb', 1 ]));
	my $h2 = start_sql($coord,
		transfer_sql('c8-2', [ 'pa', -1 ], [ 'pb', 1, $SLOW ], [ 'pc', 0 ]));
	my $loop = $coord->background_psql('postgres');
	my ($passes, $rows) = (0, '');
	until (sql_done($h1) && sql_done($h2))
	{
		$rows .= $loop->query_safe(
			q{SELECT action || ' ' || coalesce(global_id, '') FROM dtx.resolve()})
		  . "\n";
		$passes++;
	}
	$loop->quit;
	my ($rc1, undef, $err1) = finish_sql($h1);
	my ($rc2, undef, $err2) = finish_sql($h2);
	diag("c8: $passes dtx.resolve() passes while the two transfers committed");
	cmp_ok($passes, '>=', 3, 'c8: the resolver ran passes meanwhile');
	is($rc1, 0, 'c8-1: committed');
	is($rc2, 0, 'c8-2: committed');
	is($err1 . $err2, '', 'c8: without warnings');
	unlike($rows, qr/rollback/, 'c8: dtx.resolve() rolled nothing back');
	unlike(slurp_file($coord->logfile, $offset),
		qr/pg_dtx resolver: rollback/, 'c8: the background resolver rolled nothing back');
	check_outcome('c8-1', 1, qw(pa pb));
	check_outcome('c8-2', 1, qw(pa pb pc));
	check_clean('c8');
}

# 8b. What such a pass leaves alone shows in dtx.in_doubt as "none yet": pa
# prepared, pb's PREPARE held, so the local transaction still runs.
{
	my $before = gid_set($pa);
	my $h = start_sql($coord, transfer_sql('c8b', [ 'pa', -1 ], [ 'pb', 1, $HOLD ]));
	my $gid = wait_new_gid($pa, $before);
	$coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.resolve()');
	is( $coord->safe_psql('postgres',
			q{SELECT global_id || '|' || server || '|' || decision || '|' || (age >= '0') FROM dtx.in_doubt}),
		"$gid|pa|none yet|true",
		'c8b: dtx.in_doubt shows the undecided prepared transaction on pa');
	release_stall($pb, 'c8b');
	is((finish_sql($h))[0], 0, 'c8b: committed');
	$coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.resolve()');
	is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.in_doubt'),
		'0', 'c8b: gone from dtx.in_doubt after the next pass');
	check_outcome('c8b', 1, qw(pa pb));
	check_clean('c8b');
}

# --- 9. dtx.resolve() with the background resolver off ---------------------------

# The cases of 2 and 3 and a crash before the local commit, with
# dtx.resolver_interval = 0: nothing happens by itself, and one
# dtx.resolve() gives the same end state.
{
	set_resolver_interval($coord, '0');
	my ($h_term, $g_term) = in_doubt_start(
		tag => 'c9-term',
		victim => 'pb',
		staller => 'pa',
		action => 'terminate');
	my ($h_crash, $g_crash) = in_doubt_start(
		tag => 'c9-crash',
		victim => 'pc',
		staller => 'pa',
		action => 'crash');
	is((finish_sql($h_term))[0], 0, 'c9-term: committed');
	is((finish_sql($h_crash))[0], 0, 'c9-crash: committed');
	$pc->start;

	my $before = gid_set($pa);
	my $h = start_sql($coord,
		transfer_sql('c9-abort', [ 'pa', -1 ], [ 'pb', 1, $HOLD ]));
	my $g_abort = wait_new_gid($pa, $before);
	flush_wal($coord);
	$coord->stop('immediate');
	release_stall($pb, 'c9-abort');
	finish_sql($h);
	$coord->start;
	wait_prepares_done($pb);
	sleep(1);
	ok(gid_set($pb)->{$g_term}, 'c9: still in doubt on pb without dtx.resolve()');
	ok(gid_set($pc)->{$g_crash}, 'c9: still in doubt on pc without dtx.resolve()');
	ok(gid_set($pa)->{$g_abort}, 'c9: undecided still prepared on pa without dtx.resolve()');

	my $out = $coord->safe_psql('postgres',
		'SELECT server, global_id, action, outcome FROM dtx.resolve() ORDER BY 1, 2');
	like($out, qr/^pb\|\Q$g_term\E\|commit\|done$/m, 'c9: dtx.resolve() commits on pb');
	like($out, qr/^pc\|\Q$g_crash\E\|commit\|done$/m, 'c9: dtx.resolve() commits on pc');
	like($out, qr/^pa\|\Q$g_abort\E\|rollback\|done$/m,
		'c9: dtx.resolve() rolls back the undecided one on pa');
	check_outcome('c9-term', 1, qw(pa pb));
	check_outcome('c9-crash', 1, qw(pa pc));
	check_outcome('c9-abort', 0, qw(pa pb));
	check_clean('c9', resolve => 1);
	set_resolver_interval($coord, '1s');
}

# --- 10. failover to the coordinator's synchronous standby ----------------------

{
	$coord->backup('c10');
	my $standby = PostgreSQL::Test::Cluster->new('standby');
	$standby->init_from_backup($coord, 'c10', has_streaming => 1);
	$standby->start;
	$coord->safe_psql('postgres',
		"ALTER SYSTEM SET synchronous_standby_names = 'standby'; SELECT pg_reload_conf();"
	);
	ok( defined poll_until(
			$coord, 'postgres',
			"SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'",
			'sync', 30),
		'c10: the standby is synchronous');

	# the primary's resolver stays off: only the promoted standby's works
	set_resolver_interval($coord, '0');
	my @tags = ('c10');
	my $gid = make_in_doubt(
		tag => 'c10',
		victim => 'pb',
		staller => 'pa',
		action => 'stop');
	$coord->wait_for_catchup($standby);
	is($standby->safe_psql('postgres', 'SELECT count(*) FROM dtx.decisions'),
		'1', 'c10: the decision reached the standby');

	# dtx.resolve() on the standby, with pb back for a moment: it must either
	# refuse before touching any participant or finish its pass
	$pb->start;
	my ($rc, $out, $err) =
	  $standby->psql('postgres', 'SELECT * FROM dtx.resolve()');
	diag("c10: dtx.resolve() on the standby: $err") if $rc;
	ok($rc == 0 || gid_set($pb)->{$gid},
		'c10: dtx.resolve() on a standby does not act on participants and then fail'
	);
	if (!gid_set($pb)->{$gid})
	{
		# the standby finished it: put another transaction in doubt on pb
		push @tags, 'c10-again';
		$gid = make_in_doubt(
			tag => 'c10-again',
			victim => 'pb',
			staller => 'pa',
			action => 'terminate');
		$coord->wait_for_catchup($standby);
	}
	$pb->stop('fast');

	$coord->stop('immediate');
	$standby->promote;
	ok( defined poll_until(
			$standby, 'postgres', 'SELECT pg_is_in_recovery()', 'f', 30),
		'c10: the standby is promoted');
	$pb->start;
	my $t0 = time();
	ok(defined wait_committed($tags[-1], 40, 'pb'),
		"c10: the promoted standby's resolver commits on pb");
	diag(sprintf('c10: committed on pb %.1f s after it came back', time() - $t0));
	check_outcome($_, 1, qw(pa pb)) for @tags;
	check_clean('c10', coords => [$standby]);
}

done_testing();
