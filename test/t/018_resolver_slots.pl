# The launcher's database slots are freed when their databases go.
#
# The launcher keeps one slot per database in shared memory (at most 64:
# DTX_MAX_DATABASES); a database without a slot gets no resolver pass, no
# wake-up and no DROP DATABASE guard.  At its start the launcher takes a
# slot for every database that exists.  Here more databases than slots exist
# when the coordinator starts, then they are all dropped and a new database
# with pg_dtx gets a transaction in doubt: the background resolver must
# finish it, in the slot of a dropped database, and the DROP DATABASE guard
# must know of the new database.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use DtxCluster;

$PostgreSQL::Test::Utils::timeout_default = 60;

my $N = 70;    # more than DTX_MAX_DATABASES

my $coord = new_coordinator('coord', extra_conf => "dtx.resolver_interval = 1s\n");
my $pa = new_participant('pa');

my $start = time();
$coord->safe_psql('postgres',
	join('', map { "CREATE DATABASE filler_$_ TEMPLATE template0 STRATEGY FILE_COPY;\n" } 1 .. $N));
diag(sprintf('%d databases created in %.1f s', $N, time() - $start));

# the launcher starts with every slot taken
$coord->restart;
ok( defined poll_until($coord, 'postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'pg_dtx resolver launcher'"),
	'the launcher runs');

# Right after the start, a database that no resolver pass has reached yet
# cannot be dropped (the guard cannot know it has nothing in doubt): the
# refusal wakes the resolver there, and the drop is tried again.
$start = time();
for my $i (1 .. $N)
{
	defined poll_until($coord, 'postgres',
		"DROP DATABASE IF EXISTS filler_$i; SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = 'filler_$i')",
		't', $PostgreSQL::Test::Utils::timeout_default)
	  or die "filler_$i could not be dropped";
}
diag(sprintf('%d databases dropped in %.1f s', $N, time() - $start));

$coord->safe_psql('postgres', 'CREATE DATABASE late');
$coord->safe_psql('late', 'CREATE EXTENSION pg_dtx');
add_server($coord, 'pa', $pa, coord_dbname => 'late');
make_in_doubt($coord, 'late', 'pa', $pa, 'late');

my $took = poll_until($pa, 'postgres',
	'SELECT count(*) = 0 FROM pg_prepared_xacts', 't', 15);
ok(defined $took, 'the background resolver finishes it in the new database');
diag(sprintf('resolved in %.1f s', $took)) if defined $took;
is($pa->safe_psql('postgres', 'SELECT count(*) FROM in_doubt_probe'),
	'1', 'it was committed');

# The guard of DROP DATABASE knows the new database: a transaction that a
# pass (dtx.resolve(), the background passes off) left in doubt there, its
# participant down, refuses the drop.
set_resolver_interval($coord, 0);
make_in_doubt($coord, 'late', 'pa', $pa, 'late 2');
$pa->stop;
$coord->safe_psql('late', 'SELECT count(*) FROM dtx.resolve()');
my ($ret, undef, $err) = $coord->psql('postgres', 'DROP DATABASE late');
isnt($ret, 0, 'DROP DATABASE of the new database is refused while in doubt');
like($err, qr/database "late" has 1 distributed transaction in doubt/,
	'with the in-doubt error');
$pa->start;
$coord->safe_psql('late', 'SELECT count(*) FROM dtx.resolve()');
is(prepared_xacts($pa), '0', 'finished once the participant is back');
$coord->safe_psql('postgres', 'DROP DATABASE late');
pass('and then it can be dropped');

done_testing();
