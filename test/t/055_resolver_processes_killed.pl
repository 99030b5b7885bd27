# Case 7: the resolver's own processes killed and crashes in the middle of a
# pass: the launcher killed (7a), the worker killed in its pass (7b), the
# coordinator and pa crashed in a pass (7c), a participant crashed right
# after acknowledging COMMIT PREPARED (7d), and a pass that hangs on one
# participant still finishes the others (7e).  Participants pa (streaming
# WAL, so that synchronous_standby_names naming nobody makes its commits
# wait), pb, pc.
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

my %node = resolver_cluster(qw(pa pb pc), { pa_wal => 1 });
my ($coord, $pa, $pb, $pc) = @node{qw(coord pa pb pc)};

# 7a. kill -9 of the launcher while a participant is in doubt and down:
# the coordinator crash-restarts, and the transaction is still finished.
{
	my $tag = 'c7a';
	make_in_doubt_transfer(tag => $tag, victim => 'pb', staller => 'pa', action => 'stop');
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
	my $gid = make_in_doubt_transfer(
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

done_testing();
