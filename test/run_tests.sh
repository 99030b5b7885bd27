#!/usr/bin/env bash
#
# test/run_tests.sh - run every pg_dtx test tier on throw-away servers.
#
#   bash test/run_tests.sh                   all tiers, on PG_CONFIG's version
#   bash test/run_tests.sh --only TIER       one tier: layers, regress, tap,
#                                            isolation, model or faults
#   PROVE_TESTS=test/t/001_x.pl bash test/run_tests.sh --only tap
#                                            one TAP file (space-separated list)
#   bash test/run_tests.sh --pg "15 17 18"   the same on each PostgreSQL major
#                                            version (what `make test` runs;
#                                            `make test PG=17` for one)
#
# Versions: the version of PG_CONFIG (the host's 15 by default) is tested on
# the host, every tier. Any other version in --pg (17, 18) is tested in a
# Debian chroot of its own by test/lib/chroot.sh (built on first use, then
# reused), regress and TAP tiers only; its tests count in the totals. Without
# --pg only PG_CONFIG's version is tested.
#
# What it does:
#   1. installs missing Debian build packages (when root; see test/lib/common.sh)
#   2. builds pg_dtx with the Makefile's flags (-Werror) and installs it
#   3. copies the tree to a temporary directory owned by the server's OS user
#      ("postgres" when we are root: PostgreSQL refuses to run as root)
#   4. runs, as that user, in the copy:
#        layers     test/check_layers.sh (the include order of src/README.md)
#        regress    pg_regress through `make installcheck` (temporary instance,
#                   test/regress.conf)
#        tap        prove test/t/*.pl with PostgreSQL::Test::Cluster and
#                   test/lib/DtxCluster.pm
#        isolation  pg_isolation_regress on test/isolation/specs/*.spec (if any)
#        model      test/model/run.sh (if present)
#        faults     test/faults/run.sh --short (if present)
#        package    in a chroot of test/lib/chroot.sh only: test/package.sh
#                   --install (the Debian package of that version)
#        mutation   test/mutation/run.sh, only with --only mutation (long:
#                   each mutation is built, installed and tested in turn)
#
# A failing tier prints its diffs/logs and the next tier still runs. The last
# line of output is "N passed, N failed" (individual tests: pg_regress tests,
# TAP files, isolation specs, and the counts the model/faults scripts report,
# else one per script). Exit status: 0 if nothing failed, 1 otherwise.
#
# Environment:
#   PG_CONFIG            pg_config to build against (default: PostgreSQL 15)
#   PROVE_TESTS          TAP files to run instead of test/t/*.pl
#   PROVE_FLAGS          flags for prove (e.g. -v; default -j2: two TAP files
#                        at a time, as most of a file's time is spent waiting)
#   PG_DTX_KEEP_STAGE=1  keep the temporary copy even when everything passed
#                        (it is always kept when something failed)
#   PG_DTX_TIERS         the tiers that may run at all (space-separated;
#                        default: all); test/lib/chroot.sh sets "regress tap"
#   PG_DTX_CHROOT_DIR    where the chroots live (see test/lib/chroot.sh)

set -euo pipefail

# shellcheck source=test/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

TIERS=(layers regress tap isolation model faults package)
# tiers that run only when asked for with --only
EXTRA_TIERS=(mutation)

usage() {
	sed -n '3,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

ONLY=""
VERSIONS=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--pg)
		[[ $# -ge 2 ]] || die "--pg needs a list of major versions, e.g. \"15 17 18\""
		VERSIONS=$2
		shift 2
		;;
	--pg=*)
		VERSIONS=${1#--pg=}
		shift
		;;
	--only)
		[[ $# -ge 2 ]] || die "--only needs a tier: ${TIERS[*]}"
		ONLY=$2
		shift 2
		;;
	--only=*)
		ONLY=${1#--only=}
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		die "unknown argument: $1"
		;;
	esac
done
if [[ -n $ONLY ]] && [[ " ${TIERS[*]} ${EXTRA_TIERS[*]} " != *" $ONLY "* ]]; then
	die "unknown tier '$ONLY' (one of: ${TIERS[*]} ${EXTRA_TIERS[*]})"
fi
if [[ -n $ONLY ]] && [[ " ${EXTRA_TIERS[*]} " == *" $ONLY "* ]]; then
	TIERS+=("$ONLY")
fi

# Totals over all tiers, and one summary line per tier that ran.
TOTAL_PASSED=0
TOTAL_FAILED=0
SUMMARY=()
# Set by each tier: its counts.
TIER_PASSED=0
TIER_FAILED=0

STAGE=""
LOGDIR=""
KEEP_STAGE=${PG_DTX_KEEP_STAGE:-0}

cleanup() {
	if [[ -n $STAGE && -d $STAGE && $KEEP_STAGE != 1 ]]; then
		rm -rf -- "$STAGE"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The final report; the "N passed, N failed" line is the very last line.
finish() {
	local line
	heading "Summary"
	for line in "${SUMMARY[@]}"; do
		printf '  %s\n' "$line"
	done
	if [[ $TOTAL_FAILED -gt 0 && -n $STAGE ]]; then
		KEEP_STAGE=1
		printf '  test directory kept for inspection: %s\n' "$STAGE"
	elif [[ $KEEP_STAGE == 1 && -n $STAGE ]]; then
		printf '  test directory kept: %s\n' "$STAGE"
	fi
	printf '%d passed, %d failed\n' "$TOTAL_PASSED" "$TOTAL_FAILED"
	[[ $TOTAL_FAILED -eq 0 ]]
}

want() {
	[[ -z ${PG_DTX_TIERS:-} || " $PG_DTX_TIERS " == *" $1 "* ]] &&
		[[ -z $ONLY || $ONLY == "$1" ]]
}

# Print the last lines of a file under a small banner.
show_tail() {
	local file=$1 lines=${2:-80}
	[[ -s $file ]] || return 0
	printf '\n---- %s (last %d lines) ----\n' "$file" "$lines"
	tail -n "$lines" -- "$file"
}

# Print the first lines of a file (diffs: the first failure matters most).
show_head() {
	local file=$1 lines=${2:-400} total
	[[ -s $file ]] || return 0
	total=$(wc -l <"$file")
	printf '\n---- %s (%d lines) ----\n' "$file" "$total"
	head -n "$lines" -- "$file"
	if [[ $total -gt $lines ]]; then
		printf -- '---- ... %d more lines in %s ----\n' "$((total - lines))" "$file"
	fi
}

# pg_regress / pg_isolation_regress summary -> TIER_PASSED / TIER_FAILED.
# PostgreSQL 15 prints one of (17+ the same lines after "# "):
#   All N tests passed.
#   F of N tests failed.
#   F of N tests failed, I of these failures ignored.
#   P of N tests passed, I failed test(s) ignored.
count_pg_regress() {
	local log=$1 rc=$2 line n f
	TIER_PASSED=0
	TIER_FAILED=0
	line=$(grep -E '(All [0-9]+ tests passed|[0-9]+ of [0-9]+ tests (failed|passed))' "$log" | tail -n 1 || true)
	if [[ $line =~ All\ ([0-9]+)\ tests\ passed ]]; then
		TIER_PASSED=${BASH_REMATCH[1]}
	elif [[ $line =~ ([0-9]+)\ of\ ([0-9]+)\ tests\ failed ]]; then
		f=${BASH_REMATCH[1]}
		n=${BASH_REMATCH[2]}
		TIER_FAILED=$f
		TIER_PASSED=$((n - f))
	elif [[ $line =~ ([0-9]+)\ of\ ([0-9]+)\ tests\ passed ]]; then
		TIER_PASSED=${BASH_REMATCH[1]}
	fi
	# No summary (the instance did not start, ...) or an error after it.
	if [[ $rc -ne 0 && $TIER_FAILED -eq 0 ]]; then
		TIER_FAILED=1
	fi
}

# A "N passed, N failed" line printed by a script -> TIER_PASSED / TIER_FAILED,
# else 1 passed or 1 failed according to its exit status.
count_script() {
	local log=$1 rc=$2 line
	TIER_PASSED=0
	TIER_FAILED=0
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)
	if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
		TIER_PASSED=${BASH_REMATCH[1]}
		TIER_FAILED=${BASH_REMATCH[2]}
	elif [[ $rc -eq 0 ]]; then
		TIER_PASSED=1
	fi
	if [[ $rc -ne 0 && $TIER_FAILED -eq 0 ]]; then
		TIER_FAILED=1
	fi
}

# The TAP files to run: PROVE_TESTS (paths relative to the repository root,
# or to test/ as in PostgreSQL's t/NNN_name.pl habit), else test/t/*.pl.
tap_tests() {
	local t
	if [[ -n ${PROVE_TESTS:-} ]]; then
		for t in $PROVE_TESTS; do
			if [[ ! -e $t && -e test/$t ]]; then
				t=test/$t
			fi
			printf '%s\n' "$t"
		done
	else
		for t in test/t/*.pl; do
			[[ -e $t ]] && printf '%s\n' "$t"
		done
	fi
	return 0
}

# The isolation specs to run, by name (test/isolation/specs/<name>.spec).
isolation_specs() {
	local spec
	for spec in test/isolation/specs/*.spec; do
		[[ -e $spec ]] || continue
		spec=${spec##*/}
		printf '%s\n' "${spec%.spec}"
	done
	return 0
}

# Does the tier have anything to run? (Run in $STAGE.)
tier_has_tests() {
	case $1 in
	regress) true ;;
	tap) [[ -n $(tap_tests) ]] ;;
	isolation) [[ -n $(isolation_specs) ]] ;;
	layers) [[ -f test/check_layers.sh ]] ;;
	model) [[ -f test/model/run.sh ]] ;;
	faults) [[ -f test/faults/run.sh ]] ;;
	mutation) [[ -f test/mutation/run.sh ]] ;;
	# in a chroot of test/lib/chroot.sh only: on the host, .ci/run checks
	# the package itself, and a developer's PostgreSQL is not touched
	package) [[ -n ${PG_DTX_IN_CHROOT:-} && -f test/package.sh ]] ;;
	*) false ;;
	esac
}

# Run one tier function and account for it. A tier with nothing to run is
# skipped silently, unless it was asked for with --only.
run_tier() {
	local tier=$1 status
	want "$tier" || return 0
	if ! tier_has_tests "$tier"; then
		if [[ -n $ONLY ]]; then
			heading "Tier: $tier"
			echo "nothing to run for tier $tier: skipped"
		fi
		return 0
	fi
	TIER_PASSED=0
	TIER_FAILED=0
	heading "Tier: $tier"
	"tier_$tier"
	if [[ $TIER_FAILED -eq 0 ]]; then status=PASS; else status=FAIL; fi
	printf -- '---- tier %s: %s (%d passed, %d failed)\n' "$tier" "$status" "$TIER_PASSED" "$TIER_FAILED"
	SUMMARY+=("$(printf '%-10s %s  %d passed, %d failed' "$tier" "$status" "$TIER_PASSED" "$TIER_FAILED")")
	TOTAL_PASSED=$((TOTAL_PASSED + TIER_PASSED))
	TOTAL_FAILED=$((TOTAL_FAILED + TIER_FAILED))
}

# --- the tiers (each runs with the current directory = $STAGE) ---------------

tier_regress() {
	local log=$LOGDIR/regress.log rc=0
	as_pg make --no-print-directory PG_CONFIG="$PG_CONFIG" installcheck 2>&1 |
		tee "$log" || rc=$?
	count_pg_regress "$log" "$rc"
	if [[ $TIER_FAILED -gt 0 ]]; then
		show_head "$STAGE/regression.diffs" 400
		show_new_results "$STAGE/expected" "$STAGE/results"
		show_tail "$STAGE/log/postmaster.log" 60
	fi
}

# pg_regress stops at a test that has no expected output yet; print what
# the test produced, so that it can be reviewed and saved as expected/.
show_new_results() {
	local expected=$1 results=$2 out
	for out in "$results"/*.out; do
		[[ -e $out ]] || continue
		if [[ ! -e $expected/${out##*/} ]]; then
			printf '\n---- no %s yet; the test printed: ----\n' "$expected/${out##*/}"
			cat -- "$out"
		fi
	done
}

tier_tap() {
	local log=$LOGDIR/tap.log rc=0 files=0 failed=0
	local -a tests=() prove_flags=()

	mapfile -t tests < <(tap_tests)
	if [[ -n ${PROVE_FLAGS:-} ]]; then
		read -r -a prove_flags <<<"$PROVE_FLAGS"
	else
		# Each file spends most of its time waiting for servers to start,
		# crash, recover or answer a poll (0.6 CPU on average on 2 CPUs), so
		# two at a time take about two thirds of the time. Every file has its
		# own servers, ports (get_free_port) and directories.
		prove_flags=(-j2)
	fi

	# The environment PostgreSQL's prove_installcheck sets up (Makefile.global).
	rm -rf "$STAGE/tmp_check"
	as_pg mkdir -p "$STAGE/tmp_check"
	as_pg env \
		TESTDIR="$STAGE" \
		PATH="$PG_BINDIR:$STAGE:$PATH" \
		PGPORT=65432 \
		TESTDATADIR="$STAGE/tmp_check" \
		TESTLOGDIR="$STAGE/tmp_check/log" \
		PG_REGRESS="$PGXS/src/test/regress/pg_regress" \
		PERL5LIB="$PGXS/src/test/perl:$STAGE/test/lib${PERL5LIB:+:$PERL5LIB}" \
		prove -I "$PGXS/src/test/perl/" -I "$STAGE" -I "$STAGE/test/lib" \
		"${prove_flags[@]}" "${tests[@]}" 2>&1 | tee "$log" || rc=$?

	# "Files=N, Tests=M, ..." then, in the summary report, one
	# "file (Wstat: ... Tests: ... Failed: ...)" line per failed file.
	if [[ $(grep -E '^Files=[0-9]+,' "$log" | tail -n 1) =~ ^Files=([0-9]+), ]]; then
		files=${BASH_REMATCH[1]}
		failed=$(grep -c '(Wstat: ' "$log" || true)
		TIER_FAILED=$failed
		TIER_PASSED=$((files - failed))
	fi
	if [[ $rc -ne 0 && $TIER_FAILED -eq 0 ]]; then
		TIER_FAILED=1
	fi
	if [[ $TIER_FAILED -gt 0 ]]; then
		show_tap_logs "$log"
	fi
}

# The logs of the failed TAP files: tmp_check/log/regress_log_<test> and the
# server logs <test>_<node>.log. All logs when no failed file is named.
show_tap_logs() {
	local log=$1 name f
	local names=()
	while read -r name _; do
		name=${name##*/}
		names+=("${name%.pl}")
	done < <(grep '(Wstat: ' "$log" || true)
	if [[ ${#names[@]} -eq 0 ]]; then
		for f in "$STAGE"/tmp_check/log/*; do
			show_tail "$f" 80
		done
		return 0
	fi
	for name in "${names[@]}"; do
		show_tail "$STAGE/tmp_check/log/regress_log_$name" 150
		for f in "$STAGE/tmp_check/log/${name}"_*.log; do
			show_tail "$f" 60
		done
	done
}

tier_isolation() {
	local log=$LOGDIR/isolation.log rc=0
	local -a names=()

	mapfile -t names < <(isolation_specs)
	as_pg "$PGXS/src/test/isolation/pg_isolation_regress" \
		--bindir="$PG_BINDIR" \
		--temp-instance="$STAGE/tmp_check_iso" \
		--temp-config="$STAGE/test/regress.conf" \
		--inputdir="$STAGE/test/isolation" \
		--outputdir="$STAGE/output_iso" \
		"${names[@]}" 2>&1 | tee "$log" || rc=$?
	count_pg_regress "$log" "$rc"
	if [[ $TIER_FAILED -gt 0 ]]; then
		show_head "$STAGE/output_iso/regression.diffs" 400
		show_new_results "$STAGE/test/isolation/expected" "$STAGE/output_iso/results"
		show_tail "$STAGE/output_iso/log/postmaster.log" 60
	fi
}

# model / faults: a script of its own (tier_has_tests checks it exists).
run_script_tier() {
	local tier=$1 script=$2 rc=0
	shift 2
	as_pg env PG_CONFIG="$PG_CONFIG" bash "$script" "$@" 2>&1 |
		tee "$LOGDIR/$tier.log" || rc=$?
	count_script "$LOGDIR/$tier.log" "$rc"
}

tier_model() { run_script_tier model test/model/run.sh; }

# package: the Debian package of this version built, installed with dpkg -i
# into the chroot's PostgreSQL and its regression tests run against it.
tier_package() {
	local rc=0
	bash test/package.sh --install --version "$PG_MAJOR" 2>&1 |
		tee "$LOGDIR/package.log" || rc=$?
	count_script "$LOGDIR/package.log" "$rc"
}

# layers: no source file includes a header of its own layer or above.
tier_layers() { run_script_tier layers test/check_layers.sh; }

# Not through as_pg: the network faults need root (network namespaces,
# nftables); test/faults/run.sh runs the servers as PG_OS_USER itself.
tier_faults() {
	local rc=0
	env PG_CONFIG="$PG_CONFIG" bash test/faults/run.sh --short 2>&1 |
		tee "$LOGDIR/faults.log" || rc=$?
	count_script "$LOGDIR/faults.log" "$rc"
}

# Each mutation runs this script again on a mutated copy of the tree (as
# root when we are: the copy builds and installs, its tests run as
# PG_OS_USER as usual).
tier_mutation() {
	local rc=0
	env PG_CONFIG="$PG_CONFIG" bash test/mutation/run.sh 2>&1 |
		tee "$LOGDIR/mutation.log" || rc=$?
	count_script "$LOGDIR/mutation.log" "$rc"
}

# --- main ----------------------------------------------------------------------

# Another major version, in its chroot (test/lib/chroot.sh): its tests
# count in the totals, one summary line for it.
run_in_chroot() {
	local version=$1 log rc=0 status start secs
	local -a args=()
	[[ -n $ONLY ]] && args=(--only "$ONLY")
	heading "PostgreSQL $version (chroot)"
	log=$(mktemp "${TMPDIR:-/tmp}/pg_dtx_pg$version.XXXXXX")
	start=$SECONDS
	bash "$PROJECT_ROOT/test/lib/chroot.sh" "$version" "${args[@]}" 2>&1 |
		tee "$log" || rc=$?
	secs=$((SECONDS - start))
	count_script "$log" "$rc"
	rm -f -- "$log"
	if [[ $TIER_FAILED -eq 0 ]]; then status=PASS; else status=FAIL; fi
	SUMMARY+=("$(printf 'pg%-8s %s  %d passed, %d failed (regress, tap; %d s)' "$version" "$status" "$TIER_PASSED" "$TIER_FAILED" "$secs")")
	TOTAL_PASSED=$((TOTAL_PASSED + TIER_PASSED))
	TOTAL_FAILED=$((TOTAL_FAILED + TIER_FAILED))
}

# This host's PostgreSQL (PG_CONFIG): every tier.
run_host() {
	local start=$SECONDS

	heading "Build dependencies"
	ensure_build_deps
	PGXS=$(pgxs_dir)

	heading "Build and install (PG_CONFIG=$PG_CONFIG)"
	if ! (build_and_install); then
		SUMMARY+=("build      FAIL")
		TOTAL_FAILED=$((TOTAL_FAILED + 1))
		return 0
	fi

	heading "Staging a copy of the tree"
	STAGE=$(stage_tree "$PROJECT_ROOT")
	LOGDIR=$STAGE/test_logs
	mkdir -p "$LOGDIR"
	echo "testing in $STAGE as OS user $PG_OS_USER"
	cd "$STAGE"

	for tier in "${TIERS[@]}"; do
		run_tier "$tier"
	done
	cd "$PROJECT_ROOT"
	if [[ -n $VERSIONS ]]; then
		SUMMARY+=("$(printf 'pg%-8s (every tier above; %d s)' "$PG_MAJOR" "$((SECONDS - start))")")
	fi
}

if [[ -z $VERSIONS ]]; then
	run_host
else
	for version in $VERSIONS; do
		[[ $version =~ ^[0-9]+$ ]] || die "--pg: not a major version: $version"
		if [[ $version == "$PG_MAJOR" ]]; then
			run_host
		else
			run_in_chroot "$version"
		fi
	done
fi

if [[ ${#SUMMARY[@]} -eq 0 ]]; then
	SUMMARY+=("nothing to run${ONLY:+ for tier $ONLY}")
fi
finish
