# A participant restarted between two transactions: the cached connection
# is found dead before its remote transaction starts and is reopened
# transparently; a restart in the middle of a transaction still fails that
# transaction.  A wrong password is reported as 08001 with libpq's message
# about the password.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use DtxCluster;

my $coord = new_coordinator('coord',
	extra_conf => "dtx.resolver_interval = 0\n");
my $p1 = new_participant('p1', accounts => { 1 => 1000 });
my $p2 = new_participant('p2', accounts => { 1 => 1000 });
add_server($coord, 'p1', $p1);
add_server($coord, 'p2', $p2);

my $s = $coord->background_psql('postgres', on_error_stop => 0);
my $upd = q{SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1')};
my ($out, $err) = sq($s, $upd);
is($err, '', 'the connection to p1 is open');
my $remote_pid = $s->query_safe(q{SELECT remote_pid FROM dtx.connections() WHERE server = 'p1'});

# 1. restarted between transactions (fast, then immediate): reopened
$p1->restart;
($out, $err) = sq($s, $upd);
is($err, '', 'after a restart (fast) the next dtx.exec works');
is(balance($p1, 1), 1002, 'and its update is there');
isnt($s->query_safe(q{SELECT remote_pid FROM dtx.connections() WHERE server = 'p1'}),
	$remote_pid, 'on a new remote session');

($out, $err) = sq($s, q{SELECT * FROM dtx.query('p1', 'SELECT 1') AS t(a int)});
is($err, '', 'the new connection to p1 is in use');
$p1->stop('immediate');
$p1->start;
($out, $err) = sq($s, q{
	BEGIN;
	SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance - 1 WHERE id = 1');
	SELECT * FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 1') AS t(b bigint);
	SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1');
	COMMIT;
});
is($err, '', 'after a restart (immediate) a distributed transaction works');
is(balance($p1, 1), 1003, 'p1 committed');
is(balance($p2, 1), 999, 'p2 committed');

# 2. restarted in the middle of a transaction: that transaction fails
$s->query_safe('BEGIN');
$s->query_safe(q{SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance - 1 WHERE id = 1')});
$s->query_safe($upd);
$p1->restart;
($out, $err) = sq($s, "\\set VERBOSITY verbose\n" . $upd);
like($err, qr/ERROR:  08006: lost the connection to server "p1"/,
	'a restart inside the transaction fails it (08006)');
sq($s, 'COMMIT');
is(balance($p2, 1), 999, 'the transaction rolled back on the other participant');
($out, $err) = sq($s, $upd);
is($err, '', 'the next transaction works again');
is(balance($p1, 1), 1004, 'only the committed updates are there');
is(prepared_xacts($p1) + prepared_xacts($p2), 0, 'nothing left prepared');
$s->quit;

# 3. a wrong password in the user mapping
my $p3 = new_participant('p3');
$p3->safe_psql('postgres',
	q{SET password_encryption = 'scram-sha-256'; CREATE ROLE alice LOGIN PASSWORD 'right'});
my $hba = slurp_file($p3->data_dir . '/pg_hba.conf');
open(my $fh, '>', $p3->data_dir . '/pg_hba.conf') or die;
print $fh "local all alice scram-sha-256\n$hba";
close $fh;
$p3->reload;
add_server($coord, 'p3', $p3, user => 'alice',
	mapping_options => { password => 'wrong' });
my ($ret, $o, $e) = $coord->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT dtx.exec('p3', 'SELECT 1')");
like($e, qr/ERROR:  08001: could not connect to server "p3"/, 'wrong password: 08001');
like($e, qr/DETAIL:  .*password authentication failed for user "alice"/,
	'wrong password: the DETAIL says it was the password');
$coord->safe_psql('postgres',
	q{ALTER USER MAPPING FOR CURRENT_USER SERVER p3 OPTIONS (SET password 'right')});
($ret, $o, $e) = $coord->psql('postgres', q{SELECT * FROM dtx.query('p3', 'SELECT current_user::text') AS t(u text)});
is($o, 'alice', 'the right password connects');

done_testing();
