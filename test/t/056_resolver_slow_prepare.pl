# Case 8: slow PREPAREs while dtx.resolve() runs in a loop: the resolver
# never rolls back a transaction still running; 8b: what such a pass leaves
# alone shows in dtx.in_doubt as "none yet".  Participants pa, pb, pc.
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
# a slow PREPARE takes this many seconds
my $SLOW = 1.5;

my %node = resolver_cluster(qw(pa pb pc));
my ($coord, $pa, $pb, $pc) = @node{qw(coord pa pb pc)};

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

done_testing();
