# Read-only participants, one-phase and two-phase commit, read back from
# the participants' logs (log_statement = all): readers get COMMIT, a single
# writer commits in one phase, two writers are prepared under the documented
# global ids; and a one-phase COMMIT whose answer is lost (08007).
# Participants pa and pb.
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

my $PREPARE = qr/PREPARE TRANSACTION 'dtx_/;
my $COMMIT_PREPARED = qr/COMMIT PREPARED 'dtx_/;
# a plain COMMIT, possibly after queued commands ("RELEASE ...; COMMIT")
my $COMMIT = qr/: (?:[^\n]*; )?COMMIT$/m;


{
	my ($rc, $out, $err, $posa, $posb, $la, $lb, $d);

	# only reads: COMMIT on both, no PREPARE, no decision
	$d = decisions();
	($posa, $posb) = (log_pos($pa), log_pos($pb));
	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT * FROM dtx.query('pa', 'SELECT balance FROM accounts WHERE id = 1') AS t(b bigint);
		SELECT * FROM dtx.query('pb', 'SELECT balance FROM accounts WHERE id = 1') AS t(b bigint);
		COMMIT;
	});
	is($rc, 0, '5 readers: COMMIT succeeds');
	($la, $lb) = (dtx_log_since($pa, $posa), dtx_log_since($pb, $posb));
	unlike($la . $lb, $PREPARE, '5 readers: no PREPARE TRANSACTION');
	like($la, $COMMIT, '5 readers: pa gets COMMIT');
	like($lb, $COMMIT, '5 readers: pb gets COMMIT');
	is(decisions(), $d, '5 readers: no decision');

	# the read-only probe travels in the query's pipeline: pa's session has run
	# it before COMMIT, which then needs no round trip for it
	{
		my $s = session();
		sq($s, "BEGIN;\nSELECT * FROM dtx.query('pa', 'SELECT balance FROM accounts WHERE id = 1') AS t(b bigint);");
		is( $pa->safe_psql(
				'postgres',
				'SELECT query FROM pg_stat_activity WHERE application_name = '
				  . quote_literal(appname($s->{pid}))),
			'SELECT pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL',
			'5 probe: the read-only probe ran right after the query, before COMMIT');
		my ($out, $err) = sq($s, 'COMMIT;');
		is($err, '', '5 probe: COMMIT succeeds');
		$s->quit;
	}

	# one writer (pb), one reader (pa), no local write: one phase
	($posa, $posb) = (log_pos($pa), log_pos($pb));
	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT * FROM dtx.query('pa', 'SELECT balance FROM accounts WHERE id = 1') AS t(b bigint);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's5 one writer', 1);
		SELECT 'xid:' || coalesce(pg_current_xact_id_if_assigned()::text, 'none');
		COMMIT;
	});
	is($rc, 0, '5 one writer: COMMIT succeeds');
	like($out, qr/xid:none/, '5 one writer: the local transaction wrote nothing');
	($la, $lb) = (dtx_log_since($pa, $posa), dtx_log_since($pb, $posb));
	unlike($la, $PREPARE, '5 one writer: no PREPARE on the reader pa');
	like($la, $COMMIT, '5 one writer: the reader pa gets COMMIT');
	unlike($lb, $PREPARE, '5 one writer: no PREPARE on the writer pb');
	unlike($lb, $COMMIT_PREPARED, '5 one writer: no COMMIT PREPARED on pb');
	like($lb, $COMMIT, '5 one writer: pb commits in one phase');
	is(ledger_count($pb, 's5 one writer'), 1, '5 one writer: pb committed');
	is(decisions(), $d, '5 one writer: no decision');

	# two writers: PREPARE TRANSACTION on both, under the documented global ids
	($posa, $posb) = (log_pos($pa), log_pos($pb));
	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's5 two writers', -1);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's5 two writers', 1);
		SELECT 'xid:' || pg_current_xact_id();
		COMMIT;
	});
	is($rc, 0, '5 two writers: COMMIT succeeds');
	my ($xid) = $out =~ /xid:(\d+)/;
	($la, $lb) = (dtx_log_since($pa, $posa), dtx_log_since($pb, $posb));
	my ($gida, $gidb) = (gid($xid, 'pa', 1), gid($xid, 'pb', 2));
	like($la, qr/PREPARE TRANSACTION '\Q$gida\E\d+'/, "5 two writers: pa gets PREPARE TRANSACTION '$gida<nonce>'");
	like($lb, qr/PREPARE TRANSACTION '\Q$gidb\E\d+'/, "5 two writers: pb gets PREPARE TRANSACTION '$gidb<nonce>'");
	like($la, qr/COMMIT PREPARED '\Q$gida\E\d+'/, '5 two writers: pa gets COMMIT PREPARED');
	like($lb, qr/COMMIT PREPARED '\Q$gidb\E\d+'/, '5 two writers: pb gets COMMIT PREPARED');
	{
		my ($na) = $la =~ /PREPARE TRANSACTION '\Q$gida\E(\d+)'/;
		my ($nb) = $lb =~ /PREPARE TRANSACTION '\Q$gidb\E(\d+)'/;
		ok(defined $na && defined $nb && $na eq $nb && $na > 0,
			'5 two writers: both global ids carry the same non-zero nonce');
	}
	unlike($la . $lb, $COMMIT, '5 two writers: no plain COMMIT');
	is(decisions(), $d + 1, '5 two writers: one decision recorded');
	is(ledger_count($pa, 's5 two writers') + ledger_count($pb, 's5 two writers'),
		2, '5 two writers: both committed');

	# one writer plus a local write: two phases, the reader still not prepared
	$d = decisions();
	($posa, $posb) = (log_pos($pa), log_pos($pb));
	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT * FROM dtx.query('pa', 'SELECT balance FROM accounts WHERE id = 1') AS t(b bigint);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's5 local write', 1);
		INSERT INTO local_log VALUES ('s5 local write');
		COMMIT;
	});
	is($rc, 0, '5 local write: COMMIT succeeds');
	($la, $lb) = (dtx_log_since($pa, $posa), dtx_log_since($pb, $posb));
	unlike($la, $PREPARE, '5 local write: no PREPARE on the reader pa');
	like($lb, $PREPARE, '5 local write: pb is prepared');
	like($lb, $COMMIT_PREPARED, '5 local write: pb gets COMMIT PREPARED');
	is(decisions(), $d + 1, '5 local write: one decision recorded');
	is(ledger_count($pb, 's5 local write') . local_count('s5 local write'),
		'11', '5 local write: pb and the local row committed');

	# a SELECT that writes (through a function) makes pa a writer
	$d = decisions();
	($posa, $posb) = (log_pos($pa), log_pos($pb));
	($rc, $out, $err) = coord_sql(q{
		BEGIN;
		SELECT * FROM dtx.query('pa', 'SELECT ledger_note($1)', 's5 select writes') AS t(tag text);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's5 select writes', 1);
		COMMIT;
	});
	is($rc, 0, '5 select that writes: COMMIT succeeds');
	($la, $lb) = (dtx_log_since($pa, $posa), dtx_log_since($pb, $posb));
	like($la, $PREPARE, '5 select that writes: pa is prepared');
	like($lb, $PREPARE, '5 select that writes: pb is prepared');
	is(decisions(), $d + 1, '5 select that writes: one decision recorded');
	is(ledger_count($pa, 's5 select writes') + ledger_count($pb, 's5 select writes'),
		2, '5 select that writes: both committed');

	resolve();
	is(decisions(), 0, '5: no decision left after a resolver pass');
	all_clean('5 paths');

	# one-phase COMMIT whose answer is lost: 08007.  pb's backend is frozen
	# (SIGSTOP) before COMMIT reaches it, then killed.
	my $s = session();
	my ($o, $e) = sq($s, q{
		BEGIN;
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount) VALUES ($1, $2)', 's5 lost', 1);
	});
	my $remote = $pb->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE application_name = '"
		  . appname($s->{pid}) . "'");
	like($remote, qr/^\d+$/, '5 lost answer: one remote backend on pb');
	kill('STOP', $remote);
	sq_send($s, "\\set VERBOSITY verbose\nCOMMIT;");
	ok( wait_for(
			$coord,
			"SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE pid = $s->{pid} AND query LIKE 'COMMIT%'"
		),
		'5 lost answer: the coordinator waits for pb\'s COMMIT');
	kill('KILL', $remote);
	($o, $e) = sq_wait($s);
	like($e, qr/ERROR:\s+08007: lost the connection to server "pb" while committing/,
		'5 lost answer: COMMIT fails with SQLSTATE 08007');
	like($e, qr/may or may not have committed/, '5 lost answer: the detail says the outcome is unknown');
	$s->quit;
	ok(wait_for($pb, 'SELECT NOT pg_is_in_recovery()'), '5 lost answer: pb back after its crash restart');
	is(ledger_count($pb, 's5 lost'), 0, '5 lost answer: the COMMIT never ran on pb');
	all_clean('5 lost answer');
}

diag(sprintf('034_core_commit_paths: %.1fs', time - $started));
done_testing();
