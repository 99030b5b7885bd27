# Case 3: a participant crashes after PREPARE: the client's COMMIT succeeds
# with a WARNING, and once pb is back the resolver commits its part within
# dtx.resolver_interval plus its backoff.  Participants pa, pb.
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

# pb prepares and is killed at once; the client's COMMIT succeeds with a
# WARNING; pb comes back and the resolver commits its part, at its next
# pass that is not held back by the backoff of the failed attempts.
{
	my $tag = 'c3';
	my $gid = make_in_doubt_transfer(
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

done_testing();
