# Connection reuse: one remote session per coordinator backend and
# participant across commits, rollbacks and errors, never left in a
# transaction, ended with its coordinator backend.  Participants pa and pb.
#
# One scenario of the core commit protocol; what the core scenarios share
# (nodes, checks) is in test/README.md (Layout) and in DtxCluster's core_cluster.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster qw(:DEFAULT :core);

my $started = time;

my %n = core_cluster(qw(pa pb));
my ($coord, $pa, $pb) = @n{qw(coord pa pb)};


{
	my $s = session();
	my $app = appname($s->{pid});
	my (%pids_a, %pids_b, @bad);
	my @xacts = (
		q{BEGIN; SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 2');
		  SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance - 1 WHERE id = 1'); COMMIT;},
		q{BEGIN; SELECT dtx.exec('pa', 'UPDATE accounts SET balance = 0 WHERE id = 2');
		  SELECT dtx.exec('pb', 'UPDATE accounts SET balance = 0 WHERE id = 1'); ROLLBACK;},
		q{BEGIN; SELECT * FROM dtx.query('pa', 'SELECT 1') AS t(x int);
		  SELECT * FROM dtx.query('pb', 'SELECT 1') AS t(x int); COMMIT;},
		q{BEGIN; SELECT * FROM dtx.query('pa', 'SELECT 1') AS t(x int);
		  SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1'); COMMIT;},
		q{BEGIN; SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 2');
		  SELECT dtx.exec('pb', 'SELECT no_such_column FROM accounts'); COMMIT;},
		q{BEGIN; SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 2');
		  SAVEPOINT x; SELECT dtx.exec('pb', 'INSERT INTO accounts VALUES (1, 0)'); ROLLBACK TO x;
		  SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance - 1 WHERE id = 1'); COMMIT;},
		q{BEGIN; SELECT dtx.exec('pa', 'INSERT INTO dcheck VALUES (9), (9)');
		  SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance + 1 WHERE id = 1'); COMMIT;},
		q{SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 2');},
		q{SELECT * FROM dtx.query('pb', 'SELECT 1') AS t(x int);},
		q{BEGIN; SELECT dtx.exec('pa', 'UPDATE accounts SET balance = balance + 1 WHERE id = 2');
		  SELECT dtx.exec('pb', 'UPDATE accounts SET balance = balance - 1 WHERE id = 1');
		  INSERT INTO local_log VALUES ('s8'); COMMIT;},
	);
	my $i = 0;
	for my $x (@xacts, @xacts)
	{
		$i++;
		sq($s, $x);
		for my $p ([ $pa, \%pids_a ], [ $pb, \%pids_b ])
		{
			my ($n, $seen) = @$p;
			my @rows = split /\n/, $n->safe_psql('postgres',
				"SELECT pid || ' ' || state FROM pg_stat_activity WHERE application_name = '$app'"
			);
			for my $row (@rows)
			{
				my ($pid, $state) = split / /, $row, 2;
				$seen->{$pid}++;
				push @bad, "transaction $i: " . $n->name . " session $pid is $state"
				  if $state ne 'idle';
			}
			push @bad, "transaction $i: " . $n->name . " has " . scalar(@rows) . " sessions"
			  if @rows > 1;
		}
	}
	is(scalar(keys %pids_a), 1, '8: one remote backend on pa for all the session\'s transactions')
	  or diag('pa backends: ' . join(' ', sort keys %pids_a));
	is(scalar(keys %pids_b), 1, '8: one remote backend on pb for all the session\'s transactions')
	  or diag('pb backends: ' . join(' ', sort keys %pids_b));
	is(join("\n", @bad), '', '8: the remote sessions are idle after every commit and rollback');

	# a second coordinator backend has its own remote session
	my $s2 = session();
	sq($s2, q{BEGIN; SELECT * FROM dtx.query('pa', 'SELECT 1') AS t(x int); COMMIT;});
	is( $pa->safe_psql(
			'postgres',
			"SELECT string_agg(application_name, ',' ORDER BY application_name) FROM pg_stat_activity WHERE application_name LIKE 'pg\\_dtx:%'"
		),
		join(',', sort(appname($s->{pid}), appname($s2->{pid}))),
		'8: one pg_dtx session on pa per coordinator backend');
	$s2->quit;
	ok( wait_for(
			$pa,
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = '"
			  . appname($s2->{pid}) . "'"),
		'8: the remote session ends with its coordinator backend');
	$s->quit;
	resolve();
	is(decisions(), 0, '8: no decision left');
	all_clean('8 connection reuse');
}

diag(sprintf('037_core_connection_reuse: %.1fs', time - $started));
done_testing();
