# Case 2: the coordinator crashes after its local commit, before every
# COMMIT PREPARED (pb frozen, then the coordinator and pb killed together):
# after the restart the resolver commits on pb, with dtx.resolver_interval
# 10s and 1s.  Participants pa, pb.
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

my %node = resolver_cluster(qw(pa pb));
my ($coord, $pa, $pb) = @node{qw(coord pa pb)};

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

done_testing();
