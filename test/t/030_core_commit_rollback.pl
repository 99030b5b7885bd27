# Commit, rollback, remote errors (immediate and at PREPARE), and a local
# commit that fails once the participants were asked to PREPARE (a
# SERIALIZABLE write skew on the coordinator).  Participants pa and pb.
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
my ($coordid, $dboid, $uid) = core_ids();
my %srvoid = map { $_ => (core_ids($_))[3] } qw(pa pb);


{
	my ($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance - $1 WHERE id = $2', 100, 1);
		SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + $1 WHERE id = $2', 100, 1);
		INSERT INTO local_log VALUES ('s1 commit');
		SELECT 'xid=' || pg_current_xact_id();
		COMMIT;
	});
	is($rc, 0, '1 commit: COMMIT succeeds');
	is($err, '', '1 commit: no warning');
	my ($xid) = $out =~ /xid=(\d+)/;
	is(balance($pa, 1), 900, '1 commit: pa debited');
	is(balance($pb, 1), 400, '1 commit: pb credited');
	is(local_count('s1 commit'), 1, '1 commit: local row committed');
	is( $coord->safe_psql(
			'postgres',
			"SELECT coordinator_id = $coordid AND servers = ARRAY[$srvoid{pa}, $srvoid{pb}]::oid[] AND userids = ARRAY[$uid, $uid]::oid[] FROM dtx.decisions WHERE xid = '$xid'"
		),
		't',
		'1 commit: the decision names the coordinator, both servers and the user');
	# every participant confirmed COMMIT PREPARED: nothing is in doubt, even
	# before a resolver pass deletes the decision
	is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.in_doubt'),
		0, '1 commit: dtx.in_doubt is empty after a fully confirmed commit');
	all_clean('1 commit');
	my $r = resolve();
	unlike($r, qr/\|(commit|rollback)\|/,
		'1 commit: the resolver finds nothing to finish');
	is(decisions(), 0, '1 commit: the decision is gone after a resolver pass');

	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = 0 WHERE id = 1');
		SELECT dtx.exec('pb', 'UPDATE accounts SET balance = 0 WHERE id = 1');
		INSERT INTO local_log VALUES ('s1 rollback');
		ROLLBACK;
	});
	is($rc, 0, '1 rollback: ROLLBACK succeeds');
	is(balance($pa, 1), 900, '1 rollback: pa unchanged');
	is(balance($pb, 1), 400, '1 rollback: pb unchanged');
	is(local_count('s1 rollback'), 0, '1 rollback: no local row');
	is(decisions(), 0, '1 rollback: no decision');
	all_clean('1 rollback');

	# a remote error while the transaction runs
	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 2');
		INSERT INTO local_log VALUES ('s1 error');
		SELECT dtx.exec('pb', 'INSERT INTO accounts VALUES (1, 0)');
		COMMIT;
	});
	isnt($rc, 0, '1 remote error: the transaction fails');
	like($err, qr/duplicate key value violates unique constraint/,
		'1 remote error: the remote error is reported');
	like($err, qr/server "pb"/, '1 remote error: the server is named');
	is(balance($pa, 2), 500, '1 remote error: pa unchanged');
	is(balance($pb, 1), 400, '1 remote error: pb unchanged');
	is(local_count('s1 error'), 0, '1 remote error: no local row');
	all_clean('1 remote error');

	# a remote error at PREPARE TRANSACTION (deferred unique constraint)
	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 2');
		SELECT dtx.exec('pb', 'INSERT INTO dcheck VALUES (1), (1)');
		INSERT INTO local_log VALUES ('s1 prepare error');
		COMMIT;
	});
	isnt($rc, 0, '1 error at PREPARE: COMMIT fails');
	like(
		$err,
		qr/could not prepare the transaction on server "pb": duplicate key value/,
		'1 error at PREPARE: the error names the server and the remote error');
	is(balance($pa, 2), 500, '1 error at PREPARE: pa rolled back');
	is($pb->safe_psql('postgres', 'SELECT count(*) FROM dcheck'),
		0, '1 error at PREPARE: pb rolled back');
	is(local_count('s1 prepare error'), 0, '1 error at PREPARE: no local row');
	is(decisions(), 0, '1 error at PREPARE: no decision');
	all_clean('1 error at PREPARE');

	# the local commit fails after the participants were asked to PREPARE:
	# a SERIALIZABLE write skew on the coordinator is caught at COMMIT (by
	# the decision's insert or by the local commit's own check)
	$coord->safe_psql('postgres',
		'CREATE TABLE skew (id int PRIMARY KEY, v int); INSERT INTO skew VALUES (1, 0), (2, 0);'
	);
	my ($s1, $s2) = (session(), session());
	for my $x ([ $s1, 1 ], [ $s2, 2 ])
	{
		my ($s, $id) = @$x;
		sq(
			$s, qq{
			BEGIN ISOLATION LEVEL SERIALIZABLE;
			SELECT sum(v) FROM skew;
			UPDATE skew SET v = 1 WHERE id = $id;
			SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES (\$1, \$2)', 's1 skew $id', 1);
			SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES (\$1, \$2)', 's1 skew $id', 1);
		});
	}
	my ($o1, $e1) = sq($s1, 'COMMIT;');
	my ($qa, $qb) = (log_pos($pa), log_pos($pb));
	my ($o2, $e2) = sq($s2, 'COMMIT;');
	my $l2 = dtx_log_since($pa, $qa) . "\n" . dtx_log_since($pb, $qb);
	$s1->quit;
	$s2->quit;
	is($e1, '', '1 local commit failure: the first transaction commits');
	like($e2, qr/ERROR:\s+could not serialize access/,
		'1 local commit failure: the second fails at its local commit');
	# the conflict may be caught before the PREPAREs go out or after:
	# whatever was prepared is rolled back
	is(scalar(() = $l2 =~ /ROLLBACK PREPARED 'dtx_/g),
		scalar(() = $l2 =~ /PREPARE TRANSACTION 'dtx_/g),
		'1 local commit failure: whatever pa and pb had prepared is rolled back');
	is(ledger_count($pa, 's1 skew 1') . ledger_count($pb, 's1 skew 1'),
		'11', '1 local commit failure: the first committed on pa and pb');
	is(ledger_count($pa, 's1 skew 2') . ledger_count($pb, 's1 skew 2'),
		'00', '1 local commit failure: the second rolled back on pa and pb');
	is($coord->safe_psql('postgres', 'SELECT v FROM skew ORDER BY id'),
		"1\n0", '1 local commit failure: locally too');
	all_clean('1 local commit failure');
	resolve();
	is(decisions(), 0, '1 local commit failure: no decision left');
}

diag(sprintf('030_core_commit_rollback: %.1fs', time - $started));
done_testing();
