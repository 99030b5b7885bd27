#!/usr/bin/env bash
#
# test/mutation/run.sh - does the test suite notice a broken commit path or
# resolver?
#
# Applies, one at a time, named mutations of the C code (each a small
# substitution in one file of a copy of the tree), builds and installs the
# mutated copy into the PostgreSQL of PG_CONFIG, and runs the tests that
# should catch it (test/run_tests.sh --only regress, or --only tap with the
# named TAP files). A mutation is "killed" when a test fails, "survived"
# when every test passes: then a test is missing. A mutation whose pattern
# is no longer found in the code, or that does not build, fails the check
# too (it must be updated). At the end the unmutated tree is installed again.
#
#   PG_CONFIG=/path/to/pg_config bash test/mutation/run.sh          all
#   PG_CONFIG=... bash test/mutation/run.sh nonce-ignored ...       some, by name
#   bash test/mutation/run.sh --list                                names and tests
#
# It installs into the PostgreSQL of PG_CONFIG: use a private installation.
# Prints "killed" or "survived" per mutation, then "N passed, N failed"
# (passed = killed). A longer tier: not in `make test`; run it with
# `make mutation` or `bash test/run_tests.sh --only mutation`.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}

# name | file | perl substitution (applied to the whole file) | tests
# tests: "regress" and/or TAP files (test/t/...), space-separated.
MUTATIONS=(
	# resolver.c xact_may_be_running: a running local transaction is taken
	# for finished, so its prepared transactions are rolled back under it
	"resolver-ignores-running|src/resolver.c|s/return TransactionIdIsInProgress\(XidFromFullTransactionId\(fxid\)\);/return false;/|test/t/056_resolver_slow_prepare.pl"
	# xact_may_be_running: an xid at or past the next one (it died in a
	# crash before reaching the WAL) is taken for running: never rolled back
	"resolver-keeps-dead-xid|src/resolver.c|s/(if \(!FullTransactionIdPrecedes\(fxid, next\)\)\n\t\treturn) false;/\$1 true;/|test/t/050_resolver_coord_crash_before_commit.pl"
	# resolver.c decision_matches: the nonce ignored
	"nonce-ignored|src/resolver.c|s/return e != NULL && e->nonce == gid->nonce;/return e != NULL;/|test/t/050_resolver_coord_crash_before_commit.pl"
	# resolver.c step_act: acts on what the first listing holds, whether or
	# not the second still holds it
	"first-listing-only|src/resolver.c|s/if \(cand->in_second && !cand->running && !cand->finished\)/if (!cand->running \&\& !cand->finished)/|test/t/027_resolver_second_listing.pl"
	# resolver.c step_act: ROLLBACK PREPARED even where a decision exists
	"resolver-never-commits|src/resolver.c|s/decided \? \"COMMIT\" : \"ROLLBACK\"/decided \&\& false ? \"COMMIT\" : \"ROLLBACK\"/|regress"
	# resolver.c decision_finished: a decision goes although a prepared
	# transaction of it is still there after the pass
	"decision-deleted-while-pending|src/resolver.c|s/(if \(hash_search\(scan->pending, &e->fxid, HASH_FIND, NULL\) != NULL\)\n\t\t\treturn) false;/\$1 true;/|test/t/012_resolver_edge.pl"
	# remote_xact.c record_decision: the local commit is not forced to disk
	# (neither ForceSyncCommit nor synchronous_commit raised to on, which
	# would flush it too)
	"no-forced-flush|src/remote_xact.c|s/\tForceSyncCommit\(\);\n\tDtxDecisionRequireSyncRep\(\);\n//|test/t/016_commit_flush.pl"
	# remote_xact.c dtx_post_commit: the decision is confirmed (deleted)
	# although a participant has not confirmed COMMIT PREPARED
	"decision-deleted-before-commit-prepared|src/remote_xact.c|s/(if \(!all_confirmed\)\n\t\tDtxResolverWake\(\);\n\t)else if/\$1if/|test/t/032_core_crash_after_prepare.pl"
	# remote_xact.c dtx_pre_commit: a failed PREPARE does not fail COMMIT
	"prepare-failure-ignored|src/remote_xact.c|s/if \(failed != NULL\)\n(\t+)report_phase_error/if (failed != NULL \&\& false)\n\$1report_phase_error/|regress"
	# remote_xact.c dtx_abort: prepared participants are not rolled back
	"abort-leaves-prepared|src/remote_xact.c|s/sql = psprintf\(\"ROLLBACK PREPARED '%s'\", c->xact\.gid\);/sql = NULL;/|regress"
	# remote_xact.c commit_directly: a one-phase COMMIT whose answer is
	# lost is reported as a plain connection failure, not 08007
	"one-phase-lost-answer-not-08007|src/remote_xact.c|s/if \(one_phase && foreach_current_index\(lc\) == 0\)/if (one_phase \&\& false)/g|test/t/034_core_commit_paths.pl"
	# connection.c dtx_configure_session: the remote session's data formats
	# are not pinned (results read with the participant's own DateStyle)
	"formats-not-pinned|src/connection.c|s/\"SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; \"//|regress"
	# remote_exec.c collect_params: parameters printed in the session's own
	# DateStyle, IntervalStyle and extra_float_digits
	"params-not-pinned|src/remote_exec.c|s/output_depends_on_formats\(elemtype\) \?/(output_depends_on_formats(elemtype) \&\& false) ?/; s/&& output_depends_on_formats\(typid\)/\&\& (output_depends_on_formats(typid) \&\& false)/|regress"
	# remote_xact.c commit_directly: after the sole writer committed, a
	# reader that fails to commit raises an ERROR (the client retries)
	"reader-failure-is-error|src/remote_xact.c|s/if \(writer != NULL && c != writer\)\n\t\t\{/if (false)\n\t\t{/|regress"
	# remote_xact.c dtx_post_commit: a busy prepared transaction (the
	# resolver finishing it) is not waited for: "has not confirmed"
	"busy-not-retried|src/remote_xact.c|s/\t\t\t\tst = commit_prepared_when_free\(c, deadline, &msg, sqlstate\);/\t\t\t\tif (false) st = commit_prepared_when_free(c, deadline, \&msg, sqlstate);/|test/t/019_commit_prepared_busy.pl"
	# decision.c: the decision is not made to wait for a synchronous standby
	"sync-standby-not-awaited|src/decision.c|s/if \(synchronous_commit < SYNCHRONOUS_COMMIT_REMOTE_FLUSH\)/if (false)/|test/t/015_sync_standby_decision.pl"
	# coordinator.c: a copy of a coordinator started as a primary is not held
	"copy-not-held|src/coordinator.c|s/\twrite_state_file\(DTX_HOLD_FILE, reason\);/\treturn;/|test/t/013_coordinator_copy.pl"
	# resolver.c read_decisions: decisions of another coordinator id are read
	# (and deleted as finished by the listing of the current id)
	"other-id-decisions-read|src/resolver.c|s/\) != coordid\)\n(\t+)continue;/) != coordid \&\& false)\n\$1continue;/|regress"
	# resolver.c list_servers: servers of postgres_fdw that pg_dtx has no
	# record of are not listed (an orphan there is never rolled back)
	"fdw-servers-not-listed|src/resolver.c|s/ANY \(ARRAY\['dtx', 'postgres_fdw'\]/ANY (ARRAY['dtx']/|test/t/014_fdw_server_orphan.pl"
	# connection.c DtxPipelineRaise: a failure of a statement sent in an
	# earlier subtransaction, raised and caught in a later one, leaves the
	# remote transaction usable (COMMIT then commits without that statement)
	"send-subid-rule-off|src/connection.c|s/if \(fail->user && fail->subid < GetCurrentSubTransactionId\(\)\)\n\t\tc->xact.abort_required = true;/if (false)\n\t\tc->xact.abort_required = true;/|regress"
	# remote_xact.c: with dtx.synchronous_commit_prepared off, COMMIT
	# PREPARED is left in flight outside pipeline mode: the next statement
	# waits for its answer instead of going behind it
	"async-not-pipelined|src/remote_xact.c|s/DtxSendLeadNoError\(c, sql\)\)\)/DtxSendQueryNoError(c, sql)))/|test/t/038_send_faults.pl"
	# remote_exec.c: the read-only probe is not sent with dtx.query (COMMIT
	# then sends it, one more round trip)
	"probe-not-pipelined|src/remote_exec.c|s/probe = !cacheable && c->xact.selects_only/probe = false \&\& !cacheable \&\& c->xact.selects_only/|test/t/034_core_commit_paths.pl"
	# remote_exec.c sql_head: the words after empty statements (";
	# COMMIT") are not checked
	"empty-statements-hide-control|src/remote_exec.c|s/ \\x7c\\x7c \*p != ';'\)/ \\x7c\\x7c 1)/|regress"
	# remote_exec.c sql_head: SET ROLE and SET SESSION AUTHORIZATION pass
	"role-change-allowed|src/remote_exec.c|s/\\{\"ROLE\", /{\"XROLE\", /; s/\\{\"AUTHORIZATION\", /{\"XAUTHORIZATION\", /|regress"
	# remote_xact.c drain_sent: a PREPARE sent alone whose answer was not
	# read is abandoned at once (its prepared transaction left to the
	# resolver)
	"prepare-answer-not-read|src/remote_xact.c|s/if \(c->busy && c->pipeline == NIL && !c->lead_pending &&/if (false \&\& c->busy \&\& !c->lead_pending \&\&/|test/t/031_core_crash_before_prepare.pl"
	# remote_xact.c take_arrived: the answers already in are not read first
	# (PREPARE always joins the pipeline)
	"arrived-answers-not-taken|src/remote_xact.c|s/if \(!DtxPipelineCollectArrived\(c, deadline\)\)/if (deadline >= 0)/|test/t/038_send_faults.pl"
)

field() { cut -d'|' -f"$2" <<<"$1"; }

if [[ ${1:-} == --list ]]; then
	for m in "${MUTATIONS[@]}"; do
		printf '%-42s %-22s %s\n' "$(field "$m" 1)" "$(field "$m" 2)" "$(field "$m" 4)"
	done
	exit 0
fi

work=$(mktemp -d)
restore() {
	# the unmutated code goes back into the installation
	local copy="$work/original"
	rm -rf "$copy"
	mkdir -p "$copy"
	copy_tree "$copy"
	make -s -C "$copy" PG_CONFIG="$PG_CONFIG" -j2 >/dev/null 2>&1 &&
		make -s -C "$copy" PG_CONFIG="$PG_CONFIG" install >/dev/null 2>&1 ||
		echo "could not reinstall the unmutated tree" >&2
	rm -rf "$work"
}
trap restore EXIT

# the tree without build products and test leftovers
copy_tree() {
	tar -C "$root" -cf - --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		--exclude=results --exclude='tmp_check*' --exclude=log --exclude=output_iso . |
		tar -C "$1" -xf -
}

selected() {
	local name=$1 n
	[[ ${#WANT[@]} -eq 0 ]] && return 0
	for n in "${WANT[@]}"; do
		[[ $n == "$name" ]] && return 0
	done
	return 1
}

# Runs a test command in $copy with its output in log, in a session of its
# own, for at most MUTATION_TIMEOUT seconds: a mutation can make a test wait
# forever (a prepared transaction left behind holds its locks).  Whatever
# the session started and left running (servers) is killed afterwards.
# Returns the command's status, 124 when it was stopped.
MUTATION_TIMEOUT=${MUTATION_TIMEOUT:-900}
bounded() {
	local log=$1 pid rc=0
	shift
	(cd "$copy" && exec setsid timeout -k 20 "$MUTATION_TIMEOUT" "$@") >"$log" 2>&1 &
	pid=$!
	wait "$pid" || rc=$?
	pkill -KILL -s "$pid" 2>/dev/null || true
	return "$rc"
}

WANT=("$@")
passed=0
failed=0
started=$(date +%s)

for m in "${MUTATIONS[@]}"; do
	name=$(field "$m" 1)
	file=$(field "$m" 2)
	subst=$(field "$m" 3)
	tests=$(field "$m" 4)
	selected "$name" || continue

	copy="$work/$name"
	mkdir -p "$copy"
	copy_tree "$copy"
	t0=$(date +%s)
	# the substitution must change the file, and the result must build
	perl -0pi -e "$subst" "$copy/$file"
	if cmp -s "$root/$file" "$copy/$file"; then
		echo "mutation $name: FAIL (its pattern is not in $file any more)"
		failed=$((failed + 1))
		continue
	fi
	if ! make -s -C "$copy" PG_CONFIG="$PG_CONFIG" -j2 >"$copy/build.log" 2>&1; then
		echo "mutation $name: FAIL (does not build)"
		tail -5 "$copy/build.log"
		failed=$((failed + 1))
		continue
	fi

	killed_by=""
	regress=0
	tap=""
	for t in $tests; do
		if [[ $t == regress ]]; then regress=1; else tap+="$t "; fi
	done
	if [[ $regress == 1 ]]; then
		rc=0
		bounded "$copy/regress.log" bash test/run_tests.sh --only regress || rc=$?
		if [[ $rc -eq 124 ]]; then
			killed_by="regress (it hung: stopped after ${MUTATION_TIMEOUT}s)"
		elif [[ $rc -ne 0 ]]; then
			killed_by="regress"
		fi
	fi
	if [[ -z $killed_by && -n $tap ]]; then
		rc=0
		PROVE_TESTS="$tap" bounded "$copy/tap.log" bash test/run_tests.sh --only tap || rc=$?
		if [[ $rc -eq 124 ]]; then
			killed_by="$tap(it hung: stopped after ${MUTATION_TIMEOUT}s)"
		elif [[ $rc -ne 0 ]]; then
			killed_by=$(grep -oE 'test/t/[0-9A-Za-z_]+\.pl' <<<"$(grep '(Wstat: ' "$copy/tap.log" || true)" |
				sort -u | tr '\n' ' ')
			killed_by=${killed_by:-"$tap"}
		fi
	fi
	# a build or install failure inside run_tests.sh is not a kill; the
	# test directories it keeps after a failure are of no use here
	for log in "$copy/regress.log" "$copy/tap.log"; do
		[[ -f $log ]] || continue
		if grep -q '^  build      FAIL' "$log"; then
			killed_by="BUILD"
		fi
		kept=$(sed -n 's/^  test directory kept for inspection: //p' "$log")
		if [[ -n $kept && -d $kept && $kept == */pg_dtx_stage.* ]]; then
			rm -rf -- "$kept"
		fi
	done
	secs=$(($(date +%s) - t0))
	if [[ $killed_by == BUILD ]]; then
		echo "mutation $name: FAIL (build or install failed in the test run) (${secs}s)"
		failed=$((failed + 1))
	elif [[ -n $killed_by ]]; then
		echo "mutation $name: killed by ${killed_by% } (${secs}s)"
		# the first failure, to see that it is the expected one
		cat "$copy/regress.log" "$copy/tap.log" 2>/dev/null |
			grep -m1 -E "Failed test|FAILED" |
			sed 's/^/    /' || true
		passed=$((passed + 1))
	else
		echo "mutation $name: survived $tests (${secs}s)"
		failed=$((failed + 1))
	fi
	rm -rf "$copy"
done

echo "mutation check took $(($(date +%s) - started)) s"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
