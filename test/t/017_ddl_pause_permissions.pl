# Nobody can keep the resolver away from a database with commands they are
# not allowed to run.
#
# The commands that need a database without other sessions (DROP DATABASE,
# CREATE DATABASE ... TEMPLATE, ALTER DATABASE ... RENAME / SET TABLESPACE)
# end the database's resolver worker and keep the launcher away from it for
# a while.  A role without the rights to run them (not the owner, no
# CREATEDB) sends them over and over, and each one fails with its own
# permission error; meanwhile a transaction is in doubt in that database.
# The background resolver (dtx.resolver_interval = 1s) must still finish it
# within a few intervals (10 s at most on a loaded machine; each of those
# commands used to keep the resolver away for 30 s), and the attacker's commands must have changed
# nothing.  ALTER DATABASE ... CONNECTION LIMIT does not need the database
# alone and is in the mix too.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster;

$PostgreSQL::Test::Utils::timeout_default = 60;

my $coord = new_coordinator('coord', extra_conf => "dtx.resolver_interval = 1s\n");
my $pa = new_participant('pa');

$coord->safe_psql('postgres',
	'CREATE DATABASE victim; CREATE ROLE mallory LOGIN');
$coord->safe_psql('victim', 'CREATE EXTENSION pg_dtx');
add_server($coord, 'pa', $pa, coord_dbname => 'victim');

# The attacker: every failing command, again and again, about every 0.3 s.
my $round = q{
ALTER DATABASE victim CONNECTION LIMIT 5;
ALTER DATABASE victim RENAME TO victim2;
ALTER DATABASE victim SET TABLESPACE pg_default;
CREATE DATABASE copy_of_victim TEMPLATE victim;
DROP DATABASE victim;
SELECT pg_sleep(0.3);
};
my $file = "$PostgreSQL::Test::Utils::tmp_check/attack.sql";
open(my $fh, '>', $file) or die "cannot write $file: $!";
print $fh $round x 100;
close $fh;
my $attacker = start_cmd(
	[
		'psql', '-XAtq', '-v', 'ON_ERROR_STOP=0',
		'-d', $coord->connstr('postgres') . ' user=mallory',
		'-f', $file
	]);
# let the first round through before anything is in doubt
usleep(1_000_000);

my $gid = make_in_doubt($coord, 'victim', 'pa', $pa, 'under attack');
my $took = poll_until($pa, 'postgres',
	'SELECT count(*) = 0 FROM pg_prepared_xacts', 't', 10);
ok(defined $took,
	'the in-doubt transaction is finished while the attacker keeps trying');
diag(sprintf('resolved in %.1f s under attack', $took)) if defined $took;
ok(!sql_done($attacker), 'the attacker was still at it');
is($pa->safe_psql('postgres', 'SELECT count(*) FROM in_doubt_probe'),
	'1', 'it was committed');
ok( defined poll_until($coord, 'victim', 'SELECT count(*) = 0 FROM dtx.decisions'),
	'its decision is deleted');

kill('TERM', $attacker->{pid});
my (undef, undef, $err) = finish_sql($attacker, 10);
like($err, qr/must be owner of database victim/, 'ALTER / DROP DATABASE refused');
like($err, qr/permission denied to create database/,
	'CREATE DATABASE ... TEMPLATE refused');
unlike($err, qr/in doubt/,
	'the attacker learns nothing of the transactions in doubt');
is( $coord->safe_psql(
		'postgres',
		q{SELECT string_agg(datname || ':' || datconnlimit, ',' ORDER BY datname)
		    FROM pg_database WHERE datname LIKE '%victim%'}),
	'victim:-1',
	'nothing changed');

done_testing();
