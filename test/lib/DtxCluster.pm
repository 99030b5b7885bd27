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
# Nodes talk to each other over their Unix sockets ($node->host is the
# socket directory, $node->port the port); PostgreSQL::Test::Cluster sets up
# trust authentication for the OS user running the tests.

package DtxCluster;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

our @EXPORT = qw(
  new_coordinator
  new_participant
  add_server
  create_accounts
  prepared_xacts
  balance
  quote_literal
  quote_ident
);

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

# A coordinator: pg_dtx in shared_preload_libraries, room for prepared
# transactions, started, with the extension created in database "postgres".
#   extra_conf => "line\nline\n"   more postgresql.conf settings
#   dbname     => 'postgres'       where to CREATE EXTENSION
sub new_coordinator
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
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
sub new_participant
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
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

1;
