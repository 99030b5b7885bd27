# shellcheck shell=bash
# bench/lib.sh - helpers shared by bench/run.sh and bench/callgrind.sh.
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
