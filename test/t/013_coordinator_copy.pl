# A copy of a coordinator (pg_basebackup started as a primary) must never
# act on its origin's transactions: it is held at its first start, neither
# committing distributed transactions nor resolving, until an operator
# gives it its own id (dtx.set_coordinator_id) or confirms it replaces the
# origin (dtx.confirm_successor).  A promoted standby is not held (010,
# case 10: it finishes its dead primary's transactions).
#
# The scenario that broke atomicity before: the copy is taken while a
# transaction is between its PREPAREs and its decision; the origin then
# commits, but one participant (pb) misses COMMIT PREPARED.  The copy has no
# decision for it and, with the origin's id, rolled pb's part back 0.2 s
# after it started, while pa's part was committed.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster;

$PostgreSQL::Test::Utils::timeout_default = 60;

my $HOLD = 60;

# The output of $sql on $node, '' on an error (the checks below then fail
# one by one instead of ending the test).
sub out_of
{
	my ($node, $sql) = @_;
	my ($rc, $out) = $node->psql('postgres', $sql);
	return $out // '';
}

my $coord = new_coordinator('coord', allows_streaming => 1);
set_resolver_interval($coord, '1s');

my $pa = new_participant('pa');
my $pb = new_participant('pb');
create_ledger($_) for ($pa, $pb);
add_server($coord, 'pa', $pa);
add_server($coord, 'pb', $pb);
$coord->safe_psql('postgres',
	transfer_sql('warmup', [ 'pa', -1 ], [ 'pb', 1 ]));

is(out_of($coord, 'SELECT dtx.coordinator_hold() IS NULL'),
	't', 'the origin is not held');

# --- the copy is taken while t1 is between its PREPAREs and its decision -----

my $before_pb = gid_set($pb);
my $t1 = start_sql($coord,
	"SET dtx.commit_timeout = '1s';\n"
	  . transfer_sql('t1', [ 'pa', -5, $HOLD ], [ 'pb', 5 ]));
my $gid_b = wait_new_gid($pb, $before_pb);
ok(defined $gid_b, 't1 prepared on pb while its PREPARE on pa is held');

$coord->backup('copy');

# pb misses COMMIT PREPARED (its session is gone), and is frozen until the
# copy runs so that the origin's resolver cannot reach it either
terminate_preparer($pb, $gid_b);
signal_node($pb, 'STOP');
release_stall($pa, 't1');
my ($rc, $out, $err) = finish_sql($t1, 60);
is($rc, 0, 't1 committed on the origin');
like($err, qr/has not confirmed COMMIT PREPARED/,
	't1: pb did not confirm, the client was told');
$coord->stop('immediate');

my $copy = PostgreSQL::Test::Cluster->new('copy');
$copy->init_from_backup($coord, 'copy');
$copy->start;
signal_node($pb, 'CONT');

# the copy's resolver runs every second (the setting came with the copy)
sleep(3);
ok(gid_set($pb)->{$gid_b},
	'the copy left the origin\'s prepared transaction on pb alone');
like(
	out_of($copy, 'SELECT dtx.coordinator_hold()'),
	qr/base backup/,
	'the copy is held, and says why');
ok($copy->log_contains('pg_dtx: this server is held'),
	'the hold is in the copy\'s log');

($rc, $out, $err) = $copy->psql('postgres', 'SELECT * FROM dtx.resolve()');
like($err, qr/cannot resolve distributed transactions while this server is held/,
	'dtx.resolve() is refused while held');

my $pa_before = gid_set($pa);
($rc, $out, $err) = $copy->psql('postgres',
	transfer_sql('c1', [ 'pa', -1 ], [ 'pb', 1 ]));
like($err, qr/cannot commit a distributed transaction while this server is held/,
	'a commit that prepares is refused while held');
is(ledger_rows($pa, 'c1') + ledger_rows($pb, 'c1'), 0,
	'the refused transfer was applied nowhere');
is(scalar(keys %{ gid_set($pa) }), scalar(keys %$pa_before),
	'and left nothing prepared on pa');

# --- the operator says it is a coordinator of its own ------------------------

($rc, $out, $err) = $copy->psql('postgres',
	'SELECT dtx.set_coordinator_id(dtx.coordinator_id())');
like($err, qr/is the id of the coordinator this server was copied from/,
	'the origin\'s id is not a new id');
my $held_id = out_of($copy, 'SELECT dtx.coordinator_id()');
foreach my $bad (0, -5)
{
	($rc, $out, $err) =
	  $copy->psql('postgres', "SELECT dtx.set_coordinator_id($bad)");
	like($err, qr/a coordinator id must be a positive number/,
		"$bad is refused as a coordinator id");
}
is( out_of($copy,
		"SELECT dtx.coordinator_hold() IS NOT NULL AND dtx.coordinator_id() = $held_id"),
	't',
	'the refused ids left the server held, with its id');
out_of($copy, 'SELECT dtx.set_coordinator_id(4242)');
is( out_of($copy,
		'SELECT dtx.coordinator_id() = 4242 AND dtx.coordinator_hold() IS NULL'),
	't',
	'the copy has its own id and is no longer held');

out_of($copy, transfer_sql('c2', [ 'pa', -1 ], [ 'pb', 1 ]));
is(ledger_rows($pa, 'c2') + ledger_rows($pb, 'c2'),
	2, 'the copy commits distributed transactions under its own id');
out_of($copy, 'SELECT * FROM dtx.resolve()');
ok(gid_set($pb)->{$gid_b},
	'its resolver still leaves the origin\'s transaction alone');
($rc, $out, $err) =
  $copy->psql('postgres', 'SELECT dtx.set_coordinator_id(4343)');
like($err, qr/can only be changed while this server is held/,
	'the id cannot be changed again once the server is in use');

# --- the origin comes back and finishes its own transaction ------------------

$copy->stop('fast');
$coord->start;
ok( defined poll_until(
		$pb, 'postgres',
		'SELECT count(*) = 0 FROM pg_prepared_xacts', 't', 30),
	'the origin\'s resolver finished t1 on pb');
is(ledger_rows($pa, 't1') . '/' . ledger_rows($pb, 't1'),
	'1/1', 't1 is applied on both participants');
ok( defined poll_until(
		$coord, 'postgres', 'SELECT count(*) = 0 FROM dtx.decisions', 't', 30),
	'no decision is left on the origin');
is(prepared_xacts($pa), '0', 'nothing left prepared on pa');

done_testing();
