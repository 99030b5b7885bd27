# A transaction that blocks itself: one database reached through two servers
# (two sessions of the same transaction on it), and the coordinator's own
# database used as a participant after a local write of the same row.  No
# server sees a cycle (the holder waits on a socket, not on a lock); the
# checker sees that the blocker is another session of its own transaction
# and fails the statement with 40P01 at its first check.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use DtxCluster;

my $coord = new_coordinator('coord',
	extra_conf => "dtx.resolver_interval = 0\ndtx.deadlock_check_interval = 300ms\n");
my $pa = new_participant('pa', accounts => { 1 => 1000, 2 => 1000 });
add_server($coord, 'pa', $pa);
add_server($coord, 'pa_again', $pa);
create_accounts($coord, { 1 => 1000 });
add_server($coord, 'self', $coord);

my $s = $coord->background_psql('postgres', on_error_stop => 0);
# bounds today's failure: the backend waits for itself until this
$s->query_safe("SET statement_timeout = '15s'");
$s->query_safe('\set VERBOSITY verbose');

# 1. the same row through two servers that reach the same database
$s->query_safe('BEGIN');
$s->query_safe(update_sql('pa'));
my $t0 = time;
my ($out, $err) = sq($s, update_sql('pa_again'));
my $elapsed = time - $t0;
like($err, qr/ERROR:  40P01: distributed deadlock detected/,
	'two servers, one database: the second update fails with 40P01');
like($err, qr/waits on server "pa_again" for a lock that it holds itself through server "pa"/, 'the detail names both servers');
cmp_ok($elapsed, '<', 5, sprintf('after %.1f s (check interval 0.3 s)', $elapsed));
$s->query_safe('ROLLBACK');
is(balance($pa, 1), 1000, 'nothing committed on pa');

# 2. a local update, then the same row through a server that is this database
$s->query_safe('BEGIN');
$s->query_safe('UPDATE accounts SET balance = balance + 1 WHERE id = 1');
$t0 = time;
($out, $err) = sq($s, update_sql('self'));
$elapsed = time - $t0;
like($err, qr/ERROR:  40P01: distributed deadlock detected/,
	'local write, then the same row through the coordinator\'s own database: 40P01');
like($err, qr/waits on server "self" for a lock that it holds itself on the coordinator/,
	'the detail says that the coordinator holds the lock');
cmp_ok($elapsed, '<', 5, sprintf('after %.1f s (check interval 0.3 s)', $elapsed));
$s->query_safe('ROLLBACK');
is(balance($coord, 1), 1000, 'nothing committed on the coordinator');

# 3. the session is usable afterwards, and distinct rows are no deadlock
$s->query_safe('BEGIN');
$s->query_safe(update_sql('pa'));
$s->query_safe("SELECT dtx.exec('pa_again', 'UPDATE accounts SET balance = balance + 1 WHERE id = 2')");
$s->query_safe('COMMIT');
is(balance($pa, 1), 1001, 'a transaction through both servers on different rows commits');
is(balance($pa, 2), 1001, 'both of its updates');
$s->quit;

is(prepared_xacts($_), 0, 'nothing left prepared on ' . $_->name) for ($pa, $coord);

done_testing();
