# Race: many distributed transfers commit, fail or roll back concurrently
# while another session runs dtx.resolve() in a tight loop (and the
# background resolver every second).  At the end every transfer is applied
# on the coordinator and both participants or on none of them, every
# transfer acknowledged to its client is there, and the resolver never
# rolled back anything of a transaction that committed.
#
# Then a measurement: one resolver pass over 1,000 in-doubt transactions on
# one participant (committed ones, then undecided ones).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster;

my $WORKERS = 6;      # concurrent clients
my $DURATION = 10;    # seconds of load

my $coord = new_coordinator('coord',
	extra_conf => "dtx.resolver_interval = 1000\nmax_connections = 40\n");
my $pa = new_participant('pa', extra_conf => "max_connections = 40\n");
my $pb = new_participant('pb', extra_conf => "max_connections = 40\n");
create_ledger($_) for ($coord, $pa, $pb);
add_server($coord, 'pa', $pa);
add_server($coord, 'pb', $pb);

# One worker's psql script: $n transfers.  Each writes its tag on the
# coordinator (with its transaction id), on pa and on pb; PREPAREs stall a
# few milliseconds at random, one transfer in 10 fails at PREPARE on one
# participant, one in 10 is rolled back by its client.  After each COMMIT
# the script prints "ok <tag>" or "fail <tag>".
sub worker_script
{
	my ($w, $n) = @_;
	my $sql = "\\set VERBOSITY terse\n";
	for my $i (1 .. $n)
	{
		my $tag = "w$w-$i";
		my $r = int(rand(20));
		my $stall_a = rand() < 0.5 ? sprintf('%.3f', rand(0.02)) : 0;
		my $stall_b = rand() < 0.5 ? sprintf('%.3f', rand(0.02)) : 0;
		$stall_a = '-0.001' if $r == 0;    # PREPARE fails on pa
		$stall_b = '-0.005' if $r == 1;    # PREPARE fails on pb
		my $end = ($r == 2 || $r == 3) ? 'ROLLBACK' : 'COMMIT';
		my @steps = (
			'BEGIN',
			"INSERT INTO ledger (tag, amount) VALUES ('$tag', pg_current_xact_id()::text::bigint)",
			"SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount, stall) VALUES (\$1, \$2, \$3)', '$tag'::text, -1, ${stall_a}::float8)",
			"SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount, stall) VALUES (\$1, \$2, \$3)', '$tag'::text, 1, ${stall_b}::float8)",
			$end);
		$sql .= "\\set failed 0\n";
		for my $step (@steps)
		{
			$sql .= "$step;\n\\if :ERROR\n\\set failed 1\n\\endif\n";
		}
		$sql .=
		  $end eq 'COMMIT'
		  ? "\\if :failed\n\\echo fail $tag\n\\else\n\\echo ok $tag\n\\endif\n"
		  : "\\echo rollback $tag\n";
	}
	return $sql;
}

# --- the race -----------------------------------------------------------------

my $log_offset = -s $coord->logfile;
my @workers =
  map { start_sql($coord, worker_script($_, 5000), on_error_stop => 0) }
  1 .. $WORKERS;

my $loop = $coord->background_psql('postgres');
my @resolve_rows;
my $passes = 0;
my $start = time();
while (time() - $start < $DURATION)
{
	my $out = $loop->query_safe(
		q{SELECT action, coalesce(global_id, ''), outcome FROM dtx.resolve()});
	push @resolve_rows, grep { $_ ne '' } split /\n/, $out;
	$passes++;
}

# stop the clients wherever they are (a transfer may be cut off midway)
kill('KILL', map { $_->{pid} } @workers);
my (%acked, %failed_ack, $rolled_back_by_client);
for my $w (@workers)
{
	my (undef, $out) = finish_sql($w);
	for my $line (split /\n/, $out)
	{
		$acked{$1} = 1 if $line =~ /^ok (\S+)$/;
		$failed_ack{$1} = 1 if $line =~ /^fail (\S+)$/;
		$rolled_back_by_client++ if $line =~ /^rollback /;
	}
}

# let the backends of the killed clients finish, then one last pass
ok( defined poll_until(
		$coord, 'postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND state <> 'idle'},
		'0', 30),
	'the clients are gone');
for (1 .. 3)
{
	my $out = $loop->query_safe(
		q{SELECT action, coalesce(global_id, ''), outcome FROM dtx.resolve()});
	push @resolve_rows, grep { $_ ne '' } split /\n/, $out;
}
$loop->quit;

diag(sprintf(
		'race: %d workers for %ds: %d transfers acknowledged, %d failed at commit, %d rolled back by their client; %d dtx.resolve() passes',
		$WORKERS, $DURATION, scalar(keys %acked), scalar(keys %failed_ack),
		$rolled_back_by_client // 0, $passes));
cmp_ok(scalar(keys %acked), '>', 50, 'race: many transfers committed');
cmp_ok($passes, '>', 20, 'race: many resolver passes ran meanwhile');

# every transfer: on all three or on none
my %local = map { split /\|/ }
  split /\n/,
  $coord->safe_psql('postgres',
	q{SELECT tag, amount FROM ledger WHERE tag LIKE 'w%'});
my %on_a = map { $_ => 1 } split /\n/,
  $pa->safe_psql('postgres', q{SELECT tag FROM ledger WHERE tag LIKE 'w%'});
my %on_b = map { $_ => 1 } split /\n/,
  $pb->safe_psql('postgres', q{SELECT tag FROM ledger WHERE tag LIKE 'w%'});

my @missing = grep { !$local{$_} || !$on_a{$_} || !$on_b{$_} } sort keys %acked;
is(scalar(@missing), 0,
	'race: every acknowledged transfer is on the coordinator, pa and pb')
  or diag("missing: @missing[0 .. ($#missing > 9 ? 9 : $#missing)]");

my %all = (%local, %on_a, %on_b);
my @half = grep {
	my $n = ($local{$_} ? 1 : 0) + ($on_a{$_} ? 1 : 0) + ($on_b{$_} ? 1 : 0);
	$n != 0 && $n != 3
} sort keys %all;
is(scalar(@half), 0, 'race: no transfer is half-applied')
  or diag(
	'half-applied: '
	  . join(', ',
		map { "$_ (coord " . ($local{$_} ? 1 : 0) . ', pa ' . ($on_a{$_} ? 1 : 0) . ', pb ' . ($on_b{$_} ? 1 : 0) . ')' }
		  @half[ 0 .. ($#half > 9 ? 9 : $#half) ]));

my @failed_but_there = grep { $local{$_} } sort keys %failed_ack;
is(scalar(@failed_but_there), 0,
	'race: no transfer whose COMMIT failed was applied');

# the resolver's rollbacks: from dtx.resolve() and from the log (background)
my %committed_xid = map { $local{$_} => $_ } keys %local;
my @rollback_gids;
for my $row (@resolve_rows)
{
	my ($action, $gid) = split /\|/, $row;
	push @rollback_gids, $gid if $action eq 'rollback';
}
my $log = slurp_file($coord->logfile, $log_offset);
push @rollback_gids, $1
  while $log =~ /pg_dtx resolver: rollback prepared transaction (\S+) on/g;
my @wrong = grep {
	my ($xid) = /^dtx_\d+_\d+_(\d+)_/;
	defined $xid && $committed_xid{$xid}
} @rollback_gids;
diag(sprintf('race: the resolver rolled back %d prepared transactions, committed %d',
		scalar(@rollback_gids),
		scalar(() = $log =~ /pg_dtx resolver: commit prepared transaction/g)));
is(scalar(@wrong), 0,
	'race: the resolver never rolled back a part of a committed transaction')
  or diag("wrong rollbacks: @wrong");

my $warnings = () = $log =~ /has not confirmed COMMIT PREPARED/g;
diag("race: $warnings COMMITs warned that a participant did not confirm");

ok( defined poll_until(
		$_, 'postgres', 'SELECT count(*) FROM pg_prepared_xacts', '0', 20),
	'race: nothing left prepared on ' . $_->name)
  for ($pa, $pb);
$coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.resolve()');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.decisions'),
	'0', 'race: no decision left');

# --- 1,000 in-doubt transactions on one participant -------------------------------

# pd allows 1,100 prepared transactions, and flushes its WAL for real
# (fsync on, unlike the other test servers).  1,000 committed local transactions
# of the coordinator get a decision naming pd, and pd prepares one
# transaction under each global id: what a coordinator leaves behind after
# losing pd for a while.  One dtx.resolve() pass must finish them all.
my $N = 1000;
my $pd = new_participant('pd',
	extra_conf =>
	  "max_prepared_transactions = 1100\nmax_locks_per_transaction = 128\nfsync = on\n");
create_ledger($pd);
add_server($coord, 'pd', $pd);
$coord->safe_psql('postgres', q{ALTER SYSTEM SET dtx.resolver_interval = 0; SELECT pg_reload_conf();});

# $N committed coordinator transaction ids (one transaction each)
$coord->safe_psql(
	'postgres', q{
	CREATE TABLE bulk_xids (xid xid8, label text);
	CREATE PROCEDURE bulk_xids_make(n int, l text) LANGUAGE plpgsql AS $$
	BEGIN
		FOR i IN 1..n LOOP
			INSERT INTO bulk_xids VALUES (pg_current_xact_id(), l);
			COMMIT;
		END LOOP;
	END $$;
});

# $N transactions of the coordinator prepared on pd under their global ids
# (with their decisions when $with_decisions)
sub in_doubt_on_pd
{
	my ($label, $with_decisions) = @_;
	$coord->safe_psql('postgres', "CALL bulk_xids_make($N, '$label')");
	if ($with_decisions)
	{
		$coord->safe_psql(
			'postgres', qq{
			INSERT INTO dtx.decisions (xid, coordinator_id, servers, userids, created_at)
			SELECT xid, dtx.coordinator_id(),
			       ARRAY[(SELECT oid FROM pg_foreign_server WHERE srvname = 'pd')],
			       ARRAY[(SELECT oid FROM pg_roles WHERE rolname = current_user)],
			       now()
			  FROM bulk_xids WHERE label = '$label'});
	}
	my $gids = $coord->safe_psql(
		'postgres', qq{
		SELECT dtx.global_id(dtx.coordinator_id(), xid,
		                     (SELECT oid FROM pg_foreign_server WHERE srvname = 'pd'),
		                     (SELECT oid FROM pg_roles WHERE rolname = current_user), 1)
		  FROM bulk_xids WHERE label = '$label'});
	my $sql = '';
	my $i = 0;
	for my $gid (split /\n/, $gids)
	{
		$i++;
		$sql .= "BEGIN; INSERT INTO ledger VALUES ('$label-$i', 1); PREPARE TRANSACTION '$gid';\n";
	}
	$pd->safe_psql('postgres', $sql);
	is(prepared_xacts($pd), $N, "$label: $N transactions in doubt on pd");
	return;
}

in_doubt_on_pd('commit', 1);
my $t0 = time();
my $out = $coord->safe_psql('postgres',
	q{SELECT action || ' ' || outcome, count(*) FROM dtx.resolve() GROUP BY 1 ORDER BY 1});
my $took = time() - $t0;
diag(sprintf('1000 in doubt, decided: one dtx.resolve() pass took %.2f s (%s)',
		$took, join(', ', split /\n/, $out)));
is(prepared_xacts($pd), 0, 'commit: one pass finished all of them');
is($pd->safe_psql('postgres', "SELECT count(*) FROM ledger WHERE tag LIKE 'commit-%'"),
	$N, 'commit: all committed on pd');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.decisions'),
	'0', 'commit: every decision forgotten');

# the same without decisions, by the background resolver this time
in_doubt_on_pd('rollback', 0);
$t0 = time();
$coord->safe_psql('postgres', q{ALTER SYSTEM SET dtx.resolver_interval = '1s'; SELECT pg_reload_conf();});
ok( defined poll_until(
		$pd, 'postgres', 'SELECT count(*) FROM pg_prepared_xacts', '0', 60),
	'rollback: the background resolver finished all of them');
diag(sprintf('1000 in doubt, undecided: the background resolver rolled them back within %.2f s',
		time() - $t0));
is($pd->safe_psql('postgres', "SELECT count(*) FROM ledger WHERE tag LIKE 'rollback-%'"),
	'0', 'rollback: none applied on pd');

done_testing();
