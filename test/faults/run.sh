#!/usr/bin/env bash
#
# test/faults/run.sh - the pg_dtx fault-injection bank test.
#
#   test/faults/run.sh --short                 what `make test` runs: ~2-3 minutes,
#                                              fixed seed (1), every fault kind a few times
#   test/faults/run.sh --long [--seed N] [--duration S]
#                                              S seconds of faults (default 600),
#                                              random seed unless given
#   test/faults/run.sh --stress [--duration S] [--clients N]
#                                              no faults, many clients (default 24,
#                                              300 s): memory of the coordinator
#                                              backends and pg_dtx sessions on the
#                                              participants must stay flat
#
# Other options:
#   --seed N       replay a run (the seed is printed at the start of every run)
#   --clients N    concurrent clients (short 8, long 10, stress 24)
#   --async-fraction F
#                  share of the clients (0..1, e.g. 1/3 or 0.5; default
#                  1/3: clients 2, 5, 8, ...) whose sessions run with
#                  dtx.synchronous_commit_prepared = off; their
#                  acknowledged transfers must pass the same verdict
#   --all-async-share F
#                  share of the time (periods of 10 s; default 1/3:
#                  20-30 s, 50-60 s, ... of the workload) in which every
#                  client runs so: while a synchronous client commits, its
#                  WAL flushes would also make the asynchronous commits
#                  durable and hide a decision that was not flushed
#   --keep         keep the work directory (data directories, server logs,
#                  transfers.log) even when the run passed; it is always
#                  kept when the run failed
#   --no-netns     skip the network namespace faults even as root
#   --trace        log every statement on every server (log_statement =
#                  all), so that a failure can be followed statement by
#                  statement; slower
#   --port P       first TCP port to try on 127.0.0.1 (default 56400)
#   --build        build and install pg_dtx first (make && make install)
#
# A coordinator (pg_dtx preloaded) and three participants run as throw-away
# servers of the OS user "postgres" (when run as root; else the current
# user). Clients move money between accounts on different participants in
# distributed transactions while faults hit the servers: crashes of the
# coordinator (immediate stop, kill -9) and of participants (one, two at
# once), a paused participant, the coordinator crashing while two
# participants are frozen in PREPARE TRANSACTION, terminated pg_dtx
# sessions, killed resolver processes, latency and cut connections through
# a proxy (delay_proxy.py), and - as root
# only - a partition and packet loss between the coordinator and one
# participant (network namespace + nftables). Then the resolver gets a
# bounded time, and every acknowledged transfer must be applied everywhere,
# none half applied, nothing that failed applied, the total balance
# unchanged, nothing left prepared or undecided, and no PANIC in the server
# logs.
#
# The last line is "N passed, N failed"; the exit status is non-zero on any
# failure, which also prints the seed and the tail of every server log.
# Everything it starts (servers, proxy, namespace, veth pair, nft table) is
# removed on exit, also on failure or Ctrl-C.

set -euo pipefail

# shellcheck source=test/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=/usr/bin/python3     # Debian's, with python3-psycopg2

args=()
build=0
for arg in "$@"; do
	case $arg in
	--build) build=1 ;;
	-h | --help)
		sed -n '3,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) args+=("$arg") ;;
	esac
done

if [[ $build == 1 ]]; then
	is_root && ensure_build_deps
	build_and_install
fi

if ! "$PYTHON" -c 'import psycopg2' 2>/dev/null; then
	if is_root; then
		ensure_build_deps
	fi
	"$PYTHON" -c 'import psycopg2' 2>/dev/null ||
		die "the fault test needs $PYTHON with psycopg2: apt-get install python3-psycopg2"
fi
[[ -f "$("$PG_CONFIG" --pkglibdir)/pg_dtx.so" ]] ||
	die "pg_dtx is not installed in $("$PG_CONFIG" --pkglibdir): run make install (or this script with --build)"

if is_root; then
	ensure_pg_os_user
	for tool in ip nft runuser; do
		command -v "$tool" >/dev/null || die "the fault test needs '$tool' when run as root"
	done
fi

export PG_BINDIR PG_OS_USER
exec "$PYTHON" -u "$HERE/bank.py" "${args[@]}"
