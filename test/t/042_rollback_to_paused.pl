# ROLLBACK TO SAVEPOINT with several paused participants (SIGSTOP): the
# rollback goes to all of them at once, under one dtx.commit_timeout, not
# one timeout after the other; the remote transactions are then lost, so
# the transaction can only roll back, and nothing stays prepared.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use DtxCluster;

my $coord = new_coordinator('coord',
	extra_conf => "dtx.resolver_interval = 0\n");
my @parts;
for my $i (1 .. 3)
{
	my $p = new_participant("p$i", accounts => { 1 => 1000 });
	add_server($coord, "p$i", $p);
	push @parts, $p;
}

my $s = $coord->background_psql('postgres', on_error_stop => 0);
$s->query_safe(q{SET dtx.commit_timeout = '3s'});
$s->query_safe('BEGIN');
$s->query_safe(q{SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance - 1 WHERE id = 1')});
$s->query_safe('SAVEPOINT s');
for my $i (1 .. 3)
{
	$s->query_safe(
		"SELECT dtx.exec('p$i', 'UPDATE accounts SET balance = balance + 10 WHERE id = 1')");
}
signal_node($_, 'STOP') for @parts;
my $t0 = time;
my ($out, $err) = sq($s, 'ROLLBACK TO SAVEPOINT s');
my $secs = time - $t0;
cmp_ok($secs, '<', 6, sprintf('ROLLBACK TO with 3 paused participants took %.1fs (timeout 3s)', $secs));
cmp_ok($secs, '>=', 2.5, 'it waited for the timeout');

# the remote transactions are lost: the transaction cannot commit
($out, $err) = sq($s, 'COMMIT');
like($err, qr/cannot commit: the remote transaction on server "p\d" was lost/,
	'COMMIT fails and rolls back');
signal_node($_, 'CONT') for @parts;
$s->quit;

for my $i (1 .. 3)
{
	ok(poll_until($parts[ $i - 1 ], 'postgres',
			q{SELECT balance = 1000 FROM accounts WHERE id = 1}),
		"p$i rolled back");
	is(prepared_xacts($parts[ $i - 1 ]), 0, "nothing prepared on p$i");
}

done_testing();
