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
 *   PREPARE, in parallel  remote_xact.c dtx_pre_commit (DtxSendQuery / collect_result)
 *   decision + commit     decision.c DtxDecisionInsert inside the local transaction;
 *                         the local commit record makes it durable (xact.c RecordTransactionCommit)
 *   COMMIT PREPARED       remote_xact.c dtx_post_commit (DtxSendQueryNoError / DtxGetResultNoError)
 *   abort                 remote_xact.c dtx_abort (runs after the local abort record)
 *   confirmed -> delete   launcher.c DtxConfirmedPush, decision.c DtxDecisionDeleteConfirmed
 *   resolver pass         resolver.c DtxResolvePass:
 *                           step_first_listing, xact_may_be_running, read_decisions,
 *                           step_second_listing, step_act, decision_finished
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

		/* dtx_pre_commit: PREPARE everywhere at once, then collect */
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
