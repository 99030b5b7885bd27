# A server whose user mapping cannot log in (the remote role does not exist)
# must not be retried by every background pass: the resolver backs off
# exponentially (dtx.resolver_status), so that the participant's log is not
# filled with failed logins.  (Reported as a problem; not reproduced: this
# test guards the backoff.)

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DtxCluster;

my $coord = new_coordinator('coord');
set_resolver_interval($coord, '500ms');
my $pa = new_participant('pa');
add_server($coord, 'bad', $pa, mapping_options => { user => 'nosuchrole' });

sleep(8);
my $log = slurp_file($pa->logfile);
my $n = () = $log =~ /role "nosuchrole" does not exist/g;
diag("failed logins on pa in 8 s, passes every 0.5 s: $n");
ok($n >= 1, 'the resolver tried the server');
ok($n <= 5, 'and backed off (16 passes would have tried 16 times)');
my ($failures, $backoff) = split /\|/, $coord->safe_psql('postgres',
	'SELECT failures, next_attempt > last_attempt FROM dtx.resolver_status r JOIN pg_foreign_server s ON s.oid = r.server_id');
ok($failures >= 1 && $backoff eq 't', 'dtx.resolver_status shows the failures and the next attempt');
my ($rc, $out) = $coord->psql('postgres',
	"SELECT outcome LIKE 'failed: could not connect to server \"bad\"%' FROM dtx.resolve() WHERE server = 'bad'");
is($out, 't', 'dtx.resolve() still tries it at once, and says why it failed');

done_testing();
