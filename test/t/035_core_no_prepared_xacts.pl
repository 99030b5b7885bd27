# A participant pc with max_prepared_transactions = 0: refused (with a hint)
# when it would have to prepare, one-phase commit when it is the only
# writer.  Participants pa and pc.
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

my %n = core_cluster(qw(pa pc));
my ($coord, $pa, $pc) = @n{qw(coord pa pc)};

my $PREPARE = qr/PREPARE TRANSACTION 'dtx_/;
my $COMMIT_PREPARED = qr/COMMIT PREPARED 'dtx_/;
# a plain COMMIT, possibly after queued commands ("RELEASE ...; COMMIT")
my $COMMIT = qr/: (?:[^\n]*; )?COMMIT$/m;

# No resolver pass has run: the transactions below are the first uses of pa
# and pc.  Recording a server's identity must not turn a transaction into a
# two-phase one (it is recorded with the decision of the first two-phase
# commit, or by a resolver pass).

{
	my $posa = log_pos($pa);
	my $a1 = balance($pa, 1);
	my ($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1');
		SELECT dtx.exec('pc', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1');
		COMMIT;
	});
	isnt($rc, 0, '6 two writers: COMMIT fails');
	like($err, qr/ERROR:\s+server "pc" does not allow prepared transactions/,
		'6 two writers: the error names pc');
	like($err, qr/HINT:\s+Set max_prepared_transactions on server "pc"/,
		'6 two writers: with a hint');
	unlike(dtx_log_since($pa, $posa), $PREPARE, '6 two writers: nothing was prepared on pa');
	is(balance($pc, 1), 50, '6 two writers: pc unchanged');
	is(balance($pa, 1), $a1, '6 two writers: pa unchanged');

	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT dtx.exec('pc', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1');
		INSERT INTO local_log VALUES ('s6 local');
		COMMIT;
	});
	like($err, qr/server "pc" does not allow prepared transactions/,
		'6 pc and a local write: COMMIT fails');
	is(balance($pc, 1) . local_count('s6 local'), '500', '6 pc and a local write: nothing changed');

	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT * FROM dtx.query('pa', 'SELECT balance FROM accounts WHERE id = 1') AS t(b bigint);
		SELECT dtx.exec('pc', 'UPDATE accounts SET balance = balance + 5 WHERE id = 1');
		COMMIT;
	});
	is($rc, 0, '6 pc the only writer: COMMIT succeeds (one phase)');
	is($err, '', '6 pc the only writer: no warning');
	is(balance($pc, 1), 55, '6 pc the only writer: pc committed');
	is(balance($pa, 1), $a1, '6: pa unchanged');
	is(decisions(), 0, '6: no decision');
	all_clean('6 no prepared transactions');
}

diag(sprintf('035_core_no_prepared_xacts: %.1fs', time - $started));
done_testing();
