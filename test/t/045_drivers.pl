# pg_dtx from client drivers that bind parameters on the server
# (test/drivers/): node-postgres, psycopg 3 (prepared statements, a
# server-side cursor), asyncpg, and pgbench -M prepared.  Their parameters
# arrive without a type; each driver makes a transfer between two
# participants, catches a remote duplicate key as its own error class with
# SQLSTATE 23505, and reads dtx.query rows with their types.  node-postgres
# (npm package pg) is installed into a directory of the test run.

use strict;
use warnings;

use File::Spec;
use PostgreSQL::Test::Utils;
use Test::More;
use DtxCluster;

my $coord = new_coordinator('coord',
	extra_conf => "dtx.resolver_interval = 0\n");
my $p1 = new_participant('p1', accounts => { 1 => 1000, 2 => 1000 });
my $p2 = new_participant('p2', accounts => { 1 => 1000, 2 => 1000 });
add_server($coord, 'p1', $p1);
add_server($coord, 'p2', $p2);

my $drivers = File::Spec->rel2abs('test/drivers');
my @conn = ($coord->host, $coord->port);
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';
my $user = scalar(getpwuid($<));

# Runs a driver script; its output lines by their first word.
sub run_driver
{
	my ($name, @cmd) = @_;
	my ($out, $err) = run_command([@cmd]);
	note("$name: $out");
	note("$name (stderr): $err") if $err ne '';
	my %lines;
	for my $line (split /\n/, $out)
	{
		my ($word, $rest) = split / /, $line, 2;
		$lines{$word} = $rest // '';
	}
	return \%lines;
}

# The checks common to every driver: the transfer was applied on both
# participants and nothing is left prepared.
sub check_transfer
{
	my ($name, $lines, $p1_before, $p2_before) = @_;
	is($lines->{failed}, undef, "$name: no unexpected error");
	is($lines->{transfer}, '1 1', "$name: the transfer updated a row on each participant");
	is(balance($p1, 1), $p1_before - 5, "$name: p1 debited");
	is(balance($p2, 1), $p2_before + 5, "$name: p2 credited");
	is(prepared_xacts($p1) + prepared_xacts($p2), 0, "$name: nothing left prepared");
	return;
}

# 1. node-postgres
SKIP:
{
	skip 'node is not installed', 8 unless system('node --version >/dev/null 2>&1') == 0;
	my $dir = PostgreSQL::Test::Utils::tempdir('node');
	my ($out, $err) = run_command(
		[
			'env', "npm_config_cache=$dir/.npm", 'npm', 'install', '--no-audit',
			'--no-fund', '--no-save', '--prefix', $dir, 'pg'
		]);
	ok(-d "$dir/node_modules/pg", 'npm installed pg') or diag("npm: $out $err");

	my $lines = run_driver('node-postgres', 'env', "NODE_PATH=$dir/node_modules",
		"PGUSER=$user", 'node', "$drivers/node_pg.js", @conn);
	check_transfer('node-postgres', $lines, 1000, 1000);
	is($lines->{error}, 'DatabaseError 23505',
		'node-postgres: the remote duplicate key is a DatabaseError with code 23505');
	is($lines->{row},
		'i=number:42 n=string:2.50 d=Date:2024-2-29 s=string:hello z=null:null',
		'node-postgres: dtx.query rows with their types');
}

# 2. psycopg 3
my @before = (balance($p1, 1), balance($p2, 1));
my $lines = run_driver('psycopg 3', $python, "$drivers/psycopg3.py", @conn);
check_transfer('psycopg 3', $lines, @before);
like($lines->{typed}, qr/^(smallint|integer|bigint)$/,
	'psycopg 3: an int parameter keeps its integer type on the participant');
is($lines->{error}, 'UniqueViolation 23505',
	'psycopg 3: the remote duplicate key is a UniqueViolation (23505)');
is($lines->{row},
	'i=int:42 n=Decimal:2.50 d=date:2024-02-29 s=str:hello z=NoneType:None',
	'psycopg 3: dtx.query rows with their types');

# 3. asyncpg
@before = (balance($p1, 1), balance($p2, 1));
$lines = run_driver('asyncpg', $python, "$drivers/asyncpg_test.py", @conn);
check_transfer('asyncpg', $lines, @before);
is($lines->{error}, 'UniqueViolationError 23505',
	'asyncpg: the remote duplicate key is a UniqueViolationError (23505)');
is($lines->{row},
	'i=int:42 n=Decimal:2.50 d=date:2024-02-29 s=str:hello z=NoneType:None',
	'asyncpg: dtx.query rows with their types');

# 4. pgbench -M prepared: 10 transfers of 3 between the accounts 2
my ($out, $err) = run_command(
	[
		'pgbench', '-n', '-M', 'prepared', '-t', '10', '-h', $coord->host,
		'-p', $coord->port, '-f', "$drivers/pgbench_transfer.sql", 'postgres'
	]);
like($out, qr/number of transactions actually processed: 10\/10/,
	'pgbench -M prepared: 10 transactions') or diag($err);
is(balance($p1, 2), 970, 'pgbench: p1 debited 10 times 3');
is(balance($p2, 2), 1030, 'pgbench: p2 credited 10 times 3');
is(prepared_xacts($p1) + prepared_xacts($p2), 0, 'pgbench: nothing left prepared');

done_testing();
