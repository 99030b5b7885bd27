# The local commit of a two-phase commit is the decision: it must be on
# disk when COMMIT returns, whatever synchronous_commit says (pg_dtx forces
# the flush).  With synchronous_commit = off and a WAL writer that sleeps
# for long, nothing else flushes the commit record: right after COMMIT, the
# WAL flushed must reach the WAL inserted.  A local transaction under the
# same settings shows that the check can tell (its commit is not flushed).

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use DtxCluster;

my $coord = new_coordinator(
	'coord', extra_conf => "wal_writer_delay = '10s'\n"
	  . "autovacuum = off\n"
	  . "dtx.resolver_interval = 0\n");
my $pa = new_participant('pa', accounts => { 1 => 1000 });
my $pb = new_participant('pb', accounts => { 1 => 1000 });
add_server($coord, 'pa', $pa);
add_server($coord, 'pb', $pb);
$coord->safe_psql('postgres', 'CREATE TABLE t (x int)');

# Whether, right after COMMIT of $body under synchronous_commit = off, the
# WAL is flushed up to where it is inserted.
sub flushed_after_commit
{
	my ($body) = @_;
	my $out = $coord->safe_psql(
		'postgres', qq{
		SET synchronous_commit = off;
		BEGIN;
		$body
		COMMIT;
		SELECT pg_catalog.pg_current_wal_flush_lsn() >= pg_catalog.pg_current_wal_insert_lsn();
	});
	return (split /\n/, $out)[-1];    # the body's own output comes first
}

# warm the connections, so that the transaction below is only the transfer
flushed_after_commit(q{SELECT * FROM dtx.query('pa', 'SELECT 1') AS q(x int); SELECT * FROM dtx.query('pb', 'SELECT 1') AS q(x int);});

is( flushed_after_commit(
		q{INSERT INTO t VALUES (1);}),
	'f',
	'a local commit with synchronous_commit = off is not flushed at once (the check can tell)');

is( flushed_after_commit(
		q{SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance - 1 WHERE id = 1');
		  SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1');}),
	't',
	'the local commit of a two-phase commit is flushed whatever synchronous_commit says');

is(balance($pa, 1), 999, 'pa debited');
is(balance($pb, 1), 1001, 'pb credited');
is(prepared_xacts($pa) + prepared_xacts($pb), 0, 'nothing left prepared');

done_testing();
