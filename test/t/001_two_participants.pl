# A distributed transaction over two participants commits everywhere or
# nowhere (basic TAP coverage; also exercises test/lib/DtxCluster.pm).

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use DtxCluster;

my $coord = new_coordinator('coord');
my $bank_a = new_participant('bank_a', accounts => { 1 => 1000, 2 => 500 });
my $bank_b = new_participant('bank_b', accounts => { 1 => 300 });
add_server($coord, 'bank_a', $bank_a);
add_server($coord, 'bank_b', $bank_b);

is( $coord->safe_psql(
		'postgres',
		q{SELECT array_to_string(srvoptions, ',') FROM pg_foreign_server WHERE srvname = 'bank_a'}
	),
	'dbname=postgres,host=' . $bank_a->host . ',port=' . $bank_a->port,
	'add_server: server options');

# Commit: both participants change.
$coord->safe_psql(
	'postgres', q{
	BEGIN;
	SELECT dtx.exec('bank_a', 'UPDATE accounts SET balance = balance - $1 WHERE id = $2', 100, 1);
	SELECT dtx.exec('bank_b', 'UPDATE accounts SET balance = balance + $1 WHERE id = $2', 100, 1);
	COMMIT;
});
is(balance($bank_a, 1), 900, 'commit: bank_a debited');
is(balance($bank_b, 1), 400, 'commit: bank_b credited');
is(prepared_xacts($bank_a), 0, 'commit: nothing left prepared on bank_a');
is(prepared_xacts($bank_b), 0, 'commit: nothing left prepared on bank_b');

# Rollback: neither changes.
$coord->safe_psql(
	'postgres', q{
	BEGIN;
	SELECT dtx.exec('bank_a', 'UPDATE accounts SET balance = 0 WHERE id = 1');
	SELECT dtx.exec('bank_b', 'UPDATE accounts SET balance = 0 WHERE id = 1');
	ROLLBACK;
});
is(balance($bank_a, 1), 900, 'rollback: bank_a unchanged');
is(balance($bank_b, 1), 400, 'rollback: bank_b unchanged');

# An error on one participant aborts the work done on the other.
my ($ret, $stdout, $stderr) = $coord->psql(
	'postgres', q{
	BEGIN;
	SELECT dtx.exec('bank_a', 'UPDATE accounts SET balance = balance + 1 WHERE id = 2');
	SELECT dtx.exec('bank_b', 'INSERT INTO accounts VALUES (1, 0)');
	COMMIT;
});
isnt($ret, 0, 'error on bank_b: the transaction fails');
like($stderr, qr/duplicate key/, 'error on bank_b: the remote error is reported');
is(balance($bank_a, 2), 500, 'error on bank_b: bank_a unchanged');
is(prepared_xacts($bank_a), 0, 'error on bank_b: nothing prepared on bank_a');
is(prepared_xacts($bank_b), 0, 'error on bank_b: nothing prepared on bank_b');

done_testing();
