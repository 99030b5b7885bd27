# Faults during the commit phase, after the local commit: the backend waits
# for COMMIT PREPARED from a participant whose session is frozen.
# 1. The coordinator's postmaster dies then: the backend must not PANIC (it
#    used to exit from inside the commit callback), and once the coordinator
#    restarts, the transaction is committed everywhere.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use DtxCluster qw(new_coordinator new_participant add_server balance prepared_xacts);

my $coord = new_coordinator('coord', extra_conf => "dtx.resolver_interval = 1000\n");
my $pa = new_participant('pa', accounts => { 1 => 1000 });
my $pb = new_participant('pb', accounts => { 1 => 1000 });
add_server($coord, 'pa', $pa);
add_server($coord, 'pb', $pb);

# pa's PREPARE waits 3 s (a deferred trigger), so that pb's session can be
# frozen after it prepared and before COMMIT PREPARED reaches it
$pa->safe_psql('postgres', q{
	CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$;
	CREATE CONSTRAINT TRIGGER slow AFTER UPDATE ON accounts
	  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow();
});

my $bg = $coord->background_psql('postgres', on_error_stop => 0);
$bg->query_safe(q{SET dtx.commit_timeout = '60s'});
$bg->query_safe('BEGIN');
$bg->query_safe(q{SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance - 1 WHERE id = 1')});
$bg->query_safe(q{SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1')});
my $remote = $pb->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'pg_dtx:%'});
$bg->query_until(qr/committing/, "\\echo committing\nCOMMIT;\n");

# pb prepares at once; freeze its session there
ok($pb->poll_query_until('postgres', 'SELECT count(*) = 1 FROM pg_prepared_xacts'),
	'pb prepared');
kill 'STOP', $remote;
# pa's PREPARE ends, the local commit happens, COMMIT PREPARED waits on pb
ok( $coord->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM dtx.activity WHERE phase = 'commit prepared' AND server = 'pb'}),
	'the backend waits for COMMIT PREPARED from pb');

# the postmaster dies while it waits
my $postmaster = $coord->{_pid};
$coord->kill9;
sleep 2;
kill 'CONT', $remote;
$bg->{run}->kill_kill;
my $log = slurp_file($coord->logfile);
unlike($log, qr/PANIC/, 'no PANIC when the postmaster dies during COMMIT PREPARED');

# the transaction was committed: after the restart, everywhere (the orphaned
# backends must have left the shared memory first)
sub processes_in
{
	my ($dir) = @_;
	my $n = 0;
	opendir(my $d, '/proc') or die "/proc: $!";
	for my $p (grep { /^\d+$/ } readdir($d))
	{
		my $cwd = readlink("/proc/$p/cwd");
		$n++ if defined $cwd && $cwd eq $dir;
	}
	closedir($d);
	return $n;
}
my $deadline = time + 60;
usleep(100_000) while time < $deadline && processes_in($coord->data_dir) > 0;
is(processes_in($coord->data_dir), 0, 'the orphaned backends left');
# and the killed postmaster itself is gone (its lock files name it)
usleep(100_000) while time < $deadline && -e "/proc/$postmaster";
$coord->start;
ok( $coord->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM dtx.decisions}),
	'the resolver finished it');
is(balance($pa, 1), 999, 'committed on pa');
is(balance($pb, 1), 1001, 'committed on pb');
is(prepared_xacts($pa) + prepared_xacts($pb), 0, 'nothing left prepared');

done_testing();
