# A hot standby of the coordinator: dtx.exec is refused there (25006, with a
# hint), dtx.query reads the participants.  Participants pa and pb.
#
# One scenario of the core commit protocol; what the core scenarios share
# (nodes, checks) is in test/README.md (Layout) and in DtxCluster's core_cluster.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster qw(:DEFAULT :core);

my $started = time;

my %n = core_cluster(qw(pa pb), { streaming => 1 });
my ($coord, $pa, $pb) = @n{qw(coord pa pb)};


{
	$coord->backup('standby_backup');
	my $standby = PostgreSQL::Test::Cluster->new('coord_standby');
	$standby->init_from_backup($coord, 'standby_backup', has_streaming => 1);
	$standby->start;
	$coord->wait_for_catchup($standby);
	is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'),
		't', '7: the standby is in recovery');

	my $a1 = balance($pa, 1);
	my ($rc, $out, $err) = $standby->psql(
		'postgres', q{\set VERBOSITY verbose
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = 0 WHERE id = 1');});
	isnt($rc, 0, '7 dtx.exec on the standby: fails');
	like($err, qr/ERROR:\s+25006: cannot run dtx\.exec on a hot standby/,
		'7 dtx.exec on the standby: clear error, SQLSTATE 25006');
	like($err, qr/HINT:.*dtx\.query works here/, '7 dtx.exec on the standby: the hint points to dtx.query');

	is( $standby->safe_psql(
			'postgres', q{
		BEGIN;
		SELECT a.b || ' ' || b.b
		  FROM dtx.query('pa', 'SELECT balance FROM accounts WHERE id = 1') AS a(b bigint),
		       dtx.query('pb', 'SELECT balance FROM accounts WHERE id = 1') AS b(b bigint);
		COMMIT;}),
		$a1 . ' ' . balance($pb, 1),
		'7 dtx.query on the standby: reads both participants');
	is($standby->safe_psql('postgres',
			q{SELECT count(*) FROM dtx.query('pa', 'SELECT 1') AS t(x int)}),
		1, '7 dtx.query on the standby: outside a transaction block too');

	($rc, $out, $err) = $standby->psql('postgres',
		q{SELECT * FROM dtx.query('pa', 'UPDATE accounts SET balance = 0 WHERE id = 1 RETURNING balance') AS t(b bigint);}
	);
	isnt($rc, 0, '7 a write through dtx.query on the standby: fails');
	is(balance($pa, 1), $a1, '7 a write through dtx.query on the standby: pa unchanged');
	all_clean('7 standby');
	$standby->stop;
}

diag(sprintf('036_core_hot_standby: %.1fs', time - $started));
done_testing();
