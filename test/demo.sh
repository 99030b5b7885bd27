#!/usr/bin/env bash
#
# test/demo.sh - pg_dtx in action on three throw-away PostgreSQL 15 servers
# (what `make demo` runs).
#
#   coordinator  pg_dtx preloaded; runs the distributed transactions and keeps
#                a local "transfers" journal
#   bank_a       participant with an "accounts" table
#   bank_b       participant with an "accounts" table, a CHECK (balance >= 0)
#                constraint and a deferred "balance cap" constraint trigger
#
# It shows one transfer that commits on both banks and the coordinator, then
# two that fail - one on a CHECK constraint while the statements run, one on
# a deferred constraint when bank_b is asked to PREPARE - and checks that
# those changed nothing anywhere and left no prepared transaction behind.
#
# Then the product's main job, recovery: bank_b hangs and crashes after it
# has prepared a transfer, before COMMIT PREPARED reaches it. COMMIT returns
# with a WARNING, dtx.in_doubt shows the transaction, and once bank_b is back
# the coordinator's background resolver commits it there; the demo prints
# the resolver's log line and checks that the balances agree. To hit that
# moment exactly, bank_a's PREPARE is made slow on purpose (a deferred
# trigger that sleeps), and bank_b is frozen (SIGSTOP) as soon as it has
# prepared, then killed (SIGKILL) once COMMIT has returned.
#
# The servers listen on 127.0.0.1 only (ports from DEMO_PORT, default 54321,
# upwards) and on a socket in a private temporary directory. They run as the
# "postgres" OS user when this script runs as root. Everything is stopped and
# removed on exit, also on failure (PG_DTX_DEMO_KEEP=1 keeps the directory).
# The exit status is non-zero if any step fails.

set -euo pipefail

# shellcheck source=test/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

NODES=(coordinator bank_a bank_b)
declare -A PORT=()
DEMO_DIR=""
STEP=0
FROZEN_PIDS=()

step() {
	STEP=$((STEP + 1))
	heading "Step $STEP: $*"
}

# Stop the servers and remove the directory, whatever happened.
cleanup() {
	local rc=$? node
	set +e
	trap - EXIT INT TERM
	# a server frozen by the recovery steps must be able to stop
	if [[ ${#FROZEN_PIDS[@]} -gt 0 ]]; then
		kill -CONT "${FROZEN_PIDS[@]}" 2>/dev/null
	fi
	if [[ -n $DEMO_DIR && -d $DEMO_DIR ]]; then
		if [[ $rc -ne 0 ]]; then
			for node in "${NODES[@]}"; do
				if [[ -s $DEMO_DIR/$node.log ]]; then
					printf '\n---- server log of %s (last 40 lines) ----\n' "$node"
					tail -n 40 "$DEMO_DIR/$node.log"
				fi
			done
		fi
		for node in "${NODES[@]}"; do
			if [[ -f $DEMO_DIR/$node/postmaster.pid ]]; then
				as_pg pg_ctl -D "$DEMO_DIR/$node" -m fast -w -t 30 stop >/dev/null 2>&1 ||
					as_pg pg_ctl -D "$DEMO_DIR/$node" -m immediate -w stop >/dev/null 2>&1
			fi
		done
		cd /
		if [[ ${PG_DTX_DEMO_KEEP:-0} == 1 ]]; then
			echo "demo directory kept: $DEMO_DIR"
		else
			rm -rf -- "$DEMO_DIR"
		fi
	fi
	if [[ $rc -eq 0 ]]; then
		heading "Demo finished: servers stopped, temporary files removed"
	else
		printf '\nDEMO FAILED (exit status %d); servers stopped.\n' "$rc" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Is nothing listening on 127.0.0.1:$1?
port_free() {
	! timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# psql on a node, as superuser "postgres" over TCP on 127.0.0.1; stops at the
# first error.
psql_on() {
	local node=$1
	shift
	as_pg psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${PORT[$node]}" \
		-U postgres -d postgres "$@"
}

# Show and run the SQL script on stdin (every line echoed with its output).
run_sql() {
	local node=$1
	printf -- '-- on %s (port %s):\n' "$node" "${PORT[$node]}"
	psql_on "$node" --echo-all
}

# Run a script that must fail with an error matching $2. Nothing else will do:
# an unrelated error (a server that went away, ...) fails the demo.
run_sql_expecting_error() {
	local node=$1 pattern=$2 out rc=0
	out=$DEMO_DIR/last_output.txt
	printf -- '-- on %s (port %s), expected to fail:\n' "$node" "${PORT[$node]}"
	psql_on "$node" --echo-all 2>&1 | tee "$out" || rc=$?
	if [[ $rc -eq 0 ]]; then
		die "the transaction above committed, but it should have failed"
	fi
	grep -qE "$pattern" "$out" ||
		die "the transaction above failed, but not with the expected error ($pattern)"
	echo "=> failed as expected; the whole distributed transaction was rolled back"
}

# One value from a query.
value() {
	psql_on "$1" -At -c "$2"
}

# All balances of a bank, as "id:balance,id:balance".
balances() {
	value "$1" "SELECT string_agg(id || ':' || balance, ',' ORDER BY id) FROM accounts"
}

show_state() {
	local node
	for node in bank_a bank_b; do
		echo "-- $node:"
		psql_on "$node" -c 'SELECT id, owner, balance FROM accounts ORDER BY id'
	done
	echo "-- coordinator:"
	psql_on coordinator -c 'SELECT id, from_server, from_account, to_server, to_account, amount FROM transfers ORDER BY id'
}

# The postmaster of $1 and its processes (the postmaster first).
server_pids() {
	local pm
	pm=$(head -n 1 "$DEMO_DIR/$1/postmaster.pid")
	echo "$pm"
	ps -o pid= --ppid "$pm"
}

# Wait until $2 (a query on node $1) returns 't', at most $3 seconds; print
# how long it took.
wait_until() {
	local node=$1 query=$2 limit=$3 start=$SECONDS
	until [[ $(value "$node" "$query" 2>/dev/null) == t ]]; do
		[[ $((SECONDS - start)) -lt $limit ]] || die "still not true after ${limit}s on $node: $query"
		sleep 0.2
	done
	echo "=> after $((SECONDS - start))s: $query"
}

# No transaction may stay prepared on a participant once the coordinator's
# transaction has ended. Allow a few seconds in case the cleanup of an
# aborted PREPARE happens in the background.
check_no_prepared() {
	local node n i
	for node in bank_a bank_b; do
		for ((i = 0; i < 20; i++)); do
			n=$(value "$node" 'SELECT count(*) FROM pg_prepared_xacts')
			[[ $n -eq 0 ]] && break
			sleep 0.5
		done
		echo "-- $node: SELECT gid, prepared, owner FROM pg_prepared_xacts;"
		psql_on "$node" -c 'SELECT gid, prepared, owner FROM pg_prepared_xacts'
		[[ $n -eq 0 ]] || die "$node still has $n prepared transaction(s)"
	done
	echo "=> no prepared transaction left on either bank"
}

expect_equal() {
	local what=$1 got=$2 want=$3
	[[ $got == "$want" ]] || die "$what: expected '$want', got '$got'"
	echo "=> $what: $got (as expected)"
}

# --- build -----------------------------------------------------------------------

step "Build dependencies"
ensure_build_deps

step "Build and install pg_dtx"
build_and_install
ensure_pg_os_user

# --- three servers ---------------------------------------------------------------

step "Pick three free ports on 127.0.0.1"
port=${DEMO_PORT:-54321}
limit=$((port + 100))
for node in "${NODES[@]}"; do
	while ! port_free "$port"; do
		echo "port $port is in use, trying the next one"
		port=$((port + 1))
		[[ $port -lt $limit ]] || die "no free port below $limit"
	done
	PORT[$node]=$port
	echo "$node: 127.0.0.1:$port"
	port=$((port + 1))
done

step "Create three throw-away clusters"
DEMO_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pg_dtx_demo.XXXXXX")
if is_root; then
	chown "$PG_OS_USER": "$DEMO_DIR"
fi
cd "$DEMO_DIR"
echo "directory: $DEMO_DIR (servers run as OS user $PG_OS_USER)"
echo
echo "NOTE: demo only! The servers use 'trust' authentication: while the demo"
echo "      runs, any local user can connect to 127.0.0.1:${PORT[coordinator]}-$((port - 1)) as"
echo "      superuser postgres. Never configure a real server like this."
# Output redirections go on subshells, not on the function calls themselves:
# a redirected function call redirects this shell, and the exit trap would
# then print into the redirection target if it fired during the call.
for node in "${NODES[@]}"; do
	echo "initdb $node"
	(as_pg initdb -D "$DEMO_DIR/$node" -U postgres --auth=trust --no-sync \
		--no-instructions) >"$DEMO_DIR/$node.initdb.log" 2>&1 || {
		cat "$DEMO_DIR/$node.initdb.log"
		die "initdb of $node failed"
	}
	(as_pg tee "$DEMO_DIR/$node/pg_hba.conf") >/dev/null <<-EOF
		# pg_dtx demo only: trust, loopback and the private socket directory
		local all all               trust
		host  all all 127.0.0.1/32  trust
	EOF
	{
		echo "# pg_dtx demo"
		echo "cluster_name = '$node'"
		echo "listen_addresses = '127.0.0.1'"
		echo "port = ${PORT[$node]}"
		echo "unix_socket_directories = '$DEMO_DIR'"
		echo "log_line_prefix = '%m [%p] %q%a '"
		echo "fsync = off  # throw-away data"
		if [[ $node == coordinator ]]; then
			echo "shared_preload_libraries = 'pg_dtx'"
			echo "dtx.resolver_interval = '1s'  # default 10s; short for the demo"
		else
			echo "max_prepared_transactions = 10"
		fi
	} | (as_pg tee -a "$DEMO_DIR/$node/postgresql.conf") >/dev/null
done

step "Start the servers"
for node in "${NODES[@]}"; do
	(as_pg pg_ctl -D "$DEMO_DIR/$node" -l "$DEMO_DIR/$node.log" -w -t 60 start) >/dev/null ||
		die "$node did not start"
	echo "$node is up on 127.0.0.1:${PORT[$node]}"
done

# --- the schema ------------------------------------------------------------------

step "bank_a: an accounts table"
run_sql bank_a <<'SQL'
CREATE TABLE accounts (
    id      int PRIMARY KEY,
    owner   text NOT NULL,
    balance bigint NOT NULL CHECK (balance >= 0)
);
INSERT INTO accounts VALUES (1, 'alice', 1000), (2, 'bob', 500);
SQL

step "bank_b: an accounts table, no overdraft, and a balance cap checked at commit"
run_sql bank_b <<'SQL'
CREATE TABLE accounts (
    id      int PRIMARY KEY,
    owner   text NOT NULL,
    balance bigint NOT NULL CHECK (balance >= 0)
);
INSERT INTO accounts VALUES (1, 'carol', 300), (2, 'dave', 9900);

-- A deferred constraint: it is checked when the transaction ends, that is,
-- when the coordinator asks bank_b to PREPARE TRANSACTION.
CREATE FUNCTION check_balance_cap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT balance FROM accounts WHERE id = NEW.id) > 10000 THEN
        RAISE EXCEPTION 'balance cap exceeded on account %', NEW.id;
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER balance_cap
    AFTER INSERT OR UPDATE ON accounts
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION check_balance_cap();
SQL

step "coordinator: the extension, the two banks, and a transfers journal"
run_sql coordinator <<EOF
CREATE EXTENSION pg_dtx;

CREATE SERVER bank_a FOREIGN DATA WRAPPER dtx
    OPTIONS (host '127.0.0.1', port '${PORT[bank_a]}', dbname 'postgres');
CREATE USER MAPPING FOR CURRENT_USER SERVER bank_a OPTIONS (user 'postgres');

CREATE SERVER bank_b FOREIGN DATA WRAPPER dtx
    OPTIONS (host '127.0.0.1', port '${PORT[bank_b]}', dbname 'postgres');
CREATE USER MAPPING FOR CURRENT_USER SERVER bank_b OPTIONS (user 'postgres');

CREATE TABLE transfers (
    id           serial PRIMARY KEY,
    from_server  text   NOT NULL,
    from_account int    NOT NULL,
    to_server    text   NOT NULL,
    to_account   int    NOT NULL,
    amount       bigint NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
EOF

step "Balances before"
show_state

# --- 1: a transfer that commits everywhere -----------------------------------------

step "Transfer 100 from alice (bank_a) to carol (bank_b): commits on all three servers"
run_sql coordinator <<'SQL'
BEGIN;
SELECT dtx.exec('bank_a', 'UPDATE accounts SET balance = balance - $1 WHERE id = $2', 100, 1);
SELECT dtx.exec('bank_b', 'UPDATE accounts SET balance = balance + $1 WHERE id = $2', 100, 1);
INSERT INTO transfers (from_server, from_account, to_server, to_account, amount)
    VALUES ('bank_a', 1, 'bank_b', 1, 100);
COMMIT;
SQL

step "Balances after the transfer"
show_state
expect_equal "bank_a balances" "$(balances bank_a)" "1:900,2:500"
expect_equal "bank_b balances" "$(balances bank_b)" "1:400,2:9900"
expect_equal "transfers journaled" "$(value coordinator 'SELECT count(*) FROM transfers')" "1"
check_no_prepared

# --- 2: a CHECK constraint fails on bank_b while the statements run -----------------

before_a=$(balances bank_a)
before_b=$(balances bank_b)

step "Transfer 1000 from carol (bank_b, balance 400) to bob (bank_a): bank_b's CHECK (balance >= 0) rejects it"
run_sql_expecting_error coordinator 'violates check constraint' <<'SQL'
BEGIN;
SELECT dtx.exec('bank_a', 'UPDATE accounts SET balance = balance + $1 WHERE id = $2', 1000, 2);
SELECT dtx.exec('bank_b', 'UPDATE accounts SET balance = balance - $1 WHERE id = $2', 1000, 1);
INSERT INTO transfers (from_server, from_account, to_server, to_account, amount)
    VALUES ('bank_b', 1, 'bank_a', 2, 1000);
COMMIT;
SQL

step "Nothing changed anywhere (bob's credit on bank_a was rolled back too)"
show_state
expect_equal "bank_a balances" "$(balances bank_a)" "$before_a"
expect_equal "bank_b balances" "$(balances bank_b)" "$before_b"
expect_equal "transfers journaled" "$(value coordinator 'SELECT count(*) FROM transfers')" "1"
check_no_prepared

# --- 3: a deferred constraint fails on bank_b at PREPARE TRANSACTION --------------

step "Transfer 200 from alice (bank_a) to dave (bank_b, balance 9900): bank_b's deferred cap fails at PREPARE"
run_sql_expecting_error coordinator 'balance cap exceeded' <<'SQL'
BEGIN;
SELECT dtx.exec('bank_a', 'UPDATE accounts SET balance = balance - $1 WHERE id = $2', 200, 1);
SELECT dtx.exec('bank_b', 'UPDATE accounts SET balance = balance + $1 WHERE id = $2', 200, 2);
INSERT INTO transfers (from_server, from_account, to_server, to_account, amount)
    VALUES ('bank_a', 1, 'bank_b', 2, 200);
-- Both updates succeeded; the cap is checked when bank_b prepares, at COMMIT.
COMMIT;
SQL

step "Nothing changed anywhere (alice's debit on bank_a was rolled back too)"
show_state
expect_equal "bank_a balances" "$(balances bank_a)" "$before_a"
expect_equal "bank_b balances" "$(balances bank_b)" "$before_b"
expect_equal "transfers journaled" "$(value coordinator 'SELECT count(*) FROM transfers')" "1"
check_no_prepared

# --- 4: recovery: bank_b crashes after PREPARE, before COMMIT PREPARED ----------------

step "Recovery, set-up: make bank_a's PREPARE slow on purpose (demo only)"
echo "The coordinator asks bank_a and bank_b to PREPARE, then records its decision, commits"
echo "locally and sends COMMIT PREPARED. A deferred trigger on bank_a makes bank_a's PREPARE"
echo "take 4 seconds, so the demo can hit bank_b right after bank_b has prepared."
run_sql bank_a <<'SQL'
CREATE TABLE prepare_pause (seconds float8 NOT NULL);
CREATE FUNCTION prepare_pause() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(NEW.seconds);
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER prepare_pause
    AFTER INSERT ON prepare_pause
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION prepare_pause();
SQL

step "Transfer 50 from bob (bank_a) to carol (bank_b), started in the background"
recovery_out=$DEMO_DIR/recovery_transfer.txt
(psql_on coordinator --echo-all >"$recovery_out" 2>&1 <<'SQL'
-- how long COMMIT waits for a participant's answer to COMMIT PREPARED
SET dtx.commit_timeout = '2s';
BEGIN;
SELECT dtx.exec('bank_a', 'UPDATE accounts SET balance = balance - $1 WHERE id = $2', 50, 2);
SELECT dtx.exec('bank_a', 'INSERT INTO prepare_pause VALUES ($1)', 4);
SELECT dtx.exec('bank_b', 'UPDATE accounts SET balance = balance + $1 WHERE id = $2', 50, 1);
INSERT INTO transfers (from_server, from_account, to_server, to_account, amount)
    VALUES ('bank_a', 2, 'bank_b', 1, 50);
COMMIT;
SQL
) &
transfer_pid=$!
echo "COMMIT sent; waiting until bank_b has prepared its part"
wait_until bank_b 'SELECT count(*) = 1 FROM pg_prepared_xacts' 20
psql_on bank_b -c 'SELECT gid, prepared FROM pg_prepared_xacts'

step "bank_b hangs: SIGSTOP to its postmaster and every process of it"
mapfile -t FROZEN_PIDS < <(server_pids bank_b)
kill -STOP "${FROZEN_PIDS[@]}"
echo "bank_b frozen (pids ${FROZEN_PIDS[*]}); bank_a finishes its slow PREPARE meanwhile"

step "COMMIT returns: committed, with a WARNING that bank_b did not confirm"
transfer_rc=0
wait "$transfer_pid" || transfer_rc=$?
cat "$recovery_out"
[[ $transfer_rc -eq 0 ]] || die "the transfer's COMMIT failed (psql exit status $transfer_rc)"
grep -q 'WARNING:  committed, but server "bank_b" has not confirmed COMMIT PREPARED' "$recovery_out" ||
	die "COMMIT did not warn that bank_b has not confirmed COMMIT PREPARED"
echo "=> the transaction is committed: the decision is durable on the coordinator,"
echo "   and bank_b still holds its prepared part"

step "bank_b crashes: SIGKILL to all its processes"
kill -KILL "${FROZEN_PIDS[@]}"
for pid in "${FROZEN_PIDS[@]}"; do
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
done
FROZEN_PIDS=()
echo "bank_b is down"

step "The coordinator knows what is left to do: dtx.in_doubt"
echo "dtx.in_doubt lists every participant of a committed transaction until all of them have"
echo "confirmed (bank_a did; the coordinator keeps no per-participant confirmation). bank_b's"
echo "row is the one left to finish."
run_sql coordinator <<'SQL'
SELECT server, global_id, decision FROM dtx.in_doubt;
SQL
expect_equal "transactions in doubt on bank_b" \
	"$(value coordinator "SELECT count(*) FROM dtx.in_doubt WHERE server = 'bank_b' AND decision = 'commit'")" "1"
expect_equal "bank_a balances (bob debited)" "$(balances bank_a)" "1:900,2:450"

step "Restart bank_b: crash recovery keeps its prepared transaction"
echo "(pg_ctl notices the postmaster.pid the crash left behind and starts anyway)"
(as_pg pg_ctl -D "$DEMO_DIR/bank_b" -l "$DEMO_DIR/bank_b.log" -w -t 60 start) >/dev/null ||
	die "bank_b did not restart"
echo "bank_b is up again"

step "The coordinator's background resolver commits it on bank_b (no one runs anything)"
wait_until coordinator 'SELECT count(*) = 0 FROM dtx.in_doubt' 60
wait_until bank_b 'SELECT count(*) = 0 FROM pg_prepared_xacts' 10
echo "-- the resolver's log line on the coordinator:"
grep -E 'pg_dtx resolver: commit prepared transaction .* on server "bank_b": done' \
	"$DEMO_DIR/coordinator.log" || die "no resolver log line for bank_b"

step "Balances after recovery: the transfer is applied on both banks, once"
show_state
expect_equal "bank_a balances" "$(balances bank_a)" "1:900,2:450"
expect_equal "bank_b balances" "$(balances bank_b)" "1:450,2:9900"
expect_equal "transfers journaled" "$(value coordinator 'SELECT count(*) FROM transfers')" "2"
expect_equal "money on both banks" \
	"$(( $(value bank_a 'SELECT sum(balance) FROM accounts') + $(value bank_b 'SELECT sum(balance) FROM accounts') ))" "11700"
check_no_prepared

echo
echo "All demo steps succeeded."
