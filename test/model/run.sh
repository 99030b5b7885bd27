#!/usr/bin/env bash
#
# test/model/run.sh - model-check pg_dtx's commit and recovery protocol with spin.
#
# Checks dtx.pml exhaustively (with one fault anywhere: coordinator crash,
# participant crash or lost reply, plus timeouts everywhere), and its three
# scenarios (an xid handed out again after a crash, a cloned coordinator and
# a changed id, one-phase commit with readers), then checks that each
# deliberate protocol mutation is caught (a counterexample must be found):
# a model that cannot fail proves nothing.
#
#   bash test/model/run.sh              the check that `make test` runs
#   MAXFAULTS=2 bash test/model/run.sh  a wider, slower check (bitstate search)
#
# Needs spin and gcc (Debian packages spin, gcc). Prints "N passed, N failed".

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
maxfaults=${MAXFAULTS:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! command -v spin >/dev/null 2>&1; then
	echo "spin is not installed (apt-get install spin)" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

passed=0
failed=0

# check NAME MUTATION EXPECT [SCENARIO]: EXPECT is "holds" or "violated";
# SCENARIO selects the part of dtx.pml checked (0: the transaction T)
check() {
	local name=$1 mutation=$2 expect=$3 scenario=${4:-0} dir="$work/$1" flags out errors
	mkdir -p "$dir"
	cp "$here/dtx.pml" "$dir/"
	flags="-DSAFETY -DNOCLAIM -DMEMLIM=3500 -DCOLLAPSE"
	if [[ $maxfaults -gt 1 ]]; then
		flags="-DSAFETY -DNOCLAIM -DBITSTATE"
	fi
	(
		cd "$dir"
		spin -DMAXFAULTS="$maxfaults" -DMUTATION="$mutation" -DSCENARIO="$scenario" -a dtx.pml >/dev/null
		# shellcheck disable=SC2086
		gcc -O2 -w $flags -o pan pan.c
		./pan -m300000 $([[ $maxfaults -gt 1 ]] && echo -w30) >pan.out 2>&1 || true
	)
	out="$dir/pan.out"
	errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$out" | tail -1)
	if [[ -z $errors ]] || { [[ $expect == holds ]] && grep -q "reached -DMEMLIM bound" "$out"; }; then
		echo "model $name: FAIL (the search did not complete)"
		tail -20 "$out"
		failed=$((failed + 1))
		return
	fi
	if [[ $expect == holds && $errors == 0 ]]; then
		echo "model $name: ok, properties hold ($(grep -m1 'states, stored' "$out" | awk '{print $1}') states)"
		passed=$((passed + 1))
	elif [[ $expect == violated && $errors != 0 ]]; then
		echo "model $name: ok, the mutation is caught: $(grep -m1 '^pan:1:' "$out")"
		passed=$((passed + 1))
	else
		echo "model $name: FAIL (expected the properties to be $expect, spin found $errors error(s))"
		grep -m1 '^pan:1:' "$out" || true
		if [[ -f $dir/dtx.pml.trail ]]; then
			(cd "$dir" && spin -DMAXFAULTS="$maxfaults" -DMUTATION="$mutation" -DSCENARIO="$scenario" -t -p -g dtx.pml | tail -60)
		fi
		failed=$((failed + 1))
	fi
}

check protocol 0 holds
check decisions-read-before-listing 1 violated
check no-second-listing 2 violated
# one xid, two transactions across a coordinator crash (the nonce rule)
check xid-reuse 0 holds 1
check nonce-ignored 3 violated 1
# coordinator ids: a clone is held until it has its own id
check clone 0 holds 2
check clone-resolves-with-inherited-id 4 violated 2
check decision-deleted-by-current-id-listing 5 violated 2
# one-phase commit with readers
check one-phase-readers 0 holds 3
check reader-failure-reported-as-error 6 violated 3

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
