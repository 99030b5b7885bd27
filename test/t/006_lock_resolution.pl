# dtx.lock after a crash: the advisory locks that a distributed transaction
# took with dtx.lock stay held by its prepared transactions while it is in
# doubt, across a participant's crash-restart, and go when the resolver
# finishes it; then the lock can be taken again.
#
# The transaction takes dtx.lock(ARRAY['pa', 'pb'], 42) and writes a ledger
# row on pa and on pb.  Two ways to leave it in doubt:
#
#   commit     the coordinator crashes after its local commit: pa got its
#              COMMIT PREPARED (lock released there), pb was frozen (SIGSTOP)
#              after its PREPARE and is crashed too, so the COMMIT PREPARED
#              waiting in its socket is lost; pb keeps its prepared
#              transaction, which holds the lock on pb
#   rollback   the coordinator crashes while pb's PREPARE is held (deferred
#              trigger, see create_ledger), after pa prepared; pb's PREPARE
#              completes afterwards: both hold the lock, no decision exists
#
# Each one is finished once by the background resolver (dtx.resolver_interval
# turned on after the restart) and once by dtx.resolve() by hand.  While in
# doubt, dtx.try_lock on the same key returns false, from a second
# coordinator "coord2" sharing the participants (coord down) and from the
# restarted coordinator (resolver off); afterwards it returns true from both,
# the ledger rows exist everywhere (commit) or nowhere (rollback), nothing is
# prepared and no decision is left.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster;

$PostgreSQL::Test::Utils::timeout_default = 60;

my $HOLD = 60;    # a held PREPARE waits at most this long for release_stall
my $KEY  = 42;

my $coord = new_coordinator('coord');
my $coord2 =
  new_coordinator('coord2', extra_conf => "dtx.resolver_interval = 0\n");
my $pa = new_participant('pa');
my $pb = new_participant('pb');
my %node = (pa => $pa, pb => $pb);
create_ledger($_) for ($pa, $pb);
$coord->safe_psql('postgres', 'CREATE TABLE wal_flush (x int)');
for my $c ($coord, $coord2)
{
	add_server($c, $_, $node{$_}) for qw(pa pb);
}

# --- helpers -----------------------------------------------------------------

# dtx.try_lock(ARRAY[@servers], 42) in a transaction of its own on
# coordinator $c, rolled back: 't' or 'f'.
sub try_lock
{
	my ($c, @servers) = @_;
	my $array = join(', ', map { quote_literal($_) } @servers);
	return $c->safe_psql('postgres',
		"BEGIN; SELECT dtx.try_lock(ARRAY[$array], $KEY); ROLLBACK;");
}

# Who holds the advisory lock 42 on participant $node: 'prepared' for a
# prepared transaction, a pid for a session, '' for nobody.
sub lock_holders
{
	my ($node) = @_;
	return $node->safe_psql(
		'postgres', qq{
		SELECT coalesce(string_agg(coalesce(pid::text, 'prepared'), ',' ORDER BY pid), '')
		  FROM pg_locks
		 WHERE locktype = 'advisory' AND granted
		   AND classid = 0 AND objid = $KEY AND objsubid = 1});
}

# --- the scenarios ---------------------------------------------------------------

# A first transfer records the participants' identities on coord; a pass
# deletes its finished decision.
$coord->safe_psql('postgres',
	transfer_sql('warmup', [ 'pa', -1 ], [ 'pb', 1 ]));
$coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.resolve()');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.decisions'),
	'0', 'no decision before the scenarios');

for my $case ('commit', 'rollback')
{
	for my $how ('background', 'manual')
	{
		my $tag = "$case-$how";
		my $committed = $case eq 'commit' ? 1 : 0;
		set_resolver_interval($coord, '0');

		# T1: the lock on pa and pb, then a ledger row on each; the
		# staller's PREPARE is held, the other participant prepares at once.
		my ($staller, $prepared) = $case eq 'commit' ? qw(pa pb) : qw(pb pa);
		my $sql = transfer_sql(
			$tag,
			[ 'pa', -5, $staller eq 'pa' ? $HOLD : 0 ],
			[ 'pb', 5,  $staller eq 'pb' ? $HOLD : 0 ]);
		$sql =~ s/^BEGIN;\n/BEGIN;\nSELECT dtx.lock(ARRAY['pa', 'pb'], $KEY);\n/
		  or die 'no BEGIN in the transfer';
		my $before = gid_set($node{$prepared});
		my $h = start_sql($coord, $sql);
		my $gid = wait_new_gid($node{$prepared}, $before);
		ok(defined $gid, "$tag: $prepared prepared");

		if ($case eq 'commit')
		{
			# pb prepared and answered (its session idle again): freeze it,
			# let pa prepare; the coordinator commits, pa gets COMMIT
			# PREPARED, pb's waits unread in its socket
			ok( defined poll_until(
					$pb, 'postgres',
					"SELECT count(*) FROM pg_stat_activity WHERE state = 'idle' AND query LIKE "
					  . quote_literal("%PREPARE TRANSACTION '$gid'%"),
					'1', 30),
				"$tag: pb answered the PREPARE");
			signal_node($pb, 'STOP');
			release_stall($pa, $tag);
			ok( defined poll_until(
					$pa, 'postgres',
					"SELECT count(*) FROM ledger WHERE tag = '$tag'", '1', 30),
				"$tag: committed on pa, so committed on the coordinator");
			$coord->stop('immediate');
			crash_node($pb);
			finish_sql($h, 10);
			$pb->start;
			ok(gid_set($pb)->{$gid},
				"$tag: pb still holds its prepared transaction after its crash");
		}
		else
		{
			# pa prepared, pb's PREPARE held: the coordinator dies before its
			# local commit (after another transaction's commit flushed its
			# WAL, T1's transaction id included, as on any busy coordinator;
			# 010 case 1b is the crash without it); pb's PREPARE completes
			# once released, with nobody to answer to
			$coord->safe_psql('postgres', 'INSERT INTO wal_flush VALUES (1)');
			$coord->stop('immediate');
			release_stall($pb, $tag);
			my ($rc) = finish_sql($h, 10);
			isnt($rc, 0, "$tag: the client lost its transaction");
			ok( defined poll_until(
					$pb, 'postgres',
					"SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'dtx\\_%'",
					'1', 30),
				"$tag: pb's released PREPARE completed");
		}

		# in doubt: the prepared transactions hold the lock
		is(lock_holders($pa), $committed ? '' : 'prepared',
			"$tag: on pa the lock is "
			  . ($committed ? 'released (pa committed)' : 'held by the prepared transaction'));
		is(lock_holders($pb), 'prepared',
			"$tag: on pb the lock is held by the prepared transaction");
		is(try_lock($coord2, 'pa', 'pb'), 'f',
			"$tag: dtx.try_lock from coord2 fails while coord is down");
		is(try_lock($coord2, 'pb'), 'f', "$tag: on pb in particular");
		is(try_lock($coord2, 'pa'), $committed ? 't' : 'f',
			"$tag: on pa it " . ($committed ? 'succeeds' : 'fails as well'));

		$coord->start;
		my ($xid) = ($gid // '') =~ /^dtx_\d+_\d+_(\d+)_/;
		is( $coord->safe_psql('postgres',
				"SELECT count(*) FROM dtx.decisions WHERE xid = '"
				  . ($xid // 0) . "'"),
			$committed,
			"$tag: the coordinator has "
			  . ($committed ? 'the decision' : 'no decision'));
		is(try_lock($coord, 'pa', 'pb'), 'f',
			"$tag: dtx.try_lock from the restarted coordinator fails (resolver off)");
		is(lock_holders($pb), 'prepared', "$tag: still held on pb");

		# resolution
		if ($how eq 'background')
		{
			my $t0 = time();
			set_resolver_interval($coord, '1s');
			for my $p ($pa, $pb)
			{
				ok( defined poll_until(
						$p, 'postgres',
						'SELECT count(*) FROM pg_prepared_xacts', '0', 30),
					"$tag: the background resolver finished it on " . $p->name);
			}
			ok( defined poll_until(
					$coord, 'postgres', 'SELECT count(*) FROM dtx.decisions',
					'0', 30),
				"$tag: no decision left");
			diag(sprintf('%s: finished %.1f s after the resolver was turned on',
					$tag, time() - $t0));
		}
		else
		{
			my $out = $coord->safe_psql('postgres',
				'SELECT server, action, outcome FROM dtx.resolve() WHERE server IS NOT NULL ORDER BY 1, 2'
			);
			if ($committed)
			{
				is($out, 'pb|commit|done',
					"$tag: dtx.resolve() commits on pb and does nothing else");
			}
			else
			{
				is( $out,
					"pa|rollback|done\npb|rollback|done",
					"$tag: dtx.resolve() rolls back on pa and pb");
			}
			is(prepared_xacts($_), '0', "$tag: nothing prepared on " . $_->name)
			  for ($pa, $pb);
			is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.decisions'),
				'0', "$tag: no decision left after the pass");
		}

		# the lock is free everywhere, the data all there or all gone
		is(lock_holders($_), '', "$tag: nobody holds the lock on " . $_->name)
		  for ($pa, $pb);
		is(try_lock($coord, 'pa', 'pb'), 't',
			"$tag: dtx.try_lock from the coordinator succeeds after resolution");
		is(try_lock($coord2, 'pa', 'pb'), 't',
			"$tag: and from coord2");
		is(ledger_rows($_, $tag), $committed,
			"$tag: " . ($committed ? 'committed' : 'rolled back') . ' on ' . $_->name)
		  for ($pa, $pb);
	}
}

done_testing();
