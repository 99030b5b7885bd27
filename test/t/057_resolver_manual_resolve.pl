# Case 9: dtx.resolve() with the background resolver off: the cases of 2 and
# 3 and a crash before the local commit; nothing happens by itself, and one
# dtx.resolve() gives the same end state.  Participants pa, pb, pc.
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

# a held PREPARE waits until release_stall() (or this many seconds)
my $HOLD = $DtxCluster::RESOLVER_HOLD;

my %node = resolver_cluster(qw(pa pb pc));
my ($coord, $pa, $pb, $pc) = @node{qw(coord pa pb pc)};

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

done_testing();
