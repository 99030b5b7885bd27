# Case 3: a participant crashes after PREPARE: the client's COMMIT succeeds
# with a WARNING, and once pb is back the resolver commits its part within
# dtx.resolver_interval plus its backoff.  Participants pa, pb.
#
# One scenario of the resolver against real crashes (the others are the
# files test/t/05*_resolver_*.pl; the race of a pass with a commit is
# 011_resolver_race.pl): every distributed transaction must end committed
# everywhere or nowhere, with nothing left prepared and no decision left
# behind.  The nodes are built by DtxCluster's resolver_cluster: a
# coordinator "coord" (restart_after_crash on, background resolver every
# second) and the participants named below, each with a ledger; a transfer
# writes one ledger row per participant, and a row with stall > 0 holds that
# participant's PREPARE (deferred trigger) until the test releases it, which
# holds the transaction between "the others prepared" and the local commit
# for as long as the test needs, whatever the load of the machine.  Times
# measured here are printed with diag.

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
