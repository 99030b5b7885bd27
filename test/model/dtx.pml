/*
 * dtx.pml -- a model of pg_dtx's commit and recovery protocol, for spin.
 *
 * One distributed transaction T with NP participants, as the C code runs it,
 * a resolver running passes, and a fault injector that may, between any two
 * steps, crash the coordinator (and restart it), crash a participant (and
 * restart it), kill the resolver in the middle of a pass, and lose replies.
 * Timeouts are modelled by letting every wait give up at any moment.
 *
 * Each step names the C function that performs it:
 *   statements            remote_exec.c run_remote -> DtxSendPipeline
 *   PREPARE, in parallel  remote_xact.c dtx_pre_commit: classify_participants,
 *                         record_decision (decision.c DtxDecisionInsert inside the
 *                         local transaction), assign_global_ids, send_prepare,
 *                         collect_prepare
 *   decision + commit     the local commit record makes the decision durable
 *                         (xact.c RecordTransactionCommit)
 *   COMMIT PREPARED       remote_xact.c dtx_post_commit (DtxSendQueryNoError / DtxGetResultNoError)
 *   abort                 remote_xact.c dtx_abort (runs after the local abort record)
 *   confirmed -> delete   decision.c DtxDecisionConfirmed, DtxDecisionRetireConfirmed
 *   resolver pass         resolver.c DtxResolvePass: list_servers, resolve_as_connected
 *                         (resolve_server: step_first_listing, xact_may_be_running,
 *                         read_decisions, step_second_listing, step_act),
 *                         retire_finished_decisions (decision_finished), record_pass
 *
 * Properties (assertions):
 *   atomicity  no participant commits T while another rolls it back;
 *   validity   a participant commits only after the local commit (durable decision);
 *              once faults stop, a transaction acknowledged to the client is
 *              committed everywhere;
 *   progress   once faults stop and the resolver has run, nothing is left prepared;
 *   hands off  the resolver never finishes T while its local transaction runs.
 *
 * Compile with -DMUTATION=1 to read the decision before listing the
 * participants, or -DMUTATION=2 to act on the first listing alone: spin must
 * then find a counterexample (test/model/run.sh checks both).
 *
 * -DSCENARIO=1, 2 or 3 checks instead one of the scenarios at the end of
 * this file, each with its own mutations that must fail:
 *   1  one xid, two transactions across a coordinator crash: the nonce rule
 *      (MUTATION 3: a decision matched by xid alone);
 *   2  a cloned coordinator held until it has its own id, and decisions of
 *      another id (MUTATION 4: the clone resolves with the inherited id;
 *      MUTATION 5: a decision deleted because the listing of the current id
 *      finds nothing);
 *   3  one-phase commit with readers (MUTATION 6: a reader's failure after
 *      the writer committed reported as an error).
 */

#ifndef NP
#define NP 2
#endif
#ifndef MAXFAULTS
#define MAXFAULTS 3
#endif
#ifndef MUTATION
#define MUTATION 0
#endif
#ifndef SCENARIO
#define SCENARIO 0      /* 0: the transaction T above; 1-3: the scenarios at the end */
#endif
#ifndef MAXPASSES
#define MAXPASSES 3     /* resolver passes while faults happen */
#endif

/* a participant's transaction T */
#define P_NONE      0   /* nothing yet */
#define P_ACTIVE    1   /* open remote transaction, statements done */
#define P_PREPARED  2
#define P_COMMITTED 3
#define P_ABORTED   4

/* requests to a participant and their replies */
#define R_NONE      0
#define R_PREPARE   1
#define R_COMMITP   2   /* COMMIT PREPARED */
#define R_ROLLBACK  3   /* ROLLBACK or ROLLBACK PREPARED, whichever applies */
#define A_NONE      0
#define A_OK        1
#define A_FAIL      2   /* an error (e.g. a deferred constraint at PREPARE) */
#define A_NOTEXIST  3   /* "prepared transaction does not exist" */

/* the coordinator's local transaction */
#define X_RUNNING   0
#define X_COMMITTED 1
#define X_ABORTED   2

#if SCENARIO == 0

byte part[NP];          /* participants' state of T */
bool pdown[NP];         /* participant crashed, not yet restarted */
bool broken[NP];        /* the backend's connection to it is gone or abandoned */
bool sess_dead[NP];     /* the backend's remote session is gone */
chan reqq[NP] = [2] of { byte };   /* requests received by the participant, in order */
chan repq[NP] = [2] of { byte };   /* its replies on their way back */
byte xstate = X_RUNNING;
bool decision = false;  /* decision row durable and not deleted */
bool acked = false;     /* the client's COMMIT returned success */
bool coord_down = false;
byte crash_epoch = 0;   /* coordinator crashes so far: what ran before one is dead */
bool backend_done = false;
bool faults_done = false;
byte faults = 0;

/* atomicity: committing T where another participant rolled it back, or
 * the reverse, is the failure two-phase commit exists to prevent */
inline no_rollback_elsewhere()
{
	assert(part[0] != P_ABORTED && part[1] != P_ABORTED)
}
inline no_commit_elsewhere()
{
	assert(part[0] != P_COMMITTED && part[1] != P_COMMITTED)
}

/* The participant: serves its requests in order (postgres.c). */
proctype Participant(byte p)
{
	byte r;
	byte ans;
	do
	:: atomic { !pdown[p] && nempty(reqq[p]) ->
		reqq[p]?r;
		if
		:: r == R_PREPARE ->
			if
			:: part[p] == P_ACTIVE -> part[p] = P_PREPARED; ans = A_OK
			:: part[p] == P_ACTIVE -> part[p] = P_ABORTED; ans = A_FAIL	/* PREPARE failed */
			:: else -> ans = A_FAIL
			fi
		:: r == R_COMMITP ->
			if
			:: part[p] == P_PREPARED ->
				assert(xstate == X_COMMITTED);	/* validity: never without a durable decision */
				no_rollback_elsewhere();
				part[p] = P_COMMITTED; ans = A_OK
			:: else -> ans = A_NOTEXIST
			fi
		:: r == R_ROLLBACK ->
			if
			:: part[p] == P_ACTIVE || part[p] == P_PREPARED ->
				no_commit_elsewhere();
				part[p] = P_ABORTED; ans = A_OK
			:: else -> ans = A_NOTEXIST
			fi
		fi;
		if
		:: nfull(repq[p]) && !sess_dead[p] -> repq[p]!ans
		:: full(repq[p]) || sess_dead[p] -> skip
		fi;
		r = 0; ans = 0		/* dead values: keep the state space small */
	   }
	:: atomic { !pdown[p] && sess_dead[p] && empty(reqq[p]) && part[p] == P_ACTIVE ->
		part[p] = P_ABORTED }	/* the session ended: its open transaction rolls back */
	:: backend_done && faults_done && empty(reqq[p]) && part[p] != P_ACTIVE -> break
	od
}

/* send a request to participant i, or note that the connection is gone */
inline send(i, what)
{
	atomic {
		if
		:: !broken[i] -> reqq[i]!what
		:: broken[i] -> ok = false
		fi
	}
}

/* wait for participant i's reply, or give up at any moment (a timeout) */
inline await(i, r)
{
	if
	:: atomic { !broken[i] && nempty(repq[i]) -> repq[i]?r }
	:: atomic { true -> broken[i] = true; sess_dead[i] = true; r = A_NONE }
	fi
}

/* The coordinator's backend running T (remote_xact.c). */
proctype Backend()
{
	byte i;
	byte r;
	bool ok = true;

	{
		/* statements: each opens the participant's remote transaction */
		for (i : 0 .. NP - 1) {
			atomic {
				if
				:: !pdown[i] && !broken[i] && part[i] == P_NONE -> part[i] = P_ACTIVE
				:: else -> ok = false
				fi
			}
		}
		if
		:: !ok -> goto abort
		:: else -> skip
		fi;

		/* dtx_pre_commit: send_prepare everywhere at once, then collect_prepare */
		atomic { for (i : 0 .. NP - 1) { send(i, R_PREPARE) } }
		for (i : 0 .. NP - 1) {
			await(i, r);
			if
			:: r != A_OK -> ok = false
			:: else -> skip
			fi;
			r = 0
		}
		if
		:: !ok -> goto abort
		:: else -> skip
		fi;

		/* the local commit: the decision row commits with it */
		atomic { xstate = X_COMMITTED; decision = true };

		/* dtx_post_commit: COMMIT PREPARED everywhere at once */
		atomic { for (i : 0 .. NP - 1) { send(i, R_COMMITP) } }
		for (i : 0 .. NP - 1) {
			await(i, r);
			if
			:: r != A_OK && r != A_NOTEXIST -> ok = false	/* WARNING: resolver */
			:: else -> skip
			fi;
			r = 0
		}
		acked = true;
		/* every participant confirmed: the decision may go */
		if
		:: ok -> decision = false
		:: else -> skip
		fi;
		goto done;

abort:
		/* AbortTransaction: the abort record first, then dtx_abort */
		atomic { xstate = X_ABORTED };
		atomic { for (i : 0 .. NP - 1) { send(i, R_ROLLBACK) } }
		for (i : 0 .. NP - 1) { await(i, r); r = 0 }
done:
		skip
	} unless { crash_epoch > 0 };
	backend_done = true
}

/*
 * One resolver pass (resolver.c DtxResolvePass); may die at any step
 * (killed worker, crashed coordinator), and then nothing it did locally
 * (the decision deletion) happens.
 */
inline resolver_pass()
{
	bool listed[NP];
	bool l1[NP];
	bool l2[NP];
	bool running;
	bool d;
	bool finished;
	byte k;

#if MUTATION == 1
	d = decision;						/* decisions read too early */
#endif
	/* 1. step_first_listing (the participants are listed one by one, but
	 * each listing is one snapshot of that participant; doing them in one
	 * step loses no ordering that matters to the rules, and keeps the
	 * state space small) */
	atomic {
		for (k : 0 .. NP - 1) {
			if
			:: !pdown[k] -> listed[k] = true; l1[k] = (part[k] == P_PREPARED)
			:: !faults_done -> listed[k] = false	/* could not list (timeout): never act */
			fi
		}
	}
	/* 2. xact_may_be_running */
	running = (xstate == X_RUNNING);
#if MUTATION != 1
	/* 3. read_decisions, with a fresh snapshot */
	d = decision;
#endif
	/* 4. step_second_listing */
	atomic {
		for (k : 0 .. NP - 1) {
			if
			:: listed[k] && !pdown[k] -> l2[k] = (part[k] == P_PREPARED)
			:: else -> listed[k] = false
			fi
		}
	}
#if MUTATION == 2
	for (k : 0 .. NP - 1) { l2[k] = l1[k] }	/* second listing ignored */
#endif
	/* step_act: only what both lists hold */
	for (k : 0 .. NP - 1) {
		if
		:: listed[k] && l1[k] && l2[k] && d ->
			atomic {
				if
				:: !pdown[k] && part[k] == P_PREPARED ->
					assert(xstate != X_RUNNING);
					assert(xstate == X_COMMITTED);
					no_rollback_elsewhere();
					part[k] = P_COMMITTED
				:: else -> skip
				fi
			}
		:: listed[k] && l1[k] && l2[k] && !d && !running ->
			atomic {
				if
				:: !pdown[k] && part[k] == P_PREPARED ->
					assert(xstate != X_RUNNING);	/* hands off */
					no_commit_elsewhere();
					part[k] = P_ABORTED
				:: else -> skip
				fi
			}
		:: else -> skip
		fi
	}
	/* decision_finished: every participant listed and holding none;
	 * the deletion commits with the pass's transaction */
	atomic {
		finished = d;
		for (k : 0 .. NP - 1) {
			if
			:: !listed[k] || (l2[k] && part[k] == P_PREPARED) -> finished = false
			:: else -> skip
			fi
		}
		if
		:: finished -> decision = false
		:: else -> skip
		fi;
		/* dead values: keep the state space small */
		for (k : 0 .. NP - 1) { listed[k] = false; l1[k] = false; l2[k] = false }
		running = false; d = false; finished = false; k = 0
	}
}

proctype Resolver()
{
	byte passes = 0;
	byte epoch;
	do
	:: !coord_down && !faults_done && passes < MAXPASSES ->
		epoch = crash_epoch;
		passes++;
		{ resolver_pass() } unless { crash_epoch != epoch }	/* killed with the coordinator */

	:: faults_done && backend_done -> break
	od;
	/* what the participants received is served first */
	byte q;
	for (q : 0 .. NP - 1) { empty(reqq[q]) && part[q] != P_ACTIVE }
	/* faults are over: a few more passes finish everything */
	passes = 0;
	do
	:: passes < 3 -> resolver_pass(); passes++
	:: passes >= 3 -> break
	od;

	/* progress, atomicity and validity once faults stop */
	byte k;
	for (k : 0 .. NP - 1) {
		assert(part[k] != P_PREPARED);
		assert(!acked || part[k] == P_COMMITTED)
	}
}

/* a participant crashes: its open transaction and its connections are lost */
inline crash_participant(k)
{
	pdown[k] = true;
	faults++;
	if
	:: part[k] == P_ACTIVE -> part[k] = P_ABORTED
	:: else -> skip
	fi;
	do
	:: reqq[k]?_
	:: repq[k]?_
	:: empty(reqq[k]) && empty(repq[k]) -> break
	od;
	broken[k] = true;
	sess_dead[k] = true
}

/* Faults, at most MAXFAULTS, everything restarted afterwards (NP == 2). */
proctype Faults()
{
	byte k;
	do
	:: atomic { faults < MAXFAULTS && !coord_down ->
		coord_down = true;
		crash_epoch++;
		faults++;
		/* crash recovery: a running local transaction is aborted */
		if
		:: xstate == X_RUNNING -> xstate = X_ABORTED
		:: else -> skip
		fi;
		/* the backend's remote sessions die: what they received is
		 * served, then their open transactions roll back */
		for (k : 0 .. NP - 1) { sess_dead[k] = true; broken[k] = true }
	   }
	:: atomic { coord_down -> coord_down = false }
	:: atomic { faults < MAXFAULTS && !pdown[0] -> crash_participant(0) }
	:: atomic { faults < MAXFAULTS && !pdown[1] -> crash_participant(1) }
	:: atomic { pdown[0] -> pdown[0] = false }
	:: atomic { pdown[1] -> pdown[1] = false }
	:: atomic { faults < MAXFAULTS && nempty(repq[0]) -> repq[0]?_; faults++ }	/* lost reply */
	:: atomic { faults < MAXFAULTS && nempty(repq[1]) -> repq[1]?_; faults++ }
	:: break
	od;
	/* heal */
	atomic {
		coord_down = false;
		for (k : 0 .. NP - 1) { pdown[k] = false }
		faults_done = true
	}
}

init
{
	byte p;
	atomic {
		for (p : 0 .. NP - 1) { run Participant(p) }
		run Backend();
		run Resolver();
		run Faults()
	}
}

#endif /* SCENARIO == 0 */

/*
 * ------------------------------------------------------------------------
 * The scenarios below each check one rule that the transaction T above
 * cannot show.  They are small and run without the fault injector: each
 * puts the fault it is about (a coordinator crash, a copied data
 * directory, a lost or failed answer) where it matters, at any moment.
 * Every one has a mutation that spin must catch.
 * ------------------------------------------------------------------------
 */

/* a participant commits or rolls back transaction st of the scenario, checking atomicity */
#define ATOMIC_COMMIT(st, k, committed_locally) \
	assert(committed_locally); \
	assert(st[0] != P_ABORTED && st[1] != P_ABORTED); \
	st[k] = P_COMMITTED
#define ATOMIC_ROLLBACK(st, k) \
	assert(st[0] != P_COMMITTED && st[1] != P_COMMITTED); \
	st[k] = P_ABORTED

#if SCENARIO == 1

/*
 * Scenario 1: two transactions with one transaction id (the nonce rule).
 *
 * T1 gets xid X and nonce 1 (gid.c DtxNewNonce); dtx_pre_commit sends
 * PREPARE TRANSACTION to some or all participants, then the coordinator
 * crashes before the local commit.  X never reached the WAL, so after the
 * restart T2 gets X again, with nonce 2, and runs the whole protocol: its
 * decision is (X, nonce 2).  Resolver passes run at any moment; a
 * participant may still execute T1's PREPARE after the crash (it had
 * received it).  T1's prepared transactions must be rolled back and T2's
 * committed: resolver.c decision_matches matches a decision by xid AND
 * nonce; xact_may_be_running says X is not running while it is at or past
 * the next xid (between the crash and T2).
 *
 * MUTATION 3 matches a decision by its xid alone: T1's prepared
 * transactions are then committed from T2's decision, although T1 never
 * committed (its client saw its connection die).
 */
#define X_UNUSED    3   /* the xid is not handed out (again) yet */

byte t1[NP];            /* participants' state of T1 (nonce 1) */
byte t2[NP];            /* participants' state of T2 (nonce 2) */
bool prep1[NP];         /* T1's PREPARE received by the participant, not executed yet */
byte x1 = X_RUNNING;    /* T1's local transaction */
byte x2 = X_UNUSED;     /* T2's local transaction */
byte dec = 0;           /* the decision of xid X: 0 none, else its nonce */
bool crashed = false;   /* the coordinator crashed */
bool acked2 = false;    /* T2's client got success */
bool coord_done = false;

/* a participant serves the PREPARE it received for T1, before or after the crash */
proctype Participant1(byte p)
{
	do
	:: atomic { prep1[p] ->
		prep1[p] = false;
		if
		:: t1[p] == P_ACTIVE -> t1[p] = P_PREPARED
		:: t1[p] == P_ACTIVE -> t1[p] = P_ABORTED	/* PREPARE failed */
		:: else -> skip
		fi }
	:: atomic { crashed && !prep1[p] && t1[p] == P_ACTIVE -> t1[p] = P_ABORTED }	/* session gone */
	:: atomic { crashed && !prep1[p] && t1[p] != P_ACTIVE -> break }
	od
}

/* the coordinator: T1 (cut short by the crash), then T2 with the same xid */
proctype Coordinator1()
{
	byte i;
	bool ok = true;
	bool confirmed = true;

	/* T1's statements (run_remote), then dtx_pre_commit: the decision
	 * row (X, 1) is inserted in the local transaction, PREPARE goes out */
	atomic { for (i : 0 .. NP - 1) { t1[i] = P_ACTIVE } }
	for (i : 0 .. NP - 1) {
		if
		:: prep1[i] = true
		:: break
		fi
	}
	/* the crash, before T1's local commit: crash recovery aborts T1, its
	 * decision row goes with it, and X is handed out again */
	atomic { crashed = true; x1 = X_ABORTED }

	/* T2 gets xid X: statements, then dtx_pre_commit with nonce 2 */
	atomic { x2 = X_RUNNING; for (i : 0 .. NP - 1) { t2[i] = P_ACTIVE } }
	for (i : 0 .. NP - 1) {
		if
		:: ok -> atomic {
				if
				:: t2[i] = P_PREPARED
				:: t2[i] = P_ABORTED; ok = false	/* PREPARE failed */
				fi }
		:: else -> skip
		fi
	}
	if
	:: ok ->
		/* the local commit: the decision (X, 2) is durable */
		atomic { x2 = X_COMMITTED; dec = 2 };
		/* dtx_post_commit: COMMIT PREPARED; an answer may be lost
		 * (WARNING, left to the resolver) */
		for (i : 0 .. NP - 1) {
			if
			:: atomic {
					if
					:: t2[i] == P_PREPARED -> ATOMIC_COMMIT(t2, i, x2 == X_COMMITTED)
					:: else -> skip		/* the resolver was first */
					fi }
			:: confirmed = false
			fi
		}
		acked2 = true;
		/* confirm_decision: every participant confirmed */
		atomic {
			if
			:: confirmed ->
				for (i : 0 .. NP - 1) { assert(t2[i] != P_PREPARED) };
				dec = 0
			:: else -> skip
			fi }
	:: else ->
		/* AbortTransaction, then dtx_abort */
		atomic { x2 = X_ABORTED };
		for (i : 0 .. NP - 1) {
			atomic {
				if
				:: t2[i] == P_ACTIVE -> t2[i] = P_ABORTED
				:: t2[i] == P_PREPARED -> ATOMIC_ROLLBACK(t2, i)
				:: else -> skip
				fi }
		}
	fi;
	coord_done = true
}

#if MUTATION == 3
#define MATCHES(d, nonce) (d != 0)		/* the nonce ignored */
#else
#define MATCHES(d, nonce) (d == nonce)
#endif

/* resolver.c DtxResolvePass, on the prepared transactions of xid X */
inline resolver_pass1()
{
	bool a1[NP];	/* T1's, in the first listing */
	bool a2[NP];	/* ... and in the second */
	bool b1[NP];	/* T2's */
	bool b2[NP];
	bool running;
	byte d0;
	byte d;
	bool finished;
	byte k;

	d0 = dec;	/* decisions_at_start: only those may be deleted */
	/* step_first_listing */
	atomic { for (k : 0 .. NP - 1) { a1[k] = (t1[k] == P_PREPARED); b1[k] = (t2[k] == P_PREPARED) } }
	/* xact_may_be_running: an xid at or past the next one is not running */
	running = (x1 == X_RUNNING || x2 == X_RUNNING);
	/* read_decisions */
	d = dec;
	/* step_second_listing */
	atomic { for (k : 0 .. NP - 1) { a2[k] = (t1[k] == P_PREPARED); b2[k] = (t2[k] == P_PREPARED) } }
	/* step_act: COMMIT PREPARED where decision_matches, else ROLLBACK
	 * PREPARED unless the xid is running */
	for (k : 0 .. NP - 1) {
		if
		:: a1[k] && a2[k] && MATCHES(d, 1) ->
			atomic { if :: t1[k] == P_PREPARED -> ATOMIC_COMMIT(t1, k, x1 == X_COMMITTED) :: else -> skip fi }
		:: a1[k] && a2[k] && !MATCHES(d, 1) && !running ->
			atomic { if :: t1[k] == P_PREPARED -> ATOMIC_ROLLBACK(t1, k) :: else -> skip fi }
		:: else -> skip
		fi;
		if
		:: b1[k] && b2[k] && MATCHES(d, 2) ->
			atomic { if :: t2[k] == P_PREPARED -> ATOMIC_COMMIT(t2, k, x2 == X_COMMITTED) :: else -> skip fi }
		:: b1[k] && b2[k] && !MATCHES(d, 2) && !running ->
			atomic {
				if
				:: t2[k] == P_PREPARED -> assert(x2 != X_RUNNING); ATOMIC_ROLLBACK(t2, k)
				:: else -> skip
				fi }
		:: else -> skip
		fi
	}
	/* decision_finished (pending is keyed by xid: T1's count too), then
	 * DtxDecisionDelete */
	atomic {
		finished = (d0 != 0 && dec == d0);
		for (k : 0 .. NP - 1) {
			if
			:: (a2[k] && t1[k] == P_PREPARED) || (b2[k] && t2[k] == P_PREPARED) -> finished = false
			:: else -> skip
			fi
		}
		if
		:: finished ->
			for (k : 0 .. NP - 1) { assert(t2[k] != P_PREPARED) };	/* none of its own left */
			dec = 0
		:: else -> skip
		fi;
		for (k : 0 .. NP - 1) { a1[k] = false; a2[k] = false; b1[k] = false; b2[k] = false }
		running = false; d0 = 0; d = 0; finished = false; k = 0
	}
}

proctype Resolver1()
{
	byte passes = 0;
	byte q;
	/* passes at any moment; the crash kills the one under way */
	do
	:: !crashed && passes < 2 -> passes++; { resolver_pass1() } unless { crashed }
	:: crashed && !coord_done && passes < 2 -> passes++; resolver_pass1()
	:: coord_done -> break
	od;
	/* every PREPARE received is served, then a pass finishes everything
	 * (nothing else runs any more: one atomic step) */
	for (q : 0 .. NP - 1) { !prep1[q] && t1[q] != P_ACTIVE }
	atomic { resolver_pass1() };
	for (q : 0 .. NP - 1) {
		assert(t1[q] != P_PREPARED && t1[q] != P_COMMITTED);
		assert(t2[q] != P_PREPARED);
		assert(!acked2 || t2[q] == P_COMMITTED)
	}
}

init
{
	byte p;
	atomic {
		for (p : 0 .. NP - 1) { run Participant1(p) }
		run Coordinator1();
		run Resolver1()
	}
}

#endif /* SCENARIO == 1 */

#if SCENARIO == 2

/*
 * Scenario 2: coordinator ids, clones and a changed id.
 *
 * The origin (coordinator id A) runs T on two participants; COMMIT
 * PREPARED may go unconfirmed, leaving T in doubt.  At any moment a clone
 * is made of the origin's data directory (base backup, point-in-time
 * restore): it carries id A and the origin's decisions as they were then;
 * crash recovery aborts a local transaction that was running.  Both
 * servers go on.  Rules (identity.c, resolver.c DtxResolvePass):
 *  - a server started from a copy is held: it neither commits nor resolves
 *    until the operator gives it a new id (dtx.set_coordinator_id, only
 *    while held) -- here B;
 *  - a pass lists and acts on the prepared transactions of its current id
 *    (COMMIT PREPARED with a decision, else ROLLBACK PREPARED unless
 *    running);
 *  - a decision of another id (the clone's copies, id A) is neither acted
 *    on nor deleted (read_decisions reads only the current id's): the
 *    prepared transactions of id A are the origin's to finish; in
 *    particular a decision is never deleted from the listing of the current
 *    id.
 * Checked: atomicity; the origin's client acknowledged => committed
 * everywhere; a decision is deleted only when none of its prepared
 * transactions remains.
 *
 * MUTATION 4: the clone is not held and resolves with the inherited id A:
 * it finds T prepared, no decision in its copy (taken before the origin's
 * commit), T not running there, and rolls back what the origin commits.
 * MUTATION 5: the clone, given id B, deletes a decision of id A because
 * the listing of its current id B finds nothing, while T is still
 * prepared under id A.
 */
#define ID_NONE     0   /* no clone yet */
#define ID_HELD     1
#define ID_A        2   /* the origin's id, inherited */
#define ID_B        3   /* the clone's own id */

byte tp[NP];            /* participants' state of T (global ids of id A) */
byte ox = X_RUNNING;    /* T's local transaction on the origin */
bool o_dec = false;     /* the origin's decision of T */
bool c_dec = false;     /* the clone's copy of that decision */
byte c_id = ID_NONE;    /* the clone's coordinator id */
bool acked = false;     /* the origin's client got success */
bool origin_done = false;
bool clone_done = false;

/* DtxDecisionDelete: a decision goes only when none of T's prepared
 * transactions remains (else nobody could ever commit them from it) */
inline delete_decision(dec)
{
	atomic {
		assert(tp[0] != P_PREPARED && tp[1] != P_PREPARED);
		dec = false
	}
}

/* the origin's backend: statements, dtx_pre_commit, the local commit, dtx_post_commit */
proctype Origin()
{
	byte i;
	bool ok = true;
	bool confirmed = true;

	atomic { for (i : 0 .. NP - 1) { tp[i] = P_ACTIVE } }
	for (i : 0 .. NP - 1) {
		if
		:: ok -> atomic {
				if
				:: tp[i] = P_PREPARED
				:: tp[i] = P_ABORTED; ok = false	/* PREPARE failed */
				fi }
		:: else -> skip
		fi
	}
	if
	:: ok ->
		atomic { ox = X_COMMITTED; o_dec = true };
		for (i : 0 .. NP - 1) {
			if
			:: atomic {
					if
					:: tp[i] == P_PREPARED -> ATOMIC_COMMIT(tp, i, ox == X_COMMITTED)
					:: else -> skip		/* "does not exist": finished already */
					fi }
			:: confirmed = false	/* no answer: WARNING, left to the resolver */
			fi
		}
		acked = true;
		atomic {
			if
			:: confirmed -> delete_decision(o_dec)	/* confirm_decision */
			:: else -> skip
			fi }
	:: else ->
		atomic { ox = X_ABORTED };
		for (i : 0 .. NP - 1) {
			atomic {
				if
				:: tp[i] == P_ACTIVE -> tp[i] = P_ABORTED
				:: tp[i] == P_PREPARED -> ATOMIC_ROLLBACK(tp, i)
				:: else -> skip
				fi }
		}
	fi;
	origin_done = true
}

/*
 * One pass over T's prepared transactions (resolver.c DtxResolvePass):
 * listing prefix lid (the id whose global ids are listed), own (the pass's
 * current id is lid: full rules; always so in the C code, which reads only
 * the current id's decisions), the server's decision dec and whether T
 * runs there.  The decision is deleted (dec = false) once finished.
 */
inline t_pass(lid, own, dec, running_here)
{
	bool l1[NP];
	bool l2[NP];
	bool running;
	bool d0;
	bool d;
	bool finished;
	byte k;

	d0 = dec;		/* decisions_at_start */
	/* step_first_listing: T's global ids carry id A */
	atomic { for (k : 0 .. NP - 1) { l1[k] = (lid == ID_A && tp[k] == P_PREPARED) } }
	running = running_here;		/* xact_may_be_running */
	d = dec;		/* read_decisions */
	/* step_second_listing */
	atomic { for (k : 0 .. NP - 1) { l2[k] = (lid == ID_A && tp[k] == P_PREPARED) } }
	/* step_act */
	for (k : 0 .. NP - 1) {
		if
		:: l1[k] && l2[k] && d ->
			atomic { if :: tp[k] == P_PREPARED -> ATOMIC_COMMIT(tp, k, ox == X_COMMITTED) :: else -> skip fi }
		:: l1[k] && l2[k] && !d && !running && own ->
			atomic {
				if
				:: tp[k] == P_PREPARED ->
					assert(ox == X_ABORTED);	/* only what its origin rolled back */
					ATOMIC_ROLLBACK(tp, k)
				:: else -> skip
				fi }
		:: else -> skip
		fi
	}
	/* decision_finished, then DtxDecisionDelete */
	atomic {
		finished = d0 && dec;
		for (k : 0 .. NP - 1) {
			if
			:: l2[k] && tp[k] == P_PREPARED -> finished = false
			:: else -> skip
			fi
		}
		if
		:: finished -> delete_decision(dec)
		:: else -> skip
		fi;
		for (k : 0 .. NP - 1) { l1[k] = false; l2[k] = false }
		running = false; d0 = false; d = false; finished = false; k = 0
	}
}

/* the origin's resolver: id A, its own decisions */
proctype OriginResolver()
{
	byte passes = 0;
	do
	:: passes < 2 -> passes++; t_pass(ID_A, true, o_dec, ox == X_RUNNING)
	:: origin_done && clone_done -> break
	od;
	atomic { t_pass(ID_A, true, o_dec, false) };	/* all quiet: finishes everything */
	byte q;
	for (q : 0 .. NP - 1) {
		assert(tp[q] != P_PREPARED);
		assert(!acked || tp[q] == P_COMMITTED)
	}
}

/* the clone: a copy of the origin's data directory, taken at any moment */
proctype Clone()
{
	byte passes = 0;
	atomic {
		c_dec = o_dec;
#if MUTATION == 4
		c_id = ID_A		/* not held: resolves with the inherited id */
#else
		c_id = ID_HELD
#endif
	};
	/* held: no pass, no commit; the operator gives it a new id */
	if
	:: c_id == ID_HELD -> c_id = ID_B
	:: else -> skip
	fi;
	do
	:: passes < 2 && c_id == ID_A ->
		passes++;
		t_pass(ID_A, true, c_dec, false)	/* recovery aborted T in the copy */
	:: passes < 2 && c_id == ID_B ->
		passes++;
		/* its own id: lists id B, where T has nothing (not modelled further) */
#if MUTATION == 5
		/* decision_finished from the listing of the current id: nothing */
		if
		:: c_dec -> delete_decision(c_dec)
		:: else -> skip
		fi
#else
		/* the copied decision of id A is not its own: left alone */
		skip
#endif
	:: passes >= 2 -> break
	od;
	clone_done = true
}

init
{
	atomic {
		run Origin();
		run OriginResolver();
		run Clone()
	}
}

#endif /* SCENARIO == 2 */

#if SCENARIO == 3

/*
 * Scenario 3: one-phase commit with readers (remote_xact.c dtx_pre_commit,
 * commit_directly with one_phase).
 *
 * The client's transaction writes on one participant (the writer) and
 * reads on NP others; nothing is written locally, so COMMIT goes to all of
 * them at once, with no decision.  Each may commit or fail (the writer: a
 * deferred constraint; a reader: a WITH HOLD cursor failing when it is
 * materialised), and each answer may be lost or late (the wait gives up at
 * any moment).  The rule: the writer's answer alone decides what the
 * client hears -- committed: success (a reader's failure is a WARNING:
 * it wrote nothing); failed: its ERROR; no answer: 08007, outcome unknown.
 * The client runs its transaction again after an ERROR, not after 08007.
 * Checked: the write is applied at most once, and exactly once when the
 * client heard success.
 *
 * MUTATION 6: a reader's failure after the writer committed raises ERROR
 * (the first failure collected is reported): the client runs the
 * transaction again and the write is applied twice.
 */
#define O_SUCCESS   1
#define O_ERROR     2
#define O_UNKNOWN   3   /* 08007 */
#define ATTEMPTS    2

byte applied = 0;       /* times the write was committed */
byte ans[ATTEMPTS * (NP + 1)];  /* answers of attempt a: writer a*(NP+1), readers after it */
byte started = 0;       /* COMMITs sent */
byte served = 0;        /* COMMITs executed */

/* a participant executes the COMMIT of attempt a (who 0: the writer), at
 * any moment after it was sent; its answer may be lost */
proctype Server(byte a; byte who)
{
	atomic {
		byte r;
		if
		:: who == 0 -> applied++; r = A_OK	/* the write commits */
		:: r = A_FAIL				/* fails: rolled back */
		:: who != 0 -> r = A_OK
		fi;
		if
		:: ans[a * (NP + 1) + who] = r
		:: skip					/* the answer is lost */
		fi;
		served++
	}
}

/* the client and the coordinator's backend */
proctype Client()
{
	byte a = 0;
	byte i;
	byte r;
	byte wa;
	bool reader_failed;
	byte outcome = O_ERROR;

	do
	:: outcome == O_ERROR && a < ATTEMPTS ->
		/* commit_directly(writer + readers, one_phase): COMMIT to all at once */
		atomic { for (i : 0 .. NP) { run Server(a, i); started++ } }
		/* the answers, writer first; each wait may give up (timeout, connection lost) */
		reader_failed = false;
		for (i : 0 .. NP) {
			if
			:: ans[a * (NP + 1) + i] != A_NONE -> r = ans[a * (NP + 1) + i]
			:: true -> r = A_NONE
			fi;
			if
			:: i == 0 -> wa = r
			:: i != 0 && r != A_OK -> reader_failed = true
			:: else -> skip
			fi
		}
		/* what the client hears */
		if
		:: wa == A_FAIL -> outcome = O_ERROR
		:: wa == A_NONE -> outcome = O_UNKNOWN		/* 08007 */
#if MUTATION == 6
		:: wa == A_OK && reader_failed -> outcome = O_ERROR	/* the reader's failure raised */
		:: wa == A_OK && !reader_failed -> outcome = O_SUCCESS
#else
		:: wa == A_OK -> outcome = O_SUCCESS		/* a reader's failure: WARNING */
#endif
		fi;
		a++; r = 0; wa = 0; reader_failed = false
	:: outcome != O_ERROR || a == ATTEMPTS -> break
	od;
	/* every COMMIT sent has run (late ones too) */
	served == started;
	assert(applied <= 1);
	assert(outcome != O_SUCCESS || applied == 1)
}

init
{
	run Client()
}

#endif /* SCENARIO == 3 */
