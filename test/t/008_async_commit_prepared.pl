# dtx.synchronous_commit_prepared = off: COMMIT returns once the decision is
# durable and COMMIT PREPARED has been sent; each participant's answer is
# read later on its connection (before the next statement there, at the end
# of any later transaction, or given up when the connection closes).  The
# mode must keep every documented promise and lose nothing.
#
#   1. happy path: no WARNING, read-your-writes through the same
#      connection, the decision confirmed once the answers are read, nothing
#      prepared; 200 transfers in one session, all committed on both sides
#   2. the visibility trade-off, made deterministic: pb's remote session is
#      frozen between its PREPARE and COMMIT PREPARED; with the mode off the
#      client's COMMIT returns at once while pb has not committed (other
#      sessions of pb do not see it, dtx.in_doubt lists it); the session's
#      next statement on pb waits for the answer and sees its own write; a
#      later transaction that does not use pb reads the answer without
#      waiting; with the mode on, COMMIT waits for dtx.commit_timeout and
#      warns
#   3. a failure while in flight: pb crashes before it runs COMMIT PREPARED
#      (the next statement on pb reconnects), or the connection is closed
#      with dtx.disconnect_all(): the coordinator logs "has not confirmed
#      COMMIT PREPARED of <gid>; left to the resolver", dtx.stats counts it
#      in left_in_doubt, and the woken resolver commits it; the session ends
#      before the answer: its exit wakes the resolver, which commits it
#
# How pb is held between PREPARE and COMMIT PREPARED: a transfer writes one
# ledger row on pa and one on pb (create_ledger); pa's row holds pa's PREPARE
# (a deferred trigger waiting for release_stall), so pb prepares first.  Once
# pb's remote backend is idle after its PREPARE, that one backend is frozen
# with SIGSTOP, and pa is released: the local commit happens, COMMIT PREPARED
# is written to pb's socket and sits there unread until SIGCONT.  Nothing
# depends on timing: pb cannot run COMMIT PREPARED while frozen.
#
# The background resolver is off (dtx.resolver_interval = 0) for cases 1
# and 2, so that only the test finishes anything; case 3 turns it on with an
# interval of an hour, so that a pass within seconds can only come from a
# wake-up.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster;

my $started = time;

# waits of PostgreSQL::Test::Cluster and BackgroundPsql
$PostgreSQL::Test::Utils::timeout_default = 60;

# seconds a held PREPARE waits at most for release_stall
my $HOLD = 60;

my $coord = new_coordinator('coord',
	extra_conf => "dtx.resolver_interval = 0\nmax_connections = 20\n");
my $pa = new_participant('pa', extra_conf => "max_connections = 20\n");
my $pb = new_participant('pb', extra_conf => "max_connections = 20\n");
create_ledger($_) for ($pa, $pb);
add_server($coord, 'pa', $pa);
add_server($coord, 'pb', $pb);

my $coordid = $coord->safe_psql('postgres', 'SELECT dtx.coordinator_id()');
my $dboid = $coord->safe_psql('postgres',
	"SELECT oid FROM pg_database WHERE datname = 'postgres'");

# backends frozen by the test: thawed whatever happens, so that the nodes
# can be stopped
my %frozen;

END
{
	kill('CONT', keys %frozen) if %frozen;
}

# --- helpers -----------------------------------------------------------------

sub csql
{
	my ($sql) = @_;
	return $coord->safe_psql('postgres', $sql);
}

# A psql session on the coordinator that survives errors, with
# dtx.synchronous_commit_prepared = $sync ('off' unless given).
sub async_session
{
	my (%o) = @_;
	return background_session(
		$coord,
		set => [
			'dtx.synchronous_commit_prepared = ' . ($o{sync} // 'off'),
			"dtx.commit_timeout = '" . ($o{timeout} // '30s') . "'"
		]);
}

# Rows of ledger tagged $tag on $server, read through session $s (the same
# connection that wrote them).
sub own_count
{
	my ($s, $server, $tag) = @_;
	return sq($s,
		"SELECT n FROM dtx.query('$server', 'SELECT count(*) FROM ledger WHERE tag LIKE \$1', '$tag') AS t(n bigint)"
	);
}

# The pid of the remote session of coordinator backend $s on $node.
sub remote_pid
{
	my ($node, $s) = @_;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE application_name = 'pg_dtx:$coordid:$dboid:$s->{pid}'"
	);
}

sub xid_of
{
	my ($gid) = @_;
	my ($xid) = ($gid // '') =~ /^dtx_\d+_\d+_(\d+)_/;
	return $xid // 0;
}

# Process state letter of $pid (R, S, T, ...) from /proc.
sub proc_state
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/stat") or return '';
	my $stat = <$fh>;
	close $fh;
	return $stat =~ /\)\s+(\S)/ ? $1 : '';
}

sub stat_value
{
	my ($col) = @_;
	return csql("SELECT $col FROM dtx.stats");
}

sub pb_in_doubt
{
	return csql(
		"SELECT left_in_doubt FROM dtx.server_stats WHERE server = 'pb'") || 0;
}

sub confirmed
{
	my ($xid) = @_;
	return csql(
		"SELECT count(*) FROM dtx.confirmed_pending() WHERE xid = '$xid'");
}

sub in_doubt_rows
{
	my ($gid) = @_;
	return csql(
		"SELECT string_agg(server || ':' || decision, ',') FROM dtx.in_doubt WHERE global_id = '$gid'"
	) // '';
}

sub log_pos { return -s $coord->logfile; }

sub log_since
{
	my ($pos) = @_;
	return slurp_file($coord->logfile, $pos);
}

my $NOT_CONFIRMED = qr/has not confirmed COMMIT PREPARED/;

# Starts transfer $tag (1 from pa to pb) in session $s with pa's PREPARE
# held; once pb prepared and its remote backend is idle, freezes that
# backend, releases pa and waits for the client's COMMIT.  Returns
# (global id on pb, frozen pid, seconds COMMIT took after the release,
# stdout, stderr).
sub commit_with_pb_frozen
{
	my ($s, $tag) = @_;
	# the connection to pb exists and its earlier answers are read
	sq($s, "SELECT * FROM dtx.query('pb', 'SELECT 1') AS t(x int)");
	my $rpid = remote_pid($pb, $s);
	my $before = gid_set($pb);
	sq_send($s, transfer_sql($tag, [ 'pa', -1, $HOLD ], [ 'pb', 1 ]));
	my $gid = wait_new_gid($pb, $before);
	# idle after PREPARE: its answer is sent, it waits for the next command
	# (sleeping in the kernel)
	poll_until($pb, 'postgres',
		"SELECT state = 'idle' AND query LIKE '%PREPARE TRANSACTION%' FROM pg_stat_activity WHERE pid = $rpid"
	);
	my $end = time + 10;
	usleep(20_000) while proc_state($rpid) ne 'S' && time < $end;
	usleep(100_000);
	kill('STOP', $rpid);
	$frozen{$rpid} = 1;
	$end = time + 10;
	usleep(10_000) while proc_state($rpid) ne 'T' && time < $end;
	my $t0 = time;
	release_stall($pa, $tag);
	my ($out, $err) = sq_wait($s);
	return ($gid, $rpid, time - $t0, $out, $err);
}

sub thaw
{
	my ($pid) = @_;
	kill('CONT', $pid);
	delete $frozen{$pid};
	return;
}

# The resolver, woken, commits transfer $tag (global id $gid) on pb while
# pb's old session $rpid is still frozen; then that session is thawed, the
# decision goes, and the transfer is committed once on pa and pb.  $pos: the
# log position before the transfer.
sub resolver_commits_past_frozen
{
	my ($label, $tag, $gid, $rpid, $pos) = @_;
	ok( defined poll_until($pb, 'postgres',
			"SELECT count(*) FROM ledger WHERE tag = '$tag'", '1', 30),
		"$label: the woken resolver commits it on pb");
	is(proc_state($rpid), 'T', "$label: while pb's old session was still frozen");
	like(log_since($pos),
		qr/pg_dtx resolver: commit prepared transaction \Q$gid\E on server "pb": done/,
		"$label: the resolver logged its commit");
	thaw($rpid);
	ok($coord->poll_query_until('postgres', 'SELECT count(*) = 0 FROM dtx.decisions'),
		"$label: its decision is deleted");
	is(ledger_rows($pa, $tag) . ledger_rows($pb, $tag), '11',
		"$label: committed once on pa and pb");
	is(prepared_xacts($pa) . prepared_xacts($pb), '00', "$label: nothing left prepared");
	return;
}

# Nothing prepared anywhere, and after one resolver pass no decision left.
sub check_clean
{
	my ($label) = @_;
	is(prepared_xacts($pa) . prepared_xacts($pb),
		'00', "$label: nothing left prepared on pa and pb");
	csql('SELECT count(*) FROM dtx.resolve()');
	is(csql('SELECT count(*) FROM dtx.decisions'),
		0, "$label: no decision left after a resolver pass");
	return;
}

# --- 1. happy path -----------------------------------------------------------

{
	my $s = async_session();
	my $pos = log_pos();
	my $in_doubt0 = stat_value('left_in_doubt');

	my ($out, $err) = sq($s,
		    "BEGIN;\n"
		  . "SELECT 'xid=' || pg_current_xact_id();\n"
		  . "SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES (\$1, -5)', 'h1');\n"
		  . "SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES (\$1, 5)', 'h1');\n"
		  . "COMMIT;");
	my ($xid) = $out =~ /xid=(\d+)/;
	is($err, '', '1: COMMIT with the mode off succeeds without a warning');
	ok($xid, "1: the transaction's xid ($xid)");
	is(csql("SELECT count(*) FROM dtx.decisions WHERE xid = '$xid'"),
		1, '1: it was a two-phase commit with a decision');

	# read-your-writes: the answer is read before the next statement there
	is((own_count($s, 'pa', 'h1'))[0],
		1, "1: the session's next dtx.query on pa sees its row");
	is((own_count($s, 'pb', 'h1'))[0],
		1, "1: the session's next dtx.query on pb sees its row");
	is(confirmed($xid), 1,
		'1: once both answers are read, the decision is confirmed (dtx.confirmed_pending)');
	is(csql("SELECT count(*) FROM dtx.in_doubt WHERE xid = '$xid'"),
		0, '1: dtx.in_doubt does not list it');
	is(prepared_xacts($pa) . prepared_xacts($pb),
		'00', '1: nothing prepared on pa and pb');
	my $res = csql(
		"SELECT string_agg(action || ':' || outcome, ',') FROM dtx.resolve()");
	like($res, qr/forget:1 finished decision/,
		'1: the resolver pass deletes the confirmed decision');
	unlike($res // '', qr/commit:/, '1: and has nothing to commit');
	is(csql('SELECT count(*) FROM dtx.decisions'), 0, '1: dtx.decisions is empty');

	# 200 transfers in a loop, in one session
	my $n = 200;
	my $two_phase0 = stat_value('two_phase_commits');
	my $sql = '';
	$sql .= transfer_sql("loop$_", [ 'pa', -1 ], [ 'pb', 1 ]) for 1 .. $n;
	my $t0 = time;
	($out, $err) = sq($s, $sql);
	my $took = time - $t0;
	is($err, '', "1: $n transfers with the mode off: no error, no warning");
	is(stat_value('two_phase_commits') - $two_phase0,
		$n, "1: $n two-phase commits");
	diag(sprintf('1: %d transfers with the mode off in %.2f s', $n, $took));
	# one more statement on each connection reads the last answers
	is((own_count($s, 'pa', 'loop%'))[0], $n, "1: all $n committed on pa");
	is((own_count($s, 'pb', 'loop%'))[0], $n, "1: all $n committed on pb");
	is(ledger_rows($pa, 'loop%') . '/' . ledger_rows($pb, 'loop%'),
		"$n/$n", '1: other sessions see them all on pa and pb');
	is(prepared_xacts($pa) . prepared_xacts($pb),
		'00', '1: nothing prepared after one more statement on each connection');
	is(csql('SELECT count(*) FROM dtx.in_doubt'),
		0, '1: dtx.in_doubt is empty: every decision confirmed');
	is(csql('SELECT count(*) FROM dtx.confirmed_pending()'),
		$n, "1: $n confirmed decisions wait for the resolver");
	$res = csql(
		"SELECT count(*) FILTER (WHERE action = 'commit') || '/' || count(*) FILTER (WHERE action = 'forget') FROM dtx.resolve()"
	);
	is($res, '0/1', '1: one resolver pass: nothing to commit, the decisions forgotten');
	is(csql('SELECT count(*) FROM dtx.decisions'),
		0, '1: dtx.decisions empty after the pass');
	is(stat_value('left_in_doubt') - $in_doubt0,
		0, '1: dtx.stats left_in_doubt unchanged');
	unlike(log_since($pos), $NOT_CONFIRMED, '1: nothing logged as unconfirmed');
	$s->quit;
}

# --- 2. the visibility trade-off ---------------------------------------------

# 2a. Mode off: COMMIT returns at once while pb has not committed; the
# session's next statement on pb waits for the answer.
{
	my $s = async_session();
	my $pos = log_pos();
	my $in_doubt0 = stat_value('left_in_doubt');
	my ($gid, $rpid, $took, $out, $err) = commit_with_pb_frozen($s, 't2a');
	my $xid = xid_of($gid);
	ok($gid, "2a: pb prepared $gid, its session frozen");
	ok($took < 10,
		sprintf('2a: COMMIT returns promptly (%.2f s, dtx.commit_timeout 30 s)',
			$took));
	is($err, '', '2a: without a warning');
	ok(defined poll_until($pa, 'postgres',
			"SELECT count(*) FROM ledger WHERE tag = 't2a'", '1', 20),
		'2a: committed on pa');
	is(ledger_rows($pb, 't2a'), 0,
		'2a: another session of pb does not see it yet (the documented trade-off)');
	ok(gid_set($pb)->{$gid}, '2a: still prepared on pb');
	is(in_doubt_rows($gid), 'pb:commit',
		'2a: dtx.in_doubt lists it on pb with decision commit');
	note('2a: dtx.in_doubt for the transaction: '
		  . csql("SELECT string_agg(server || ':' || decision, ',' ORDER BY server) FROM dtx.in_doubt WHERE xid = '$xid'"));
	is(confirmed($xid), 0, '2a: the decision is not confirmed');

	# the session's next statement on pb waits for the answer
	sq_send($s,
		"SELECT n FROM dtx.query('pb', 'SELECT count(*) FROM ledger WHERE tag = \$1', 't2a') AS t(n bigint);"
	);
	ok( defined poll_until($coord, 'postgres',
			"SELECT state = 'active' AND query LIKE '%dtx.query(''pb''%' FROM pg_stat_activity WHERE pid = $s->{pid}"
		),
		"2a: the session's next dtx.query on pb waits");
	usleep(300_000);
	is(ledger_rows($pb, 't2a'), 0, '2a: pb still has not committed');
	thaw($rpid);
	($out, $err) = sq_wait($s);
	is($out, '1', '2a: once pb answers, that dtx.query sees its own row');
	is($err, '', '2a: no error');
	is(ledger_rows($pb, 't2a'), 1, '2a: other sessions of pb see it now');
	is(confirmed($xid), 1, '2a: the decision is confirmed');
	is(in_doubt_rows($gid), '', '2a: dtx.in_doubt no longer lists it');
	unlike(log_since($pos), $NOT_CONFIRMED, '2a: nothing logged as unconfirmed');
	check_clean('2a');

	# 2b. A later transaction that does not use pb takes the answer when it
	# has arrived, and does not wait for it before.
	$pos = log_pos();
	($gid, $rpid, $took, $out, $err) = commit_with_pb_frozen($s, 't2b');
	$xid = xid_of($gid);
	ok($took < 10 && $err eq '',
		sprintf('2b: COMMIT returns promptly without a warning (%.2f s)', $took));
	my $t0 = time;
	($out, $err) = sq($s, 'SELECT 1');
	ok(time - $t0 < 5, '2b: a transaction without pb does not wait for its answer');
	($out, $err) = own_count($s, 'pa', 't2b');
	is($out, 1, '2b: nor does one on pa');
	is(confirmed($xid), 0, '2b: pb has not answered: not confirmed');
	unlike(log_since($pos), $NOT_CONFIRMED, '2b: and not given up');
	thaw($rpid);
	ok( defined poll_until($pb, 'postgres',
			"SELECT count(*) FROM ledger WHERE tag = 't2b'", '1', 20),
		'2b: pb commits once thawed');
	my $end = time + 20;
	while (time < $end)
	{
		sq($s, 'SELECT 1');
		last if confirmed($xid);
		usleep(50_000);
	}
	is(confirmed($xid), 1,
		'2b: the end of a later transaction without pb confirms the decision');
	is(in_doubt_rows($gid), '', '2b: dtx.in_doubt no longer lists it');
	unlike(log_since($pos), $NOT_CONFIRMED, '2b: nothing logged as unconfirmed');
	is(stat_value('left_in_doubt') - $in_doubt0, 0, '2a/2b: left_in_doubt unchanged');
	check_clean('2b');
	$s->quit;
}

# 2c. Mode on (the default): the same COMMIT waits for pb until
# dtx.commit_timeout, then succeeds with a WARNING.
{
	my $s = async_session(sync => 'on', timeout => '2s');
	my $in_doubt0 = stat_value('left_in_doubt');
	my ($gid, $rpid, $took, $out, $err) = commit_with_pb_frozen($s, 't2c');
	ok($took >= 1.9 && $took < 15,
		sprintf('2c: with the mode on, COMMIT waits for dtx.commit_timeout (2 s): %.2f s',
			$took));
	like($err,
		qr/WARNING:  committed, but server "pb" has not confirmed COMMIT PREPARED/,
		'2c: and warns that pb has not confirmed');
	is(stat_value('left_in_doubt') - $in_doubt0, 1, '2c: left_in_doubt + 1');
	is(ledger_rows($pb, 't2c'), 0, '2c: pb has not committed meanwhile');
	thaw($rpid);
	# pb runs the COMMIT PREPARED that was waiting in its socket, or the
	# resolver does
	my $end = time + 20;
	while (time < $end && ledger_rows($pb, 't2c') ne '1')
	{
		csql('SELECT count(*) FROM dtx.resolve()');
		usleep(100_000);
	}
	is(ledger_rows($pa, 't2c') . ledger_rows($pb, 't2c'),
		'11', '2c: committed on pa and pb');
	check_clean('2c');
	$s->quit;
}

# --- 3. failures while in flight ---------------------------------------------

# The background resolver on, with an interval of an hour: its first pass
# comes at once (it deletes a finished decision left here for it to find);
# after that, only a wake-up starts a pass.
{
	my $s = async_session();
	sq($s, transfer_sql('marker', [ 'pa', -1 ], [ 'pb', 1 ]));
	own_count($s, 'pa', 'marker');
	own_count($s, 'pb', 'marker');
	$s->quit;
	is(csql('SELECT count(*) FROM dtx.decisions'), 1, '3: a finished decision waits');
	set_resolver_interval($coord, '1h');
	ok( $coord->poll_query_until('postgres',
			'SELECT count(*) = 0 FROM dtx.decisions'),
		"3: the background resolver's first pass ran");
}

# 3a. pb crashes before it runs COMMIT PREPARED; the session's next
# statement on pb finds the connection dead, gives the answer up, and
# reconnects.
{
	my $s = async_session();
	my $pos = log_pos();
	my $in_doubt0 = stat_value('left_in_doubt');
	my $commits0 = stat_value('resolver_commits');
	my $pb_in_doubt0 = pb_in_doubt();
	my ($gid, $rpid, $took, $out, $err) = commit_with_pb_frozen($s, 't3a');
	ok($took < 10 && $err eq '',
		sprintf('3a: COMMIT returns promptly without a warning (%.2f s)', $took));
	is((own_count($s, 'pa', 't3a'))[0], 1, '3a: committed on pa');
	crash_node($pb);
	delete $frozen{$rpid};
	$pb->start;
	ok(gid_set($pb)->{$gid}, '3a: after the crash pb still holds it prepared');
	is(ledger_rows($pb, 't3a'), 0, '3a: not committed on pb');
	is(stat_value('left_in_doubt'), $in_doubt0,
		'3a: not counted in doubt before the answer is looked for');

	($out, $err) = sq($s,
		"SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES (\$1, 0)', 't3a-next')"
	);
	is($out, '1', "3a: the session's next dtx.exec on pb reconnects and runs");
	is($err, '', '3a: without an error');
	like(
		log_since($pos),
		qr/LOG:  pg_dtx: server "pb" has not confirmed COMMIT PREPARED of \Q$gid\E; left to the resolver/,
		'3a: the coordinator logs that pb did not confirm, with the global id');
	is(stat_value('left_in_doubt') - $in_doubt0, 1, '3a: dtx.stats left_in_doubt + 1');
	is(pb_in_doubt() - $pb_in_doubt0, 1, '3a: counted for pb in dtx.server_stats');
	my $t0 = time;
	ok( defined poll_until($pb, 'postgres',
			"SELECT count(*) FROM ledger WHERE tag = 't3a'", '1', 30),
		'3a: the woken resolver commits it on pb');
	diag(sprintf('3a: committed on pb %.1f s after the answer was given up',
			time - $t0));
	like(log_since($pos),
		qr/pg_dtx resolver: commit prepared transaction \Q$gid\E on server "pb": done/,
		'3a: the resolver logged its commit');
	is(stat_value('resolver_commits') - $commits0, 1, '3a: resolver_commits + 1');
	ok($coord->poll_query_until('postgres', 'SELECT count(*) = 0 FROM dtx.decisions'),
		'3a: its decision is deleted');
	is(ledger_rows($pb, 't3a-next'), 1, '3a: the next statement committed');
	is(prepared_xacts($pa) . prepared_xacts($pb), '00', '3a: nothing left prepared');
	$s->quit;
}

# 3b. dtx.disconnect_all() while pb's answer has not arrived: it gives the
# answer up at once; the woken resolver commits on pb while pb's old
# session is still frozen.
{
	my $s = async_session();
	my $pos = log_pos();
	my $in_doubt0 = stat_value('left_in_doubt');
	my ($gid, $rpid, $took, $out, $err) = commit_with_pb_frozen($s, 't3b');
	ok($took < 10 && $err eq '',
		sprintf('3b: COMMIT returns promptly without a warning (%.2f s)', $took));
	# pa's answer is read (and fine) first
	is((own_count($s, 'pa', 't3b'))[0], 1, '3b: committed on pa');
	my $t0 = time;
	($out, $err) = sq($s, 'SELECT dtx.disconnect_all()');
	my $dt = time - $t0;
	is($out, 't', '3b: dtx.disconnect_all() closes the connections');
	ok($dt < 10, sprintf('3b: without waiting for pb (%.2f s)', $dt));
	like(
		log_since($pos),
		qr/LOG:  pg_dtx: server "pb" has not confirmed COMMIT PREPARED of \Q$gid\E; left to the resolver/,
		'3b: the coordinator logs that pb did not confirm');
	unlike(log_since($pos), qr/server "pa" has not confirmed/,
		'3b: not pa, whose answer was read');
	is(stat_value('left_in_doubt') - $in_doubt0, 1, '3b: left_in_doubt + 1');
	resolver_commits_past_frozen('3b', 't3b', $gid, $rpid, $pos);
	($out, $err) = own_count($s, 'pb', 't3b');
	is($out, 1, '3b: the session reconnects to pb and sees the row');
	$s->quit;
}

# 3c. The session ends while pb's answer has not arrived: the answer is given
# up, the transaction stays in doubt until the resolver's next pass, and the
# backend's exit wakes the resolver, which commits on pb while pb's old
# session is still frozen.
{
	my $s = async_session();
	my $pos = log_pos();
	my ($gid, $rpid, $took, $out, $err) = commit_with_pb_frozen($s, 't3c');
	ok($took < 10 && $err eq '',
		sprintf('3c: COMMIT returns promptly without a warning (%.2f s)', $took));
	is(ledger_rows($pb, 't3c'), 0, '3c: pb has not committed');
	$s->quit;
	resolver_commits_past_frozen('3c', 't3c', $gid, $rpid, $pos);
}

unlike(slurp_file($coord->logfile), qr/PANIC|TRAP|server process .* was terminated/,
	'no crash of the coordinator');
diag(sprintf('008: %.1f s', time - $started));

done_testing();
