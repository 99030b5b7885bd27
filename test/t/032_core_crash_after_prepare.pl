# A participant crashed after PREPARE, before COMMIT PREPARED: pa is killed
# (SIGKILL) once it prepared while pb's PREPARE is slow, and dtx.resolve()
# finishes it after its restart; pb crashed during its own PREPARE; pa
# frozen (SIGSTOP) once it prepared, with dtx.commit_timeout bounding the
# client's wait; at the end the background resolver (turned on) finishes pa
# stopped in immediate mode.  Participants pa and pb.
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

# seconds a stalled PREPARE sleeps (deferred trigger on ledger)
my $STALL = 2;

my %n = core_cluster(qw(pa pb));
my ($coord, $pa, $pb) = @n{qw(coord pa pb)};
my ($coordid, $dboid, $uid) = core_ids();
my %srvoid = map { $_ => (core_ids($_))[3] } qw(pa pb);

# pa crashed (SIGKILL) once it prepared, while pb's PREPARE is slow
{
	my ($err, $committed, $xid) = transfer_killing_pa('s3 kill', $STALL, sub { crash($pa) });
	if ($committed)
	{
		like(
			$err,
			qr/WARNING:\s+committed, but server "pa" has not confirmed COMMIT PREPARED/,
			'3 kill after PREPARE: COMMIT succeeds with the WARNING naming pa');
		is(local_count('s3 kill'), 1, '3 kill after PREPARE: committed locally');
		is( $coord->safe_psql(
				'postgres',
				"SELECT count(*) FROM dtx.in_doubt WHERE server = 'pa' AND starts_with(global_id, '"
				  . gid($xid, 'pa', 1) . "')"),
			1,
			'3 kill after PREPARE: dtx.in_doubt shows pa in doubt');
		is(ledger_count($pb, 's3 kill'), 1, '3 kill after PREPARE: pb committed');
	}
	else
	{
		like($err, qr/ERROR:.*server "pa"/,
			'3 kill after PREPARE: COMMIT fails, naming pa');
		is(local_count('s3 kill'), 0, '3 kill after PREPARE: no local row');
		is(decisions(), 0, '3 kill after PREPARE: no decision');
		is(ledger_count($pb, 's3 kill'), 0, '3 kill after PREPARE: pb rolled back');
	}
	diag('3 kill after PREPARE: the client saw ' . ($committed ? 'a commit' : 'a failure'));

	$pa->start;
	is(prepared_xacts($pa), 1, '3 kill after PREPARE: pa still holds its prepared transaction after restart');
	my $r = resolve();
	my $expect = $committed ? 'commit' : 'rollback';
	like($r, qr/^pa\|dtx_${coordid}_${dboid}_\d+_$srvoid{pa}_${uid}_1_\d+\|$expect\|done$/m,
		"3 kill after PREPARE: dtx.resolve() runs $expect on pa");
	my $n = $committed ? 1 : 0;
	is(ledger_count($pa, 's3 kill'), $n, "3 kill after PREPARE: pa ends " . ($committed ? 'committed' : 'rolled back'));
	is(ledger_count($pb, 's3 kill'), $n, "3 kill after PREPARE: pb ends " . ($committed ? 'committed' : 'rolled back'));
	is(local_count('s3 kill'), $n, '3 kill after PREPARE: the local row agrees');
	is(decisions(), 0, '3 kill after PREPARE: no decision left');
	is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.in_doubt'),
		0, '3 kill after PREPARE: nothing in doubt');
	all_clean('3 kill after PREPARE');
}

# pb crashed during its slow PREPARE: pa had prepared, pb never did
{
	my $s = session();
	my ($out, $err) = sq(
		$s, qq{
		BEGIN;
		SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES (\$1, \$2)', 's3 kill pb', -10);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount, stall) VALUES (\$1, \$2, \$3)', 's3 kill pb', 10, 30);
	});
	sq_send($s, 'COMMIT;');
	ok( wait_for(
			$pa,
			"SELECT count(*) > 0 FROM pg_prepared_xacts WHERE gid LIKE 'dtx\\_$coordid\\_%'"
		),
		'3 kill during PREPARE: pa prepared');
	ok( wait_for(
			$pb,
			"SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'PREPARE TRANSACTION%' AND wait_event = 'PgSleep'"
		),
		'3 kill during PREPARE: pb sleeps in its PREPARE');
	crash($pb);
	($out, $err) = sq_wait($s);
	like($err, qr/ERROR:.*server "pb"/,
		'3 kill during PREPARE: COMMIT fails, naming pb');
	unlike($err, qr/WARNING:[^\n]*(committed|server "pa")/,
		'3 kill during PREPARE: no warning about a commit or about pa');
	is(prepared_xacts($pa), 0,
		'3 kill during PREPARE: pa rolled back without the resolver');
	$pb->start;
	is(prepared_xacts($pb), 0, '3 kill during PREPARE: nothing prepared on pb after restart');
	unlike(resolve(), qr/\|commit\|/, '3 kill during PREPARE: the resolver commits nothing');
	is(ledger_count($pa, 's3 kill pb') + ledger_count($pb, 's3 kill pb'),
		0, '3 kill during PREPARE: no row anywhere');
	is(decisions(), 0, '3 kill during PREPARE: no decision');
	all_clean('3 kill during PREPARE');
	$s->quit;
}

# pa frozen (SIGSTOP on its pg_dtx backend) once it prepared: COMMIT
# PREPARED gets no answer, and dtx.commit_timeout bounds the client's wait
{
	my $s = session();
	my ($out, $err) = sq(
		$s, qq{
		SET dtx.commit_timeout = '1s';
		BEGIN;
		SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES (\$1, \$2)', 's3 frozen', -10);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount, stall) VALUES (\$1, \$2, \$3)', 's3 frozen', 10, $STALL);
		INSERT INTO local_log VALUES ('s3 frozen');
		SELECT 'xid:' || pg_current_xact_id();
	});
	my ($xid) = $out =~ /xid:(\d+)/;
	my $remote = $pa->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE application_name = '"
		  . appname($s->{pid}) . "'");
	sq_send($s, 'COMMIT;');
	ok(wait_for($pa, "SELECT count(*) = 1 FROM pg_prepared_xacts WHERE starts_with(gid, '" . gid($xid, 'pa', 1) . "')"),
		'3 frozen: pa prepared');
	kill('STOP', $remote);
	my $t = time;
	($out, $err) = sq_wait($s);
	my $took = time - $t;
	diag(sprintf('3 frozen: COMMIT returned %.1fs after pa froze', $took));
	like(
		$err,
		qr/WARNING:\s+committed, but server "pa" has not confirmed COMMIT PREPARED\nDETAIL:\s+Global id \Q@{[gid($xid, 'pa', 1)]}\E\d+: no answer within dtx.commit_timeout/,
		'3 frozen: COMMIT succeeds with the WARNING naming pa and the timeout');
	unlike($err, qr/ERROR/, '3 frozen: no error');
	ok($took < $STALL + 8, '3 frozen: the wait is bounded');
	is(ledger_count($pb, 's3 frozen'), 1, '3 frozen: pb committed');
	is(local_count('s3 frozen'), 1, '3 frozen: committed locally');
	is( $coord->safe_psql(
			'postgres',
			"SELECT count(*) FROM dtx.in_doubt WHERE server = 'pa' AND starts_with(global_id, '"
			  . gid($xid, 'pa', 1) . "')"),
		1,
		'3 frozen: dtx.in_doubt shows pa in doubt');
	# the frozen backend resumes with COMMIT PREPARED in its input while the
	# resolver may try the same
	kill('CONT', $remote);
	resolve();
	ok(wait_for($pa, "SELECT count(*) = 1 FROM ledger WHERE tag = 's3 frozen'"),
		'3 frozen: pa ends committed');
	resolve();
	is(decisions(), 0, '3 frozen: no decision left');
	my ($o2, $e2) = sq(
		$s, q{
		BEGIN;
		SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's3 frozen next', 1);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's3 frozen next', 1);
		COMMIT;
	});
	is($e2, '', '3 frozen: the session\'s next transaction commits');
	$s->quit;
	resolve();
	all_clean('3 frozen');
}

# At the end, with the background resolver on:

{
	$coord->safe_psql('postgres',
		"ALTER SYSTEM SET dtx.resolver_interval = '1s'; SELECT pg_reload_conf();");
	my $t0;
	my ($err, $committed) = transfer_killing_pa('s3 stop', $STALL, sub { $pa->stop('immediate'); $t0 = time; });
	if ($committed)
	{
		like(
			$err,
			qr/WARNING:\s+committed, but server "pa" has not confirmed COMMIT PREPARED/,
			'3 stop after PREPARE: COMMIT succeeds with the WARNING naming pa');
	}
	else
	{
		like($err, qr/ERROR:.*server "pa"/, '3 stop after PREPARE: COMMIT fails, naming pa');
	}
	diag('3 stop after PREPARE: the client saw ' . ($committed ? 'a commit' : 'a failure'));
	$pa->start;
	my $n = $committed ? 1 : 0;
	ok( wait_for(
			$pa,
			"SELECT (SELECT count(*) FROM pg_prepared_xacts) = 0 AND (SELECT count(*) FROM ledger WHERE tag = 's3 stop') = $n"
		),
		'3 stop after PREPARE: the background resolver finishes pa');
	ok(wait_for($coord, 'SELECT count(*) = 0 FROM dtx.decisions'),
		'3 stop after PREPARE: the decision is deleted');
	diag(sprintf('3 stop after PREPARE: finished %.1fs after pa went down', time - $t0));
	is(ledger_count($pb, 's3 stop'), $n, '3 stop after PREPARE: pb agrees');
	is(local_count('s3 stop'), $n, '3 stop after PREPARE: the local row agrees');
	all_clean('3 stop after PREPARE');
}

diag(sprintf('032_core_crash_after_prepare: %.1fs', time - $started));
done_testing();
