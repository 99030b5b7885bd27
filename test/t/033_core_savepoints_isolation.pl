# Savepoints (ROLLBACK TO and RELEASE on every participant, a PL/pgSQL
# exception block) and isolation levels and READ ONLY reaching the remote
# transactions.  Participants pa and pb.
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

my %n = core_cluster(qw(pa pb));
my ($coord, $pa, $pb) = @n{qw(coord pa pb)};


{
	my $a1 = balance($pa, 1);
	my $b1 = balance($pb, 1);
	my ($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1');
		SAVEPOINT s1;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 10 WHERE id = 1');
		SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + 10 WHERE id = 1');
		SAVEPOINT s2;
		SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + 20 WHERE id = 1');
		ROLLBACK TO SAVEPOINT s1;
		SELECT 'after rollback to: ' || a.b || ' ' || b.b
		  FROM dtx.query('pa', 'SELECT balance FROM accounts WHERE id = 1') AS a(b bigint),
		       dtx.query('pb', 'SELECT balance FROM accounts WHERE id = 1') AS b(b bigint);
		SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + 100 WHERE id = 1');
		SAVEPOINT s3;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1000 WHERE id = 1');
		RELEASE SAVEPOINT s3;
		SAVEPOINT s4;
		SELECT dtx.exec('pa', 'INSERT INTO accounts VALUES (1, 0)');
		ROLLBACK TO SAVEPOINT s4;
		SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + 10000 WHERE id = 1');
		COMMIT;
	}, on_error_stop => 0);
	is($rc, 0, '4 savepoints: COMMIT succeeds');
	like($out, qr/after rollback to: @{[$a1 + 1]} $b1/,
		'4 savepoints: ROLLBACK TO undoes the work on both participants at once');
	like($err, qr/duplicate key/, '4 savepoints: the error inside a savepoint was reported');
	is(balance($pa, 1), $a1 + 1001, '4 savepoints: pa has the kept and released work');
	is(balance($pb, 1), $b1 + 10100, '4 savepoints: pb has the work after the rollback');

	# a PL/pgSQL exception block rolls back both participants
	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		DO $$
		BEGIN
			PERFORM dtx.exec('pa', 'UPDATE accounts SET balance = balance + 7 WHERE id = 1');
			PERFORM dtx.exec('pb', 'UPDATE accounts SET balance = balance + 7 WHERE id = 1');
			PERFORM dtx.exec('pb', 'INSERT INTO accounts VALUES (1, 0)');
		EXCEPTION WHEN unique_violation THEN
			RAISE NOTICE 'caught';
		END $$;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 3 WHERE id = 2');
		COMMIT;
	});
	is($rc, 0, '4 exception block: COMMIT succeeds');
	is(balance($pa, 1), $a1 + 1001, '4 exception block: pa rolled back to the block start');
	is(balance($pb, 1), $b1 + 10100, '4 exception block: pb rolled back to the block start');
	is(balance($pa, 2), 503, '4 exception block: the work after the block committed');
	resolve();
	all_clean('4 savepoints');

	# isolation levels and read-only mode reach the remote transactions
	my %want = (
		'READ COMMITTED' => 'read committed',
		'REPEATABLE READ' => 'repeatable read',
		'SERIALIZABLE' => 'serializable');
	for my $level (sort keys %want)
	{
		is( $coord->safe_psql(
				'postgres', qq{
			BEGIN ISOLATION LEVEL $level;
			SELECT a.l || '/' || b.l
			  FROM dtx.query('pa', 'SHOW transaction_isolation') AS a(l text),
			       dtx.query('pb', 'SHOW transaction_isolation') AS b(l text);
			COMMIT;}),
			"$want{$level}/$want{$level}",
			"4 isolation: $level on both participants");
	}
	is( $coord->safe_psql(
			'postgres', q{
		BEGIN READ ONLY;
		SELECT l FROM dtx.query('pa', 'SHOW transaction_read_only') AS t(l text);
		COMMIT;}),
		'on',
		'4 isolation: READ ONLY reaches the participant');
	($rc, $out, $err) = coord_sql(q{
		BEGIN READ ONLY;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = 0 WHERE id = 1');
		COMMIT;
	});
	like($err, qr/cannot execute UPDATE in a read-only transaction/,
		'4 isolation: a write in a READ ONLY transaction is refused remotely');
	is(balance($pa, 1), $a1 + 1001, '4 isolation: ... and changes nothing');

	# REPEATABLE READ: the remote snapshot is held for the whole transaction
	my $s = session();
	my $q = q{SELECT b FROM dtx.query('pa', 'SELECT balance FROM accounts WHERE id = 2') AS t(b bigint);};
	sq($s, 'BEGIN ISOLATION LEVEL REPEATABLE READ;');
	my ($first) = sq($s, $q);
	$pa->safe_psql('postgres', 'UPDATE accounts SET balance = balance + 7 WHERE id = 2');
	my ($second) = sq($s, $q);
	sq($s, 'COMMIT;');
	is($second, $first, '4 repeatable read: a remote change made meanwhile is not seen');
	sq($s, 'BEGIN ISOLATION LEVEL READ COMMITTED;');
	($first) = sq($s, $q);
	$pa->safe_psql('postgres', 'UPDATE accounts SET balance = balance + 7 WHERE id = 2');
	($second) = sq($s, $q);
	sq($s, 'COMMIT;');
	is($second, $first + 7, '4 read committed: a remote change made meanwhile is seen');
	$s->quit;
	all_clean('4 isolation');
}

diag(sprintf('033_core_savepoints_isolation: %.1fs', time - $started));
done_testing();
