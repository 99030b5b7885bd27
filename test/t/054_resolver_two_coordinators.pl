# Case 5: two coordinators and two databases share participants: while
# coord is down with transactions in doubt on pa, coord2's resolvers (in
# both its databases) leave them alone, as well as prepared transactions
# that are not pg_dtx's; each owner finishes its own.  Participants pa, pb,
# pc; a second coordinator coord2 with databases postgres and db2.
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
	my $gid_a = make_in_doubt_transfer(
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

done_testing();
