# With libpq 17+, a remote statement interrupted by statement_timeout (or a
# cancel) is cancelled on the participant with a non-blocking cancel
# request, and the connection is kept: the participant stops working on it
# at once, and the next statement of the session uses the same remote
# backend. Before (and with an older libpq) the connection was closed and
# the remote backend went on until its statement ended. Skipped before 17.
# (A statement being prepared for the statement cache, on its second run,
# still closes the connection: the distinct texts keep that out of here.)

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DtxCluster;

my $coord = new_coordinator('coord',
	extra_conf => "dtx.resolver_interval = 0\n");
if ($coord->safe_psql('postgres', 'SHOW server_version_num') < 170000)
{
	plan skip_all => 'the non-blocking cancel needs libpq 17';
}
my $pa = new_participant('pa', accounts => { 1 => 1000 });
add_server($coord, 'pa', $pa);

my $remote_pid = q{SELECT 'pid=' || p FROM dtx.query('pa', 'SELECT pg_backend_pid()') AS t(p int)};

# one session: the remote pid, a statement cut by statement_timeout (in a
# transaction, and alone), the remote pid again
my ($ret, $out, $err) = $coord->psql(
	'postgres', qq{
	$remote_pid;
	SET statement_timeout = '500ms';
	SELECT dtx.exec('pa', 'SELECT pg_sleep(60)');
	RESET statement_timeout;
	$remote_pid;
	BEGIN;
	SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance - 1 WHERE id = 1');
	SET LOCAL statement_timeout = '500ms';
	SELECT dtx.exec('pa', 'SELECT pg_sleep(61)');
	ROLLBACK;
	$remote_pid;
}, on_error_stop => 0);
like($err, qr/canceling statement due to statement timeout/,
	'the statements were cut by statement_timeout');
my @pids = map { /^pid=(\d+)$/ ? $1 : () } split /\n/, $out;
is(scalar(@pids), 3, 'three remote pids') or diag("out: $out\nerr: $err");
is($pids[1], $pids[0], 'the connection survived the cancelled statement');
is($pids[2], $pids[0],
	'the connection survived the cancelled statement in a transaction');

# nothing goes on running on the participant
ok( defined poll_until(
		$pa, 'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(6_)%' AND state = 'active' AND pid <> pg_backend_pid()",
		'0', 3),
	'the remote statements were cancelled on the participant');
is($pa->safe_psql('postgres', 'SELECT balance FROM accounts WHERE id = 1'),
	'1000', 'the transaction was rolled back on the participant');
is(prepared_xacts($pa), '0', 'nothing prepared on pa');

done_testing();
