# The distributed-deadlock message belongs to the statement that was
# cancelled as the victim.  Here the victim's statement finishes before its
# cancel lands (its check saw a cycle that was broken meanwhile: the check's
# view of pa is taken, then the blocker's session on pa ends while the check
# is held up connecting to pb, which is frozen).  The cancel meets an idle
# session and does nothing, the statement succeeds; the next, unrelated,
# failing statement on that connection must fail with its own error, not
# with 40P01.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use DtxCluster;

my $coord = new_coordinator('coord', extra_conf => "dtx.resolver_interval = 0\n");
my $pa = new_participant('pa', accounts => { 1 => 1000 },
	extra_conf => "log_connections = on\n");
my $pb = new_participant('pb', accounts => { 1 => 1000 });
add_server($coord, 'pa', $pa);
add_server($coord, 'pb', $pb);

# T never checks; V checks one second into its wait
my $t = $coord->background_psql('postgres', on_error_stop => 0);
my $v = $coord->background_psql('postgres', on_error_stop => 0);
$t->query_safe('SET dtx.deadlock_check_interval = 0');
$v->query_safe("SET dtx.deadlock_check_interval = '1s'");
$v->query_safe("SET statement_timeout = '30s'");
$v->query_safe('\set VERBOSITY verbose');
my $tpid = $t->query_safe('SELECT pg_backend_pid()');
my $vpid = $v->query_safe('SELECT pg_backend_pid()');
$t->query_safe('BEGIN');
$v->query_safe('BEGIN');
$t->query_safe(update_sql('pa'));
$v->query_safe(update_sql('pb'));

# T waits for V on pb; pb freezes with that wait in it
sq_send($t, update_sql('pb') . ';');
ok( defined poll_until($pb, 'postgres',
		q{SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'}, '1', 20),
	'T waits for V on pb');
signal_node($pb, 'STOP');

# V waits for T on pa; its check reads pa, then hangs connecting to pb
my $pa_log = -s $pa->logfile;
sq_send($v, update_sql('pa') . ';');
my $end = time + 20;
my $seen = 0;
while (time < $end)
{
	if (slurp_file($pa->logfile, $pa_log) =~
		/connection authorized: .*application_name=pg_dtx_resolver:\d+:\d+:$vpid/)
	{
		$seen = 1;
		last;
	}
	Time::HiRes::usleep(50_000);
}
ok($seen, "V's check connected to pa");
ok( defined poll_until($pa, 'postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pg\_dtx\_resolver:%'}, '0', 5),
	"V's check is done with pa");

# the cycle goes away under the check: T's session on pa ends, V's update there finishes
$pa->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'pg\\_dtx:%:$tpid'");
ok( defined poll_until($pa, 'postgres',
		"SELECT state FROM pg_stat_activity WHERE application_name LIKE 'pg\\_dtx:%:$vpid'",
		'idle in transaction', 5),
	"V's statement on pa has finished");
signal_node($pb, 'CONT');

my ($out, $err) = sq_wait($v);
is($err, '', "V's statement succeeds (its cancel came too late)");
like(slurp_file($pa->logfile, $pa_log), qr/pg_cancel_backend\(\d+\)/,
	'V chose itself as the victim and sent the cancel');

# an unrelated error on the same connection keeps its own SQLSTATE
($out, $err) = sq($v, q{SELECT dtx.exec('pa', 'SELECT 1/0')});
like($err, qr/ERROR:  22012: division by zero/, 'the next failing statement reports its own error');
unlike($err, qr/deadlock/, 'not a deadlock');

$v->query('ROLLBACK');
sq_wait($t);
$t->query('ROLLBACK');
$_->quit for ($t, $v);
is(balance($pa, 1), 1000, 'nothing committed on pa');
is(balance($pb, 1), 1000, 'nothing committed on pb');
is(prepared_xacts($_), 0, 'nothing left prepared on ' . $_->name) for ($pa, $pb);

done_testing();
