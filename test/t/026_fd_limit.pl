# A coordinator short of file descriptors.  pg_dtx's connections are
# sockets that PostgreSQL's file manager must count (AcquireExternalFD):
# otherwise it fills the process's limit with cached relation files, and the
# next descriptor that pg_dtx needs (a wait on a socket at PREPARE, or after
# the local commit, where an ERROR would become a PANIC) fails with "Too many
# open files".  Counted, they make the file manager close cached files, and
# a backend that would need more connections than it may have gets a clear
# error at the connection, before anything is prepared.  Waits after the
# local commit need no new descriptor at all.
#
# The coordinator runs with a soft limit of 66 descriptors (prlimit) and
# max_files_per_process = 64.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DtxCluster;

$PostgreSQL::Test::Utils::timeout_default = 60;

my $coord =
  new_coordinator('coord', extra_conf => "max_files_per_process = 64\n");
my $pa = new_participant('pa',
	extra_conf => "max_connections = 60\nmax_prepared_transactions = 60\n");
$pa->safe_psql('postgres', 'CREATE TABLE t (id int, v int)');

# 25 servers reaching pa, and 120 local tables to fill the file cache
my $user = scalar(getpwuid($<));
my $sql = '';
for my $i (1 .. 25)
{
	$sql .= sprintf(
		"CREATE SERVER s%d FOREIGN DATA WRAPPER dtx OPTIONS (host %s, port '%d', dbname 'postgres');\n"
		  . "CREATE USER MAPPING FOR CURRENT_USER SERVER s%d OPTIONS (user %s);\n",
		$i, quote_literal($pa->host), $pa->port, $i, quote_literal($user));
}
$sql .= "CREATE TABLE l$_ (x int); INSERT INTO l$_ VALUES (1);\n" for 1 .. 120;
$coord->safe_psql('postgres', $sql);

# restart the coordinator with a low limit (inherited from this process)
$coord->stop;
system('prlimit', '--pid', $$, '--nofile=66:') == 0 or die 'prlimit failed';
$coord->start;
system('prlimit', '--pid', $$, '--nofile=1024:') == 0 or die 'prlimit failed';
my $started = $coord->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');

# A transfer to $n participants, after reading every local table.
sub wide_transaction
{
	my ($tag, $n) = @_;
	my $tx = "BEGIN;\n";
	$tx .= "SELECT dtx.exec('s$_', 'INSERT INTO t VALUES (\$1, $tag)', $_);\n"
	  for 1 .. $n;
	$tx .= "SELECT count(*) FROM l$_;\n" for 1 .. 120;
	return $tx . "COMMIT;\n";
}

my ($rc, $out, $err) = $coord->psql('postgres', wide_transaction(1, 8));
is($rc, 0, '8 participants and 120 cached files fit: COMMIT succeeds');
diag("8 participants: $err") if $rc;
is($pa->safe_psql('postgres', 'SELECT count(*) FROM t WHERE v = 1'),
	'8', 'all 8 rows are there');

($rc, $out, $err) = $coord->psql('postgres', wide_transaction(2, 25));
isnt($rc, 0, '25 participants do not fit');
like($err, qr/could not connect to server "s\d+".*\n.*too many open files/i,
	'the connection that does not fit says so');
is($pa->safe_psql('postgres', 'SELECT count(*) FROM t WHERE v = 2'),
	'0', 'nothing of it is applied');

is(prepared_xacts($pa), '0', 'nothing left prepared on pa');
is($coord->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'),
	$started, 'the coordinator did not restart');
my $log = slurp_file($coord->logfile);
unlike($log, qr/PANIC|AbortTransaction while in ABORT state|epoll_create1 failed/,
	'no PANIC, no failed abort, no failed wait in the log');

done_testing();
