#!/usr/bin/env bash
#
# bench/callgrind.sh - instructions the coordinator's backend (or, with --side
# participant, the first participant's backend) executes per transfer,
# counted by valgrind's callgrind: postgres_fdw, dblink hand-written
# two-phase commit and pg_dtx, on throw-away PostgreSQL 15 servers.
#
#   bash bench/callgrind.sh                  2000 measured transactions per variant
#   bash bench/callgrind.sh --xacts 500      shorter
#
# Options:
#   --xacts N        measured transactions per variant (2000)
#   --warmup W       transactions run first in the same session, not counted (200)
#   --variants LIST  comma-separated, in this order: fdw (postgres_fdw), fdwpc
#                    (postgres_fdw parallel_commit), dblink (hand-written 2PC),
#                    dblinkfn (hand-written 2PC in one PL/pgSQL call, see
#                    bench/lib.sh), dtx (pg_dtx, dtx.exec), dtxasync (pg_dtx,
#                    synchronous_commit_prepared off), dtxsend (pg_dtx,
#                    dtx.send_expect in a transaction block), dtxsend1 (both
#                    dtx.send_expect calls in one SELECT, its own transaction;
#                    the dtx.send variants are skipped, with a line in the
#                    summary, when the installed pg_dtx has no dtx.send)
#                    (fdw,dblink,dtx)
#   --side S         whose backend is measured: coordinator, or participant
#                    (the backend serving the session on participant p1: the
#                    participant's side of the same transfers) (coordinator)
#   --protocol P     pgbench's query protocol: prepared (as bench/run.sh) or
#                    simple (as psql: every statement parsed and planned) (prepared)
#   --top K          pg_dtx functions listed, by inclusive instructions (10)
#   --out DIR        where to keep the results (default: a new /tmp/pg_dtx_callgrind.*)
#   --port P         first TCP port to try (26500; the servers use P..P+100)
#
# Servers: a coordinator (pg_dtx, postgres_fdw and dblink installed with
# CREATE EXTENSION; pg_dtx is not preloaded, so no background resolver runs)
# and two participants, each an instance of its own on 127.0.0.1, run as the
# "postgres" OS user in a private directory under /tmp, removed at the end.
# fsync = on, synchronous_commit = on everywhere.  Each participant holds
# accounts(id int primary key, balance bigint) with 100,000 rows.
#
# Method: the coordinator's postmaster runs under
#   valgrind --tool=callgrind --instr-atstart=no
# so that every process it forks (backends included) runs under callgrind with
# the instrumentation off.  Each variant starts with VACUUM on both
# participants' tables (the same state for every variant: dead rows from the
# variants before would cost the participants' backends pruning) and is one
# pgbench session (-c 1, so one coordinator backend) running W + N transfers: one row updated on each
# participant per transaction, with the SQL of bench/run.sh.  The session
# itself, through pgbench's \shell, switches its backend's instrumentation on
# (callgrind_control -i on PID) before transaction W + 1 and off after
# transaction W + N; the backend writes its counts when it exits.  So the
# counts are exactly those of the N warm transactions: statement execution,
# pg_dtx's (or postgres_fdw's, or dblink's) commit work, libpq, and the idle
# loop between statements - not the connection start, the warm-up or the
# exit.  Instructions in user space only: the kernel's work (send, recv,
# fsync) and the time spent waiting for the participants are not counted.
# The participants run natively and are not measured.  With --side
# participant it is the other way round: p1's postmaster runs under callgrind,
# the coordinator natively, and the counted backend is the one on p1 that
# serves the session's connection (postgres_fdw's, dblink's or pg_dtx's; the
# only client backend there, as the session is the only client).
#
# Prints a Markdown table: instructions (Ir) per transaction in the
# coordinator's backend and how they split among pg_dtx.so, postgres_fdw.so,
# dblink.so, libpq, the postgres executable, libc and the rest (self cost of
# each object), then pg_dtx's top functions by inclusive instructions.  The
# results directory keeps the summary and each variant's callgrind file (for
# callgrind_annotate or kcachegrind).  About a minute on an idle 2-CPU machine
# with the defaults.
#
# Needs root (servers run as "postgres") and valgrind (installed with apt-get
# if missing).  Uses the pg_dtx already installed (it does not build it).

set -euo pipefail

BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=test/lib/common.sh
source "$BENCH_SRC/../test/lib/common.sh"
# shellcheck source=bench/lib.sh
source "$BENCH_SRC/lib.sh"

COMMAND_LINE="bash bench/callgrind.sh${*:+ $*}"

# --- options ---------------------------------------------------------------------

XACTS=2000
WARMUP=200
VARIANTS_OPT=fdw,dblink,dtx
PROTOCOL=prepared
TOP=10
OUT=""
BASE_PORT=${BENCH_PORT:-26500}
ACCOUNTS=100000
SIDE=coordinator

while [[ $# -gt 0 ]]; do
	case $1 in
	--xacts) XACTS=$2; shift ;;
	--warmup) WARMUP=$2; shift ;;
	--variants) VARIANTS_OPT=$2; shift ;;
	--protocol) PROTOCOL=$2; shift ;;
	--top) TOP=$2; shift ;;
	--out) OUT=$2; shift ;;
	--port) BASE_PORT=$2; shift ;;
	--side) SIDE=$2; shift ;;
	-h | --help) sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
	shift
done
[[ $XACTS =~ ^[0-9]+$ && $XACTS -ge 1 ]] || die "--xacts must be a positive number"
[[ $WARMUP =~ ^[0-9]+$ && $WARMUP -ge 1 ]] || die "--warmup must be a positive number"
[[ $TOP =~ ^[0-9]+$ ]] || die "--top must be a number"
[[ $PROTOCOL == prepared || $PROTOCOL == simple ]] || die "--protocol must be prepared or simple"
[[ $SIDE == coordinator || $SIDE == participant ]] || die "--side must be coordinator or participant"
# the node whose postmaster runs under callgrind
CG_NODE=coord
[[ $SIDE == participant ]] && CG_NODE=p1
IFS=, read -r -a VARIANTS <<<"$VARIANTS_OPT"
declare -A VNAME=([fdw]="postgres_fdw" [fdwpc]="postgres_fdw parallel_commit"
	[dblink]="dblink 2PC (hand-written)" [dblinkfn]="dblink 2PC in one PL/pgSQL call"
	[dtx]="pg_dtx" [dtxasync]="pg_dtx, synchronous_commit_prepared off" [dtxsend]="pg_dtx dtx.send"
	[dtxsend1]="pg_dtx dtx.send, one statement")
# settings a variant's session starts with (PGOPTIONS of its pgbench run only)
declare -A VOPTS=([dtxasync]="-c dtx.synchronous_commit_prepared=off")
for v in "${VARIANTS[@]}"; do
	[[ -n ${VNAME[$v]:-} ]] || die "unknown variant $v (see --help)"
done
is_root || die "run as root: the servers run as the postgres OS user"

# --- state -------------------------------------------------------------------------

W=""                      # the servers' directory (owned by postgres)
R=""                      # results directory
NODES=()
declare -A PORT=()
CG_PID=""                 # the valgrind'ed postmaster (its runuser)
SUMMARY=""

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if [[ -n $W && -d $W ]]; then
		if [[ $rc -ne 0 ]]; then
			bench_show_logs
			# valgrind's own logs say why a backend ended without its counts
			[[ -n $R && -d $W/cg ]] && cp "$W"/cg/valgrind.*.log "$R"/ 2>/dev/null
		fi
		bench_stop_nodes
		[[ -n $CG_PID ]] && wait "$CG_PID" 2>/dev/null
		bench_keep_logs
		cd /
		rm -rf -- "$W"
	fi
	[[ -n $R ]] && log "results: $R"
	[[ $rc -ne 0 ]] && log "CALLGRIND RUN FAILED (exit status $rc)"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers -----------------------------------------------------------------------

# port_free, q, val, out, now: bench/lib.sh
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }

ensure_valgrind() {
	command -v valgrind >/dev/null && command -v callgrind_control >/dev/null &&
		command -v callgrind_annotate >/dev/null && return 0
	log "Installing valgrind"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y valgrind </dev/null >/dev/null 2>&1 ||
		{ apt-get update </dev/null >/dev/null && apt-get install -y valgrind </dev/null >/dev/null; } ||
		die "apt-get install valgrind failed"
}

# --- servers, schema -----------------------------------------------------------------

# node_conf NODE: the node's postgresql.conf additions
node_conf() {
	local node=$1
	echo "# pg_dtx callgrind run"
	echo "cluster_name = '$node'"
	echo "listen_addresses = '127.0.0.1'"
	echo "port = ${PORT[$node]}"
	echo "unix_socket_directories = '$W'"
	echo "log_line_prefix = '%m [%p] %q%a '"
	echo "fsync = on"
	echo "synchronous_commit = on"
	echo "full_page_writes = on"
	echo "huge_pages = off"
	echo "max_connections = 20"
	echo "max_prepared_transactions = 50"
	echo "max_wal_size = 4GB"
	echo "checkpoint_timeout = 30min"
	# on the measured node its workers would run under valgrind too, slowly,
	# next to the measured backend; a few thousand transactions do not need them
	[[ $node == "$CG_NODE" ]] && echo "autovacuum = off"
	return 0
}

# server_sql NAME: on the coordinator, the pg_dtx server NAME, the postgres_fdw
# servers fdw_NAME and fdwpc_NAME (parallel_commit) and their foreign tables
# fdw.accounts_NAME and fdwpc.accounts_NAME, all reaching participant NAME
# (as in bench/run.sh; dblink connects through the server fdw_NAME)
server_sql() {
	local name=$1 port=${PORT[$1]}
	echo "CREATE SERVER $name FOREIGN DATA WRAPPER dtx OPTIONS (host '127.0.0.1', port '$port', dbname 'bench');"
	echo "CREATE USER MAPPING FOR postgres SERVER $name OPTIONS (user 'postgres');"
	echo "CREATE SERVER fdw_$name FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '$port', dbname 'bench');"
	echo "CREATE USER MAPPING FOR postgres SERVER fdw_$name OPTIONS (user 'postgres');"
	echo "CREATE SERVER fdwpc_$name FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '$port', dbname 'bench', parallel_commit 'true');"
	echo "CREATE USER MAPPING FOR postgres SERVER fdwpc_$name OPTIONS (user 'postgres');"
	echo "CREATE FOREIGN TABLE fdw.accounts_$name (id int, balance bigint) SERVER fdw_$name OPTIONS (schema_name 'public', table_name 'accounts');"
	echo "CREATE FOREIGN TABLE fdwpc.accounts_$name (id int, balance bigint) SERVER fdwpc_$name OPTIONS (schema_name 'public', table_name 'accounts');"
}

# start_under_callgrind: the measured node's postmaster under callgrind,
# instrumentation off in it and in every process it forks
start_under_callgrind() {
	local n=0
	as_pg mkdir -p "$W/cg"
	# vgdb's FIFOs (through which callgrind_control talks to a process) are
	# named after $LOGNAME or $USER; a backend overwrites the environment
	# block valgrind reads them from when it sets its process title, and then
	# looks for FIFOs named otherwise.  Without those variables every name is
	# "???" (callgrind_control is run without them too).
	as_pg env -u LOGNAME -u USER -u HOST -u HOSTNAME valgrind --tool=callgrind --trace-children=yes --instr-atstart=no \
		--vgdb=yes --vgdb-prefix="$W/cg/vgdb" \
		--callgrind-out-file="$W/cg/callgrind.%p.out" --log-file="$W/cg/valgrind.%p.log" \
		"$PG_BINDIR/postgres" -D "$W/$CG_NODE" >>"$W/$CG_NODE.log" 2>&1 &
	CG_PID=$!
	until as_pg pg_isready -q -h 127.0.0.1 -p "${PORT[$CG_NODE]}" -d bench; do
		kill -0 "$CG_PID" 2>/dev/null || die "$CG_NODE did not start under valgrind (see $W/$CG_NODE.log)"
		sleep 1
		n=$((n + 1))
		[[ $n -lt 300 ]] || die "$CG_NODE did not start under valgrind within 300 s"
	done
}

setup() {
	local node i pd=()
	ensure_valgrind
	ensure_pg_os_user
	[[ -x $PG_BINDIR/postgres ]] || die "no PostgreSQL 15 server in $PG_BINDIR"
	[[ -f $("$PG_CONFIG" --pkglibdir)/pg_dtx.so ]] || die "pg_dtx is not installed (make install first)"

	W=$(mktemp -d "${TMPDIR:-/tmp}/pg_dtx_callgrind_servers.XXXXXX")
	chown "$PG_OS_USER": "$W"
	[[ -n $OUT ]] || OUT=$(mktemp -d "${TMPDIR:-/tmp}/pg_dtx_callgrind.XXXXXX")
	mkdir -p "$OUT"
	R=$OUT
	chmod 755 "$R"
	SUMMARY=$R/summary.md
	: >"$SUMMARY"
	cd "$W"

	NODES=(coord p1 p2)
	bench_assign_ports "$BASE_PORT" $((BASE_PORT + 100)) "${NODES[@]}"

	heading "Start 3 servers in $W (ports ${PORT[coord]}, ${PORT[p1]}, ${PORT[p2]})"
	for node in "${NODES[@]}"; do
		node_conf "$node" | bench_start_node "$node"
	done

	heading "Schema and data (${ACCOUNTS} accounts per participant)"
	for node in p1 p2; do
		q "$node" <<-SQL &
			CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
			INSERT INTO accounts (id, balance) SELECT g, 0 FROM generate_series(1, $ACCOUNTS) g;
			VACUUM ANALYZE accounts;
			CHECKPOINT;
		SQL
		pd+=($!)
	done
	{
		echo "CREATE EXTENSION pg_dtx; CREATE EXTENSION postgres_fdw; CREATE EXTENSION dblink;"
		echo "CREATE SCHEMA fdw; CREATE SCHEMA fdwpc;"
		bench_dblinkfn_sql
		server_sql p1
		server_sql p2
		echo "CHECKPOINT;"
	} | q coord
	for i in "${pd[@]}"; do wait "$i" || die "loading a participant failed"; done

	# the measured node again, now under callgrind
	as_pg pg_ctl -D "$W/$CG_NODE" -m fast -w -t 60 stop >/dev/null
	heading "Restart $CG_NODE under callgrind"
	start_under_callgrind
	switch_script | as_pg tee "$W/cg/switch.sh" >/dev/null
}

# switch_script: the shell script the session runs (through pgbench's \shell)
# to switch the instrumentation: "switch.sh on|off COORDINATOR_BACKEND_PID".
# It switches the coordinator's backend, or, with --side participant, the one
# client backend on p1 (the session's connection there, found when switching
# on and kept for switching off).
switch_script() {
	local ctl="env -u LOGNAME -u USER -u HOST -u HOSTNAME callgrind_control --vgdb-prefix=$W/cg/vgdb"
	echo "#!/bin/sh"
	echo "pid=\$2"
	if [[ $SIDE == participant ]]; then
		echo "if [ \"\$1\" = on ]; then"
		echo "  pid=\$($PG_BINDIR/psql -X -At -h 127.0.0.1 -p ${PORT[p1]} -U postgres -d bench -c \"SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()\")"
		echo "  echo \"\$pid\" > $W/cg/participant.pid"
		echo "else"
		echo "  pid=\$(cat $W/cg/participant.pid)"
		echo "fi"
	fi
	echo "exec $ctl -i \"\$1\" \$pid"
}

# --- scripts -------------------------------------------------------------------------
#
# cg_script VARIANT: the pgbench script of a variant: bench/run.sh's transfer
# over p1 and p2 (gen_script, bench/lib.sh: the first account pays 1, the
# second gets 1), preceded and followed by the switches of the backend's
# instrumentation.  :cg counts the session's transactions (gen_script's
# variants may count with :n); the first one records the backend's pid.

cg_script() {
	local variant=$1
	echo "\\set cg :cg + 1"
	echo "\\if :cg = 1"
	echo "SELECT pg_backend_pid() AS pid \\gset"
	printf '%s\n' '\endif'
	echo "\\if :cg = $((WARMUP + 1))"
	echo "\\shell sh $W/cg/switch.sh on :pid >> $W/cg/control.log 2>&1"
	printf '%s\n' '\endif'
	gen_script "$variant" 2 p
	echo "\\if :cg = $((WARMUP + XACTS))"
	echo "\\shell sh $W/cg/switch.sh off :pid >> $W/cg/control.log 2>&1"
	printf '%s\n' '\endif'
}

# --- measurement -----------------------------------------------------------------------

# measure VARIANT SEQ: runs the variant's session; leaves its callgrind file in
# $R/callgrind.VARIANT.out and prints the backend's pid
measure() {
	local v=$1 seq=$2 script=$W/$1.pgb pid n=0 f
	cg_script "$v" | as_pg tee "$script" >/dev/null
	# every variant starts from tables without dead rows: pruning them costs
	# the participants' backends, the more the later a variant runs
	q p1 -c "VACUUM accounts" && q p2 -c "VACUUM accounts" || die "VACUUM before $v failed"
	: | as_pg tee "$W/cg/control.log" >/dev/null
	as_pg env PGOPTIONS="${VOPTS[$v]:-}" pgbench -n -M "$PROTOCOL" -h 127.0.0.1 -p "${PORT[coord]}" -U postgres \
		-c 1 -j 1 -t $((WARMUP + XACTS)) -f "$script" -D n=0 -D cg=0 -D run="$seq" bench \
		>"$R/pgbench.$v.out" 2>&1 || { cat "$R/pgbench.$v.out" >&2; die "pgbench failed for $v"; }
	grep -q "aborted in command" "$R/pgbench.$v.out" && { cat "$R/pgbench.$v.out" >&2; die "pgbench aborted for $v"; }
	grep -q "^number of transactions actually processed: $((WARMUP + XACTS))/" "$R/pgbench.$v.out" ||
		{ cat "$R/pgbench.$v.out" >&2; die "pgbench did not run $((WARMUP + XACTS)) transactions for $v"; }
	[[ $(grep -c '^  OK\.$' "$W/cg/control.log") -eq 2 ]] ||
		{ cat "$W/cg/control.log" >&2; die "callgrind_control did not switch the instrumentation on and off for $v"; }
	pid=$(awk '/^PID [0-9]+:/ { sub(":", "", $2); print $2; exit }' "$W/cg/control.log")
	# the backend writes its counts when it exits
	f=$W/cg/callgrind.$pid.out
	while kill -0 "$pid" 2>/dev/null || [[ ! -s $f ]]; do
		sleep 0.5
		n=$((n + 1))
		[[ $n -lt 240 ]] || die "no callgrind file from backend $pid ($v)"
	done
	cp "$f" "$R/callgrind.$v.out"
	cp "$W/cg/valgrind.$pid.log" "$R/valgrind.$v.log" 2>/dev/null || true
	echo "$pid"
}

# total_ir FILE: the instructions counted in a callgrind file
total_ir() { awk '/^totals:/ { print $2; exit }' "$1"; }

# by_object FILE: "object Ir" lines, the self cost of each object (ELF file)
by_object() {
	callgrind_annotate --inclusive=no --threshold=100 --auto=no "$1" |
		awk 'match($0, /^ *[0-9,]+ \( *[0-9.]+%\)  .* \[[^]]*\]$/) {
			ir = $1; gsub(",", "", ir)
			obj = $0; sub(/.*\[/, "", obj); sub(/\]$/, "", obj)
			sum[obj] += ir
		} END { for (o in sum) print o, sum[o] }'
}

# object_share OBJECTS_FILE PATTERN: the Ir of the objects matching PATTERN (awk regex)
object_share() { awk -v p="$2" '$1 ~ p { s += $2 } END { print s + 0 }' "$1"; }

# top_functions FILE OBJPATTERN K: "inclusive self function" of the K functions of
# the objects matching OBJPATTERN with the most inclusive Ir
top_functions() {
	local file=$1 pat=$2 k=$3
	LC_ALL=C join -t $'\t' -1 1 -2 1 \
		<(callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$file" | fn_lines "$pat" | LC_ALL=C sort -t $'\t' -k1,1) \
		<(callgrind_annotate --inclusive=no --threshold=100 --auto=no "$file" | fn_lines "$pat" | LC_ALL=C sort -t $'\t' -k1,1) |
		sort -t $'\t' -k2,2nr | head -n "$k"
}
# fn_lines OBJPATTERN: "function<TAB>Ir" from callgrind_annotate's listing
fn_lines() {
	awk -v p="$1" 'match($0, /^ *[0-9,]+ \( *[0-9.]+%\)  .* \[[^]]*\]$/) {
		obj = $0; sub(/.*\[/, "", obj); sub(/\]$/, "", obj)
		if (obj !~ p) next
		ir = $1; gsub(",", "", ir)
		fn = $0; sub(/ \[[^]]*\]$/, "", fn); sub(/^ *[0-9,]+ \( *[0-9.]+%\)  /, "", fn)
		sub(/^.*:/, "", fn)
		s[fn] += ir
	} END { for (f in s) printf "%s\t%d\n", f, s[f] }'
}

# fmt IR: IR per counted transaction, digits grouped by commas
fmt() {
	awk -v x="$1" -v n="$XACTS" 'BEGIN { s = sprintf("%.0f", x / n); r = ""
		while (length(s) > 3 && substr(s, length(s) - 3, 1) ~ /[0-9]/) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
		print s r }'
}
# cell IR TOTAL: "Ir per transaction (share)", or "-" for none
cell() { if [[ $1 -eq 0 ]]; then echo "-"; else echo "$(fmt "$1") ($(pct "$1" "$2"))"; fi; }
pct() { awk -v x="$1" -v t="$2" 'BEGIN { if (t > 0) printf "%.1f%%", 100 * x / t; else print "-" }'; }

# --- run --------------------------------------------------------------------------------------

START=$(now)
setup

out "# pg_dtx: $SIDE instructions per transaction (callgrind)"
out ""
out "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
out "- command: \`$COMMAND_LINE\`"
out "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(uname -sr)"
out "- $(valgrind --version), $(val p1 'SELECT version()' | cut -d, -f1)"
out "- pg_dtx.so installed: $(md5sum "$("$PG_CONFIG" --pkglibdir)/pg_dtx.so" | cut -c1-12) (md5), extension version $(q coord -At -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_dtx'")"
out "- per variant: one pgbench session (-M $PROTOCOL, -c 1), $WARMUP warm-up transactions, then $XACTS counted; a transaction updates one random row on each of two participants"
out ""

# the dtx.send variants need the pipelined API in the installed pg_dtx
if [[ ",$VARIANTS_OPT," =~ ,dtxsend1?, ]] &&
	[[ $(val coord "SELECT count(*) FROM pg_proc WHERE pronamespace = 'dtx'::regnamespace AND proname IN ('send', 'send_expect', 'wait')") -lt 3 ]]; then
	out "**dtxsend and dtxsend1 skipped**: the installed pg_dtx has no dtx.send / dtx.send_expect / dtx.wait."
	out ""
	keep=()
	for v in "${VARIANTS[@]}"; do [[ $v == dtxsend || $v == dtxsend1 ]] || keep+=("$v"); done
	VARIANTS=("${keep[@]}")
fi

declare -A TOT=()
seq=0
for v in "${VARIANTS[@]}"; do
	seq=$((seq + 1))
	t0=$(now)
	heading "${VNAME[$v]}: $WARMUP + $XACTS transactions"
	pid=$(measure "$v" "$seq")
	by_object "$R/callgrind.$v.out" >"$R/objects.$v.txt"
	TOT[$v]=$(total_ir "$R/callgrind.$v.out")
	log "${VNAME[$v]}: backend $pid, $(fmt "${TOT[$v]}") Ir per transaction ($(elapsed "$t0" "$(now)") s)"
done

out "| variant | Ir per transaction | pg_dtx.so | postgres_fdw.so | dblink.so | libpq | postgres | libc | other |"
out "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for v in "${VARIANTS[@]}"; do
	f=$R/objects.$v.txt
	t=${TOT[$v]}
	dtx=$(object_share "$f" '/pg_dtx\\.so$')
	pfdw=$(object_share "$f" '/postgres_fdw\\.so$')
	dbl=$(object_share "$f" '/dblink\\.so$')
	lpq=$(object_share "$f" '/libpq\\.so')
	pg=$(object_share "$f" '/bin/postgres$')
	lc=$(object_share "$f" '/libc\\.so')
	other=$((t - dtx - pfdw - dbl - lpq - pg - lc))
	out "| ${VNAME[$v]} | $(fmt "$t") | $(cell "$dtx" "$t") | $(cell "$pfdw" "$t") | $(cell "$dbl" "$t") | $(cell "$lpq" "$t") | $(cell "$pg" "$t") | $(cell "$lc" "$t") | $(cell "$other" "$t") |"
done
out ""
out "(Instructions executed in user space by the $SIDE's backend ($CG_NODE), divided by the $XACTS counted transactions; each object's own instructions, not those of what it calls. \"other\": the dynamic loader, libm, ... Kernel work and waiting for the other servers are not counted.)"

for v in dtx dtxasync dtxsend dtxsend1; do
	[[ -n ${TOT[$v]:-} && $SIDE == coordinator ]] || continue
	out ""
	out "Top $TOP pg_dtx.so functions by inclusive instructions, ${VNAME[$v]} (per transaction; inclusive: with all it calls, in postgres and libpq too):"
	out ""
	out "| function | inclusive Ir | % of the transaction | self Ir |"
	out "| --- | ---: | ---: | ---: |"
	top_functions "$R/callgrind.$v.out" '/pg_dtx\\.so$' "$TOP" |
		while IFS=$'\t' read -r fn inc self; do
			out "| \`$fn\` | $(fmt "$inc") | $(pct "$inc" "${TOT[$v]}") | $(fmt "$self") |"
		done
done

out ""
out "Total time: $(elapsed "$START" "$(now)") s. Callgrind files: $R/callgrind.<variant>.out (callgrind_annotate --inclusive=yes FILE)."
