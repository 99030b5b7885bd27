# FailureMatrix.pm - the cells of the failure matrix (test/t/02x_failure_matrix_*.pl).
#
# One coordinator and two participants: "a" reached directly, "b" through
# test/faults/proto_proxy.py, which acts on one command of the protocol on
# b's connections (see test/README.md for the table of cells).  The
# coordinator's background resolver is off (dtx.resolver_interval = 0): each
# cell resolves with dtx.resolve(), so that nothing races the checks.
#
#   my $m = FailureMatrix::setup();
#   FailureMatrix::run_cell($m, { name => 'prepare_cut', workload => 'transfer',
#       cmd => 'prepare', action => 'cut', expect => 'error', final => 'none' });
#   FailureMatrix::run_resolver_cell($m, { ... });
#
# A cell: a client runs a workload (a ledger row per writing participant,
# tagged with the cell's name) while the proxy acts on the command; the
# client's answer is classified as
#   committed   COMMIT succeeded without a warning
#   warning     COMMIT succeeded with "has not confirmed COMMIT PREPARED"
#   error       an ERROR other than 08007: the transaction must not be applied
#   unknown     08007, or the coordinator's connection lost (its crash)
# Then everything in flight is released, the participants' pg_dtx sessions
# are waited for, dtx.resolve() runs until nothing is prepared on either
# participant and dtx.decisions is empty, and the checks are: the answer is
# the one expected, the rows are on every writer or on none ("atomic"), the
# final state is the one expected and agrees with the answer (committed and
# warning: applied; error: none), nothing is left prepared, no decision is
# left.

package FailureMatrix;

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use DtxCluster;

# What each workload runs on the participants, and which of them write.
#   transfer  a ledger row on a and on b: two-phase commit
#   refused   the same, a's PREPARE refused by its ledger trigger: the
#             coordinator rolls b back (ROLLBACK PREPARED)
#   reader_b  a row on a, a read on b: a commits in one phase, b (a reader)
#             gets the read-only probe and COMMIT
#   writer_b  a read on a, a row on b: b commits in one phase
my %WORKLOADS = (
	transfer => { writers => [qw(a b)], legs => [ [ 'a', 'exec', 0 ], [ 'b', 'exec', 0 ] ] },
	refused  => { writers => [qw(a b)], legs => [ [ 'a', 'exec', -0.01 ], [ 'b', 'exec', 0 ] ] },
	reader_b => { writers => [qw(a)], legs => [ [ 'a', 'exec', 0 ], [ 'b', 'query' ] ] },
	writer_b => { writers => [qw(b)], legs => [ [ 'a', 'query' ], [ 'b', 'exec', 0 ] ] },
);

# Starts the coordinator, the participants and the proxy; returns the
# matrix's handle.
sub setup
{
	my $coord = new_coordinator('coord',
		extra_conf => "dtx.resolver_interval = 0\nlog_min_messages = warning\n");
	my $a = new_participant('part_a');
	my $b = new_participant('part_b');
	create_ledger($_) for ($a, $b);
	my $proxy = start_proto_proxy($b);
	add_server($coord, 'a', $a);
	add_server($coord, 'b', $b,
		server_options =>
		  { host => '127.0.0.1', port => $proxy->{port}, sslmode => 'disable' });
	# the first use of a server records its identity locally: a local write
	# that would turn the first cell's one-phase commit into a two-phase one
	$coord->safe_psql('postgres',
		"SELECT dtx.exec('a', 'SET LOCAL work_mem = ''4MB'''), dtx.exec('b', 'SET LOCAL work_mem = ''4MB''')");
	return { coord => $coord, a => $a, b => $b, proxy => $proxy, rows => [] };
}

# The SQL of $workload for tag $tag, with the settings $settings first.
sub workload_sql
{
	my ($workload, $tag, $settings) = @_;
	my $sql = "\\set VERBOSITY verbose\n" . ($settings // '') . "BEGIN;\n";
	for my $leg (@{ $WORKLOADS{$workload}{legs} })
	{
		my ($server, $kind, $stall) = @$leg;
		if ($kind eq 'exec')
		{
			$sql .= sprintf(
				"SELECT dtx.exec('%s', 'INSERT INTO ledger (tag, amount, stall) VALUES (\$1, 1, \$2)', %s::text, %s::float8);\n",
				$server, quote_literal($tag), $stall);
		}
		else
		{
			$sql .= "SELECT * FROM dtx.query('$server', 'SELECT count(*) FROM ledger') AS t(n bigint);\n";
		}
	}
	return $sql . "COMMIT;\n";
}

# The class of a psql run's answer (see the header), and its first ERROR or
# WARNING line.
sub classify
{
	my ($rc, $err) = @_;
	my ($line) = $err =~ /((?:ERROR|FATAL):.*)/;
	($line) = $err =~ /(WARNING:.*)/ unless defined $line;
	$line //= '';
	$line =~ s/\s+/ /g;
	# psql's own connection lost (the coordinator crashed), not an error
	# of pg_dtx that quotes a participant's lost connection
	return ('unknown', 'connection to the coordinator lost')
	  if $err =~ /connection to server was lost|^psql:\S+: server closed the connection/m;
	return ('unknown', $line) if $err =~ /ERROR:\s+08007/;
	return ('error', $line) if !defined $rc || $rc != 0 || $err =~ /ERROR:/;
	return ('warning', $line) if $err =~ /has not confirmed COMMIT PREPARED/;
	return ('committed', $line);
}

# Waits until the proxy holds something (a rule with hold or hold_answer
# fired); false after 30 s.
sub wait_held
{
	my ($m) = @_;
	my $end = time() + 30;
	while (time() < $end)
	{
		return 1 if proxy_status($m->{proxy})->{held} > 0;
		usleep(20_000);
	}
	return 0;
}

# Crashes $who ('participant': b, 'coordinator') with an immediate stop,
# does what the proxy should do with what it holds ($then: 'release' or
# 'drop'), and restarts the server.
sub crash_at_point
{
	my ($m, $who, $then) = @_;
	my $node = $who eq 'participant' ? $m->{b} : $m->{coord};
	$node->stop('immediate');
	proxy_ctl($m->{proxy}, $then);
	$node->start;
	return;
}

# After a cell: nothing held, no pg_dtx session left on a participant (a
# command released late has been run), then dtx.resolve() until nothing is
# prepared and no decision is left.  Returns the number of passes, undef if
# that never happened.
sub settle
{
	my ($m) = @_;
	proxy_ctl($m->{proxy}, 'clear');
	proxy_ctl($m->{proxy}, 'drop');
	for my $node ($m->{a}, $m->{b})
	{
		poll_until($node, 'postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pg\\_dtx%'",
			'0', 30);
	}
	for my $pass (0 .. 30)
	{
		my $left = prepared_xacts($m->{a}) + prepared_xacts($m->{b})
		  + $m->{coord}->safe_psql('postgres', 'SELECT count(*) FROM dtx.decisions');
		return $pass if $left == 0;
		$m->{coord}->psql('postgres', 'SELECT count(*) FROM dtx.resolve()');
		usleep(100_000);
	}
	return undef;
}

# The checks after resolution of the transaction tagged $tag of $workload:
# atomic, the expected final state, agreeing with the client's $answer;
# nothing prepared, no decision.  Adds a row to the matrix's table.
sub check_final
{
	my ($m, $c, $answer, $line, $passes) = @_;
	my $name = $c->{name};
	my @writers = @{ $WORKLOADS{ $c->{workload} }{writers} };
	my %rows = map { $_ => ledger_rows($m->{$_}, $name) } @writers;
	my @distinct = keys %{ { map { $_ => 1 } values %rows } };
	my $final = @distinct == 1 ? ($distinct[0] ? 'applied' : 'none') : 'HALF';

	ok(defined $passes, "$name: resolved (nothing prepared, no decision) after "
		  . ($passes // 'too many') . ' pass(es)');
	is(prepared_xacts($m->{a}) + prepared_xacts($m->{b}), 0, "$name: nothing left prepared");
	is($m->{coord}->safe_psql('postgres', 'SELECT count(*) FROM dtx.decisions'),
		0, "$name: no decision left");
	isnt($final, 'HALF', "$name: atomic ("
		  . join(', ', map { "$_: $rows{$_}" } @writers) . ')');
	is($final, $c->{final}, "$name: final state");
	if ($answer eq 'committed' || $answer eq 'warning')
	{
		is($final, 'applied', "$name: a successful COMMIT is applied");
	}
	elsif ($answer eq 'error')
	{
		is($final, 'none', "$name: a failed transaction is not applied");
	}
	push @{ $m->{rows} }, [ $name, $answer, $final, $line ];
	note("cell $name: answer $answer, final $final" . ($line ne '' ? " ($line)" : ''));
	return;
}

# Runs one cell of a client transaction.  $c:
#   name      the cell's name (also the ledger tag)
#   workload  transfer, refused, reader_b, writer_b
#   cmd       the proxy's command name; action: cut, hold, drop_answer, hold_answer
#   then      for hold / hold_answer without crash: 'release' (at once) or
#             'timeout' (after the client's answer, then release)
#   crash     'participant' or 'coordinator', while held
#   settings  SQL run before the transaction (timeouts)
#   expect    the client's answer; final: 'applied' or 'none'
sub run_cell
{
	my ($m, $c) = @_;
	my $name = $c->{name};
	my $p = $m->{proxy};
	my $fired = proxy_status($p)->{fired};

	proxy_ctl($p, 'clear');
	proxy_ctl($p, "rule $c->{cmd} $c->{action}" . ($c->{rule_opts} ? " $c->{rule_opts}" : ''));
	my $h = start_sql($m->{coord},
		workload_sql($c->{workload}, $name, $c->{settings}),
		on_error_stop => 1);
	if ($c->{action} =~ /^hold/)
	{
		ok(wait_held($m), "$name: the proxy holds the $c->{cmd}");
		if ($c->{crash})
		{
			crash_at_point($m, $c->{crash},
				$c->{crash} eq 'participant' ? 'drop' : 'release');
		}
		elsif (($c->{then} // 'release') eq 'release')
		{
			proxy_ctl($p, 'release');
		}
	}
	my ($rc, $out, $err) = finish_sql($h, 30);
	ok(defined $rc, "$name: the client got an answer within 30 s");
	proxy_ctl($p, 'release') if ($c->{then} // '') eq 'timeout';
	cmp_ok(proxy_status($p)->{fired}, '>', $fired, "$name: the proxy acted on $c->{cmd}");
	my ($answer, $line) = classify($rc, $err);
	is($answer, $c->{expect}, "$name: client's answer")
	  or diag("stdout: $out\nstderr: $err");
	check_final($m, $c, $answer, $line, settle($m));
	return;
}

# Runs one cell of the resolver: first a transaction left in doubt on b by
# the proxy ($c->{setup}: [cmd, action] on the client's connection), then a
# dtx.resolve() pass whose command $c->{cmd} (on the resolver's connection)
# meets $c->{action}.  Checks that a pass whose listing failed acted on
# nothing on b (what it left prepared there is still prepared: never act on
# a failed listing), then the final checks.
#   pass_fails   the pass must report b as failed ('list' ... 'failed')
#   crash        'participant' or 'coordinator' while the command is held
sub run_resolver_cell
{
	my ($m, $c) = @_;
	my $name = $c->{name};
	my $p = $m->{proxy};
	my ($setup_cmd, $setup_action) = @{ $c->{setup} };

	proxy_ctl($p, 'clear');
	proxy_ctl($p, "rule $setup_cmd $setup_action app=pg_dtx:");
	my ($rc, $out, $err) = finish_sql(start_sql($m->{coord},
		workload_sql($c->{workload}, $name, ''), on_error_stop => 1), 60);
	my ($setup_answer) = classify($rc, $err);
	for my $node ($m->{a}, $m->{b})
	{
		poll_until($node, 'postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pg\\_dtx%'",
			'0', 30);
	}
	my $before = prepared_xacts($m->{b});
	cmp_ok($before, '>', 0, "$name: in doubt on b before the pass (setup answer: $setup_answer)");

	my $fired = proxy_status($p)->{fired};
	proxy_ctl($p, 'clear');
	proxy_ctl($p, "rule $c->{cmd} $c->{action} app=pg_dtx_resolver"
		  . ($c->{rule_opts} ? " $c->{rule_opts}" : ''));
	my $h = start_cmd(
		[
			'psql', '-XAtq', '-d', $m->{coord}->connstr('postgres'),
			'-c', 'SELECT server, action, outcome FROM dtx.resolve()'
		]);
	if ($c->{action} =~ /^hold/)
	{
		ok(wait_held($m), "$name: the proxy holds the resolver's $c->{cmd}");
		if ($c->{crash})
		{
			crash_at_point($m, $c->{crash},
				$c->{crash} eq 'participant' ? 'drop' : 'release');
		}
		else
		{
			proxy_ctl($p, 'release');
		}
	}
	($rc, $out, $err) = finish_sql($h, 60);
	cmp_ok(proxy_status($p)->{fired}, '>', $fired, "$name: the proxy acted on the resolver's $c->{cmd}");
	my $line = join('; ', grep { /^b\|/ } split /\n/, $out);
	if ($c->{pass_fails})
	{
		like($out, qr/^b\|list\|failed/m, "$name: the pass reports the listing of b as failed")
		  or diag("rc $rc\nstdout: $out\nstderr: $err");
		is(prepared_xacts($m->{b}), $before,
			"$name: nothing done on b after a failed listing");
	}
	if (defined $c->{b_after})
	{
		is(prepared_xacts($m->{b}), $c->{b_after}, "$name: prepared on b after the pass");
	}
	check_final($m, $c, $setup_answer, "pass: " . ($line || $err), settle($m));
	return;
}

# Prints the table of the cells run so far (for test/README.md).
sub print_table
{
	my ($m) = @_;
	note(join("\n", map { join(' | ', @$_) } @{ $m->{rows} }));
	return;
}

1;
