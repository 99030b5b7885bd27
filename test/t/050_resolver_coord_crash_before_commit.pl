# Case 1: the coordinator crashes after the PREPAREs, before its local
# commit: the background resolver rolls both prepared transactions back
# after the restart.  1b: the same crash with the coordinator's WAL for the
# transaction not yet written, so that its transaction id is handed out
# again: the next transaction with that xid commits (the global ids differ
# by their nonce) and a pass rolls the dead one back.  Participants pa, pb.
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

my %node = resolver_cluster(qw(pa pb));
my ($coord, $pa, $pb) = @node{qw(coord pa pb)};

{
	# pa prepares at once, pb's PREPARE is held; the coordinator dies
	# meanwhile.
	my $sql = transfer_sql('c1', [ 'pa', -5 ], [ 'pb', 5, $HOLD ]);
	$sql =~ s/COMMIT;/INSERT INTO ledger VALUES ('c1', 0);\nCOMMIT;/;
	my $before = gid_set($pa);
	my $h = start_sql($coord, $sql);
	ok(defined wait_new_gid($pa, $before), 'c1: pa prepared');
	flush_wal($coord);
	$coord->stop('immediate');
	release_stall($pb, 'c1');
	my ($rc) = finish_sql($h);
	isnt($rc, 0, 'c1: the client lost its transaction');
	my $t0 = time();
	$coord->start;

	# pb's PREPARE finishes once released, with nobody to answer to: it
	# must be rolled back as well.
	wait_prepares_done($pb);
	my $took = poll_until($pb, 'postgres',
		'SELECT count(*) FROM pg_prepared_xacts', '0', 30);
	my $took_a = poll_until($pa, 'postgres',
		'SELECT count(*) FROM pg_prepared_xacts', '0', 30);
	ok(defined $took && defined $took_a,
		'c1: the background resolver rolled back both prepared transactions');
	diag(sprintf('c1: rolled back everywhere %.1f s after the restart',
			time() - $t0));
	check_outcome('c1', 0, qw(coord pa pb));
	check_clean('c1');
}

# 1b. The same crash while the coordinator's WAL for the transaction is still
# in its buffers (WAL writer and background writer frozen): after the
# restart the transaction id is handed out again.  pg_dtx does not make the
# xid durable before PREPARE; the global ids carry a nonce instead.  With the
# background resolver off, another distributed transaction is given the very
# same xid while the dead one's prepared transactions still exist: it must
# prepare and commit (its global ids differ by their nonce), and the next
# pass must roll the dead one's back, never commit them by the other's
# decision.
# The crash of 1b and 1c: transfer $tag prepares on pa, pb's PREPARE is held,
# and the coordinator is killed with the transaction's WAL in its buffers.
# Returns its global id on pa, its xid and nonce, and the next xid after the
# restart (at or below the xid when the WAL was indeed lost).
sub crash_with_wal_in_buffers
{
	my ($tag) = @_;
	set_resolver_interval($coord, '0');
	my @frozen = (backend_pids($coord, 'walwriter'),
		backend_pids($coord, 'background writer'));
	kill('STOP', @frozen);
	my $sql = transfer_sql($tag, [ 'pa', -5 ], [ 'pb', 5, $HOLD ]);
	$sql =~ s/COMMIT;/INSERT INTO ledger VALUES ('$tag', 0);\nCOMMIT;/;
	my $before = gid_set($pa);
	my $h = start_sql($coord, $sql);
	my $gid = wait_new_gid($pa, $before);
	crash_node($coord);
	release_stall($pb, $tag);
	finish_sql($h);
	$coord->start;
	my ($xid, $nonce) = $gid =~ /^dtx_\d+_\d+_(\d+)_\d+_\d+_\d+_(\d+)$/;
	ok(defined $nonce, "$tag: the global id $gid carries a nonce");
	$xid //= 0;
	my $next = $coord->safe_psql('postgres',
		'SELECT pg_snapshot_xmax(pg_current_snapshot())');
	diag("$tag: transaction $xid, next transaction id after the restart $next");
	return ($gid, $xid, $nonce, $next);
}

{
	my ($gid, $xid, $nonce, $next) = crash_with_wal_in_buffers('c1b');

  SKIP:
	{
		skip 'c1b: the WAL of the transaction reached the disk anyway', 10
		  if $next > $xid;

		wait_prepares_done($pb);
		is( $pa->safe_psql('postgres',
				"SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'dtx\\_%\\_${xid}\\_%'")
			  . $pb->safe_psql('postgres',
				"SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'dtx\\_%\\_${xid}\\_%'"),
			'11', 'c1b: the dead transaction is prepared on pa and pb');

		# burn transaction ids up to the dead one's
		for (my $n = $next; $n < $xid; $n++)
		{
			$coord->safe_psql('postgres', 'SELECT pg_current_xact_id()');
		}
		my ($rc, $out, $err) = $coord->psql(
			'postgres', q{
			BEGIN;
			INSERT INTO ledger VALUES ('c1b-next', 0);
			SELECT 'xid:' || pg_current_xact_id();
			SELECT dtx.exec('pa', 'INSERT INTO ledger VALUES ($1, 0)', 'c1b-next');
			SELECT dtx.exec('pb', 'INSERT INTO ledger VALUES ($1, 0)', 'c1b-next');
			COMMIT;
		});
		my ($xid2) = $out =~ /xid:(\d+)/;
		is($xid2, $xid, 'c1b: the next distributed transaction got the same xid');
		is($rc, 0, 'c1b: it commits although the dead one\'s prepared transactions are there')
		  or diag($err);
		$coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.resolve()');
		is( $pa->safe_psql('postgres',
				"SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE '%\\_$nonce'")
			  . $pb->safe_psql('postgres',
				"SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE '%\\_$nonce'"),
			'00', 'c1b: one dtx.resolve() rolled the dead transaction back on pa and pb');
		check_outcome('c1b', 0, qw(coord pa pb));
		check_outcome('c1b-next', 1, qw(coord pa pb));
	}
	# whatever happened, leave nothing of it for the next scenarios
	$coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.resolve()');
	for my $p ($pa, $pb)
	{
		for my $g (grep { /_${xid}_/ } keys %{ gid_set($p) })
		{
			$p->safe_psql('postgres', "ROLLBACK PREPARED '$g'");
		}
	}
	check_clean('c1b', resolve => 1);
	set_resolver_interval($coord, '1s');
}

# 1c. The same crash, and nothing runs after the restart: the dead
# transaction's xid is at or past the next one, so it belongs to no
# transaction and the very first pass rolls its prepared transactions back
# (xact_may_be_running), without waiting for the xid to be handed out again.
{
	my ($gid, $xid, $nonce, $next) = crash_with_wal_in_buffers('c1c');

  SKIP:
	{
		skip 'c1c: the WAL of the transaction reached the disk anyway', 4
		  if $next > $xid;

		wait_prepares_done($pb);
		my $out = $coord->safe_psql('postgres',
			q{SELECT server || ' ' || action FROM dtx.resolve() WHERE global_id LIKE '%\_' || }
			  . quote_literal($nonce) . ' ORDER BY 1');
		is($out, "pa rollback\npb rollback",
			'c1c: the first pass after the restart rolls the dead transaction back on pa and pb');
		check_outcome('c1c', 0, qw(coord pa pb));
	}
	$coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.resolve()');
	check_clean('c1c', resolve => 1);
	set_resolver_interval($coord, '1s');
}

done_testing();
