# shellcheck shell=bash
# bench/lib.sh - helpers shared by bench/run.sh, bench/callgrind.sh and
# bench/syscalls.sh.
#
# Sourced after test/lib/common.sh.  The caller defines W (the servers'
# directory), R (results directory), NODES (node names), PORT (node -> TCP
# port) and SUMMARY (the summary file).

# port_free P: nothing listens on 127.0.0.1:P
port_free() { ! timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# psql on a node's database "bench" (or -d other), superuser, over TCP
q() {
	local node=$1
	shift
	as_pg psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${PORT[$node]}" -U postgres -d bench "$@"
}
# one value
val() { q "$1" -At -c "$2"; }

# print and keep in the summary
out() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }

now() { date +%s.%N; }

# bench_show_logs: the last lines of every node's server log (after a failure)
bench_show_logs() {
	local node
	for node in "${NODES[@]}"; do
		if [[ -s $W/$node.log ]]; then
			printf '\n---- server log of %s (last 20 lines) ----\n' "$node" >&2
			tail -n 20 "$W/$node.log" >&2
		fi
	done
}

# bench_stop_nodes: stops every node still running (fast, else immediate)
bench_stop_nodes() {
	local node
	for node in "${NODES[@]}"; do
		if [[ -f $W/$node/postmaster.pid ]]; then
			as_pg pg_ctl -D "$W/$node" -m fast -w -t 60 stop >/dev/null 2>&1 ||
				as_pg pg_ctl -D "$W/$node" -m immediate -w -t 60 stop >/dev/null 2>&1
		fi
	done
}

# bench_keep_logs: copies the server logs into the results directory
bench_keep_logs() {
	local node
	[[ -n $R && -d $R ]] || return 0
	for node in "${NODES[@]}"; do
		cp "$W/$node.log" "$R/server-$node.log" 2>/dev/null
	done
	return 0
}

# bench_assign_ports FIRST LAST NAME...: PORT[NAME] = the free ports from
# FIRST on, up to LAST
bench_assign_ports() {
	local first=$1 last=$2 port=$1 name
	shift 2
	for name in "$@"; do
		while ! port_free "$port"; do
			port=$((port + 1))
			[[ $port -le $last ]] || die "no free port in $first..$last"
		done
		PORT["$name"]=$port
		port=$((port + 1))
	done
}

# bench_start_node NODE: a new cluster in $W/NODE (trust on loopback only),
# with the settings read from stdin added to its postgresql.conf, started,
# with a database "bench"
bench_start_node() {
	local node=$1
	(as_pg initdb -D "$W/$node" -U postgres --auth=trust --no-instructions) \
		>"$W/$node.initdb.log" 2>&1 || { cat "$W/$node.initdb.log"; die "initdb $node failed"; }
	(as_pg tee "$W/$node/pg_hba.conf") >/dev/null <<-HBA
		# benchmark only: trust on loopback and the private socket directory
		local all all               trust
		host  all all 127.0.0.1/32  trust
	HBA
	(as_pg tee -a "$W/$node/postgresql.conf") >/dev/null
	(as_pg pg_ctl -D "$W/$node" -l "$W/$node.log" -w -t 60 start) >/dev/null ||
		die "$node did not start"
	as_pg createdb -h 127.0.0.1 -p "${PORT[$node]}" -U postgres bench
}

# bench_dblinkfn_sql: the SQL that makes, on the coordinator (dblink
# installed), bench_dblink_transfer(id1, id2, gid, tag): a hand-written
# two-phase commit over dblink in one function call, the strongest form of
# that baseline - one client round trip per transfer, and on the
# participants as few round trips as dblink allows, overlapped:
#   1. to both participants at once (dblink_send_query, then the results of
#      each read with dblink_get_result): "BEGIN; UPDATE ...; PREPARE
#      TRANSACTION 'gid_i'" - one round trip for both;
#   2. then "COMMIT PREPARED 'gid_i'" to both at once - one round trip.
# Connections are named fn_TAG1 and fn_TAG2, made on first use from the
# postgres_fdw servers fdw_TAG1 and fdw_TAG2 and kept for the session.  The
# row count of the UPDATE is not checked (as in the dblink and pg_dtx exec
# variants).  On an error before both are prepared it drops both connections
# (a transaction not yet prepared ends with its session) and sends ROLLBACK
# PREPARED for both global ids on new ones ("does not exist" ignored; a
# PREPARE still in flight when the connection was dropped can escape it);
# an error in COMMIT PREPARED is raised with the prepared transactions left
# for an operator (no recovery, as the dblink variant).  The EXCEPTION block
# costs a subtransaction per call on the coordinator.
bench_dblinkfn_sql() {
	cat <<-'SQL'
		CREATE OR REPLACE FUNCTION bench_dblink_transfer(id1 int, id2 int, gid text, tag text DEFAULT 'p')
		RETURNS void LANGUAGE plpgsql AS $fn$
		DECLARE
			c1 text := 'fn_' || tag || '1';
			c2 text := 'fn_' || tag || '2';
			g1 text := gid || '_1';
			g2 text := gid || '_2';
			conns text[] := coalesce(dblink_get_connections(), '{}');
			prepared boolean := false;
		BEGIN
			IF c1 <> ALL (conns) THEN PERFORM dblink_connect(c1, 'fdw_' || tag || '1'); END IF;
			IF c2 <> ALL (conns) THEN PERFORM dblink_connect(c2, 'fdw_' || tag || '2'); END IF;
			BEGIN
				-- phase 1 on both participants at once; every statement of a
				-- query string gives a result, then a last empty one
				PERFORM dblink_send_query(c1, format('BEGIN; UPDATE accounts SET balance = balance - 1 WHERE id = %s; PREPARE TRANSACTION %L', id1, g1));
				PERFORM dblink_send_query(c2, format('BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = %s; PREPARE TRANSACTION %L', id2, g2));
				LOOP EXIT WHEN NOT EXISTS (SELECT FROM dblink_get_result(c1) AS r(status text)); END LOOP;
				LOOP EXIT WHEN NOT EXISTS (SELECT FROM dblink_get_result(c2) AS r(status text)); END LOOP;
				prepared := true;
				-- phase 2 on both at once
				PERFORM dblink_send_query(c1, format('COMMIT PREPARED %L', g1));
				PERFORM dblink_send_query(c2, format('COMMIT PREPARED %L', g2));
				LOOP EXIT WHEN NOT EXISTS (SELECT FROM dblink_get_result(c1) AS r(status text)); END LOOP;
				LOOP EXIT WHEN NOT EXISTS (SELECT FROM dblink_get_result(c2) AS r(status text)); END LOOP;
			EXCEPTION WHEN OTHERS THEN
				PERFORM dblink_disconnect(c) FROM unnest(ARRAY[c1, c2]) c WHERE c = ANY (dblink_get_connections());
				IF NOT prepared THEN
					PERFORM dblink_connect(c1, 'fdw_' || tag || '1');
					PERFORM dblink_exec(c1, format('ROLLBACK PREPARED %L', g1), false);
					PERFORM dblink_connect(c2, 'fdw_' || tag || '2');
					PERFORM dblink_exec(c2, format('ROLLBACK PREPARED %L', g2), false);
				END IF;
				RAISE;
			END;
		END
		$fn$;
	SQL
}

# gen_script VARIANT K TAG: a pgbench script updating one random row on each
# of K participants named TAG1..TAGk (TAG "p": direct; "lp": through the
# delaying proxy).  The first account pays k-1, the others get 1 each, so that
# every committed transfer keeps the total at 0.

# amount K I: the change to the balance on participant I of K
amount() { if [[ $2 -eq 1 ]]; then echo "- $(($1 - 1))"; else echo "+ 1"; fi; }

# fill TEMPLATE I: TEMPLATE for participant I (of gen_script's k and tag):
# @T@ its name, @A@ the change to its balance, @I@ its number
fill() {
	local s=${1//@T@/$tag$2}
	s=${s//@A@/$(amount "$k" "$2")}
	echo "${s//@I@/$2}"
}

# in_block TEMPLATE: BEGIN, TEMPLATE filled for each participant, COMMIT
in_block() {
	local i
	echo "BEGIN;"
	for ((i = 1; i <= k; i++)); do fill "$1" "$i"; done
	echo "COMMIT;"
}

gen_script() {
	local variant=$1 k=$2 tag=$3 i
	local expect="dtx.send_expect('@T@', 1, 'UPDATE accounts SET balance = balance @A@ WHERE id = \$1', :id@I@::int)"
	for ((i = 1; i <= k; i++)); do
		echo "\\set id$i random(1, ${ACCOUNTS:-100000})"
	done
	case $variant in
	local) in_block "UPDATE accounts_@I@ SET balance = balance @A@ WHERE id = :id@I@;" ;;
	fdw | fdwpc) in_block "UPDATE $variant.accounts_@T@ SET balance = balance @A@ WHERE id = :id@I@;" ;;
	dtx | dtxasync)
		# dtxasync: the same script; bench_run gives its sessions
		# dtx.synchronous_commit_prepared = off (PGOPTIONS, no extra round trip)
		in_block "SELECT dtx.exec('@T@', 'UPDATE accounts SET balance = balance @A@ WHERE id = \$1', :id@I@::int);"
		;;
	dtxsend | dtxsendasync)
		# the pipelined API: each statement is sent and not waited for; its
		# result (exactly one row updated) is collected at COMMIT, where
		# PREPARE TRANSACTION joins the same pipeline; dtxsendasync: as dtxasync
		in_block "SELECT $expect;"
		;;
	dtxsend1)
		# the same statements as dtxsend in one SELECT, its own transaction:
		# one client round trip per transfer, as dblinkfn
		printf 'SELECT %s' "$(fill "$expect" 1)"
		for ((i = 2; i <= k; i++)); do printf ', %s' "$(fill "$expect" "$i")"; done
		echo ";"
		;;
	dblinkfn)
		# hand-written two-phase commit in one call of a PL/pgSQL function
		# (bench_dblink_transfer, see dblinkfn_sql): one client round trip
		[[ $k -eq 2 ]] || die "dblinkfn covers 2 participants only"
		echo "\\set n :n + 1"
		echo "SELECT bench_dblink_transfer(:id1, :id2, 'bfn_' || :run::text || '_' || :client_id::text || '_' || :n::text, '$tag');"
		;;
	dblink)
		# hand-written two-phase commit: BEGIN + UPDATE in one dblink_exec per
		# participant, PREPARE TRANSACTION on each, then COMMIT PREPARED on
		# each; gids from the client id, the run and a per-client counter
		echo "\\set n :n + 1"
		local conns=""
		for ((i = 1; i <= k; i++)); do conns+="${conns:+,}'$tag$i'"; done
		echo "SELECT dblink_connect(c, 'fdw_' || c) FROM unnest(ARRAY[$conns]) c WHERE c <> ALL (coalesce(dblink_get_connections(), '{}'));"
		for ((i = 1; i <= k; i++)); do
			echo "SELECT dblink_exec('$tag$i', 'BEGIN; UPDATE accounts SET balance = balance $(amount "$k" "$i") WHERE id = ' || :id$i::int);"
		done
		for ((i = 1; i <= k; i++)); do
			echo "SELECT dblink_exec('$tag$i', 'PREPARE TRANSACTION ' || quote_literal('bench_' || :run::text || '_' || :client_id::text || '_' || :n::text || '_$i'));"
		done
		for ((i = 1; i <= k; i++)); do
			echo "SELECT dblink_exec('$tag$i', 'COMMIT PREPARED ' || quote_literal('bench_' || :run::text || '_' || :client_id::text || '_' || :n::text || '_$i'));"
		done
		;;
	*) die "unknown variant $variant" ;;
	esac
}
