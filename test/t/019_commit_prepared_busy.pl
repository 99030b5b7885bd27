# The resolver may finish a committed transaction on a participant while
# the committing backend's own COMMIT PREPARED is still on its way.  If the
# backend's command arrives while the resolver's is running there, the
# participant answers "prepared transaction ... is busy" (55000); the backend
# used to take that for a failure and warn that the participant "has not
# confirmed COMMIT PREPARED" for a transaction that was being committed.
# Now it waits (within dtx.commit_timeout) until the other session is done.
#
# To get that order: a proxy in front of pb holds the backend's COMMIT
# PREPARED; pb's commits then wait for a synchronous standby that does not
# exist, so that the resolver's COMMIT PREPARED, which comes meanwhile,
# stays in progress; the held command is released into it; then pb's
# commits are let through.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster;

$PostgreSQL::Test::Utils::timeout_default = 60;

my $coord = new_coordinator('coord');
set_resolver_interval($coord, '1s');
my $pa = new_participant('pa');
my $pb = new_participant('pb',
	extra_conf => "wal_level = replica\nmax_wal_senders = 2\n");
create_ledger($_) for ($pa, $pb);
my $proxy = start_proto_proxy($pb);
add_server($coord, 'pa', $pa);
add_server($coord, 'pb', $pb,
	server_options => { host => '127.0.0.1', port => $proxy->{port} });
$coord->safe_psql('postgres',
	transfer_sql('warmup', [ 'pa', -1 ], [ 'pb', 1 ]));

# the backend's COMMIT PREPARED to pb is held (not the resolver's)
proxy_ctl($proxy, 'rule commit_prepared hold app=pg_dtx:');
my $h = start_sql($coord,
	"SET dtx.commit_timeout = '30s';\n"
	  . transfer_sql('b1', [ 'pa', -1 ], [ 'pb', 1 ]));
ok( defined poll_until_true(sub { proxy_status($proxy)->{held} >= 1 }),
	'the backend\'s COMMIT PREPARED to pb is held');

# pb's commits now wait; the resolver's COMMIT PREPARED comes and stays
$pb->safe_psql('postgres',
	"ALTER SYSTEM SET synchronous_standby_names = 'nobody'; SELECT pg_reload_conf();"
);
ok( defined poll_until(
		$pb, 'postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND query LIKE 'COMMIT PREPARED%'",
		't', 30),
	'the resolver\'s COMMIT PREPARED is in progress on pb');

# the backend's command meets the busy prepared transaction
proxy_ctl($proxy, 'release');
sleep(1);
$pb->safe_psql('postgres',
	'ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf();');

my ($rc, $out, $err) = finish_sql($h, 60);
is($rc, 0, 'b1 committed');
unlike($err, qr/has not confirmed/,
	'no "has not confirmed" warning for a transaction the resolver was committing');
is(ledger_rows($pa, 'b1') . '/' . ledger_rows($pb, 'b1'),
	'1/1', 'b1 is applied on both');
is(prepared_xacts($pa) . '/' . prepared_xacts($pb), '0/0',
	'nothing left prepared');
ok( defined poll_until(
		$coord, 'postgres', 'SELECT count(*) = 0 FROM dtx.decisions'),
	'no decision left');

done_testing();

# Polls $cond (a sub) every 50 ms until it returns true (at most 30 s).
sub poll_until_true
{
	my ($cond) = @_;
	my $end = time() + 30;
	while (time() < $end)
	{
		return 1 if $cond->();
		usleep(50_000);
	}
	return undef;
}
