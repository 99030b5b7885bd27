#!/usr/bin/env bash
#
# bench/proxy_overhead.sh - what bench/delay_proxy.c itself costs: one
# throw-away PostgreSQL server, one pgbench client running "SELECT 1" (one
# round trip per transaction), direct and through the proxy at 0 ms and at
# 2.5 ms each way (+5 ms per round trip).  Prints, per case, the median and
# p99 latency and the proxy's CPU time per round trip (utime + stime from
# /proc/PID/stat, before and after the run).
#
#   bash bench/proxy_overhead.sh [--time T] [--port P] [--python-proxy FILE]
#
#   --time T             seconds per case (5)
#   --port P             first TCP port to try (27300; uses P..P+20)
#   --python-proxy FILE  also measure a proxy with the same command line run
#                        by python3 (e.g. the former bench/delay_proxy.py:
#                        git show 9a56168:bench/delay_proxy.py > FILE)
#
# Needs root (the server runs as "postgres") and cc; uses PG_CONFIG's
# installation.  Everything lives under $TMPDIR (/tmp) and is removed at the end.

set -euo pipefail

BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=test/lib/common.sh
source "$BENCH_SRC/../test/lib/common.sh"
# shellcheck source=bench/lib.sh
source "$BENCH_SRC/lib.sh"

SECS=5
BASE_PORT=27300
PYPROXY=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--time) SECS=$2; shift ;;
	--port) BASE_PORT=$2; shift ;;
	--python-proxy) PYPROXY=$(realpath "$2"); shift ;;
	-h | --help) sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
	shift
done
is_root || die "run as root: the server runs as the postgres OS user"
ensure_pg_os_user

W=$(mktemp -d "${TMPDIR:-/tmp}/pg_dtx_proxy_overhead.XXXXXX")
chown "$PG_OS_USER": "$W"
chmod 755 "$W"
NODES=(pg)
declare -A PORT=()
SUMMARY=$W/summary.md
PROXY_PID=""

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local rc=$?
	set +e
	[[ -n $PROXY_PID ]] && kill "$PROXY_PID" 2>/dev/null
	bench_stop_nodes
	rm -rf -- "$W"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cc -O2 -Wall -Wextra -Werror -o "$W/delay_proxy" "$BENCH_SRC/delay_proxy.c"
bench_assign_ports "$BASE_PORT" $((BASE_PORT + 20)) pg proxy
{
	echo "listen_addresses = '127.0.0.1'"
	echo "port = ${PORT[pg]}"
	echo "unix_socket_directories = '$W'"
} | bench_start_node pg
echo "SELECT 1;" | as_pg tee "$W/select1.pgb" >/dev/null

# ticks PID: utime + stime of PID, clock ticks
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# measure LABEL PORT [PROXY_PID]: one pgbench client for SECS seconds
measure() {
	local label=$1 port=$2 pid=${3:-} t0=0 t1=0 n lat
	[[ -n $pid ]] && t0=$(ticks "$pid")
	rm -f "$W"/tx.*
	as_pg pgbench -n -M prepared -h 127.0.0.1 -p "$port" -U postgres -c 1 -j 1 -T "$SECS" \
		-f "$W/select1.pgb" -l --log-prefix="$W/tx" bench >"$W/pgbench.out" 2>&1 ||
		{ cat "$W/pgbench.out"; die "pgbench failed ($label)"; }
	[[ -n $pid ]] && t1=$(ticks "$pid")
	lat=$(cat "$W"/tx.* | awk '{ print $3 }' | sort -n | awk '{ v[NR] = $1 } END {
		i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++
		i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++
		printf "%d %.3f %.3f", NR, v[i50] / 1000, v[i99] / 1000 }')
	n=${lat%% *}
	awk -v l="$label" -v lat="$lat" -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" -v p="$pid" 'BEGIN {
		split(lat, x, " ")
		cpu = (p == "") ? "-" : sprintf("%.1f", (b - a) * 1e6 / hz / x[1])
		printf "| %s | %d | %.3f | %.3f | %s |\n", l, x[1], x[2], x[3], cpu }'
	: "$n"
}

# run_proxy LABEL DELAY CMD...: starts the proxy, measures, stops it
run_proxy() {
	local label=$1 delay=$2 n=0
	shift 2
	rm -f "$W/proxy.pid"
	as_pg "$@" --listen "127.0.0.1:${PORT[proxy]}" --target "127.0.0.1:${PORT[pg]}" \
		--delay-ms "$delay" --pidfile "$W/proxy.pid" 2>>"$W/proxy.log" &
	until [[ -s $W/proxy.pid ]] && ! port_free "${PORT[proxy]}"; do
		sleep 0.1
		n=$((n + 1))
		[[ $n -lt 100 ]] || die "the proxy did not start ($label)"
	done
	PROXY_PID=$(cat "$W/proxy.pid")
	measure "$label" "${PORT[proxy]}" "$PROXY_PID"
	kill "$PROXY_PID"
	wait 2>/dev/null || true
	PROXY_PID=""
}

echo "pgbench -M prepared -c 1 -T $SECS, script \"SELECT 1;\" (one round trip per transaction), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
echo
echo "| path | transactions | p50 ms | p99 ms | proxy CPU us per round trip |"
echo "| --- | ---: | ---: | ---: | ---: |"
measure "direct" "${PORT[pg]}"
run_proxy "C proxy, 0 ms" 0 "$W/delay_proxy"
[[ -n $PYPROXY ]] && run_proxy "Python proxy, 0 ms" 0 /usr/bin/python3 "$PYPROXY"
run_proxy "C proxy, 2.5 ms each way" 2.5 "$W/delay_proxy"
[[ -n $PYPROXY ]] && run_proxy "Python proxy, 2.5 ms each way" 2.5 /usr/bin/python3 "$PYPROXY"
exit 0
