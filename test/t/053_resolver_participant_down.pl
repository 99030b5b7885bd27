# Case 4: a participant down for a long time: the resolver retries it with a
# growing backoff (shown in dtx.in_doubt) while the other participants work
# and their in-doubt transactions are finished; it commits once pb is back.
# 4b: a participant that hangs does not hold up the others; 4c: nor within
# one dtx.resolve() pass.  Participants pa, pb, pc.
#
# One scenario of the resolver against real crashes; what the resolver scenarios
# share (nodes, transfers, held PREPAREs) is in test/README.md (Layout) and in
# DtxCluster's resolver_cluster.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster qw(:DEFAULT :resolver);

# waits of PostgreSQL::Test::Cluster (wait_for_log, wait_for_catchup, ...)
$PostgreSQL::Test::Utils::timeout_default = 60;

my %node = resolver_cluster(qw(pa pb pc));
my ($coord, $pa, $pb, $pc) = @node{qw(coord pa pb pc)};

{
	my $tag = 'c4';
	my $gid = make_in_doubt_transfer(
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
	make_in_doubt_transfer(
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
	make_in_doubt_transfer(
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
	make_in_doubt_transfer(
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

done_testing();
