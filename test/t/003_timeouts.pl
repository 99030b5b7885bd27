# Timeouts against a paused participant (SIGSTOP of all its processes): a
# PREPARE that does not come back aborts the transaction after
# dtx.prepare_timeout, a connection that is not answered fails after
# dtx.connect_timeout, a slow statement yields to statement_timeout, and a
# backend waiting on a participant shows in dtx.activity.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use DtxCluster qw(new_coordinator new_participant add_server balance prepared_xacts);

my $coord = new_coordinator('coord',
	extra_conf => "dtx.resolver_interval = 0\n");
my $pa = new_participant('pa', accounts => { 1 => 1000 });
my $pb = new_participant('pb', accounts => { 1 => 1000 });
add_server($coord, 'pa', $pa);
add_server($coord, 'pb', $pb);

# Pausing a node: SIGSTOP to its postmaster and every child, SIGCONT later.
my %paused;

sub pause
{
	my ($node) = @_;
	my ($pm) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
	my @pids = grep { /^\d+$/ } ($pm, split(/\s+/, `pgrep -P $pm`));
	$paused{ $node->name } = \@pids;
	kill 'STOP', @pids;
}

sub resume_node
{
	my ($node) = @_;
	kill 'CONT', @{ delete $paused{ $node->name } };
}

# Warm the connections so that the pause hits an open session.
$coord->safe_psql('postgres', q{SELECT * FROM dtx.query('pb', 'SELECT 1') AS t(a int)});

# 1. PREPARE on a paused participant: the transaction aborts after
#    dtx.prepare_timeout, and nothing stays prepared anywhere.
my $bg = $coord->background_psql('postgres', on_error_stop => 0);
$bg->query_safe(q{SET dtx.prepare_timeout = '1s'});
$bg->query_safe(q{BEGIN});
$bg->query_safe(q{SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance - 10 WHERE id = 1')});
$bg->query_safe(q{SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + 10 WHERE id = 1')});
pause($pb);
my $t0 = time;
my ($out, $ret) = $bg->query(q{COMMIT});
my $elapsed = time - $t0;
resume_node($pb);
isnt($ret, 0, 'prepare_timeout: COMMIT fails');
like($bg->{stderr}, qr/timed out waiting for server "pb"/, 'prepare_timeout: the error names the paused server');
cmp_ok($elapsed, '<', 15, "prepare_timeout: COMMIT returned after ${elapsed}s");
$bg->quit;
is(balance($pa, 1), 1000, 'prepare_timeout: pa rolled back');
is(balance($pb, 1), 1000, 'prepare_timeout: pb unchanged');
# pb may have prepared after the coordinator gave up: the resolver rolls it back
$coord->safe_psql('postgres', 'SELECT * FROM dtx.resolve()');
is(prepared_xacts($pa) + prepared_xacts($pb), 0, 'prepare_timeout: nothing left prepared');

# 2. A new connection to a paused participant fails after dtx.connect_timeout.
pause($pb);
$t0 = time;
my ($stdout, $stderr);
($ret, $stdout, $stderr) = $coord->psql('postgres',
	q{SET dtx.connect_timeout = '1s'; SELECT dtx.exec('pb', 'SELECT 1')});
$elapsed = time - $t0;
resume_node($pb);
isnt($ret, 0, 'connect_timeout: the call fails');
like($stderr, qr/could not connect to server "pb": timeout after 1000 ms/, 'connect_timeout: clear error');
cmp_ok($elapsed, '<', 15, "connect_timeout: gave up after ${elapsed}s");

# 3. statement_timeout and cancel interrupt a statement waiting on a paused
#    participant; dtx.activity shows the wait meanwhile.
$bg = $coord->background_psql('postgres', on_error_stop => 0);
$bg->query_safe(q{SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance WHERE id = 1')});
my $pid = $bg->query_safe(q{SELECT pg_backend_pid()});
pause($pb);
$bg->query_until(qr/started/, q{
	\echo started
	SET statement_timeout = '2s';
	SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance WHERE id = 1');
});
ok( $coord->poll_query_until('postgres',
		qq{SELECT count(*) = 1 FROM dtx.activity WHERE pid = $pid AND phase = 'statement' AND server = 'pb'}),
	'dtx.activity shows the backend waiting on pb');
($out, $ret) = $bg->query(q{SELECT 1});
resume_node($pb);
$bg->quit;
like(
	slurp_file($coord->logfile),
	qr/canceling statement due to statement timeout/,
	'statement_timeout interrupts the wait on a paused participant');
is($coord->safe_psql('postgres', qq{SELECT count(*) FROM dtx.activity WHERE pid = $pid}),
	0, 'dtx.activity forgets the backend afterwards');

is(balance($pa, 1) + balance($pb, 1), 2000, 'money is neither created nor lost');
is(prepared_xacts($pa) + prepared_xacts($pb), 0, 'nothing left prepared');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.in_doubt'), 0, 'nothing in doubt');

done_testing();
