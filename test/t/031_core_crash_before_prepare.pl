# A participant crashed (SIGKILL to every process) before PREPARE: COMMIT
# fails naming it, nothing is applied anywhere, and the same session
# reconnects to the restarted server.  Participants pa and pb.
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
	my $s = session();
	my ($out, $err) = sq(
		$s, q{
		BEGIN;
		SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's2', -5);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's2', 5);
		INSERT INTO local_log VALUES ('s2');
	});
	is($err, '', '2: both statements ran');

	crash($pb);
	($out, $err) = sq($s, 'COMMIT;');
	like($err, qr/ERROR:.*server "pb"/,
		'2 crash before PREPARE: COMMIT fails, naming the crashed server');
	# pg_dtx cannot tell whether the PREPARE it sent reached pb before the
	# connection broke: a WARNING about pb's possibly prepared transaction is
	# fair; nothing may be said about pa, nor that anything committed.
	unlike($err, qr/WARNING:[^\n]*(committed|server "pa")/,
		'2 crash before PREPARE: no warning about a commit or about pa');
	is(ledger_count($pa, 's2'), 0, '2 crash before PREPARE: pa unchanged');
	is(prepared_xacts($pa), 0, '2 crash before PREPARE: nothing prepared on pa');
	is(local_count('s2'), 0, '2 crash before PREPARE: no local row');

	$pb->start;
	is(ledger_count($pb, 's2'), 0, '2 crash before PREPARE: pb unchanged after restart');
	is(decisions(), 0, '2 crash before PREPARE: no decision');
	all_clean('2 crash before PREPARE');
	unlike(resolve(), qr/\|commit\|/, '2 crash before PREPARE: the resolver commits nothing');

	# the same session reconnects to the restarted server
	($out, $err) = sq(
		$s, q{
		BEGIN;
		SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's2 again', -5);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's2 again', 5);
		COMMIT;
	});
	is($err, '', '2 crash before PREPARE: the next transaction of the session commits');
	is(ledger_count($pa, 's2 again') + ledger_count($pb, 's2 again'),
		2, '2 crash before PREPARE: ... on both servers');
	$s->quit;
}

# 3. the first participant (pa) crashed before PREPARE: COMMIT fails naming
# it, and pb's PREPARE, sent at the same time, is rolled back at once (its
# answer is read first): nothing is left prepared for the resolver, and
# nothing is said about pb
{
	my $s = session();
	my ($out, $err) = sq(
		$s, q{
		BEGIN;
		SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's3', -5);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's3', 5);
	});
	is($err, '', '3: both statements ran');

	crash($pa);
	($out, $err) = sq($s, 'COMMIT;');
	like($err, qr/ERROR:.*server "pa"/,
		'3 first participant crashed: COMMIT fails, naming it');
	unlike($err, qr/WARNING:[^\n]*server "pb"/,
		'3 first participant crashed: no warning about pb');
	is(prepared_xacts($pb), 0, '3 first participant crashed: nothing left prepared on pb');
	is(ledger_count($pb, 's3'), 0, '3 first participant crashed: pb unchanged');
	$pa->start;
	is(ledger_count($pa, 's3'), 0, '3 first participant crashed: pa unchanged after restart');
	all_clean('3 first participant crashed');
	unlike(resolve(), qr/\|commit\|/, '3 first participant crashed: the resolver commits nothing');
	$s->quit;
}

diag(sprintf('031_core_crash_before_prepare: %.1fs', time - $started));
done_testing();
