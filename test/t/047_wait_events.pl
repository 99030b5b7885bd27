# From PostgreSQL 17, a backend waiting on a participant shows pg_dtx's own
# wait event in pg_stat_activity (wait_event_type Extension): DtxRemoteStatement
# while a dtx.exec runs, DtxPrepare while a PREPARE TRANSACTION runs,
# DtxCommitPrepared while the COMMIT PREPARED after the local commit is not
# answered. (PostgreSQL 15 has only the event "Extension" for all
# extensions: the test is skipped there; dtx.activity covers it.)
#
# The statement and the PREPARE are held by a stalled ledger row on pa
# (create_ledger); the COMMIT PREPARED by a proxy in front of pb.

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
	plan skip_all => 'named wait events of extensions need PostgreSQL 17';
}
my $pa = new_participant('pa');
my $pb = new_participant('pb');
create_ledger($_) for ($pa, $pb);
my $proxy = start_proto_proxy($pb);
add_server($coord, 'pa', $pa);
add_server($coord, 'pb', $pb,
	server_options => { host => '127.0.0.1', port => $proxy->{port} });
$coord->safe_psql('postgres',
	transfer_sql('warmup', [ 'pa', -1 ], [ 'pb', 1 ]));

# The wait event of the backend of application_name $app, once it is $event.
sub wait_event_is
{
	my ($app, $event) = @_;
	return poll_until(
		$coord, 'postgres',
		"SELECT wait_event_type || ':' || wait_event FROM pg_stat_activity WHERE application_name = '$app'",
		"Extension:$event", 30);
}

# a remote statement: the deferred trigger made immediate stalls the INSERT
my $h = start_sql($coord,
	"SET application_name = 'we_stmt';\nBEGIN;\n"
	  . "SELECT dtx.exec('pa', 'SET CONSTRAINTS ALL IMMEDIATE');\n"
	  . "SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount, stall) VALUES (''s1'', 1, 60)');\n"
	  . "COMMIT;\n");
ok(defined wait_event_is('we_stmt', 'DtxRemoteStatement'),
	'a backend waiting on a remote statement shows DtxRemoteStatement');
release_stall($pa, 's1');
my ($rc, $out, $err) = finish_sql($h, 60);
is($rc, 0, 'the statement finished once released') or diag($err);

# PREPARE TRANSACTION held on pa
$h = start_sql($coord,
	"SET application_name = 'we_prep';\n"
	  . transfer_sql('p1', [ 'pa', -1, 60 ], [ 'pb', 1 ]));
ok(defined wait_event_is('we_prep', 'DtxPrepare'),
	'a backend waiting on PREPARE TRANSACTION shows DtxPrepare');
release_stall($pa, 'p1');
($rc, $out, $err) = finish_sql($h, 60);
is($rc, 0, 'p1 committed once released') or diag($err);

# COMMIT PREPARED to pb held by the proxy
proxy_ctl($proxy, 'rule commit_prepared hold app=pg_dtx:');
$h = start_sql($coord,
	"SET application_name = 'we_cp';\nSET dtx.commit_timeout = '30s';\n"
	  . transfer_sql('c1', [ 'pa', -1 ], [ 'pb', 1 ]));
ok(defined wait_event_is('we_cp', 'DtxCommitPrepared'),
	'a backend waiting on COMMIT PREPARED shows DtxCommitPrepared');
proxy_ctl($proxy, 'release');
proxy_ctl($proxy, 'clear');
($rc, $out, $err) = finish_sql($h, 60);
is($rc, 0, 'c1 committed once released') or diag($err);

is(ledger_rows($pa, 's1') . '/' . ledger_rows($pa, 'p1') . '/' . ledger_rows($pb, 'p1') . '/' . ledger_rows($pb, 'c1'),
	'1/1/1/1', 'every transaction applied');
is(prepared_xacts($pa) . '/' . prepared_xacts($pb), '0/0',
	'nothing left prepared');

done_testing();
