# A resolver pass acts only on the prepared transactions that both of its
# listings of a participant hold: one that left the list by the second
# listing was finished by somebody else meanwhile (its backend, or by hand),
# and the pass leaves it alone.  The pass's second listing of pb is held by
# a proxy while the transaction is finished by hand on pb; the pass must
# then report nothing for it (acting on it would at best find it gone).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster;

$PostgreSQL::Test::Utils::timeout_default = 60;

my $coord = new_coordinator('coord');
set_resolver_interval($coord, '0');    # only dtx.resolve() acts
my $pa = new_participant('pa');
my $pb = new_participant('pb');
create_ledger($_) for ($pa, $pb);
my $proxy = start_proto_proxy($pb);
add_server($coord, 'pa', $pa);
add_server($coord, 'pb', $pb,
	server_options => { host => '127.0.0.1', port => $proxy->{port} });
$coord->safe_psql('postgres',
	transfer_sql('warmup', [ 'pa', -1 ], [ 'pb', 1 ]));

# t1 in doubt on pb: its COMMIT PREPARED there is cut
proxy_ctl($proxy, 'rule commit_prepared cut app=pg_dtx:');
my ($rc, $out, $err) =
  $coord->psql('postgres', transfer_sql('t1', [ 'pa', -1 ], [ 'pb', 1 ]));
like($err, qr/has not confirmed COMMIT PREPARED/, 't1 is left in doubt on pb');
my ($gid) = keys %{ gid_set($pb) };
ok(defined $gid, 't1 is prepared on pb');

# the pass's second listing of pb is held
proxy_ctl($proxy, 'clear');
proxy_ctl($proxy, 'rule listing hold nth=2 app=pg_dtx_resolver:');
my $h = start_sql($coord,
	"SELECT coalesce(server, '-') || '|' || coalesce(global_id, '-') || '|' || action || '|' || outcome FROM dtx.resolve();"
);
my $end = time() + 30;
usleep(50_000) until proxy_status($proxy)->{held} >= 1 || time() > $end;
ok(proxy_status($proxy)->{held} >= 1, 'the second listing of pb is held');

# meanwhile somebody finishes t1 on pb by hand
$pb->safe_psql('postgres', "COMMIT PREPARED '$gid'");
proxy_ctl($proxy, 'release');
($rc, $out, $err) = finish_sql($h, 60);
is($rc, 0, 'the pass ends');
unlike($out, qr/\Q$gid\E/,
	'the pass reports nothing for a transaction that left the list between its listings');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.decisions'),
	'0', 'its decision is deleted as finished');
is(ledger_rows($pa, 't1') . '/' . ledger_rows($pb, 't1'), '1/1', 't1 is applied on both');
is(prepared_xacts($pa) . '/' . prepared_xacts($pb), '0/0', 'nothing left prepared');

done_testing();
