# dtx.query streams the remote rows into its tuplestore (which spills to
# disk past work_mem): the coordinator backend's peak memory (VmHWM) does
# not grow with the size of the result.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();
use DtxCluster;

my $coord = new_coordinator('coord',
	extra_conf => "dtx.resolver_interval = 0\n");
my $p1 = new_participant('p1');
add_server($coord, 'p1', $p1);

my $s = $coord->background_psql('postgres', on_error_stop => 0);
my $pid = $s->query_safe('SELECT pg_backend_pid()');

# peak resident memory of the backend, in kB
sub hwm
{
	my $status = slurp_file("/proc/$pid/status");
	return $status =~ /^VmHWM:\s+(\d+) kB/m ? $1 : die "no VmHWM";
}

sub rows
{
	my ($n) = @_;
	return $s->query_safe(
		"SELECT count(*), sum(length(b)) FROM dtx.query('p1', "
		  . "'SELECT g, repeat(''x'', 10) FROM pg_catalog.generate_series(1, $n) g') AS t(a int, b text)");
}

is(rows(10_000), '10000|100000', '1e4 rows');
my $base = hwm();
is(rows(1_000_000), '1000000|10000000', '1e6 rows');
my $big = hwm();
note("VmHWM: ${base} kB after 1e4 rows, ${big} kB after 1e6 rows");
cmp_ok($big - $base, '<', 30 * 1024,
	sprintf('peak memory grew by %d kB from 1e4 to 1e6 rows', $big - $base));

# an error in the middle of the stream is the remote's, and the connection
# goes on
my ($out, $err) = sq($s, q{SELECT count(*) FROM dtx.query('p1',
	'SELECT 1 / (100000 - g) FROM pg_catalog.generate_series(1, 200000) g') AS t(a int)});
like($err, qr/division by zero/, 'a remote error after many rows is raised');
is($s->query_safe(q{SELECT count(*) FROM dtx.query('p1', 'SELECT 1') AS t(a int)}), '1',
	'the connection is usable afterwards');
# a local conversion error in the middle of the stream
$coord->safe_psql('postgres', q{CREATE DOMAIN short_text AS text CHECK (length(VALUE) < 6)});
($out, $err) = sq($s, q{SELECT count(*) FROM dtx.query('p1',
	'SELECT CASE WHEN g = 50000 THEN ''too long'' ELSE ''ok'' END FROM pg_catalog.generate_series(1, 100000) g') AS t(a short_text)});
like($err, qr/value for domain short_text violates check constraint/, 'a bad value in the middle is refused');
is($s->query_safe(
		q{BEGIN; SELECT count(*) FROM dtx.query('p1', 'SELECT 1') AS t(a int); COMMIT;}),
	'1', 'the connection is usable after that too');

# statement_timeout stops a long stream promptly
my $t0 = Time::HiRes::time();
($out, $err) = sq($s, q{SET statement_timeout = '300ms'; SELECT count(*) FROM dtx.query('p1',
	'SELECT g FROM pg_catalog.generate_series(1, 100000000) g') AS t(a int)});
my $secs = Time::HiRes::time() - $t0;
like($err, qr/canceling statement due to statement timeout/, 'statement_timeout cancels the stream');
cmp_ok($secs, '<', 3, sprintf('the stream stopped %.1fs after it started', $secs));
is($s->query_safe(q{RESET statement_timeout; SELECT count(*) FROM dtx.query('p1', 'SELECT 1') AS t(a int)}),
	'1', 'the next dtx.query works');
$s->quit;

done_testing();
