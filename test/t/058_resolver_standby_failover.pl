# Case 10: failover to the coordinator's synchronous standby: dtx.resolve()
# on the standby does not act on participants, and the promoted standby's
# resolver commits what the primary left in doubt.  Participants pa, pb.
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

my %node = resolver_cluster(qw(pa pb), { streaming => 1 });
my ($coord, $pa, $pb) = @node{qw(coord pa pb)};

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
	my $gid = make_in_doubt_transfer(
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
		$gid = make_in_doubt_transfer(
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
