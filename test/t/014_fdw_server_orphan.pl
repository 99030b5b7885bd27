# A server of postgres_fdw used by pg_dtx for the first time in a
# transaction that dies after its PREPARE there: the record of its first use
# (dtx.server_identity) dies with that transaction, and no decision names
# it.  The resolver must still list it and roll the orphan back; before, it
# looked only at servers of the wrapper dtx and at servers recorded or named
# in a decision, and the prepared transaction held its locks for good.
#
# postgres_fdw servers that pg_dtx never used are listed too, quietly: one
# that cannot be reached is no failure of the pass (no action row, no
# backoff), it is simply looked at again next time.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster;

$PostgreSQL::Test::Utils::timeout_default = 60;

my $HOLD = 60;

my $coord = new_coordinator('coord', extra_conf => "restart_after_crash = on\n");
$coord->safe_psql('postgres', 'CREATE EXTENSION postgres_fdw');
set_resolver_interval($coord, '1s');

my $pa = new_participant('pa');
my $pf = new_participant('pf');
create_ledger($_) for ($pa, $pf);
add_server($coord, 'pa', $pa);
my $user = scalar(getpwuid($<));
$coord->safe_psql(
	'postgres', sprintf(
		q{CREATE SERVER pf FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host %s, port '%d', dbname 'postgres');
		  CREATE USER MAPPING FOR CURRENT_USER SERVER pf OPTIONS (user %s);
		  CREATE SERVER unused_fdw FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '1', dbname 'x');
		  CREATE USER MAPPING FOR CURRENT_USER SERVER unused_fdw OPTIONS (user 'nobody');},
		quote_literal($pf->host), $pf->port, quote_literal($user)));
$coord->safe_psql('postgres', transfer_sql('warmup', [ 'pa', 1 ]));

is($coord->safe_psql('postgres',
		"SELECT count(*) FROM dtx.server_identity i JOIN pg_foreign_server s ON s.oid = i.server_id WHERE s.srvname = 'pf'"),
	'0', 'pf has not been used by pg_dtx yet');

# pf's first use: prepared at once, while pa's PREPARE is held
my $before = gid_set($pf);
my $h = start_sql($coord, transfer_sql('o1', [ 'pa', -1, $HOLD ], [ 'pf', 1 ]));
my $gid = wait_new_gid($pf, $before);
ok(defined $gid, 'o1 prepared on pf');

# the coordinator's backend dies (the whole coordinator restarts)
my $pid = $coord->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE query LIKE 'COMMIT%' AND pid <> pg_backend_pid()");
ok($pid =~ /^\d+$/, 'found the committing backend');
kill('KILL', $pid);
my ($rc) = finish_sql($h, 30);
isnt($rc, 0, 'the client saw its COMMIT fail');
release_stall($pa, 'o1');
ok( defined poll_until($coord, 'postgres', 'SELECT 1', '1', 60),
	'the coordinator is back');

ok( defined poll_until(
		$pf, 'postgres', 'SELECT count(*) FROM pg_prepared_xacts', '0', 20),
	'the resolver rolled back the orphan on the postgres_fdw server');
ok( defined poll_until(
		$pa, 'postgres', 'SELECT count(*) FROM pg_prepared_xacts', '0', 20),
	'and the one on pa');
is(ledger_rows($pa, 'o1') . '/' . ledger_rows($pf, 'o1'),
	'0/0', 'o1 is applied nowhere');

# the unreachable postgres_fdw server that pg_dtx never used is no failure
my $actions = $coord->safe_psql('postgres',
	'SELECT coalesce(string_agg(server || \' \' || action || \' \' || outcome, \'; \'), \'\') FROM dtx.resolve()');
unlike($actions, qr/unused_fdw/, 'the unused server is not reported');
is($coord->safe_psql('postgres',
		"SELECT count(*) FROM dtx.resolver_status r JOIN pg_foreign_server s ON s.oid = r.server_id WHERE s.srvname = 'unused_fdw'"),
	'0', 'nor put in backoff');

done_testing();
