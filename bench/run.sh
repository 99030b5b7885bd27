#!/usr/bin/env bash
#
# bench/run.sh - "Atomic at no cost": what pg_dtx's atomic commit costs next to
# the non-atomic alternatives, on throw-away PostgreSQL 15 servers.
#
#   bash bench/run.sh            full run (about 15 minutes on an idle 2-CPU machine)
#   bash bench/run.sh --quick    short run (about 5 minutes): a smoke test, not a measurement
#
# Options (after --quick, if any, to override it):
#   --clients N        pgbench clients (and threads) of the comparisons (8)
#   --time T           seconds per variant per round (15; quick 5); the sweep and
#                      latency runs take 2/3 of it
#   --rounds R         interleaved rounds (3; quick 1)
#   --only LIST        sections to run, comma-separated:
#                      main,sweep,latency,rtt,resolver,memory (all)
#   --participants P   participant servers to start, 2..8 (8; the sweep touches 2, 4, 8)
#   --in-doubt N       in-doubt transactions for the resolver test (10000; quick 1000)
#   --memory-xacts N   transactions of the memory test (100000; quick 10000)
#   --out DIR          where to keep the results (default: a new /tmp/pg_dtx_bench_results.*)
#   --keep             keep the servers' directory (stopped) after the run
#   --port P           first TCP port to try (25500)
#   --serve            only set the servers up, print their ports and wait (for
#                      profiling by hand); stop with Ctrl-C
#
# Servers: a coordinator (pg_dtx preloaded; postgres_fdw and dblink installed)
# and P participants, each an instance of its own, listening on 127.0.0.1
# only, run as the "postgres" OS user in a private directory under /tmp.
# Durability is never weakened: fsync = on, synchronous_commit = on,
# full_page_writes = on everywhere.  Each participant holds accounts(id,
# balance, filler) with 100,000 rows; the coordinator holds accounts_1 and
# accounts_2 (100,000 rows each) for the "local" variant.
#
# Sections (see bench/README.md for what each measures and how to read it):
#   main      9 variants x R rounds, interleaved (the order rotates each round):
#             local, postgres_fdw, postgres_fdw parallel_commit, dblink 2PC,
#             dblink 2PC in one PL/pgSQL call (dblinkfn), pg_dtx (dtx.exec),
#             pg_dtx with dtx.synchronous_commit_prepared = off ("pg_dtx async":
#             the same script, the setting given to its sessions by PGOPTIONS),
#             pg_dtx with dtx.send_expect (dtxsend) and its async form (the
#             dtx.send variants only when the installed pg_dtx has dtx.send);
#             tps, p50, p99 (medians of rounds) and ratios (medians of the
#             per-round ratios)
#   sweep     2, 4, 8 participants per transaction: pg_dtx and pg_dtx async vs
#             postgres_fdw parallel_commit
#   latency   one client, direct, then through a delaying TCP proxy
#             (bench/delay_proxy.c, built with cc into the servers' directory)
#             in front of two participants, 1 ms and 5 ms added per round trip
#             (0.5 and 2.5 ms each way); at 1 ms also the throughput of N
#             clients (--clients) for the non-local variants
#   rtt       the issue's targets in one table: one client at +5 ms per round
#             trip, every variant (p50, p99, round trips) and the floor (a
#             participant's two round trips alone); N clients at +5 ms
#             (throughput against postgres_fdw); N clients on loopback
#             (dtx.send against dtx.exec, pg_dtx against dblinkfn)
#   resolver  N in-doubt committed transactions over two participants; time of
#             one dtx.resolve() and of the background resolver
#   memory    one coordinator backend (VmRSS, RssAnon, memory contexts, remote
#             connections) after 1, 1,000, 10,000, 100,000 transactions
#
# Needs root (servers run as "postgres") and a C compiler; builds and
# installs pg_dtx first (into PG_CONFIG's installation).  The servers'
# directory and the default results directory go under $TMPDIR (/tmp).

set -euo pipefail

BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=test/lib/common.sh
source "$BENCH_SRC/../test/lib/common.sh"
# shellcheck source=bench/lib.sh
source "$BENCH_SRC/lib.sh"

COMMAND_LINE="bash bench/run.sh $*"

# --- options ---------------------------------------------------------------------

QUICK=0
CLIENTS=8
TIME=15
ROUNDS=3
WARM=3
SWEEP_TIME=10
LAT_TIME=10
LAT_CLIENTS=1
INDOUBT=10000
MEM_XACTS=100000
NPART=8
ONLY=main,sweep,latency,rtt,resolver,memory
OUT=""
KEEP=0
SERVE=0
BASE_PORT=${BENCH_PORT:-25500}   # below Linux's ephemeral range (32768-60999)
ACCOUNTS=100000

set_quick() {
	QUICK=1
	TIME=5
	ROUNDS=1
	WARM=1
	SWEEP_TIME=4
	LAT_TIME=4
	INDOUBT=1000
	MEM_XACTS=10000
}

while [[ $# -gt 0 ]]; do
	case $1 in
	--quick) set_quick ;;
	--clients) CLIENTS=$2; shift ;;
	--time) TIME=$2; SWEEP_TIME=$(( $2 * 2 / 3 > 2 ? $2 * 2 / 3 : 2 )); LAT_TIME=$SWEEP_TIME; shift ;;
	--rounds) ROUNDS=$2; shift ;;
	--only) ONLY=$2; shift ;;
	--participants) NPART=$2; shift ;;
	--in-doubt) INDOUBT=$2; shift ;;
	--memory-xacts) MEM_XACTS=$2; shift ;;
	--out) OUT=$2; shift ;;
	--keep) KEEP=1 ;;
	--serve) SERVE=1 ;;
	--port) BASE_PORT=$2; shift ;;
	-h | --help) sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
	shift
done
[[ $NPART -ge 2 && $NPART -le 8 ]] || die "--participants must be 2..8"
is_root || die "run as root: the servers run as the postgres OS user"

want() { [[ ",$ONLY," == *",$1,"* ]]; }

# --- state -------------------------------------------------------------------------

W=""                      # the servers' directory (owned by postgres)
R=""                      # results directory (owned by postgres while running)
NODES=()
declare -A PORT=()
PROXY_PIDS=()
SUMMARY=""                # the summary file
SERVE_SLEEP=""            # --serve: the sleep it waits on

cleanup() {
	local rc=$? node pid
	set +e
	trap - EXIT INT TERM
	[[ $SERVE == 1 && ($rc -eq 130 || $rc -eq 143) ]] && rc=0
	[[ -n $SERVE_SLEEP ]] && kill "$SERVE_SLEEP" 2>/dev/null
	if [[ -n $W && -d $W ]]; then
		for pid in "$W"/proxy-*.pid; do
			[[ -s $pid ]] && kill "$(cat "$pid")" 2>/dev/null
		done
		[[ $rc -ne 0 ]] && bench_show_logs
		bench_stop_nodes
		[[ -n $R && -d $R ]] && chown -R root: "$R" 2>/dev/null
		bench_keep_logs
		cd /
		if [[ $KEEP == 1 ]]; then
			log "servers' directory kept: $W"
		else
			rm -rf -- "$W"
		fi
	fi
	[[ -n $R ]] && log "results: $R"
	[[ $rc -ne 0 ]] && log "BENCHMARK FAILED (exit status $rc)"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers -----------------------------------------------------------------------

# port_free, q, val, out, now: bench/lib.sh
section() {
	out ""
	out "## $*"
	out ""
	out "load: $(cut -d' ' -f1-3 /proc/loadavg) ($(date +%H:%M:%S))"
	out ""
}

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# --- scripts -------------------------------------------------------------------------
#
# gen_script (bench/lib.sh) writes each variant's pgbench script.

# cpu_ticks: CPU time used so far (clock ticks) by each server - postmaster,
# live children, and children already gone - as "coord p1 ... pN"
cpu_ticks() {
	local node pm t ch x
	for node in "${NODES[@]}"; do
		pm=$(head -n 1 "$W/$node/postmaster.pid")
		# fields after the command name: 12 utime, 13 stime, 14 cutime, 15 cstime
		t=$(sed 's/.*) //' "/proc/$pm/stat" | awk '{ print $12 + $13 + $14 + $15 }')
		for ch in $(pgrep -P "$pm"); do
			x=$(sed 's/.*) //' "/proc/$ch/stat" 2>/dev/null | awk '{ print $12 + $13 }') || x=0
			t=$((t + ${x:-0}))
		done
		printf '%s ' "$t"
	done
	echo
}

# bench_run LABEL SCRIPT CLIENTS SECONDS [PGOPTIONS [NODE MODE]]: runs pgbench
# on the coordinator (or on NODE, with pgbench's query mode MODE, "prepared"
# by default), its sessions started with PGOPTIONS (see vopts), and prints
# "tps p50_ms p99_ms transactions coord_cpu_ms participants_cpu_ms"
# (latencies from the per-transaction log, nearest-rank percentiles over all
# transactions of the run; CPU per transaction, all server processes, the
# participants summed)
bench_run() {
	local label=$1 script=$2 clients=$3 secs=$4 opts=${5:-} node=${6:-coord} mode=${7:-prepared}
	local dir rc=0 tps lat seq before after
	seq=$(($(find "$R/runs" -mindepth 1 -maxdepth 1 | wc -l) + 1))
	dir=$R/runs/$(printf '%03d' "$seq")-$label
	as_pg mkdir -p "$dir"
	before=$(cpu_ticks)
	as_pg env PGOPTIONS="$opts" pgbench -n -M "$mode" -h 127.0.0.1 -p "${PORT[$node]}" -U postgres \
		-c "$clients" -j "$clients" -T "$secs" -f "$script" \
		-D n=0 -D run="$seq" -l --log-prefix="$dir/tx" bench \
		>"$dir/pgbench.out" 2>&1 || rc=$?
	sleep 0.3 # the backends exit
	after=$(cpu_ticks)
	if [[ $rc -ne 0 ]] || grep -q "aborted in command" "$dir/pgbench.out"; then
		cat "$dir/pgbench.out" >&2
		die "pgbench failed for $label (see $dir/pgbench.out)"
	fi
	tps=$(awk '/^tps = / { print $3; exit }' "$dir/pgbench.out")
	# field 3 of the log: the transaction's latency in microseconds
	lat=$(cat "$dir"/tx.* | awk '{ print $3 }' | sort -n |
		awk '{ v[NR] = $1 } END {
			if (NR == 0) { print "nan nan 0"; exit }
			i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++
			i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++
			printf "%.3f %.3f %d", v[i50] / 1000, v[i99] / 1000, NR }')
	rm -f "$dir"/tx.*
	echo "$tps $lat $(awk -v b="$before" -v a="$after" -v n="${lat##* }" -v hz="$(getconf CLK_TCK)" 'BEGIN {
		k = split(b, x, " "); split(a, y, " "); p = 0
		for (i = 2; i <= k; i++) p += y[i] - x[i]
		if (n == 0) n = 1
		printf "%.3f %.3f", (y[1] - x[1]) * 1000 / hz / n, p * 1000 / hz / n }')"
}

# --- build, servers, schema ----------------------------------------------------------

# server_sql NAME: the SQL that makes, on the coordinator, the pg_dtx server
# NAME, the postgres_fdw servers fdw_NAME and fdwpc_NAME (parallel_commit)
# and their foreign tables fdw.accounts_NAME and fdwpc.accounts_NAME, all
# reaching participant NAME (or, for lpN, the proxy in front of pN)
server_sql() {
	local name=$1 port=${PORT[$1]}
	echo "CREATE SERVER $name FOREIGN DATA WRAPPER dtx OPTIONS (host '127.0.0.1', port '$port', dbname 'bench');"
	echo "CREATE USER MAPPING FOR postgres SERVER $name OPTIONS (user 'postgres');"
	echo "CREATE SERVER fdw_$name FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '$port', dbname 'bench');"
	echo "CREATE USER MAPPING FOR postgres SERVER fdw_$name OPTIONS (user 'postgres');"
	echo "CREATE SERVER fdwpc_$name FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '$port', dbname 'bench', parallel_commit 'true');"
	echo "CREATE USER MAPPING FOR postgres SERVER fdwpc_$name OPTIONS (user 'postgres');"
	echo "CREATE FOREIGN TABLE fdw.accounts_$name (id int, balance bigint, filler char(84)) SERVER fdw_$name OPTIONS (schema_name 'public', table_name 'accounts');"
	echo "CREATE FOREIGN TABLE fdwpc.accounts_$name (id int, balance bigint, filler char(84)) SERVER fdwpc_$name OPTIONS (schema_name 'public', table_name 'accounts');"
}

setup() {
	local node i pd mpx
	heading "Build and install pg_dtx"
	ensure_build_deps
	build_and_install >/dev/null
	ensure_pg_os_user

	W=$(mktemp -d "${TMPDIR:-/tmp}/pg_dtx_bench.XXXXXX")
	chown "$PG_OS_USER": "$W"
	chmod 755 "$W"
	if [[ -z $OUT ]]; then
		OUT=$(mktemp -d "${TMPDIR:-/tmp}/pg_dtx_bench_results.XXXXXX")
	fi
	mkdir -p "$OUT"
	R=$OUT
	chown -R "$PG_OS_USER": "$R"
	SUMMARY=$R/summary.md
	: >"$SUMMARY"
	chmod 644 "$SUMMARY"
	as_pg mkdir -p "$R/runs" "$R/scripts"
	cd "$W"

	# the delaying proxy of the latency runs, built for this run
	cc -O2 -Wall -Wextra -Werror -o "$W/delay_proxy" "$BENCH_SRC/delay_proxy.c" ||
		die "building bench/delay_proxy.c failed"

	NODES=(coord)
	for ((i = 1; i <= NPART; i++)); do NODES+=("p$i"); done
	bench_assign_ports "$BASE_PORT" $((BASE_PORT + 199)) "${NODES[@]}" lp1 lp2

	heading "Start ${#NODES[@]} servers in $W"
	for node in "${NODES[@]}"; do
		mpx=200
		[[ $node == p1 || $node == p2 ]] && mpx=$((INDOUBT + 200))
		{
			echo "# pg_dtx benchmark"
			echo "cluster_name = '$node'"
			echo "listen_addresses = '127.0.0.1'"
			echo "port = ${PORT[$node]}"
			echo "unix_socket_directories = '$W'"
			echo "log_line_prefix = '%m [%p] %q%a '"
			echo "fsync = on"
			echo "synchronous_commit = on"
			echo "full_page_writes = on"
			echo "max_connections = 100"
			echo "shared_buffers = 128MB"
			echo "max_wal_size = 4GB"
			echo "checkpoint_timeout = 30min"
			if [[ $node == coord ]]; then
				echo "shared_preload_libraries = 'pg_dtx'"
				echo "max_prepared_transactions = 0"
			else
				echo "max_prepared_transactions = $mpx"
			fi
		} | bench_start_node "$node"
	done

	heading "Schema and data (${ACCOUNTS} accounts per table)"
	pd=()
	for ((i = 1; i <= NPART; i++)); do
		q "p$i" <<-SQL &
			CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, filler char(84) NOT NULL DEFAULT '');
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
		for i in 1 2; do
			echo "CREATE TABLE accounts_$i (id int PRIMARY KEY, balance bigint NOT NULL, filler char(84) NOT NULL DEFAULT '');"
			echo "INSERT INTO accounts_$i (id, balance) SELECT g, 0 FROM generate_series(1, $ACCOUNTS) g;"
			echo "VACUUM ANALYZE accounts_$i;"
		done
		# servers p1..pN (lp1/lp2, through the proxies, are made by the latency run)
		local name
		for name in $(seq -f 'p%g' 1 "$NPART"); do
			server_sql "$name"
		done
		echo "CHECKPOINT;"
	} | q coord
	for i in "${pd[@]}"; do wait "$i" || die "loading a participant failed"; done
	check_send_api
}

# check_send_api: HAVE_SEND=1 when the installed pg_dtx has the pipelined API
# (dtx.send_expect); otherwise the dtxsend variants are dropped, with a line
# in the summary saying so
HAVE_SEND=0
check_send_api() {
	local v keep=()
	if [[ $(val coord "SELECT count(*) FROM pg_proc WHERE pronamespace = 'dtx'::regnamespace AND proname IN ('send', 'send_expect', 'wait')") -ge 3 ]]; then
		HAVE_SEND=1
		return 0
	fi
	for v in "${VARIANTS[@]}"; do is_send "$v" || keep+=("$v"); done
	VARIANTS=("${keep[@]}")
}
is_send() { [[ $1 == dtxsend || $1 == dtxsendasync || $1 == dtxsend1 ]]; }
# send_skipped: the summary's line for a section without the dtxsend variants
send_skipped() {
	[[ $HAVE_SEND == 1 ]] && return 0
	out "**dtx.send variants skipped**: the installed pg_dtx has no dtx.send / dtx.send_expect / dtx.wait (the pipelined API); their rows say \"skipped\"."
	out ""
}
# avail VARIANT...: the variants given that this run can measure
avail() {
	local v
	for v in "$@"; do
		if [[ $HAVE_SEND == 1 ]] || ! is_send "$v"; then printf '%s\n' "$v"; fi
	done
}

print_header() {
	local s
	out "# pg_dtx benchmark: atomic at no cost?"
	out ""
	out "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	out "- command: \`$COMMAND_LINE\`$([[ $QUICK == 1 ]] && echo ' (quick: a smoke test, not a measurement)')"
	out "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem:/ { print $2 }') GB RAM, $(uname -sr)"
	out "- load at start: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min; other work on the machine shares its $(nproc) CPUs; the loads printed later include this benchmark's own clients and servers, about $CLIENTS while pgbench runs)"
	out "- pg_dtx built from the work tree at $(git -C "$BENCH_SRC/.." describe --always --dirty 2>/dev/null || echo '?') ($(git -C "$BENCH_SRC/.." status --porcelain -- src sql 2>/dev/null | wc -l) uncommitted file(s) in src/ and sql/), $(val coord 'SELECT version()' | cut -d, -f1)"
	out "- servers: 1 coordinator + $NPART participants, separate instances on 127.0.0.1, data in $W (ext4)"
	out "- pgbench: -M prepared, -c $CLIENTS -j $CLIENTS, $TIME s per variant per round, $ROUNDS round(s), variants interleaved (order rotating), $WARM s warm-up each"
	out ""
	out "Settings (coordinator / participant p1):"
	out ""
	out '```'
	s="name IN ('fsync','synchronous_commit','full_page_writes','wal_sync_method','shared_buffers','max_connections','max_prepared_transactions','max_wal_size','checkpoint_timeout','shared_preload_libraries','wal_level','max_worker_processes') OR name LIKE 'dtx.%'"
	q coord -At -F ' = ' -c "SELECT name, current_setting(name) FROM pg_settings WHERE $s ORDER BY name" | sed 's/^/coord: /' | tee -a "$SUMMARY"
	q p1 -At -F ' = ' -c "SELECT name, current_setting(name) FROM pg_settings WHERE $s ORDER BY name" | sed 's/^/p1:    /' | tee -a "$SUMMARY"
	out '```'
}

# --- main comparison -----------------------------------------------------------------

VARIANTS=(local fdw fdwpc dblink dblinkfn dtx dtxasync dtxsend dtxsendasync)
declare -A VNAME=([local]="local (coordinator tables)" [fdw]="postgres_fdw" [fdwpc]="postgres_fdw parallel_commit"
	[dblink]="dblink 2PC (hand-written)" [dblinkfn]="dblink 2PC in one PL/pgSQL call"
	[dtx]="pg_dtx" [dtxasync]="pg_dtx, synchronous_commit_prepared off"
	[dtxsend]="pg_dtx dtx.send" [dtxsendasync]="pg_dtx dtx.send, synchronous_commit_prepared off"
	[dtxsend1]="pg_dtx dtx.send, one statement per transfer")
# settings a variant's sessions start with (PGOPTIONS of its pgbench run only)
declare -A VOPTS=([dtxasync]="-c dtx.synchronous_commit_prepared=off" [dtxsendasync]="-c dtx.synchronous_commit_prepared=off")
vopts() { echo "${VOPTS[$1]:-}"; }
is_dtx() { [[ $1 == dtx || $1 == dtxasync || $1 == dtxsend || $1 == dtxsendasync || $1 == dtxsend1 ]]; }

dtx_phase_times() {
	# average PREPARE phase and COMMIT PREPARED phase (ms) since the last reset
	# (with synchronous_commit_prepared off the second is only the sending)
	val coord "SELECT round((prepare_time_ms / nullif(two_phase_commits, 0))::numeric, 3) || ' ' || round((commit_prepared_time_ms / nullif(two_phase_commits, 0))::numeric, 3) FROM dtx.stats()" 2>/dev/null ||
		echo "? ?"
}

# WAL flushes (fdatasync) so far on coord, p1, p2 (pg_stat_wal)
wal_syncs() {
	local node
	for node in coord p1 p2; do
		printf '%s ' "$(val "$node" "SELECT wal_sync FROM pg_stat_wal")"
	done
}

# ratio_cells FILE A B COLS...: " r1 | r2 | ..." - for each column, the median
# over rounds (field 1) of the per-round ratio variant A / variant B
ratio_cells() {
	local file=$1 a=$2 b=$3 col cells=""
	shift 3
	for col in "$@"; do
		cells+=" $(awk -v a="$a" -v b="$b" -v c="$col" '$2 == b { o[$1] = $c } $2 == a { d[$1] = $c }
			END { for (r in d) if ((r in o) && o[r] > 0) print d[r] / o[r] }' "$file" | median | xargs printf '%.2f') |"
	done
	printf '%s' "$cells"
}

main_section() {
	local v r i res file w0
	section "Main comparison: 2 participants, $CLIENTS clients, $ROUNDS x $TIME s per variant"
	send_skipped
	for v in "${VARIANTS[@]}"; do
		gen_script "$v" 2 p >"$R/scripts/$v.pgb"
	done
	out "pg_dtx async sessions start with PGOPTIONS='$(vopts dtxasync)': SHOW dtx.synchronous_commit_prepared gives $(as_pg env PGOPTIONS="$(vopts dtxasync)" psql -X -At -h 127.0.0.1 -p "${PORT[coord]}" -U postgres -d bench -c 'SHOW dtx.synchronous_commit_prepared') there, $(val coord 'SHOW dtx.synchronous_commit_prepared') in the other variants."
	out ""
	log "warm-up: ${WARM}s per variant"
	for v in "${VARIANTS[@]}"; do
		bench_run "warm-$v" "$R/scripts/$v.pgb" "$CLIENTS" "$WARM" "$(vopts "$v")" >/dev/null
	done
	file=$R/main.tsv
	: >"$file"
	for ((r = 1; r <= ROUNDS; r++)); do
		for ((i = 0; i < ${#VARIANTS[@]}; i++)); do
			v=${VARIANTS[$(((i + r - 1) % ${#VARIANTS[@]}))]}
			is_dtx "$v" && val coord "SELECT dtx.stats_reset()" >/dev/null
			w0=$(wal_syncs)
			res=$(bench_run "main-r$r-$v" "$R/scripts/$v.pgb" "$CLIENTS" "$TIME" "$(vopts "$v")")
			res="$res $(awk -v a="$w0" -v b="$(wal_syncs)" -v n="$(echo "$res" | cut -d' ' -f4)" 'BEGIN {
				split(a, x, " "); split(b, y, " "); if (n == 0) n = 1
				printf "%.2f %.2f", (y[1] - x[1]) / n, (y[2] - x[2] + y[3] - x[3]) / n }')"
			if is_dtx "$v"; then res="$res $(dtx_phase_times)"; fi
			echo "$r $v $res" >>"$file"
			log "round $r $(printf '%-8s' "$v"): tps p50 p99 n cpu-coord cpu-parts flush-coord flush-parts [prepare commit-prepared] = $res (load $(cut -d' ' -f1 /proc/loadavg))"
		done
	done

	out "| variant | atomic | tps | p50 ms | p99 ms | CPU ms per transaction: coordinator | participants | WAL flushes per transaction: coordinator | participants |"
	out "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for v in "${VARIANTS[@]}"; do
		local atomic=no c cells=""
		[[ $v == local ]] || is_dtx "$v" && atomic=yes
		[[ $v == dblink || $v == dblinkfn ]] && atomic="yes, no recovery"
		for c in 3:%.0f 4:%.2f 5:%.2f 7:%.3f 8:%.3f 9:%.2f 10:%.2f; do
			cells+=" $(awk -v v="$v" -v c="${c%%:*}" '$2 == v { print $c }' "$file" | median | xargs printf "${c#*:}") |"
		done
		out "| ${VNAME[$v]} | $atomic |$cells"
	done
	out ""
	local pair sync async
	for pair in dtx:dtxasync dtxsend:dtxsendasync; do
		sync=${pair%%:*}
		async=${pair#*:}
		[[ -n $(avail "$sync") ]] || continue
		out "Ratios, ${VNAME[$sync]} / other and ${VNAME[$async]} / other (median of the per-round ratios; tps below 1 and latency above 1 mean pg_dtx is slower):"
		out ""
		out "| vs | $sync tps | $sync p50 | $sync p99 | $async tps | $async p50 | $async p99 |"
		out "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
		for v in local fdw fdwpc dblink dblinkfn; do
			out "| ${VNAME[$v]} |$(ratio_cells "$file" "$sync" "$v" 3 4 5)$(ratio_cells "$file" "$async" "$v" 3 4 5)"
		done
		if [[ $sync == dtxsend ]]; then
			out "| ${VNAME[dtx]} |$(ratio_cells "$file" dtxsend dtx 3 4 5)$(ratio_cells "$file" dtxsendasync dtx 3 4 5)"
		else
			out "| ${VNAME[dtx]} | | | |$(ratio_cells "$file" dtxasync dtx 3 4 5)"
		fi
		out ""
	done
	out "Targets (tps >= 1.0x postgres_fdw, >= 1.2x dblink 2PC; p99 <= 1.5x parallel_commit; medians of the per-round ratios):"
	out ""
	local a b c
	for v in $(avail dtx dtxasync dtxsend dtxsendasync); do
		a=$(ratio_cells "$file" "$v" fdw 3 | tr -d ' |')
		b=$(ratio_cells "$file" "$v" dblink 3 | tr -d ' |')
		c=$(ratio_cells "$file" "$v" fdwpc 5 | tr -d ' |')
		out "- ${VNAME[$v]}: tps ${a}x postgres_fdw ($(awk -v x="$a" 'BEGIN { print (x >= 1.0) ? "met" : "NOT met" }')), ${b}x dblink 2PC ($(awk -v x="$b" 'BEGIN { print (x >= 1.2) ? "met" : "NOT met" }')); p99 ${c}x parallel_commit ($(awk -v x="$c" 'BEGIN { print (x <= 1.5) ? "met" : "NOT met" }'))"
	done
	out ""
	for v in $(avail dtx dtxasync dtxsend dtxsendasync); do
		out "${VNAME[$v]} phases (dtx.stats, median of rounds): PREPARE phase $(awk -v v="$v" '$2 == v { print $11 }' "$file" | median) ms, COMMIT PREPARED phase $(awk -v v="$v" '$2 == v { print $12 }' "$file" | median) ms per transaction$([[ $v == *async ]] && echo ' (sending only: the answers are read later)')."
	done
	out ""
	out "Per round (round, variant, tps, p50 ms, p99 ms, transactions, CPU ms per transaction on the coordinator and on the participants, WAL flushes per transaction on the coordinator and on the participants; pg_dtx: PREPARE and COMMIT PREPARED phase ms):"
	out ""
	out '```'
	tee -a "$SUMMARY" <"$file"
	out '```'
}

# --- participant sweep ------------------------------------------------------------------

sweep_section() {
	local k v res file=$R/sweep.tsv ks=() svariants=(fdwpc dtx dtxasync)
	for k in 2 4 8; do [[ $k -le $NPART ]] && ks+=("$k"); done
	section "Participant sweep: ${ks[*]} participants per transaction, $CLIENTS clients, $SWEEP_TIME s each ($NPART separate participant instances)"
	: >"$file"
	for k in "${ks[@]}"; do
		for v in "${svariants[@]}"; do
			gen_script "$v" "$k" p >"$R/scripts/sweep-$v-$k.pgb"
			bench_run "sweep-$v-$k" "$R/scripts/sweep-$v-$k.pgb" "$CLIENTS" 1 "$(vopts "$v")" >/dev/null # warm-up
			res=$(bench_run "sweep-$v-$k" "$R/scripts/sweep-$v-$k.pgb" "$CLIENTS" "$SWEEP_TIME" "$(vopts "$v")")
			echo "$k $v $res" >>"$file"
			log "sweep $k participants $(printf '%-8s' "$v"): tps p50 p99 n cpu-coord cpu-parts = $res"
		done
	done
	out "| participants | postgres_fdw parallel_commit tps | pg_dtx tps | ratio | pg_dtx async tps | ratio | fdw p50 ms | pg_dtx p50 ms | async p50 ms | fdw p99 ms | pg_dtx p99 ms | async p99 ms | pg_dtx p99 ratio | async p99 ratio |"
	out "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for k in "${ks[@]}"; do
		out "$(awk -v k="$k" '$1 != k { next } $2 == "fdwpc" { ft = $3; f50 = $4; f99 = $5 } $2 == "dtx" { dt = $3; d50 = $4; d99 = $5 } $2 == "dtxasync" { at = $3; a50 = $4; a99 = $5 }
			END { printf "| %d | %.0f | %.0f | %.2f | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |", k, ft, dt, dt / ft, at, at / ft, f50, d50, a50, f99, d99, a99, d99 / f99, a99 / f99 }' "$file")"
	done
	out ""
	out "CPU ms per transaction (coordinator / participants summed):"
	out ""
	for k in "${ks[@]}"; do
		out "- $k participants: $(awk -v k="$k" '$1 == k { printf "%s%s %.3f / %.3f", sep, $2, $7, $8; sep = "; " }' "$file")"
	done
}

# --- latency-injected run -----------------------------------------------------------------

start_proxies() {
	local delay=$1 i pidfile
	PROXY_PIDS=()
	for i in 1 2; do
		pidfile=$W/proxy-lp$i.pid
		rm -f "$pidfile"
		as_pg "$W/delay_proxy" --listen "127.0.0.1:${PORT[lp$i]}" \
			--target "127.0.0.1:${PORT[p$i]}" --delay-ms "$delay" --pidfile "$pidfile" \
			2>>"$W/proxy.log" &
		PROXY_PIDS+=($!)
	done
	for i in 1 2; do
		local n=0
		while ! [[ -s $W/proxy-lp$i.pid ]] || port_free "${PORT[lp$i]}"; do
			sleep 0.1
			n=$((n + 1))
			[[ $n -lt 100 ]] || die "proxy lp$i did not start"
		done
	done
}

stop_proxies() {
	local pid i
	for i in 1 2; do
		# the proxy itself (runuser, its parent, exits with it)
		[[ -s $W/proxy-lp$i.pid ]] && kill "$(cat "$W/proxy-lp$i.pid")" 2>/dev/null
		rm -f "$W/proxy-lp$i.pid"
	done
	for pid in "${PROXY_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	PROXY_PIDS=()
}

# proxy_ticks: CPU time used so far (clock ticks) by both proxies together
proxy_ticks() {
	local i t=0 x
	for i in 1 2; do
		x=$(sed 's/.*) //' "/proc/$(cat "$W/proxy-lp$i.pid")/stat" 2>/dev/null | awk '{ print $12 + $13 }') || x=0
		t=$((t + ${x:-0}))
	done
	echo "$t"
}

latency_section() {
	local delay v res file=$R/latency.tsv many=$R/latency_clients.tsv rtt script p0
	local lvariants
	mapfile -t lvariants < <(avail fdw fdwpc dblink dblinkfn dtx dtxasync dtxsend dtxsendasync)
	section "Latency: $LAT_CLIENTS client(s), $LAT_TIME s each, direct, then through a proxy in front of p1 and p2 adding 1 ms and 5 ms per round trip; at 1 ms also $CLIENTS clients"
	send_skipped
	: >"$file"
	: >"$many"
	for v in "${lvariants[@]}"; do
		gen_script "$v" 2 p >"$R/scripts/latency-direct-$v.pgb"
		gen_script "$v" 2 lp >"$R/scripts/latency-$v.pgb"
	done
	{ server_sql lp1; server_sql lp2; } | q coord
	for delay in direct 0.5 2.5; do
		if [[ $delay == direct ]]; then
			rtt=0
			script=$R/scripts/latency-direct-
		else
			rtt=$(awk -v d="$delay" 'BEGIN { print 2 * d }')
			script=$R/scripts/latency-
			start_proxies "$delay"
		fi
		for v in "${lvariants[@]}"; do
			bench_run "lat$rtt-$v-warm" "$script$v.pgb" "$LAT_CLIENTS" 1 "$(vopts "$v")" >/dev/null
			res=$(bench_run "lat$rtt-$v" "$script$v.pgb" "$LAT_CLIENTS" "$LAT_TIME" "$(vopts "$v")")
			echo "$rtt $v $res" >>"$file"
			log "latency +${rtt}ms RTT $(printf '%-8s' "$v"): tps p50 p99 n cpu-coord cpu-parts = $res"
		done
		if [[ $delay == 0.5 && $CLIENTS -gt $LAT_CLIENTS ]]; then
			# throughput when the round trips cost 1 ms: many clients
			for v in "${lvariants[@]}"; do
				bench_run "lat$rtt-c$CLIENTS-$v-warm" "$script$v.pgb" "$CLIENTS" 1 "$(vopts "$v")" >/dev/null
				p0=$(proxy_ticks)
				res=$(bench_run "lat$rtt-c$CLIENTS-$v" "$script$v.pgb" "$CLIENTS" "$LAT_TIME" "$(vopts "$v")")
				res="$res $(awk -v a="$p0" -v b="$(proxy_ticks)" -v n="$(echo "$res" | cut -d' ' -f4)" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n == 0) n = 1; printf "%.3f", (b - a) * 1000 / hz / n }')"
				echo "$rtt $v $res" >>"$many"
				log "latency +${rtt}ms RTT, $CLIENTS clients $(printf '%-8s' "$v"): tps p50 p99 n cpu-coord cpu-parts cpu-proxies = $res"
			done
		fi
		if [[ $delay != direct ]]; then
			# finish what is pending (pg_dtx async: answers given up when its
			# sessions ended) with the proxies still up
			val coord "SELECT count(*) FROM dtx.resolve()" >/dev/null
		fi
		if [[ $delay == 2.5 ]]; then
			# then forget them
			q coord -c "DROP SERVER lp1, lp2, fdw_lp1, fdw_lp2, fdwpc_lp1, fdwpc_lp2 CASCADE" 2>/dev/null
		fi
		[[ $delay == direct ]] || stop_proxies
	done
	out "| variant | p50 ms, direct | p99 ms, direct | p50 ms, +1 ms RTT | p99 ms, +1 ms RTT | p50 ms, +5 ms RTT | p99 ms, +5 ms RTT | round trips on the critical path (p50 slope) |"
	out "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for v in "${lvariants[@]}"; do
		out "$(awk -v v="$v" -v name="${VNAME[$v]}" '$2 == v { p50[$1] = $4; p99[$1] = $5 }
			END { printf "| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f |", name, p50[0], p99[0], p50[1], p99[1], p50[5], p99[5], (p50[5] - p50[1]) / 4 }' "$file")"
	done
	local d
	for d in $(avail dtx dtxasync dtxsend dtxsendasync); do
		out ""
		out "${VNAME[$d]} minus the others, p50, in round trips of the injected delay:"
		out ""
		local others=(fdw fdwpc dblink dblinkfn)
		[[ $d != dtx ]] && others+=(dtx)
		[[ $d == dtxsendasync ]] && others+=(dtxsend)
		for v in "${others[@]}"; do
			out "- vs ${VNAME[$v]}: $(awk -v v="$v" -v dv="$d" '$2 == v { o[$1] = $4 } $2 == dv { d[$1] = $4 }
				END { printf "%+.2f ms direct; %+.2f ms = %+.1f round trips at 1 ms; %+.2f ms = %+.1f round trips at 5 ms", d[0] - o[0], d[1] - o[1], d[1] - o[1], d[5] - o[5], (d[5] - o[5]) / 5 }' "$file")"
		done
	done
	out ""
	out "(The slope column is (p50 at 5 ms - p50 at 1 ms) / 4 ms: how many sequential round trips to the participants a transaction waits for. \"direct\" is loopback without the proxy.)"
	if [[ -s $many ]]; then
		out ""
		out "Throughput with $CLIENTS clients, +1 ms per round trip (proxy in front of p1 and p2), $LAT_TIME s each:"
		out ""
		out "| variant | tps | p50 ms | p99 ms | pg_dtx tps / this | pg_dtx async tps / this | CPU ms per transaction: coordinator | participants | proxies |"
		out "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
		for v in "${lvariants[@]}"; do
			out "$(awk -v v="$v" -v name="${VNAME[$v]}" '$2 == "dtx" { d = $3 } $2 == "dtxasync" { a = $3 } $2 == v { t = $3; p50 = $4; p99 = $5; cc = $7; cp = $8; cx = $9 }
				END { printf "| %s | %.0f | %.2f | %.2f | %.2f | %.2f | %.3f | %.3f | %.3f |", name, t, p50, p99, d / t, a / t, cc, cp, cx }' "$many")"
		done
		out ""
		out "(The proxies (bench/delay_proxy.c, one thread each) share the machine's CPUs with everything else; their CPU per transaction grows with the number of round trips.)"
	fi
}

# --- the issue's round-trip targets ----------------------------------------------------------
#
# rtt_section: the target table in one run.  (1) one client on loopback and
# (2) one client with 5 ms more per round trip (the C proxy, 2.5 ms each way,
# in front of p1 and p2), every variant: p50, p99 and the p50 in round trips,
# with the floor beside them (one participant's two round trips and flushes,
# sent by the client straight to p1: what the machine itself gives);
# (3) CLIENTS clients at +5 ms: throughput against postgres_fdw; (4) CLIENTS
# clients on loopback (CPU-bound), ROUNDS interleaved rounds: dtx.send
# against dtx.exec and the better pg_dtx against dblink 2PC in one PL/pgSQL
# call.  Every target is printed next to its figure, met or not.

# floor_script: the floor's pgbench script (simple protocol, run on a
# participant): one row updated and prepared in one message, then committed;
# the global id from the run, the client and a counter
floor_script() {
	echo "\\set id1 random(1, ${ACCOUNTS:-100000})"
	echo "\\set n :n + 1"
	echo "BEGIN \\; UPDATE accounts SET balance = balance + 0 WHERE id = :id1 \\; PREPARE TRANSACTION 'bfloor-:run-:client_id-:n';"
	echo "COMMIT PREPARED 'bfloor-:run-:client_id-:n';"
}

# verdict OK: "met" or "**not met**"
verdict() { if [[ $1 == 1 ]]; then echo "met"; else echo "**not met**"; fi; }

rtt_section() {
	local v res r i p0 one tput cpu n
	local file=$R/rtt.tsv many=$R/rtt_clients.tsv loop=$R/rtt_loopback.tsv
	mapfile -t one < <(avail fdw fdwpc dblink dblinkfn dtx dtxasync dtxsend dtxsendasync dtxsend1)
	mapfile -t tput < <(avail fdw fdwpc dtx dtxsend dtxsendasync)
	mapfile -t cpu < <(avail dblinkfn dtx dtxsend dtxsend1)
	section "Round trips: 1 client, +5 ms per round trip (2.5 ms each way) in front of p1 and p2; $CLIENTS clients at +5 ms; $CLIENTS clients on loopback ($LAT_TIME s each)"
	send_skipped
	: >"$file"
	: >"$many"
	: >"$loop"
	for v in "${one[@]}"; do
		gen_script "$v" 2 p >"$R/scripts/rtt-direct-$v.pgb"
		gen_script "$v" 2 lp >"$R/scripts/rtt-$v.pgb"
	done
	# the floor: one participant's share of a two-phase commit, sent by the
	# client straight to p1 (through the proxy at +5 ms), no coordinator: two
	# round trips and the participant's two flushes, nothing else
	floor_script >"$R/scripts/rtt-floor.pgb"
	# (1) one client, loopback: the base the round trips are counted from
	for v in "${one[@]}"; do
		bench_run "rtt0-$v-warm" "$R/scripts/rtt-direct-$v.pgb" 1 1 "$(vopts "$v")" >/dev/null
		res=$(bench_run "rtt0-$v" "$R/scripts/rtt-direct-$v.pgb" 1 "$LAT_TIME" "$(vopts "$v")")
		echo "0 $v $res" >>"$file"
		log "rtt loopback, 1 client $(printf '%-12s' "$v"): tps p50 p99 n cpu-coord cpu-parts = $res"
	done
	bench_run "rtt0-floor-warm" "$R/scripts/rtt-floor.pgb" 1 1 "" p1 simple >/dev/null
	res=$(bench_run "rtt0-floor" "$R/scripts/rtt-floor.pgb" 1 "$LAT_TIME" "" p1 simple)
	echo "0 floor $res" >>"$file"
	log "rtt loopback, 1 client floor       : tps p50 p99 n cpu-coord cpu-parts = $res"
	# (2) one client, +5 ms per round trip
	q coord -c "DROP SERVER IF EXISTS lp1, lp2, fdw_lp1, fdw_lp2, fdwpc_lp1, fdwpc_lp2 CASCADE" >/dev/null 2>&1
	{ server_sql lp1; server_sql lp2; } | q coord
	start_proxies 2.5
	for v in "${one[@]}"; do
		bench_run "rtt5-$v-warm" "$R/scripts/rtt-$v.pgb" 1 1 "$(vopts "$v")" >/dev/null
		res=$(bench_run "rtt5-$v" "$R/scripts/rtt-$v.pgb" 1 "$LAT_TIME" "$(vopts "$v")")
		echo "5 $v $res" >>"$file"
		log "rtt +5 ms, 1 client $(printf '%-12s' "$v"): tps p50 p99 n cpu-coord cpu-parts = $res"
	done
	bench_run "rtt5-floor-warm" "$R/scripts/rtt-floor.pgb" 1 1 "" lp1 simple >/dev/null
	res=$(bench_run "rtt5-floor" "$R/scripts/rtt-floor.pgb" 1 "$LAT_TIME" "" lp1 simple)
	echo "5 floor $res" >>"$file"
	log "rtt +5 ms, 1 client floor       : tps p50 p99 n cpu-coord cpu-parts = $res"
	# (3) CLIENTS clients, +5 ms per round trip
	for v in "${tput[@]}"; do
		bench_run "rtt5-c$CLIENTS-$v-warm" "$R/scripts/rtt-$v.pgb" "$CLIENTS" 1 "$(vopts "$v")" >/dev/null
		p0=$(proxy_ticks)
		res=$(bench_run "rtt5-c$CLIENTS-$v" "$R/scripts/rtt-$v.pgb" "$CLIENTS" "$LAT_TIME" "$(vopts "$v")")
		n=$(echo "$res" | cut -d' ' -f4)
		res="$res $(awk -v a="$p0" -v b="$(proxy_ticks)" -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n == 0) n = 1; printf "%.3f", (b - a) * 1000 / hz / n }')"
		echo "$v $res" >>"$many"
		log "rtt +5 ms, $CLIENTS clients $(printf '%-12s' "$v"): tps p50 p99 n cpu-coord cpu-parts cpu-proxies = $res"
	done
	# finish what async sessions left pending while the proxies are up, then forget them
	val coord "SELECT count(*) FROM dtx.resolve()" >/dev/null
	stop_proxies
	q coord -c "DROP SERVER lp1, lp2, fdw_lp1, fdw_lp2, fdwpc_lp1, fdwpc_lp2 CASCADE" >/dev/null 2>&1
	# (4) CLIENTS clients on loopback, interleaved rounds
	for v in "${cpu[@]}"; do
		bench_run "rttcpu-$v-warm" "$R/scripts/rtt-direct-$v.pgb" "$CLIENTS" "$WARM" "$(vopts "$v")" >/dev/null
	done
	for ((r = 1; r <= ROUNDS; r++)); do
		for ((i = 0; i < ${#cpu[@]}; i++)); do
			v=${cpu[$(((i + r - 1) % ${#cpu[@]}))]}
			res=$(bench_run "rttcpu-r$r-$v" "$R/scripts/rtt-direct-$v.pgb" "$CLIENTS" "$LAT_TIME" "$(vopts "$v")")
			echo "$r $v $res" >>"$loop"
			log "rtt loopback, $CLIENTS clients, round $r $(printf '%-12s' "$v"): tps p50 p99 n cpu-coord cpu-parts = $res"
		done
	done

	out "One client, +5 ms per round trip (p1 and p2 each behind bench/delay_proxy.c, 2.5 ms each way), $LAT_TIME s per variant. Round trips: (p50 at +5 ms - p50 on loopback) / 5 ms, the round trips to the participants a transaction waits for one after the other; the target compares the p50 at +5 ms itself with N x 5 ms + 2 ms."
	out ""
	out "| variant | p50 ms, loopback | p50 ms, +5 ms | p99 ms, +5 ms | round trips | target | |"
	out "| --- | ---: | ---: | ---: | ---: | --- | --- |"
	out "$(awk '$2 == "floor" { p50[$1] = $4; p99[$1] = $5 }
		END { printf "| floor: one participant, two round trips and its two flushes, no coordinator | %.2f | %.2f | %.2f | %.1f | - | |", p50[0], p50[5], p99[5], (p50[5] - p50[0]) / 5 }' "$file")"
	for v in fdw fdwpc dblink dblinkfn dtx dtxasync dtxsend dtxsendasync dtxsend1; do
		local lim="" tgt=""
		[[ $v == dtxsend ]] && { lim=12; tgt="p50 <= 2 round trips + 2 ms = 12 ms"; }
		[[ $v == dtxsendasync ]] && { lim=7; tgt="p50 <= 1 round trip + 2 ms = 7 ms"; }
		if [[ -z $(avail "$v") ]]; then
			out "| ${VNAME[$v]} | skipped (no dtx.send) | | | | ${tgt:--} | **not measured** |"
			continue
		fi
		out "$(awk -v v="$v" -v name="${VNAME[$v]}" -v lim="$lim" -v tgt="${tgt:--}" '$2 == v { p50[$1] = $4; p99[$1] = $5 }
			END { ok = (lim == "") ? "" : (p50[5] <= lim ? "met" : "**not met**")
				printf "| %s | %.2f | %.2f | %.2f | %.1f | %s | %s |", name, p50[0], p50[5], p99[5], (p50[5] - p50[0]) / 5, tgt, ok }' "$file")"
	done
	out ""
	out "$(awk '$1 == 5 && $2 == "floor" { f = $4 } $1 == 5 && $2 == "dtxsend" { d = $4 }
		END { if (d != "") printf "The floor is what this machine gives for the two round trips alone (the client sends BEGIN, the UPDATE and PREPARE TRANSACTION to p1 in one message through the proxy, then COMMIT PREPARED): %.2f ms at +5 ms, %.2f ms above 2 x 5 ms. pg_dtx dtx.send takes %.2f ms more than the floor (the coordinator: its client round trips, its CPU, its own flush of the decision, and the slower of two participants).", f, f - 10, d - f }' "$file")"
	out ""
	out "$CLIENTS clients, +5 ms per round trip, $LAT_TIME s per variant:"
	out ""
	out "| variant | tps | p50 ms | p99 ms | tps / postgres_fdw | target | | proxies' CPU ms per transaction |"
	out "| --- | ---: | ---: | ---: | ---: | --- | --- | ---: |"
	for v in fdw fdwpc dtx dtxsend dtxsendasync; do
		local tgt=""
		is_send "$v" && tgt=">= 2.0x postgres_fdw"
		if [[ -z $(avail "$v") ]]; then
			out "| ${VNAME[$v]} | skipped (no dtx.send) | | | | ${tgt:--} | **not measured** | |"
			continue
		fi
		out "$(awk -v v="$v" -v name="${VNAME[$v]}" -v tgt="${tgt:--}" '$1 == "fdw" { f = $2 } $1 == v { t = $2; p50 = $3; p99 = $4; px = $8 }
			END { r = (f > 0) ? t / f : 0; ok = (tgt == "-") ? "" : (r >= 2.0 ? "met" : "**not met**")
				printf "| %s | %.0f | %.2f | %.2f | %.2f | %s | %s | %.3f |", name, t, p50, p99, r, tgt, ok, px }' "$many")"
	done
	out ""
	out "$CLIENTS clients on loopback (no proxy; bound by the CPU), $ROUNDS round(s) x $LAT_TIME s, interleaved; medians of rounds, ratios as medians of the per-round ratios:"
	out ""
	out "| variant | tps | p50 ms | p99 ms | CPU ms per transaction: coordinator | participants |"
	out "| --- | ---: | ---: | ---: | ---: | ---: |"
	for v in dblinkfn dtx dtxsend dtxsend1; do
		if [[ -z $(avail "$v") ]]; then
			out "| ${VNAME[$v]} | skipped (no dtx.send) | | | | |"
			continue
		fi
		local c cells=""
		for c in 3:%.0f 4:%.2f 5:%.2f 7:%.3f 8:%.3f; do
			cells+=" $(awk -v v="$v" -v c="${c%%:*}" '$2 == v { print $c }' "$loop" | median | xargs printf "${c#*:}") |"
		done
		out "| ${VNAME[$v]} |$cells"
	done
	out ""
	local x best
	if [[ $HAVE_SEND == 1 ]]; then
		x=$(ratio_cells "$loop" dtxsend dtx 3 | tr -d ' |')
		out "- dtx.send / dtx.exec tps: ${x}x (target >= 1.0x: $(verdict "$(awk -v x="$x" 'BEGIN { print (x >= 1.0) ? 1 : 0 }')"))"
		best=$(awk '$2 == "dtx" || $2 == "dtxsend" { print $2, $3 }' "$loop" | sort -k1,1 |
			awk '{ n[$1]++; s[$1] += $2 } END { b = ""; for (v in s) if (b == "" || s[v] / n[v] > s[b] / n[b]) b = v; print b }')
	else
		out "- dtx.send / dtx.exec tps: skipped (no dtx.send) (target >= 1.0x: **not measured**)"
		best=dtx
	fi
	x=$(ratio_cells "$loop" "$best" dblinkfn 3 | tr -d ' |')
	out "- pg_dtx in a transaction block (BEGIN, two statements, COMMIT: four client round trips; the better of dtx.exec and dtx.send by mean tps: ${VNAME[$best]}) / dblink 2PC in one PL/pgSQL call (one client round trip), tps: ${x}x"
	if [[ $HAVE_SEND == 1 ]]; then
		x=$(ratio_cells "$loop" dtxsend1 dblinkfn 3 | tr -d ' |')
		out "- pg_dtx in one statement (one client round trip, like the baseline) / dblink 2PC in one PL/pgSQL call, tps: ${x}x (target >= 1.0x: $(verdict "$(awk -v x="$x" 'BEGIN { print (x >= 1.0) ? 1 : 0 }')"))"
	fi
	out ""
	out "Raw: $file (1 client: delay, variant, tps, p50, p99, transactions, CPU ms per transaction coordinator / participants), $many ($CLIENTS clients at +5 ms, and the proxies' CPU), $loop (loopback rounds)."
}

# --- resolver -------------------------------------------------------------------------------

# make_in_doubt N: N committed transactions in doubt on p1 and p2: a decision
# row per transaction (inserted by a real local transaction whose xid it
# records, as pg_dtx does) and, on each participant, a transaction prepared
# under the global id pg_dtx would give it.
make_in_doubt() {
	local n=$1 ids t0 t1 per
	ids=$(val coord "SELECT (SELECT CASE WHEN c < 0 THEN c::numeric + 18446744073709551616 ELSE c END FROM dtx.coordinator_id() c)
		|| ' ' || dtx.coordinator_id() || ' ' || (SELECT oid FROM pg_database WHERE datname = current_database())
		|| ' ' || (SELECT oid FROM pg_foreign_server WHERE srvname = 'p1') || ' ' || (SELECT oid FROM pg_foreign_server WHERE srvname = 'p2')
		|| ' ' || 'postgres'::regrole::oid")
	read -r UCOORD SCOORD DBOID P1OID P2OID ME <<<"$ids"
	local mark
	mark=$(val coord "SELECT clock_timestamp()")
	echo "INSERT INTO dtx.decisions VALUES (pg_current_xact_id(), :coord, ARRAY[:p1, :p2]::oid[], ARRAY[:me, :me]::oid[], now());" |
		as_pg tee "$W/decision.pgb" >/dev/null
	per=$(( (n + 3) / 4 ))
	as_pg pgbench -n -M simple -h 127.0.0.1 -p "${PORT[coord]}" -U postgres -c 4 -j 2 -t "$per" \
		-D coord="$SCOORD" -D p1="$P1OID" -D p2="$P2OID" -D me="$ME" -f "$W/decision.pgb" bench >"$W/decisions.out" 2>&1 ||
		{ cat "$W/decisions.out"; die "inserting decisions failed"; }
	local i oid
	for i in 1 2; do
		oid=$P1OID
		[[ $i == 2 ]] && oid=$P2OID
		val coord "SELECT format('BEGIN; UPDATE accounts SET balance = balance WHERE id = %s; PREPARE TRANSACTION %L;',
				row_number() OVER (ORDER BY xid), format('dtx_%s_%s_%s_%s_%s_%s', $UCOORD, $DBOID, xid, $oid, $ME, $i))
			FROM dtx.decisions WHERE created_at >= '$mark' ORDER BY xid LIMIT $n" | as_pg tee "$W/prepare-p$i.sql" >/dev/null
	done
	t0=$(now)
	q p1 -f "$W/prepare-p1.sql" >/dev/null &
	local a=$!
	q p2 -f "$W/prepare-p2.sql" >/dev/null &
	local b=$!
	if ! wait $a || ! wait $b; then
		die "preparing the in-doubt transactions failed"
	fi
	t1=$(now)
	log "made $(val p1 'SELECT count(*) FROM pg_prepared_xacts') + $(val p2 'SELECT count(*) FROM pg_prepared_xacts') in-doubt prepared transactions in $(elapsed "$t0" "$t1") s"
}

prepared_left() { echo $(($(val p1 'SELECT count(*) FROM pg_prepared_xacts') + $(val p2 'SELECT count(*) FROM pg_prepared_xacts'))); }

# resolve_once N: N in doubt on each of p1, p2, then one dtx.resolve(), timed
# (the prepared transactions are counted every 0.25 s meanwhile); prints
# "seconds_until_none_prepared seconds_until_returned actions"
resolve_once() {
	local n=$1 t0 t1 t_empty="" left
	make_in_doubt "$n"
	rm -f "$W/resolve.out"
	t0=$(now)
	(val coord "SELECT count(*) || ' actions (' || count(*) FILTER (WHERE outcome = 'done') || ' done, ' || count(*) FILTER (WHERE outcome LIKE 'failed%') || ' failed)' FROM dtx.resolve()" >"$W/resolve.tmp" &&
		mv "$W/resolve.tmp" "$W/resolve.out") &
	local bg=$!
	while [[ ! -s $W/resolve.out ]]; do
		if [[ -z $t_empty ]]; then
			left=$(prepared_left)
			[[ $left -eq 0 ]] && t_empty=$(now)
		fi
		kill -0 "$bg" 2>/dev/null || break
		sleep 0.25
	done
	wait "$bg" || die "dtx.resolve() failed"
	t1=$(now)
	[[ -n $t_empty ]] || { left=$(prepared_left); [[ $left -eq 0 ]] && t_empty=$t1; }
	[[ -n $t_empty ]] || die "dtx.resolve() left $left prepared transactions"
	echo "$(elapsed "$t0" "$t_empty") $(elapsed "$t0" "$t1") $(cat "$W/resolve.out")"
}

resolver_section() {
	local t0 t1 t_empty="" t_done="" left dec n=$INDOUBT small res
	small=$((INDOUBT / 5))
	section "Resolver: in-doubt committed transactions on p1 and p2, finished by dtx.resolve() and by the background resolver"
	q coord -c "ALTER SYSTEM SET dtx.resolver_interval = 0" -c "SELECT pg_reload_conf()" >/dev/null
	sleep 2
	val coord "SELECT count(*) FROM dtx.resolve()" >/dev/null

	out "| in doubt per participant | prepared transactions | how | none left prepared after | pass ended after | prepared transactions finished per second |"
	out "| ---: | ---: | --- | ---: | ---: | ---: |"
	for n in "$small" "$INDOUBT"; do
		res=$(resolve_once "$n")
		log "dtx.resolve() with $n in doubt per participant: $res"
		out "$(echo "$res" | awk -v n="$n" '{ printf "| %d | %d | one `SELECT count(*) FROM dtx.resolve()`: %s %s %s %s %s %s | %.1f s | %.1f s | %.0f |", n, 2 * n, $3, $4, $5, $6, $7, $8, $1, $2, 2 * n / $1 }')"
	done

	# the background resolver
	n=$INDOUBT
	make_in_doubt "$n"
	t0=$(now)
	q coord -c "ALTER SYSTEM SET dtx.resolver_interval = '1s'" -c "SELECT pg_reload_conf()" >/dev/null
	while :; do
		t1=$(now)
		if [[ -z $t_empty ]]; then
			left=$(prepared_left)
			[[ $left -eq 0 ]] && t_empty=$t1
		fi
		if [[ -n $t_empty ]]; then
			dec=$(val coord "SELECT count(*) FROM dtx.decisions")
			[[ $dec -eq 0 ]] && { t_done=$t1; break; }
		fi
		if awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a > 900) }'; then
			break
		fi
		sleep 0.25
	done
	out "| $n | $((2 * n)) | background resolver, \`dtx.resolver_interval = 1s\` (timed from the reload) | ${t_empty:+$(elapsed "$t0" "$t_empty") s} | ${t_done:+$(elapsed "$t0" "$t_done") s (decisions deleted)} | $([[ -n $t_empty ]] && awk -v n=$((2 * n)) -v s="$(elapsed "$t0" "$t_empty")" 'BEGIN { printf "%.0f", n / s }') |"
	q coord -c "ALTER SYSTEM RESET dtx.resolver_interval" -c "SELECT pg_reload_conf()" >/dev/null
	[[ -n $t_done ]] || val coord "SELECT count(*) FROM dtx.resolve()" >/dev/null
	out ""
	out "Decisions left: $(val coord 'SELECT count(*) FROM dtx.decisions'), in doubt: $(val coord 'SELECT count(*) FROM dtx.in_doubt'), prepared on p1+p2: $(prepared_left)."
}

# --- memory ---------------------------------------------------------------------------------

memory_section() {
	local marks="1 1000 10000 100000" m list=""
	for m in $marks; do [[ $m -le $MEM_XACTS ]] && list+="$m "; done
	section "Memory: one coordinator backend running $MEM_XACTS pg_dtx transactions (psql, one session)"
	val coord "SELECT count(*) FROM dtx.resolve()" >/dev/null
	awk -v n="$MEM_XACTS" -v marks="$list" -v accts="$ACCOUNTS" 'BEGIN {
		k = split(marks, m, " "); for (i = 1; i <= k; i++) mark[m[i]] = 1
		print "\\o /dev/null"
		print "SELECT clock_timestamp() AS t0 \\gset"
		for (i = 1; i <= n; i++) {
			print "BEGIN;"
			print "SELECT dtx.exec(\047p1\047, \047UPDATE accounts SET balance = balance - 1 WHERE id = $1\047, 1 + (random() * " accts - 1 ")::int);"
			print "SELECT dtx.exec(\047p2\047, \047UPDATE accounts SET balance = balance + 1 WHERE id = $1\047, 1 + (random() * " accts - 1 ")::int);"
			print "COMMIT;"
			if (i in mark) {
				print "\\o"
				print "SELECT " i ", round(extract(epoch FROM clock_timestamp() - :\047t0\047::timestamptz)::numeric, 1),"
				print "  (regexp_match(pg_read_file(\047/proc/self/status\047), \047VmRSS:\\s+(\\d+)\047))[1],"
				print "  (regexp_match(pg_read_file(\047/proc/self/status\047), \047RssAnon:\\s+(\\d+)\047))[1],"
				print "  (SELECT sum(total_bytes) / 1024 FROM pg_backend_memory_contexts),"
				print "  (SELECT count(*) FROM pg_backend_memory_contexts),"
				print "  (SELECT count(*) FROM dtx.connections()),"
				print "  pg_relation_size(\047dtx.decisions\047) / 1024;"
				print "\\o /dev/null"
			}
		}
	}' | q coord -At -F ' ' >"$R/memory.txt" || die "memory test failed"
	# the biggest contexts at the end, for the record
	out "| transactions | seconds | VmRSS kB | RssAnon kB | memory contexts kB | contexts | remote connections | dtx.decisions kB |"
	out "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	awk '{ printf "| %d | %s | %d | %d | %d | %d | %d | %d |\n", $1, $2, $3, $4, $5, $6, $7, $8 }' "$R/memory.txt" | tee -a "$SUMMARY"
	out ""
	out "$(awk 'NR == 1 || $1 == 1000 { c0 = $5; r0 = $4; n0 = $1 } { c1 = $5; r1 = $4; n1 = $1; k = $7 }
		END { dc = c1 - c0; dr = r1 - r0
			printf "From %d to %d transactions: memory contexts %+d kB, RssAnon %+d kB, %d remote connection(s) at the end: %s.",
				n0, n1, dc, dr, k, (dc <= 64 && dr <= 1024) ? "flat" : "NOT flat (growing)" }' "$R/memory.txt")"
	out ""
	out "(VmRSS counts the shared buffers the backend has touched, which grows until it has seen all it uses; RssAnon and the memory contexts are its private memory. Flat: contexts within 64 kB and RssAnon within 1 MB.)"
}

# --- final checks ---------------------------------------------------------------------------

final_checks() {
	local i total=0 s prepared=0
	for ((i = 1; i <= NPART; i++)); do
		s=$(val "p$i" "SELECT coalesce(sum(balance), 0) FROM accounts")
		total=$((total + s))
		prepared=$((prepared + $(val "p$i" "SELECT count(*) FROM pg_prepared_xacts")))
	done
	section "Checks"
	out "- sum of all participants' balances: $total (0: every transfer committed whole)"
	out "- local accounts_1 + accounts_2: $(val coord 'SELECT (SELECT sum(balance) FROM accounts_1) + (SELECT sum(balance) FROM accounts_2)')"
	out "- prepared transactions left on participants: $prepared; dtx.in_doubt: $(val coord 'SELECT count(*) FROM dtx.in_doubt') (decisions not yet deleted by a resolver pass: confirmed ones queued for deletion, and pg_dtx async ones whose answers a session gave up when it ended), after one dtx.resolve(): $(val coord 'SELECT count(*) FROM dtx.resolve()' >/dev/null; val coord 'SELECT count(*) FROM dtx.in_doubt')"
	out "- dtx.stats: $(q coord -At -F ', ' -c "SELECT two_phase_commits || ' two-phase', one_phase_commits || ' one-phase', aborts || ' aborted', left_in_doubt || ' left in doubt', resolver_commits || ' resolver commits' FROM dtx.stats()")"
	out "- load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# --- run --------------------------------------------------------------------------------------

START=$(now)
setup
if [[ $SERVE == 1 ]]; then
	for node in "${NODES[@]}"; do echo "$node: psql -h 127.0.0.1 -p ${PORT[$node]} -U postgres bench"; done
	echo "proxy ports (not started): lp1 ${PORT[lp1]}, lp2 ${PORT[lp2]}; results dir $R; Ctrl-C to stop"
	# wait (not sleep in the foreground): a signal to this script alone then
	# runs the trap at once, not after the sleep
	while :; do
		sleep 3600 &
		SERVE_SLEEP=$!
		wait "$SERVE_SLEEP" || true
	done
fi
print_header
want main && main_section
want sweep && sweep_section
want latency && latency_section
want rtt && rtt_section
want resolver && resolver_section
want memory && memory_section
final_checks
out ""
out "Total time: $(elapsed "$START" "$(now)") s. Raw results: $R"
