# A deadlock across two coordinator servers: a session on coord1 holds row 1
# on pa and waits for row 1 on pb, a session on coord2 holds row 1 on pb and
# waits for row 1 on pa.  Both backends run the check; they must agree on one
# victim, which cancels itself: exactly one fails with 40P01 within a few
# seconds, the other commits on both participants, nothing stays prepared.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use DtxCluster;

my $conf = "dtx.resolver_interval = 0\ndtx.deadlock_check_interval = 300ms\n";
my @coords = map { new_coordinator($_, extra_conf => $conf) } qw(coord1 coord2);
my $pa = new_participant('pa', accounts => { 1 => 1000 });
my $pb = new_participant('pb', accounts => { 1 => 1000 });
for my $coord (@coords)
{
	add_server($coord, 'pa', $pa);
	add_server($coord, 'pb', $pb);
}
isnt(
	$coords[0]->safe_psql('postgres', 'SELECT dtx.coordinator_id()'),
	$coords[1]->safe_psql('postgres', 'SELECT dtx.coordinator_id()'),
	'the two coordinators have different ids');

my @s = map { $_->background_psql('postgres', on_error_stop => 0) } @coords;
for my $s (@s)
{
	# bounds today's failure: without a victim both wait until this
	$s->query_safe("SET statement_timeout = '20s'");
	$s->query_safe('\set VERBOSITY verbose');
	$s->query_safe('BEGIN');
}
$s[0]->query_safe(update_sql('pa'));
$s[1]->query_safe(update_sql('pb'));
my $t0 = time;
sq_send($s[0], update_sql('pb') . ';');
sq_send($s[1], update_sql('pa') . ';');

my $waiting = q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND backend_type = 'client backend'};
my $broken = 0;
while (time - $t0 < 25)
{
	my $n = 0;
	$n += $_->safe_psql('postgres', $waiting) for @coords;
	if ($n == 0) { $broken = 1; last; }
	Time::HiRes::usleep(100_000);
}
my $elapsed = time - $t0;
ok($broken, 'both sessions stopped waiting');
cmp_ok($elapsed, '<', 8, sprintf('the deadlock was broken after %.1f s (check interval 0.3 s)', $elapsed));

my @err = map { (sq_wait($_))[1] } @s;
note("coord1: $err[0]\ncoord2: $err[1]");
my @victims = grep { $err[$_] =~ /ERROR:  40P01: distributed deadlock detected/ } 0 .. 1;
is(scalar(@victims), 1, 'exactly one session fails with 40P01');
unlike($err[$_], qr/statement timeout/, "coord" . ($_ + 1) . ": no statement timeout") for 0 .. 1;
my $victim = $victims[0] // 1;
my $winner = 1 - $victim;
is($err[$winner], '', 'the other session\'s statement completes');
$s[$victim]->query('ROLLBACK');
my (undef, $ret) = $s[$winner]->query('COMMIT');
is($ret, 0, 'the other transaction commits');
$_->quit for @s;

is(balance($pa, 1), 1001, 'the winner committed on pa, the victim nowhere');
is(balance($pb, 1), 1001, 'and on pb');
is(prepared_xacts($_), 0, 'nothing left prepared on ' . $_->name) for ($pa, $pb);

done_testing();
