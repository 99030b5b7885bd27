# DtxCluster.pm - helpers for the pg_dtx TAP tests (test/t/*.pl).
#
# Built on PostgreSQL 15's PostgreSQL::Test::Cluster. test/run_tests.sh puts
# this directory and PostgreSQL's test modules on PERL5LIB.
#
#   use DtxCluster;
#
#   my $coord = new_coordinator('coord');        # pg_dtx preloaded, extension created
#   my $a     = new_participant('bank_a',
#                   accounts => { 1 => 1000, 2 => 500 });  # optional table + rows
#   my $b     = new_participant('bank_b');
#   add_server($coord, 'bank_a', $a);            # CREATE SERVER + USER MAPPING
#   add_server($coord, 'bank_b', $b, dbname => 'postgres');
#
#   is(prepared_xacts($a), 0, 'nothing left prepared on bank_a');
#   is(balance($a, 1), 900, 'bank_a debited');
#
# For crash tests: create_ledger / transfer_sql / release_stall (transfers
# whose PREPARE on one participant can be held), start_sql / finish_sql
# (psql in the background), timed_finish (finish_sql, timed), poll_until,
# session_pid (a backend found by application_name), and processes:
# node_pids, signal_node (SIGSTOP/SIGCONT a whole server), crash_node
# (SIGKILL). make_in_doubt: a transaction in doubt made by hand (decision +
# PREPARE).
#
# Nodes of one file initialised at once: start_initdb, then init_node (or
# new_coordinator / new_participant with node => $node) for each.
#
# background_session: a psql session on a node that survives errors
# (optionally verbose, with SETs, in a transaction).  Deadlock tests:
# update_sql (a dtx.exec adding 1 to one balance).
#
# The core scenarios (test/t/03x_core_*.pl) import the :core tag:
# core_cluster builds their coordinator and participants (pa, pb, pc), and
# coord_sql, session, resolve, decisions, local_count, ledger_count,
# all_clean, crash, wait_for, appname, gid, log_pos / dtx_log_since and
# transfer_killing_pa work on that cluster (see their section below).
#
# The resolver scenarios (test/t/05x_resolver_*.pl) import the :resolver
# tag: resolver_cluster builds their coordinator and participants, and
# in_doubt_start / make_in_doubt_transfer (a transfer left in doubt on one
# participant), check_outcome, wait_committed, check_clean, flush_wal,
# backoff_of, wait_prepares_done and wait_up work on that cluster.
#
# For protocol faults: start_proto_proxy / proxy_ctl / proxy_status /
# stop_proto_proxy (a proxy in front of one participant that can cut, hold
# or drop the answer of one command of the commit protocol:
# test/faults/proto_proxy.py).
#
# Nodes talk to each other over their Unix sockets ($node->host is the
# socket directory, $node->port the port); PostgreSQL::Test::Cluster sets up
# trust authentication for the OS user running the tests.

package DtxCluster;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IO::Socket::UNIX;
use IPC::Run ();
use POSIX ();
use Time::HiRes ();

our @EXPORT = qw(
  new_coordinator
  new_participant
  new_sync_standby
  add_server
  create_accounts
  prepared_xacts
  balance
  quote_literal
  quote_ident
  create_ledger
  release_stall
  transfer_sql
  start_sql
  start_cmd
  sql_done
  finish_sql
  poll_until
  node_pids
  signal_node
  crash_node
  backend_pids
  ledger_rows
  gid_set
  wait_new_gid
  set_resolver_interval
  terminate_preparer
  make_in_doubt
  sq
  sq_send
  sq_wait
  start_proto_proxy
  proxy_ctl
  proxy_status
  stop_proto_proxy
  session_pid
  timed_finish
  update_sql
  background_session
);

# helpers of the core and of the resolver scenarios (see their sections)
my @CORE = qw(
  core_cluster core_ids coord_sql ledger_count local_count decisions
  remote_in_xact all_clean resolve crash wait_for session appname gid
  log_pos dtx_log_since transfer_killing_pa
);
my @RESOLVER = qw(
  resolver_cluster in_doubt_start make_in_doubt_transfer check_outcome
  wait_committed check_clean flush_wal backoff_of wait_prepares_done wait_up
);
our @EXPORT_OK = (@CORE, @RESOLVER);
our %EXPORT_TAGS = (core => [@CORE], resolver => [@RESOLVER]);

# SQL quoting for the statements built here.
sub quote_literal
{
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

sub quote_ident
{
	my ($s) = @_;
	return $s if $s =~ /^[a-z_][a-z0-9_]*$/;
	$s =~ s/"/""/g;
	return qq{"$s"};
}

# initdb runs started by start_initdb, by data directory
my %initdb_runs;

# Starts the initdb of each of @nodes (PostgreSQL::Test::Cluster objects not
# yet initialised) at once, in the background, with the command that
# PostgreSQL::Test::Cluster's init runs: a file's nodes are then initialised
# in parallel where there are idle cores.  init_node waits for the node's own.
sub start_initdb
{
	my (@nodes) = @_;
	for my $node (@nodes)
	{
		local %ENV = $node->_get_env();
		my ($out, $err) = ('', '');
		my $h = IPC::Run::start(
			[ 'initdb', '-D', $node->data_dir, '-A', 'trust', '-N' ],
			'>', \$out, '2>', \$err);
		$initdb_runs{ $node->data_dir } = { h => $h, err => \$err };
	}
	return;
}

# $node->init(%params), with the initdb that start_initdb started for it
# (if it did) instead of a new one.
sub init_node
{
	my ($node, %params) = @_;
	my $run = delete $initdb_runs{ $node->data_dir };
	return $node->init(%params) unless $run;
	die 'init_node: initdb options of a node whose initdb was started' if $params{extra};
	my $system_or_bail = \&PostgreSQL::Test::Utils::system_or_bail;
	no warnings 'redefine';
	local *PostgreSQL::Test::Utils::system_or_bail = sub {
		return $system_or_bail->(@_) unless $_[0] eq 'initdb';
		$run->{h}->finish
		  or Test::More::BAIL_OUT('initdb of ' . $node->name . ' failed: ' . ${ $run->{err} });
		return;
	};
	return $node->init(%params);
}

# A coordinator: pg_dtx in shared_preload_libraries, room for prepared
# transactions, started, with the extension created in database "postgres".
#   extra_conf       => "line\nline\n"   more postgresql.conf settings
#   dbname           => 'postgres'       where to CREATE EXTENSION
#   allows_streaming => 1                can have standbys and base backups
#   node             => $node            a node made but not initialised (start_initdb)
sub new_coordinator
{
	my ($name, %opts) = @_;
	my $node = $opts{node} // PostgreSQL::Test::Cluster->new($name);
	init_node($node, allows_streaming => $opts{allows_streaming} // 0);
	$node->append_conf('postgresql.conf',
		    "shared_preload_libraries = 'pg_dtx'\n"
		  . "max_prepared_transactions = 20\n"
		  . ($opts{extra_conf} // ''));
	$node->start;
	$node->safe_psql($opts{dbname} // 'postgres', 'CREATE EXTENSION pg_dtx');
	return $node;
}

# A participant: a plain server that can PREPARE TRANSACTION, started.
# Its tables are the test's business, except for the optional
#   accounts   => { id => balance, ... }   see create_accounts
#   extra_conf => "line\n"                 more postgresql.conf settings
#   node       => $node                    a node made but not initialised
sub new_participant
{
	my ($name, %opts) = @_;
	my $node = $opts{node} // PostgreSQL::Test::Cluster->new($name);
	init_node($node);
	$node->append_conf('postgresql.conf',
		"max_prepared_transactions = 20\n" . ($opts{extra_conf} // ''));
	$node->start;
	create_accounts($node, $opts{accounts}) if $opts{accounts};
	return $node;
}

# accounts(id int primary key, balance bigint not null) with the given rows
# ({ id => balance }).
sub create_accounts
{
	my ($node, $rows, %opts) = @_;
	my $sql =
	  'CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);';
	my @values = map { sprintf('(%d, %d)', $_, $rows->{$_}) }
	  sort { $a <=> $b } keys %{ $rows // {} };
	$sql .= 'INSERT INTO accounts VALUES ' . join(', ', @values) . ';'
	  if @values;
	$node->safe_psql($opts{dbname} // 'postgres', $sql);
	return;
}

# Declare $participant to $coord as the pg_dtx server $server_name, and map
# the current user to it.
#   dbname          => 'postgres'   participant database
#   user            => OS user      role used on the participant
#   coord_dbname    => 'postgres'   coordinator database to create them in
#   server_options  => { k => v }   more CREATE SERVER options
#   mapping_options => { k => v }   more CREATE USER MAPPING options
#   user_mapping    => 0            do not create the user mapping
sub add_server
{
	my ($coord, $server_name, $participant, %opts) = @_;
	my $user = $opts{user} // scalar(getpwuid($<));

	my %server = (
		host   => $participant->host,
		port   => $participant->port,
		dbname => $opts{dbname} // 'postgres',
		%{ $opts{server_options} // {} });
	my %mapping = (user => $user, %{ $opts{mapping_options} // {} });

	my $options = sub {
		my ($h) = @_;
		return join(', ',
			map { "$_ " . quote_literal($h->{$_}) } sort keys %$h);
	};

	my $ident = quote_ident($server_name);
	my $sql =
	    "CREATE SERVER $ident FOREIGN DATA WRAPPER dtx OPTIONS ("
	  . $options->(\%server) . ');';
	$sql .=
	    "CREATE USER MAPPING FOR CURRENT_USER SERVER $ident OPTIONS ("
	  . $options->(\%mapping) . ');'
	  unless defined $opts{user_mapping} && !$opts{user_mapping};

	$coord->safe_psql($opts{coord_dbname} // 'postgres', $sql);
	return;
}

# A synchronous standby of $primary called $name (from a fresh base
# backup), started and confirmed synchronous; returns it.
sub new_sync_standby
{
	my ($primary, $name) = @_;
	$primary->backup("${name}_base");
	my $standby = PostgreSQL::Test::Cluster->new($name);
	$standby->init_from_backup($primary, "${name}_base", has_streaming => 1);
	$standby->start;
	$primary->safe_psql('postgres',
		"ALTER SYSTEM SET synchronous_standby_names = '$name'; SELECT pg_reload_conf();"
	);
	poll_until($primary, 'postgres',
		"SELECT sync_state FROM pg_stat_replication WHERE application_name = '$name'",
		'sync')
	  // die "$name did not become a synchronous standby";
	return $standby;
}

# Number of transactions left prepared on $node (all databases).
sub prepared_xacts
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		'SELECT count(*) FROM pg_prepared_xacts');
}

# Balance of account $id on $node (undef/'' when there is no such row).
sub balance
{
	my ($node, $id, %opts) = @_;
	return $node->safe_psql($opts{dbname} // 'postgres',
		sprintf('SELECT balance FROM accounts WHERE id = %d', $id));
}

# --- crash tests: ledgers, background sessions, processes ---------------------

# ledger(tag text primary key, amount bigint, stall float8) on $node, with a
# deferred constraint trigger for rows whose stall is not 0: it waits
# abs(stall) seconds, or less if release_stall() released the row's tag
# meanwhile, then fails when stall < 0.  It runs at PREPARE TRANSACTION (or
# COMMIT): it holds (or makes fail) the participant's PREPARE of the
# transaction that inserted that row, and of that one only.
#   dbname => 'postgres'
sub create_ledger
{
	my ($node, %opts) = @_;
	$node->safe_psql(
		$opts{dbname} // 'postgres', q{
		CREATE TABLE ledger (tag text PRIMARY KEY, amount bigint NOT NULL,
		                     stall float8 NOT NULL DEFAULT 0);
		CREATE TABLE ledger_release (tag text PRIMARY KEY);
		CREATE FUNCTION ledger_stall() RETURNS trigger LANGUAGE plpgsql AS $$
		DECLARE
			deadline timestamptz :=
				clock_timestamp() + abs(NEW.stall) * interval '1 second';
		BEGIN
			WHILE clock_timestamp() < deadline
			  AND NOT EXISTS (SELECT FROM ledger_release r WHERE r.tag = NEW.tag)
			LOOP
				PERFORM pg_sleep(least(0.01,
					extract(epoch FROM deadline - clock_timestamp())));
			END LOOP;
			IF NEW.stall < 0 THEN
				RAISE EXCEPTION 'ledger row % refused at commit', NEW.tag;
			END IF;
			RETURN NULL;
		END $$;
		CREATE CONSTRAINT TRIGGER ledger_stall AFTER INSERT ON ledger
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
			WHEN (NEW.stall <> 0) EXECUTE FUNCTION ledger_stall();
	});
	return;
}

# Ends the stall of the ledger row $tag on $node (see create_ledger).
sub release_stall
{
	my ($node, $tag, %opts) = @_;
	$node->safe_psql($opts{dbname} // 'postgres',
		'INSERT INTO ledger_release VALUES (' . quote_literal($tag) . ')');
	return;
}

# The SQL of one distributed transfer tagged $tag: a ledger row on each
# pg_dtx server of @legs ([server, amount, stall seconds], ...), committed.
sub transfer_sql
{
	my ($tag, @legs) = @_;
	my $sql = "BEGIN;\n";
	for my $leg (@legs)
	{
		my ($server, $amount, $stall) = @$leg;
		$sql .= sprintf(
			"SELECT dtx.exec(%s, 'INSERT INTO ledger (tag, amount, stall) VALUES (\$1, \$2, \$3)', %s::text, %d::bigint, %s::float8);\n",
			quote_literal($server), quote_literal($tag), $amount,
			$stall // 0);
	}
	return $sql . "COMMIT;\n";
}

# Runs $sql with psql on $node in the background (a child process; output
# to files); returns a handle for sql_done / finish_sql.
#   dbname        => 'postgres'
#   on_error_stop => 1          0: run every statement whatever happens
sub start_sql
{
	my ($node, $sql, %opts) = @_;
	my $file = bg_file('sql');
	open(my $fh, '>', $file) or die "cannot write $file: $!";
	print $fh $sql;
	close $fh;
	return start_cmd(
		[
			'psql', '-XAtq', '-v',
			'ON_ERROR_STOP=' . ($opts{on_error_stop} // 1),
			'-d', $node->connstr($opts{dbname} // 'postgres'),
			'-f', $file
		]);
}

# A fresh file name in the test's temporary directory.
my $bg_count = 0;

sub bg_file
{
	my ($suffix) = @_;
	return sprintf('%s/bg_%d_%d.%s',
		$PostgreSQL::Test::Utils::tmp_check, $$, ++$bg_count, $suffix);
}

# Runs the command @$cmd in the background (stdin /dev/null, stdout and
# stderr to files); returns a handle for sql_done / finish_sql.
sub start_cmd
{
	my ($cmd) = @_;
	my %h = (out => bg_file('out'), err => bg_file('err'));
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>', $h{out});
		open(STDERR, '>', $h{err});
		exec(@$cmd) or POSIX::_exit(127);
	}
	$h{pid} = $pid;
	return \%h;
}

# Whether the background command $h has exited (without waiting).
sub sql_done
{
	my ($h) = @_;
	return 1 if defined $h->{rc};
	my $r = waitpid($h->{pid}, POSIX::WNOHANG());
	return 0 if $r == 0;
	$h->{rc} = $? >> 8;
	return 1;
}

# Waits (up to $timeout seconds, default 60) for the background command
# $h; returns ($rc, $stdout, $stderr); $rc is undef on timeout (the command
# is then killed).
sub finish_sql
{
	my ($h, $timeout) = @_;
	my $end = Time::HiRes::time() + ($timeout // 60);
	until (sql_done($h))
	{
		if (Time::HiRes::time() > $end)
		{
			kill('KILL', $h->{pid});
			waitpid($h->{pid}, 0);
			$h->{rc} = undef;
			last;
		}
		Time::HiRes::usleep(20_000);
	}
	my $slurp = sub {
		my ($f) = @_;
		return '' unless -e $f;
		my $s = PostgreSQL::Test::Utils::slurp_file($f);
		chomp $s;
		return $s;
	};
	return ($h->{rc}, $slurp->($h->{out}), $slurp->($h->{err}));
}

# Runs $query on $node until it returns $expected (default 't'), at most
# $timeout seconds (default 30); returns the seconds it took, undef if it
# never did (after a diag with the last output).
sub poll_until
{
	my ($node, $dbname, $query, $expected, $timeout) = @_;
	$expected //= 't';
	$timeout //= 30;
	my $start = Time::HiRes::time();
	my ($ret, $out, $err);
	while (1)
	{
		($ret, $out, $err) = $node->psql($dbname, $query);
		return Time::HiRes::time() - $start
		  if defined $out && $out eq $expected;
		last if Time::HiRes::time() - $start > $timeout;
		Time::HiRes::usleep(100_000);
	}
	Test::More::diag("poll_until timed out after ${timeout}s on "
		  . $node->name
		  . ": $query\nexpected: $expected\ngot: "
		  . ($out // '')
		  . "\nstderr: "
		  . ($err // ''));
	return undef;
}

# The postmaster of $node and all its descendants (pids), from /proc.
sub node_pids
{
	my ($node) = @_;
	my $pm = $node->{_pid};
	return () unless $pm;
	my %children;
	opendir(my $d, '/proc') or die "/proc: $!";
	for my $p (grep { /^\d+$/ } readdir($d))
	{
		open(my $fh, '<', "/proc/$p/stat") or next;
		my $stat = <$fh>;
		close $fh;
		next unless defined $stat && $stat =~ /\)\s+\S+\s+(\d+)/;
		push @{ $children{$1} }, $p;
	}
	closedir($d);
	my @pids = ($pm);
	my @todo = ($pm);
	while (@todo)
	{
		my $p = shift @todo;
		for my $c (@{ $children{$p} // [] })
		{
			push @pids, $c;
			push @todo, $c;
		}
	}
	return @pids;
}

# Sends $signal ('STOP', 'CONT', 'KILL', ...) to the postmaster of $node and
# to every process it started.
sub signal_node
{
	my ($node, $signal) = @_;
	my @pids = node_pids($node);
	kill($signal, @pids);
	return scalar @pids;
}

# Crashes the given nodes for real: every process of theirs is frozen
# (SIGSTOP: none of them can react to the death of another, such as a
# backend noticing the postmaster's), then killed (SIGKILL); waits until
# they are gone (reaped: a zombie postmaster still holds its lock file).
# $node->start brings a node back through crash recovery.
sub crash_node
{
	my (@nodes) = @_;
	my @pids = map { node_pids($_) } @nodes;
	kill('STOP', @pids);
	# a process forked meanwhile (a new backend) is frozen too
	my %seen = map { $_ => 1 } @pids;
	my @late = grep { !$seen{$_} } map { node_pids($_) } @nodes;
	kill('STOP', @late);
	push @pids, @late;
	kill('KILL', @pids);
	$_->kill9 for @nodes;
	my $end = Time::HiRes::time() + 30;
	while (Time::HiRes::time() < $end)
	{
		my @alive = grep { -e "/proc/$_" } @pids;
		last unless @alive;
		Time::HiRes::usleep(20_000);
	}
	return;
}

# Ends the participant session that prepared $gid on $node (the
# coordinator then cannot send it COMMIT PREPARED).
sub terminate_preparer
{
	my ($node, $gid) = @_;
	return $node->safe_psql('postgres',
		    'SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity '
		  . 'WHERE query LIKE '
		  . quote_literal("%PREPARE TRANSACTION '$gid'%"));
}

# The pids of $node's processes of backend type $type (pg_stat_activity).
sub backend_pids
{
	my ($node, $type) = @_;
	my $out = $node->safe_psql('postgres',
		'SELECT pid FROM pg_stat_activity WHERE backend_type = '
		  . quote_literal($type)
		  . ' ORDER BY pid');
	return grep { /^\d+$/ } split /\n/, $out;
}

# Rows of ledger on $node whose tag matches the LIKE pattern $pattern.
sub ledger_rows
{
	my ($node, $pattern, %opts) = @_;
	return $node->safe_psql($opts{dbname} // 'postgres',
		'SELECT count(*) FROM ledger WHERE tag LIKE '
		  . quote_literal($pattern));
}

# The global ids prepared on $node, as a hash (gid => 1).
sub gid_set
{
	my ($node) = @_;
	my %set = map { $_ => 1 } grep { $_ ne '' } split /\n/,
	  $node->safe_psql('postgres', 'SELECT gid FROM pg_prepared_xacts');
	return \%set;
}

# Waits until $node holds a prepared transaction that is not in $before
# (a gid_set); returns its global id (undef after $timeout seconds, 30).
sub wait_new_gid
{
	my ($node, $before, $timeout) = @_;
	my $end = Time::HiRes::time() + ($timeout // 30);
	while (Time::HiRes::time() < $end)
	{
		my ($new) = grep { !$before->{$_} } keys %{ gid_set($node) };
		return $new if defined $new;
		Time::HiRes::usleep(50_000);
	}
	Test::More::diag('no new prepared transaction on ' . $node->name);
	return undef;
}

# dtx.resolver_interval of coordinator $c, through ALTER SYSTEM (kept
# across restarts) and a reload.
sub set_resolver_interval
{
	my ($c, $value) = @_;
	$c->safe_psql('postgres',
		"ALTER SYSTEM SET dtx.resolver_interval = '$value'; SELECT pg_reload_conf();"
	);
	return;
}

# A transaction left in doubt, made by hand in database $dbname of $coord: a
# local transaction that committed, its commit decision in dtx.decisions
# naming server $server (as used by the current user), and on $participant
# a prepared transaction under the global id pg_dtx gives it (without
# nonce), which inserts $tag into table in_doubt_probe(tag text) of
# database $opts{participant_dbname} ('postgres'; the table is created if
# missing).  Returns the global id; the resolver commits it.
sub make_in_doubt
{
	my ($coord, $dbname, $server, $participant, $tag, %opts) = @_;
	my $pdb = $opts{participant_dbname} // 'postgres';

	# As pg_dtx itself does: the decision is inserted by a transaction that
	# is still running while the participant prepares, so that no resolver
	# pass in between takes the decision for a finished one (no prepared
	# transaction yet) or the prepared transaction for an undecided one.
	my $s = $coord->background_psql($dbname);
	$s->query_safe('BEGIN');
	my $gid = $s->query_safe(
		sprintf(
			q{INSERT INTO dtx.decisions (xid, coordinator_id, servers, userids, created_at)
			  SELECT pg_current_xact_id(), dtx.coordinator_id(), ARRAY[s.oid], ARRAY[u.oid], now()
			    FROM pg_foreign_server s, pg_roles u
			   WHERE s.srvname = %1$s AND u.rolname = current_user
			  RETURNING dtx.global_id(coordinator_id, xid, servers[1], userids[1], 1)},
			quote_literal($server)));
	die "no server $server in $dbname" unless $gid;
	$participant->safe_psql($pdb,
		    'CREATE TABLE IF NOT EXISTS in_doubt_probe (tag text);'
		  . 'BEGIN; INSERT INTO in_doubt_probe VALUES ('
		  . quote_literal($tag)
		  . '); PREPARE TRANSACTION '
		  . quote_literal($gid));
	$s->query_safe('COMMIT');
	$s->quit;
	return $gid;
}

# Runs $sql in the background psql session $s; returns (stdout, stderr)
# of that SQL alone.
sub sq
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	my ($out) = $s->query($sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	return ($out, $err);
}

# Sends $sql to the background psql session $s (a
# PostgreSQL::Test::BackgroundPsql) without waiting for it; sq_wait reads
# its output once it has finished.
sub sq_send
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	$s->{stdout} = '';
	$s->{stdin} .= "$sql\n";
	my $end = Time::HiRes::time() + 10;
	while (length($s->{stdin}) && Time::HiRes::time() < $end)
	{
		$s->{run}->pump_nb;
		Time::HiRes::usleep(10_000);
	}
	die "could not send to psql" if length($s->{stdin});
	return;
}

# Output and errors of what was sent with sq_send, once it has finished.
sub sq_wait
{
	my ($s) = @_;
	my $banner = 'sq_wait ' . Time::HiRes::time();
	my ($out) = $s->query("SELECT '$banner'");
	my $err = $s->{stderr};
	$s->{stderr} = '';
	$out =~ s/\n?\Q$banner\E$//;
	return ($out, $err);
}

# The pid of the backend of $node whose application_name is $appname and
# whose state and query match the SQL condition $cond (default: any), once
# there is one (at most $timeout seconds, 30); undef otherwise.
sub session_pid
{
	my ($node, $appname, $cond, $timeout) = @_;
	my $end = Time::HiRes::time() + ($timeout // 30);
	my $q =
	    'SELECT pid FROM pg_stat_activity WHERE application_name = '
	  . quote_literal($appname)
	  . ($cond ? " AND ($cond)" : '');
	while (Time::HiRes::time() < $end)
	{
		my ($ret, $out) = $node->psql('postgres', $q);
		return $out if defined $out && $out =~ /^\d+$/;
		Time::HiRes::usleep(50_000);
	}
	Test::More::diag('no backend ' . $appname . ' on ' . $node->name);
	return undef;
}

# finish_sql($h, $timeout) and the seconds it took from $t0 (a
# Time::HiRes::time): ($rc, $stdout, $stderr, $seconds).
sub timed_finish
{
	my ($h, $t0, $timeout) = @_;
	my @r = finish_sql($h, $timeout);
	return (@r, Time::HiRes::time() - $t0);
}

# A psql session (PostgreSQL::Test::BackgroundPsql) on $node, database
# postgres, that survives errors; {pid} is its backend's pid.
#   verbose => 1                  \set VERBOSITY verbose
#   set     => [ 'name = value' ]  SET first
#   begin   => 1                  then opens a transaction
sub background_session
{
	my ($node, %o) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->{pid} = $s->query_safe('SELECT pg_backend_pid()');
	$s->query_safe('\set VERBOSITY verbose') if $o{verbose};
	$s->query_safe("SET $_") for @{ $o{set} // [] };
	$s->query_safe('BEGIN') if $o{begin};
	return $s;
}

# The statement that adds 1 to the balance of account $id (default 1) on
# pg_dtx server $server (the deadlock tests).
sub update_sql
{
	my ($server, $id) = @_;
	$id //= 1;
	return "SELECT dtx.exec('$server', 'UPDATE accounts SET balance = balance + 1 WHERE id = $id')";
}

# --- protocol faults: test/faults/proto_proxy.py ------------------------------

# The proxies started by this test, stopped at its end.
my %proto_proxies;

END
{
	for my $pid (keys %proto_proxies)
	{
		kill('TERM', $pid);
		waitpid($pid, 0);
	}
}

# Starts test/faults/proto_proxy.py on a free loopback port in front of
# $node's Unix socket; returns a handle for proxy_ctl / stop_proto_proxy
# ({port}: where to connect, {control}: its control socket, {log}).  It is
# stopped at the end of the test at the latest.
sub start_proto_proxy
{
	my ($node) = @_;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $dir = $PostgreSQL::Test::Utils::tmp_check;
	my $p = {
		port    => $port,
		control => "$dir/proto_proxy_$port.ctl",
		log     => "$dir/proto_proxy_$port.log",
	};
	my $script = ($ENV{TESTDIR} // '.') . '/test/faults/proto_proxy.py';
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>>', $p->{log});
		open(STDERR, '>>', $p->{log});
		exec('python3', $script, '--listen', "127.0.0.1:$port",
			'--target', $node->host . '/.s.PGSQL.' . $node->port,
			'--control', $p->{control})
		  or POSIX::_exit(127);
	}
	$p->{pid} = $pid;
	$proto_proxies{$pid} = 1;
	my $end = Time::HiRes::time() + 30;
	until (-S $p->{control} && IO::Socket::UNIX->new(Peer => $p->{control}))
	{
		die "proto_proxy did not start (see $p->{log})"
		  if Time::HiRes::time() > $end
		  || waitpid($pid, POSIX::WNOHANG()) != 0;
		Time::HiRes::usleep(20_000);
	}
	return $p;
}

# Sends one request line to the proxy $p; returns its answer (dies on an
# error answer).  See proto_proxy.py for the requests (rule, clear,
# release, drop, status).
sub proxy_ctl
{
	my ($p, $line) = @_;
	my $s = IO::Socket::UNIX->new(Peer => $p->{control})
	  or die "cannot reach proto_proxy at $p->{control}: $!";
	print $s "$line\n";
	$s->flush;
	my $answer = <$s>;
	close $s;
	die "proto_proxy: no answer to '$line'" unless defined $answer;
	chomp $answer;
	die "proto_proxy: $answer (request: $line)" if $answer =~ /^error/;
	return $answer;
}

# The proxy's status as a hash: held, conns, fired, matched.
sub proxy_status
{
	my ($p) = @_;
	my %st = map { split /=/, $_, 2 } split ' ', proxy_ctl($p, 'status');
	return \%st;
}

# Stops the proxy $p.
sub stop_proto_proxy
{
	my ($p) = @_;
	kill('TERM', $p->{pid});
	waitpid($p->{pid}, 0);
	delete $proto_proxies{ $p->{pid} };
	return;
}

# --- the core scenarios (test/t/03x_core_*.pl) ---------------------------------
#
#   use DtxCluster qw(:DEFAULT :core);
#   my %n = core_cluster(qw(pa pb));   # coord + the participants named
#   my ($coord, $pa, $pb) = @n{qw(coord pa pb)};
#
# core_cluster builds the nodes of the core scenarios: a coordinator "coord"
# (dtx.resolver_interval = 0, a local_log table; streaming => 1 lets it have
# a standby) and any of the participants pa and pb (accounts, ledger whose
# rows with stall > 0 make PREPARE sleep, dcheck: a unique constraint
# checked at PREPARE, ledger_note(): a SELECT that writes; log_statement =
# all and restart_after_crash = on) and pc (max_prepared_transactions = 0),
# declared as pg_dtx servers of the same names.  The helpers of the :core tag
# then work on that coordinator and those participants.

my %core;

sub core_cluster
{
	my (@names) = @_;
	my %opts = ref $names[-1] eq 'HASH' ? %{ pop @names } : ();
	my $coord = PostgreSQL::Test::Cluster->new('coord');
	my %made = map { $_ => PostgreSQL::Test::Cluster->new($_) } @names;
	start_initdb($coord, values %made);
	init_node($coord, allows_streaming => $opts{streaming} ? 1 : 0);
	$coord->append_conf(
		'postgresql.conf', q{
shared_preload_libraries = 'pg_dtx'
max_prepared_transactions = 20
dtx.resolver_interval = 0
});
	$coord->start;
	$coord->safe_psql('postgres',
		'CREATE EXTENSION pg_dtx; CREATE TABLE local_log (note text PRIMARY KEY);'
	);
	my %accounts = (pa => { 1 => 1000, 2 => 500 }, pb => { 1 => 300 }, pc => { 1 => 50 });
	my $pconf = "log_statement = 'all'\nrestart_after_crash = on\n";
	my %node = (coord => $coord);
	for my $name (@names)
	{
		my $p = new_participant($name,
			node => $made{$name},
			accounts => $accounts{$name},
			extra_conf => $name eq 'pc' ? "max_prepared_transactions = 0\n" : $pconf);
		$node{$name} = $p;
		next if $name eq 'pc';
		$p->safe_psql(
			'postgres', q{
		CREATE TABLE ledger (tag text PRIMARY KEY, amount bigint NOT NULL,
		                     stall float8 NOT NULL DEFAULT 0);
		CREATE FUNCTION ledger_stall() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM pg_sleep(NEW.stall);
			RETURN NULL;
		END $$;
		CREATE CONSTRAINT TRIGGER ledger_stall AFTER INSERT ON ledger
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
			WHEN (NEW.stall > 0) EXECUTE FUNCTION ledger_stall();
		CREATE TABLE dcheck (k int UNIQUE DEFERRABLE INITIALLY DEFERRED);
		CREATE FUNCTION ledger_note(t text) RETURNS text LANGUAGE sql AS
			$$ INSERT INTO ledger (tag, amount) VALUES (t, 0) RETURNING tag $$;
	});
	}
	add_server($coord, $_, $node{$_}) for @names;

	%core = (
		coord => $coord,
		names => [@names],
		coordid => $coord->safe_psql('postgres', 'SELECT dtx.coordinator_id()'),
		dboid => $coord->safe_psql('postgres',
			"SELECT oid FROM pg_database WHERE datname = 'postgres'"),
		uid => $coord->safe_psql('postgres',
			'SELECT oid FROM pg_roles WHERE rolname = current_user'),
		node => \%node);
	$core{srvoid}{$_} = $coord->safe_psql('postgres',
		"SELECT oid FROM pg_foreign_server WHERE srvname = '$_'")
	  for @names;
	return %node;
}

# coordinator_id, database oid, user oid and server oid (of $server) of the
# core cluster, as they appear in global ids.
sub core_ids
{
	my ($server) = @_;
	return ($core{coordid}, $core{dboid}, $core{uid},
		defined $server ? $core{srvoid}{$server} : undef);
}

# SQL on the coordinator; returns (rc, stdout, stderr) and never dies.
sub coord_sql
{
	my ($sql, %opts) = @_;
	my ($rc, $out, $err) = $core{coord}->psql('postgres', $sql, %opts);
	return ($rc, $out, $err);
}

# Rows of ledger tagged $tag on $n.
sub ledger_count
{
	my ($n, $tag) = @_;
	return $n->safe_psql('postgres',
		"SELECT count(*) FROM ledger WHERE tag = '$tag'");
}

# Rows of the coordinator's local_log noted $note.
sub local_count
{
	my ($note) = @_;
	return $core{coord}->safe_psql('postgres',
		"SELECT count(*) FROM local_log WHERE note = '$note'");
}

# Rows of dtx.decisions on the coordinator.
sub decisions
{
	return $core{coord}->safe_psql('postgres', 'SELECT count(*) FROM dtx.decisions');
}

# pg_dtx sessions of $n in a transaction (idle in transaction, aborted...)
sub remote_in_xact
{
	my ($n) = @_;
	return $n->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pg\\_dtx:%' AND state LIKE 'idle in transaction%'"
	);
}

# Nothing prepared on any participant of the core cluster, no remote
# session left in a transaction on pa and pb.
sub all_clean
{
	my ($label) = @_;
	my @p = map { $core{node}{$_} } @{ $core{names} };
	Test::More::is(prepared_xacts($_), 0, "$label: nothing prepared on " . $_->name)
	  for @p;
	Test::More::is(remote_in_xact($_), 0,
		"$label: no pg_dtx session left in a transaction on " . $_->name)
	  for grep { $_->name ne 'pc' } @p;
	return;
}

# One resolver pass now; its rows as "server|global_id|action|outcome".
sub resolve
{
	return $core{coord}->safe_psql('postgres',
		'SELECT server, global_id, action, outcome FROM dtx.resolve() ORDER BY 1, 2'
	);
}

# Crash $n: SIGKILL to its postmaster and every process it started, at once;
# waits until they are gone (a zombie postmaster still counts: it would
# make the next start refuse the lock file).  $n->start recovers it.
sub crash
{
	my ($n) = @_;
	my @pids = node_pids($n);
	kill('KILL', @pids);
	$n->kill9;
	my $end = Time::HiRes::time() + 30;
	while (Time::HiRes::time() < $end && grep { -e "/proc/$_" } @pids)
	{
		Time::HiRes::usleep(50_000);
	}
	return;
}

# Waits until $sql on $n returns $expected (default 't'), at most $timeout
# seconds (default 30); true when it did.
sub wait_for
{
	my ($n, $sql, $expected, $timeout) = @_;
	$expected //= 't';
	my $end = Time::HiRes::time() + ($timeout // 30);
	my $out;
	while (Time::HiRes::time() < $end)
	{
		(undef, $out) = $n->psql('postgres', $sql);
		return 1 if defined $out && $out eq $expected;
		Time::HiRes::usleep(50_000);
	}
	Test::More::diag("timed out on " . $n->name . ": $sql\nexpected $expected, got "
		  . ($out // 'nothing'));
	return 0;
}

# A psql session on the coordinator that survives errors; {pid} is its
# backend's pid.
sub session
{
	return background_session($core{coord});
}

# application_name of the remote sessions of coordinator backend $pid
sub appname
{
	my ($pid) = @_;
	return "pg_dtx:$core{coordid}:$core{dboid}:$pid";
}

# The global id of participant $n (from 1) on $server of local transaction
# $xid, up to its nonce (random, chosen at commit): a prefix, "..._<n>_".
sub gid
{
	my ($xid, $server, $n) = @_;
	return "dtx_$core{coordid}_$core{dboid}_${xid}_$core{srvoid}{$server}_$core{uid}_${n}_";
}

# Log position of $n now.
sub log_pos
{
	my ($n) = @_;
	return -s $n->logfile;
}

# The log of $n written by pg_dtx sessions since $pos (see log_pos).
sub dtx_log_since
{
	my ($n, $pos) = @_;
	my $log = PostgreSQL::Test::Utils::slurp_file($n->logfile, $pos);
	return join("\n", grep { /\bpg_dtx:/ } split(/\n/, $log));
}

# Runs a transfer pa -> pb tagged $tag whose PREPARE stalls $stall seconds
# on pb; once pa has prepared, $kill->() takes pa down.  Returns the
# client's stderr, whether COMMIT succeeded and the local xid.
sub transfer_killing_pa
{
	my ($tag, $stall, $kill) = @_;
	my ($coord, $pa) = ($core{coord}, $core{node}{pa});
	my $s = session();
	my ($out, $err) = sq(
		$s, qq{
		BEGIN;
		SELECT dtx.exec('pa', 'INSERT INTO ledger (tag, amount) VALUES (\$1, \$2)', '$tag', -10);
		SELECT dtx.exec('pb', 'INSERT INTO ledger (tag, amount, stall) VALUES (\$1, \$2, \$3)', '$tag', 10, $stall);
		INSERT INTO local_log VALUES ('$tag');
		SELECT 'xid:' || pg_current_xact_id();
	});
	Test::More::is($err, '', "$tag: statements ran");
	my ($xid) = $out =~ /xid:(\d+)/;
	sq_send($s, 'COMMIT;');
	Test::More::ok( wait_for(
			$pa,
			"SELECT count(*) = 1 FROM pg_prepared_xacts WHERE starts_with(gid, '"
			  . gid($xid, 'pa', 1) . "')"),
		"$tag: pa prepared while pb's PREPARE stalls");
	# let pa's answer reach the coordinator
	Time::HiRes::usleep(300_000);
	Test::More::is( $coord->safe_psql('postgres',
			"SELECT state || ' ' || query FROM pg_stat_activity WHERE pid = $s->{pid}"),
		'active COMMIT;',
		"$tag: COMMIT still waiting on pb when pa goes down");
	$kill->();
	my $t = Time::HiRes::time();
	($out, $err) = sq_wait($s);
	Test::More::diag(sprintf("$tag: COMMIT returned %.1fs after pa went down",
			Time::HiRes::time() - $t));
	my $committed = $err !~ /ERROR/;
	$s->quit;
	return ($err, $committed, $xid);
}

# --- the resolver scenarios (test/t/05x_resolver_*.pl) ---------------------------
#
#   use DtxCluster qw(:DEFAULT :resolver);
#   my %n = resolver_cluster(qw(pa pb pc));
#   my ($coord, $pa, $pb) = @n{qw(coord pa pb)};
#
# resolver_cluster builds the nodes of the resolver scenarios: a coordinator
# "coord" (restart_after_crash on, so that a killed resolver process
# crash-restarts it; streaming => 1 lets it have a standby; background
# resolver every second) and the participants named (pa_wal => 1: pa can
# stream WAL, so that synchronous_standby_names naming nobody makes its
# commits wait), each with a ledger (create_ledger, also on the coordinator)
# and declared as the pg_dtx server of its name; a first transfer records
# the servers' identities and warms everything up, and its decision is gone
# before the scenario starts.  The helpers of the
# :resolver tag then work on that coordinator and those participants.  A held
# PREPARE waits until release_stall() or $RESOLVER_HOLD seconds.

our $RESOLVER_HOLD = 60;
my %res;

sub resolver_cluster
{
	my (@names) = @_;
	my %opts = ref $names[-1] eq 'HASH' ? %{ pop @names } : ();
	my $coord = PostgreSQL::Test::Cluster->new('coord');
	my %made = map { $_ => PostgreSQL::Test::Cluster->new($_) } @names;
	start_initdb($coord, values %made);
	init_node($coord, allows_streaming => $opts{streaming} ? 1 : 0);
	$coord->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'pg_dtx'
max_prepared_transactions = 20
max_connections = 30
restart_after_crash = on
});
	$coord->start;
	$coord->safe_psql('postgres', 'CREATE EXTENSION pg_dtx');
	set_resolver_interval($coord, '1s');
	my %node = (coord => $coord);
	for my $name (@names)
	{
		$node{$name} = new_participant($name,
			node => $made{$name},
			extra_conf => ($name eq 'pa' && $opts{pa_wal})
			? "wal_level = replica\nmax_wal_senders = 2\n"
			: '');
	}
	create_ledger($node{$_}) for ('coord', @names);
	add_server($coord, $_, $node{$_}) for @names;
	%res = (coord => $coord, names => [@names], node => \%node);
	$coord->safe_psql('postgres',
		transfer_sql('warmup', map { [ $_, $_ eq 'pa' ? -1 : $_ eq 'pb' ? 1 : 0 ] } @names));
	# the scenario starts with no decision (the warm-up's goes at a pass)
	$coord->safe_psql('postgres', 'SELECT count(*) FROM dtx.resolve()');
	die 'the warm-up transfer left a decision behind'
	  unless defined poll_until($coord, 'postgres',
		'SELECT count(*) FROM dtx.decisions', '0', 30);
	return %node;
}

# Starts a transfer tagged $o{tag} on coordinator $o{coord} (default coord;
# database $o{dbname}) whose $o{victim} leg is prepared at once while the
# PREPARE of its $o{staller} leg is held; waits until the victim prepared,
# applies $o{action} to it (terminate: end the session that prepared;
# crash: SIGKILL the whole participant; stop: clean shutdown; sigstop:
# freeze it), releases the staller, and returns the background session and
# the victim's global id.
sub in_doubt_start
{
	my (%o) = @_;
	my $c = $o{coord} // $res{coord};
	my $victim = $res{node}{ $o{victim} } // $o{victim_node};
	my $before = gid_set($victim);
	my $h = start_sql(
		$c,
		transfer_sql(
			$o{tag},
			[ $o{staller}, -1, $RESOLVER_HOLD ],
			[ $o{victim}, 1 ]),
		dbname => $o{dbname} // 'postgres');
	my $gid = wait_new_gid($victim, $before);
	my $action = $o{action} // 'terminate';
	if ($action eq 'terminate')
	{
		terminate_preparer($victim, $gid);
	}
	elsif ($action eq 'crash')
	{
		crash_node($victim);
	}
	elsif ($action eq 'stop')
	{
		$victim->stop('fast');
	}
	elsif ($action eq 'sigstop')
	{
		signal_node($victim, 'STOP');
	}
	release_stall($res{node}{ $o{staller} }, $o{tag});
	return ($h, $gid);
}

# in_doubt_start, then waits for the client: its COMMIT must succeed with
# the WARNING that the victim did not confirm.  Returns the global id.
sub make_in_doubt_transfer
{
	my (%o) = @_;
	my ($h, $gid) = in_doubt_start(%o);
	my ($rc, $out, $err) = finish_sql($h);
	Test::More::is($rc, 0, "$o{tag}: the client's COMMIT succeeds");
	Test::More::like(
		$err,
		qr/committed, but server "$o{victim}" has not confirmed COMMIT PREPARED/,
		"$o{tag}: with a WARNING naming $o{victim}");
	return $gid;
}

# The rows of transfer $tag on each of @names: all 1 (committed) or all 0.
sub check_outcome
{
	my ($tag, $want, @names) = @_;
	for my $n (@names)
	{
		Test::More::is(ledger_rows($res{node}{$n}, $tag), $want,
			"$tag: " . ($want ? 'committed' : 'rolled back') . " on $n");
	}
	return;
}

# Waits until transfer $tag is visible (committed) on every participant in
# @names; returns the seconds it took (undef: never).
sub wait_committed
{
	my ($tag, $timeout, @names) = @_;
	my $start = Time::HiRes::time();
	for my $n (@names)
	{
		my $left = $timeout - (Time::HiRes::time() - $start);
		return undef
		  unless defined poll_until(
			$res{node}{$n}, 'postgres',
			'SELECT count(*) FROM ledger WHERE tag = ' . quote_literal($tag),
			'1', $left > 1 ? $left : 1);
	}
	return Time::HiRes::time() - $start;
}

# The end of every scenario: nothing prepared on any participant, and the
# coordinators' decision tables empty (after a pass when asked: decisions
# finished by their own backend go at the next pass).
sub check_clean
{
	my ($label, %o) = @_;
	for my $n (@{ $res{names} })
	{
		Test::More::ok( defined poll_until(
				$res{node}{$n}, 'postgres',
				'SELECT count(*) FROM pg_prepared_xacts', '0', 20),
			"$label: nothing prepared on $n");
	}
	for my $c (@{ $o{coords} // [ $res{coord} ] })
	{
		for my $db (@{ $o{dbs} // ['postgres'] })
		{
			$c->safe_psql($db, 'SELECT count(*) FROM dtx.resolve()')
			  if $o{resolve};
			Test::More::ok( defined poll_until(
					$c, $db, 'SELECT count(*) FROM dtx.decisions', '0', 20),
				"$label: no decision left on " . $c->name . " ($db)");
		}
	}
	return;
}

# Another transaction that writes commits on coordinator $c, which flushes
# its WAL so far: the transaction id of a transaction in flight is then
# durable, as on any busy coordinator.
sub flush_wal
{
	my ($c) = @_;
	$c->safe_psql('postgres',
		"INSERT INTO ledger VALUES ('wal-flush-' || pg_current_xact_id(), 0)");
	return;
}

# "failures|seconds until the next attempt" of the resolver's backoff for
# server $name on coord ("0|0" when there is none).
sub backoff_of
{
	my ($name) = @_;
	return $res{coord}->safe_psql(
		'postgres', qq{
		SELECT coalesce(max(failures), 0) || '|' ||
		       coalesce(max(greatest(0, extract(epoch FROM next_attempt - now()))), 0)
		  FROM dtx.resolver_status s JOIN pg_foreign_server f ON f.oid = s.server_id
		 WHERE f.srvname = '$name'});
}

# Waits until no session of $node is running PREPARE TRANSACTION any more
# (a released PREPARE whose coordinator died has finished).
sub wait_prepares_done
{
	my ($node) = @_;
	return poll_until(
		$node, 'postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%PREPARE TRANSACTION%' AND pid <> pg_backend_pid()},
		'0', 30);
}

# Waits until $c accepts connections again (after a crash-restart).
sub wait_up
{
	my ($c, $timeout) = @_;
	return defined poll_until($c, 'postgres', 'SELECT 1', '1', $timeout // 30);
}

1;
