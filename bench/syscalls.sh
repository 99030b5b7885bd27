#!/usr/bin/env bash
#
# bench/syscalls.sh - the system calls a coordinator backend (or, with --side
# participant, the backend serving it on participant p1) makes per
# transfer, counted by strace: one pgbench client, two participants, the
# transfer of bench/run.sh written with dtx.exec (dtx), dtx.send_expect in a
# transaction block (dtxsend), dtx.send_expect in one statement (dtxsend1),
# and the hand-written 2PC over dblink in one PL/pgSQL call (dblinkfn), with
# the scripts of bench/run.sh.
#
#   bash bench/run.sh --serve --participants 2 --port 27000 &   (in another shell)
#   bash bench/syscalls.sh --port 27000 [--xacts N] [--variants LIST]
#
# Options:
#   --port P         the coordinator's port of a `bench/run.sh --serve` set of
#                    servers (the participants p1 and p2 are P+1 and P+2)
#   --xacts N        transfers counted per variant (2000)
#   --variants LIST  comma-separated, of dtx,dtxsend,dtxsend1,dblinkfn (all)
#   --side S         coordinator, or participant: the session's backend on p1
#                    (coordinator)
#
# Method: each variant is one pgbench session (-c 1, -t N + 1) whose first
# transaction sleeps one second; meanwhile `strace -c -f` attaches to the
# session's backend (found by application_name) and counts every system
# call until the backend exits, so the counts are those of the N transfers
# that follow (and of the end of the sleep and of the exit, a few calls).
# With --side participant the sleep is in the second transaction, after a
# first transfer opened the connections: strace attaches to the one client
# backend on p1 (the bench servers must have no other client) and counts the
# N transfers after the sleep, and the backend's exit.
# Prints a Markdown table: system calls per transfer by name (those made at
# least once in 100 transfers), and in all.
#
# Needs root (strace attaches to a process of the "postgres" user); installs
# strace with apt-get when it is missing.

set -euo pipefail

BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=test/lib/common.sh
source "$BENCH_SRC/../test/lib/common.sh"
# shellcheck source=bench/lib.sh
source "$BENCH_SRC/lib.sh"

PORT=""
XACTS=2000
VARIANTS=dtx,dtxsend,dtxsend1,dblinkfn
SIDE=coordinator
while [[ $# -gt 0 ]]; do
	case $1 in
	--port) PORT=$2; shift ;;
	--xacts) XACTS=$2; shift ;;
	--variants) VARIANTS=$2; shift ;;
	--side) SIDE=$2; shift ;;
	-h | --help) sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
	shift
done
[[ -n $PORT ]] || die "--port is required (the coordinator of bench/run.sh --serve)"
[[ $SIDE == coordinator || $SIDE == participant ]] || die "--side must be coordinator or participant"
command -v strace >/dev/null ||
	{ apt-get install -y strace </dev/null >/dev/null 2>&1 ||
		{ apt-get update </dev/null >/dev/null && apt-get install -y strace </dev/null >/dev/null; }; } ||
	die "apt-get install strace failed"

export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BINDIR=$("$PG_CONFIG" --bindir)
W=$(mktemp -d)
chmod 755 "$W"
trap 'rm -rf -- "$W"' EXIT

q() { runuser -u postgres -- "$BINDIR/psql" -X -At -h 127.0.0.1 -p "$PORT" -d bench "$@"; }
# q1: the same on participant p1
q1() { runuser -u postgres -- "$BINDIR/psql" -X -At -h 127.0.0.1 -p $((PORT + 1)) -d bench "$@"; }

# the script of a variant: bench/run.sh's (gen_script), after a one-second
# sleep in the session's first transaction (second with --side participant;
# :s counts the transactions, as gen_script's variants may count with :n)
SLEEP_AT=0
[[ $SIDE == participant ]] && SLEEP_AT=1
script() {
	printf '%s\n' "\\if :s = $SLEEP_AT" 'SELECT pg_sleep(1);' '\endif' '\set s :s + 1'
	gen_script "$1" 2 p
}

# traced_pid: the backend to trace, found while the session sleeps
traced_pid() {
	if [[ $SIDE == coordinator ]]; then
		q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench' AND query LIKE '%pg_sleep%'" || true
	elif [[ -n $(q -c "SELECT 1 FROM pg_stat_activity WHERE application_name = 'pgbench' AND query LIKE '%pg_sleep%' AND state = 'active'" || true) ]]; then
		# the resolver's passes connect too (pg_dtx_resolver:...)
		q1 -c "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND application_name NOT LIKE 'pg\\_dtx\\_resolver:%'" || true
	fi
}

declare -A COUNTS=()
NAMES=()
IFS=, read -r -a VLIST <<<"$VARIANTS"
for v in "${VLIST[@]}"; do
	script "$v" >"$W/$v.pgb"
	chmod 644 "$W/$v.pgb"
	runuser -u postgres -- "$BINDIR/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -n -M prepared \
		-c 1 -t $((XACTS + 1)) -D n=0 -D s=0 -D run="$(date +%s)" -f "$W/$v.pgb" bench >"$W/$v.pgbench" 2>&1 &
	bench=$!
	pid=""
	for _ in $(seq 1 100); do
		pid=$(traced_pid)
		[[ $pid =~ ^[0-9]+$ ]] && break
		sleep 0.02
	done
	[[ -n $pid ]] || die "$v: no backend to trace found (see $W/$v.pgbench)"
	[[ $pid =~ ^[0-9]+$ ]] || die "$v: more than one client backend on p1 ($pid)"
	strace -c -f -p "$pid" -o "$W/$v.strace" 2>/dev/null &
	tracer=$!
	wait "$bench" || die "$v: pgbench failed: $(tail -3 "$W/$v.pgbench")"
	wait "$tracer" || true
	grep -q "transactions actually processed: $((XACTS + 1))/" "$W/$v.pgbench" ||
		die "$v: pgbench did not run every transaction: $(grep processed "$W/$v.pgbench")"
	# "% time seconds usecs/call calls [errors] syscall" rows; the last is the total
	while read -r name calls; do
		COUNTS[$v.$name]=$calls
		[[ " ${NAMES[*]} " == *" $name "* ]] || NAMES+=("$name")
	done < <(awk '$1 ~ /^[0-9.]+$/ && NF >= 5 { print $NF, $4 }' "$W/$v.strace")
	log "$v: ${COUNTS[$v.total]:-?} system calls in $XACTS transfers"
done

echo "| system call | $(printf '%s | ' "${VLIST[@]}")"
echo "| --- |$(printf ' ---: |%.0s' "${VLIST[@]}")"
# calls that no variant makes at least once in 100 transfers are left out
for name in "${NAMES[@]}"; do
	[[ $name == total ]] && continue
	row="| $name |"
	keep=0
	for v in "${VLIST[@]}"; do
		row+=" $(awk -v c="${COUNTS[$v.$name]:-0}" -v n="$XACTS" 'BEGIN { printf "%.2f", c / n }') |"
		(( ${COUNTS[$v.$name]:-0} * 100 >= XACTS )) && keep=1
	done
	[[ $keep == 1 ]] && echo "$row"
done
row="| **all** |"
for v in "${VLIST[@]}"; do
	row+=" **$(awk -v c="${COUNTS[$v.total]:-0}" -v n="$XACTS" 'BEGIN { printf "%.2f", c / n }')** |"
done
echo "$row"
