/*-------------------------------------------------------------------------
 *
 * remote_xact.c
 *	  Remote transactions that follow the local one, and the commit
 *	  protocol that makes them atomic.
 *
 * A participant is a cached connection (one (server, user mapping) pair)
 * used in the current local transaction.  Its remote transaction starts
 * lazily, with the first statement sent to it and in the same round trip,
 * at the isolation level (and read-only mode) of the local transaction.
 * Local savepoints follow: a remote SAVEPOINT is sent with the first
 * statement at a deeper level, RELEASE is queued and sent with the next
 * command (it changes nothing that anybody can see), ROLLBACK TO is sent at
 * once when the local subtransaction aborts.
 *
 * At commit (pre-commit callback):
 *	- participants that ran only SELECTs and whether they assigned a
 *	  transaction id: known from the read-only probe that each dtx.query
 *	  on them carried in its pipeline (remote_exec.c), or asked now; those
 *	  that did not are read-only and simply committed;
 *	- no writer: everything is committed directly;
 *	- one writer and no local write: it commits in one phase, with no
 *	  decision record; a connection lost before its answer is reported as
 *	  transaction_resolution_unknown (08007);
 *	- otherwise two-phase commit, in named steps: classify_participants,
 *	  record_decision (the decision row is inserted into dtx.decisions and
 *	  the local commit is forced to be flushed, and to reach a synchronous
 *	  standby: the local commit record is the decision), assign_global_ids,
 *	  send_prepare (to every writer at once), collect_prepare.  Any failure
 *	  raises, and the abort callback rolls back what was prepared.
 * After the local commit (dtx_post_commit: commit callback, interrupts held,
 * nothing may be raised, memory and waits need nothing new) COMMIT PREPARED
 * goes to every writer at once, bounded by dtx.commit_timeout; a participant
 * that does not confirm gets a WARNING and is left in doubt for the
 * resolver.  With dtx.synchronous_commit_prepared off, the answers are read
 * later (DtxFinishCommitInFlight; connection.c's close hook).
 *
 * The state lives in the backend's connection entries and in the list of
 * participants below; nothing is shared, nothing is locked.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xloginsert.h"
#include "replication/syncrep.h"
#include "storage/ipc.h"
#include "lib/stringinfo.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "connection.h"
#include "decision.h"
#include "fdw_guard.h"
#include "gid.h"
#include "identity.h"
#include "shared_state.h"
#include "remote_xact.h"
#include "stats.h"

/* Pause between two tries of a COMMIT PREPARED that found it busy, us. */
#define DTX_BUSY_RETRY_US 10000L

int			dtx_commit_timeout = 30000; /* dtx.commit_timeout, ms */
int			dtx_prepare_timeout = 0;	/* dtx.prepare_timeout, ms */
int			dtx_max_participants = 64;	/* dtx.max_participants */
static bool dtx_synchronous_commit_prepared = true; /* dtx.synchronous_commit_prepared */

/*
 * Local transactions whose COMMIT PREPAREDs were left in flight (with
 * dtx.synchronous_commit_prepared off): how many answers are still to
 * come, and whether one was not a success.  The decision is confirmed
 * when the last one arrives and all succeeded.
 */
typedef struct InFlightXact
{
	uint64		fxid;			/* hash key */
	int			remaining;
	bool		failed;
} InFlightXact;

static HTAB *in_flight = NULL;

/*
 * Memory for the commit and abort callbacks, where an ERROR (out of memory)
 * would become a PANIC: its first block, kept across resets, is allocated
 * when the backend first has a participant.
 */
#define DTX_COMMIT_MEMORY (64 * 1024)

/*
 * How long a rollback waits for statements sent with dtx.send that are
 * still running, ms; past it they are cancelled (libpq 17+) or their
 * connection is closed, which rolls them back as well.
 */
#define DTX_PIPELINE_DRAIN_MS 100
static MemoryContext commit_cxt = NULL;

/* participants of the current transaction, in order of first use */
static List *participants = NIL;

/* how the current transaction's pre-commit step committed them */
static DtxCommitKind commit_kind = DTX_COMMIT_READ_ONLY;

static void dtx_xact_callback(XactEvent event, void *arg);
static void dtx_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								 SubTransactionId parentSubid, void *arg);
static void dtx_pre_commit(void);
static void dtx_post_commit(void);
static void dtx_abort(void);
static void dtx_forget_participants(void);
static void leave_commits_in_flight(void);
static void leave_to_resolver_unreplicated(void);
static void before_close(DtxConnection *c);
#if PG_VERSION_NUM >= 180000
pg_noreturn static void raise_already_failed(DtxConnection *c);
#else
static void raise_already_failed(DtxConnection *c) pg_attribute_noreturn();
#endif
static void answer_before_steps(DtxConnection *c, bool quiet, TimestampTz deadline);
static void finish_in_flight(DtxConnection *c, DtxInFlightMode mode, TimestampTz limit);
static bool drain_sent(DtxConnection *c, TimestampTz deadline, SubTransactionId subid);
static void poll_in_flight(DtxConnection *c, void *arg);
static void in_flight_at_exit(int code, Datum arg);
static void ensure_in_flight_table(void);

/*
 * DtxRemoteXactInit
 *		Registers the commit protocol's settings and callbacks.
 */
void
DtxRemoteXactInit(void)
{
	DefineCustomIntVariable("dtx.commit_timeout",
							"Time allowed for COMMIT PREPARED after the local commit.",
							"Participants that have not confirmed by then stay in doubt for the resolver; the client's COMMIT still succeeds, with a WARNING.",
							&dtx_commit_timeout,
							30000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dtx.prepare_timeout",
							"Time allowed for the participants to answer the read-only probe and PREPARE TRANSACTION at commit; 0 waits without limit.",
							"A participant that does not answer in time aborts the transaction.",
							&dtx_prepare_timeout,
							0, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("dtx.synchronous_commit_prepared",
							 "Whether COMMIT waits for every participant's COMMIT PREPARED.",
							 "Off: COMMIT returns once the decision is durable and COMMIT PREPARED has been sent; "
							 "the other sessions of a participant may not see the transaction for a moment. "
							 "The answer is read before the next statement on that connection.",
							 &dtx_synchronous_commit_prepared,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("dtx.max_participants",
							"Most participants (server, user mapping pairs) in one transaction.",
							NULL,
							&dtx_max_participants,
							64, 1, 10000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	RegisterXactCallback(dtx_xact_callback, NULL);
	DtxSetCloseHook(before_close);
	DtxSetLeadHook(answer_before_steps);
	RegisterSubXactCallback(dtx_subxact_callback, NULL);
}

/*
 * DtxCurrentParticipants
 *		The participants of the current transaction (do not modify).
 */
List *
DtxCurrentParticipants(void)
{
	return participants;
}

/*
 * begin_command
 *		The BEGIN that opens a remote transaction like the local one.
 */
static char *
begin_command(void)
{
	const char *level;

	switch (XactIsoLevel)
	{
		case XACT_SERIALIZABLE:
			level = "SERIALIZABLE";
			break;
		case XACT_REPEATABLE_READ:
			level = "REPEATABLE READ";
			break;
		default:
			level = "READ COMMITTED";
			break;
	}
	return psprintf("BEGIN ISOLATION LEVEL %s%s", level, XactReadOnly ? " READ ONLY" : "");
}

/*
 * take_pending_list
 *		The queued commands of c as a list (one command each, for a
 *		pipeline), emptying the queue.
 */
static List *
take_pending_list(DtxConnection *c)
{
	List	   *cmds = NIL;
	ListCell   *lc;

	foreach(lc, c->xact.pending_cmds)
		cmds = lappend(cmds, pstrdup((char *) lfirst(lc)));
	list_free_deep(c->xact.pending_cmds);
	c->xact.pending_cmds = NIL;
	return cmds;
}

/*
 * DtxRemoteXactPrelude
 *		Makes c a participant of the current transaction, if it is not yet,
 *		and returns the commands to send before the next statement on it:
 *		queued savepoint releases, BEGIN, and SAVEPOINTs up to the current
 *		nesting level.  The connection's depth is advanced as if they were
 *		sent; a failure to send them breaks the connection.
 */
List *
DtxRemoteXactPrelude(DtxConnection *c)
{
	List	   *cmds = NIL;
	int			level = GetCurrentTransactionNestLevel();

	if (c->xact.abort_required)
		ereport(ERROR,
				(errcode(ERRCODE_IN_FAILED_SQL_TRANSACTION),
				 errmsg("the remote transaction on server \"%s\" was lost in a rolled-back subtransaction",
						c->servername),
				 errhint("Roll back the whole transaction.")));

	if (c->xact.depth == 0)
	{
		MemoryContext old;

		if (commit_cxt == NULL)
			commit_cxt = AllocSetContextCreate(TopMemoryContext, "pg_dtx commit",
											   DTX_COMMIT_MEMORY, DTX_COMMIT_MEMORY,
											   ALLOCSET_DEFAULT_MAXSIZE);

		if (list_length(participants) >= dtx_max_participants)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many participants in one distributed transaction"),
					 errdetail("Server \"%s\" would be participant %d; dtx.max_participants is %d.",
							   c->servername, list_length(participants) + 1,
							   dtx_max_participants),
					 errhint("Raise dtx.max_participants.")));

		cmds = lappend(cmds, begin_command());
		c->xact.depth = 1;
		c->xact.state = DTX_REMOTE_IN_XACT;
		c->xact.wrote = false;
		c->xact.selects_only = true;
		c->xact.needs_prepare = false;
		c->xact.probed = false;
		c->xact.participant_no = list_length(participants) + 1;
		c->xact.gid[0] = '\0';

		old = MemoryContextSwitchTo(TopMemoryContext);
		participants = lappend(participants, c);
		MemoryContextSwitchTo(old);
	}
	cmds = list_concat(cmds, take_pending_list(c));

	while (c->xact.depth < level)
	{
		c->xact.depth++;
		cmds = lappend(cmds, psprintf("SAVEPOINT dtx_s%d", c->xact.depth));
	}
	return cmds;
}

/*
 * take_pending
 *		The queued commands of c as one string ending with "; " (or ""),
 *		emptying the queue.
 */
static char *
take_pending(DtxConnection *c)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, take_pending_list(c))
		appendStringInfo(&buf, "%s; ", (char *) lfirst(lc));
	return buf.data;
}

/*
 * check_pinned_after_pipeline
 *		After c's pipeline was read at commit: a sent statement changed a
 *		setting pinned on the session.  Before the commit it fails the
 *		commit; once c's COMMIT committed (committed), the transaction stands
 *		and a WARNING says so.  Either way the connection is closed at
 *		transaction end (a prepared or committed transaction leaves the
 *		session with the new value).
 */
static void
check_pinned_after_pipeline(DtxConnection *c, bool committed)
{
	const char *changed;

	if (c->conn == NULL || (changed = DtxPinnedSettingChanged(c)) == NULL)
		return;
	c->invalidated = true;		/* closed once the transaction is over */
	ereport(committed ? WARNING : ERROR,
			(errcode(committed ? ERRCODE_WARNING : ERRCODE_FEATURE_NOT_SUPPORTED),
			 committed ?
			 errmsg("committed, but a statement sent to server \"%s\" changed the setting \"%s\" that pg_dtx pins",
					c->servername, changed) :
			 errmsg("a statement sent to server \"%s\" changed the setting \"%s\" that pg_dtx pins",
					c->servername, changed),
			 committed ? errdetail("The connection is closed at the end of the transaction.") :
			 errdetail("The transaction is rolled back."),
			 committed ? 0 :
			 errhint("Values travel between the servers in text forms that DateStyle, IntervalStyle, extra_float_digits and client_encoding fix, and pg_dtx finds its sessions by application_name; change such a setting in the local session only.")));
}

/*
 * take_arrived
 *		For the commit: reads the results of the statements sent to the
 *		participants of list (dtx.send) that have already arrived, without
 *		waiting.  A participant whose pipeline is then read through gets its
 *		commit command alone, in the simple protocol, which costs it less
 *		than a command in the pipeline; the others get it behind their
 *		sends, still one round trip.  A failure read here (a sent statement's
 *		error or row count, a remote transaction already failed) raises
 *		before any commit command is sent; a failure read waits for the rest
 *		within dtx.prepare_timeout.
 */
static void
take_arrived(List *list)
{
	ListCell   *lc;
	TimestampTz deadline = 0;
	bool		have_deadline = false;

	foreach(lc, list)
	{
		DtxConnection *c = lfirst(lc);

		if (c->pipeline == NIL)
			continue;
		/* the clock is read only by a commit with sends */
		if (!have_deadline)
		{
			deadline = DtxDeadlineAfterMs(dtx_prepare_timeout);
			have_deadline = true;
		}
		if (!DtxPipelineCollectArrived(c, deadline))
			continue;
		check_pinned_after_pipeline(c, false);
		/* its commit command goes alone, and no tag would say it failed */
		if (PQtransactionStatus(c->conn) == PQTRANS_INERROR)
			raise_already_failed(c);
	}
}

/*
 * pipeline_command_no_error
 *		Appends pg_dtx's command sql (COMMIT) to c's pipeline behind the
 *		statements sent with dtx.send, with the queued commands first;
 *		false, without raising, when it could not be sent.
 */
static bool
pipeline_command_no_error(DtxConnection *c, const char *sql)
{
	MemoryContext cxt = CurrentMemoryContext;
	List	   *pending = take_pending_list(c);
	volatile bool ok = true;

	PG_TRY();
	{
		DtxPipelineSendCommand(c, pending, sql);
	}
	PG_CATCH();
	{
		/* a lost connection (the flush serves no interrupt) */
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * raise_already_failed
 *		PREPARE TRANSACTION or a one-phase COMMIT on c answered ROLLBACK:
 *		its remote transaction had failed before (an error of a statement
 *		sent with dtx.send, caught where rolling back could not undo it).
 */
static void
raise_already_failed(DtxConnection *c)
{
	c->xact.state = DTX_REMOTE_IDLE;
	c->xact.depth = 0;
	ereport(ERROR,
			(errcode(ERRCODE_TRANSACTION_ROLLBACK),
			 errmsg("the remote transaction on server \"%s\" had already failed", c->servername),
			 errdetail("An error there was caught where a rollback could not undo it; the commit rolled it back."),
			 errhint("The whole transaction is rolled back; run it again.")));
}

/*
 * collect_result
 *		Reads all results of the command in flight on c; returns the first
 *		error result (the caller owns it) or NULL on success.  Raises on
 *		interrupts, a lost connection and a passed deadline.
 */
static PGresult *
collect_result(DtxConnection *c, TimestampTz deadline, const char *sql)
{
	PGresult   *res;
	PGresult   *err = NULL;

	while ((res = DtxGetResult(c, deadline, sql)) != NULL)
	{
		if (PQresultStatus(res) == PGRES_FATAL_ERROR && err == NULL)
			err = res;
		else
			PQclear(res);
	}
	c->busy = false;
	return err;
}

/*
 * report_phase_error
 *		Raises the error of a participant that failed at commit time,
 *		naming it and carrying its SQLSTATE.
 */
static void
report_phase_error(DtxConnection *c, PGresult *err, const char *sql, const char *what)
{
	DtxReportResultError(ERROR, err, c, sql, what);
}

/*
 * warn_reader_not_committed
 *		One-phase commit: the writer committed, but reader c's COMMIT failed
 *		(why: the reason).  c wrote nothing (its remote transaction is rolled
 *		back, or commits with nothing in it), so the transaction is committed
 *		all the same: said to the client as a WARNING, never an ERROR (a
 *		client would run the transaction again).  c's connection is closed at
 *		transaction end, so that nothing of its failed transaction (or of an
 *		answer still to come) stays in the session.
 */
static void
warn_reader_not_committed(DtxConnection *c, DtxConnection *writer, const char *why)
{
	c->broken = true;
	c->xact.state = DTX_REMOTE_IDLE;
	c->xact.depth = 0;
	ereport(WARNING,
			(errcode(ERRCODE_WARNING),
			 errmsg("committed, but server \"%s\", which only read, could not commit", c->servername),
			 errdetail("Server \"%s\": %s.", c->servername, why),
			 errhint("The transaction is committed: server \"%s\", its only writer, committed it; server \"%s\" wrote nothing, so the outcome of its own COMMIT changes nothing.",
					 writer->servername, c->servername)));
}

/*
 * commit_directly
 *		Sends COMMIT to every participant of list at once and waits for all;
 *		raises the first failure.  With one_phase, the list holds the
 *		transaction's only writer first, whose lost answer is reported as
 *		transaction_resolution_unknown; once it committed, a failure of a
 *		reader (the others) is a WARNING, since the transaction is committed
 *		(see README, "How a commit works").
 */
static void
commit_directly(List *list, bool one_phase)
{
	ListCell   *lc;
	TimestampTz deadline;
	DtxConnection *writer = one_phase ? linitial(list) : NULL;

	/*
	 * A row count that dtx.send_expect requires must be checked before
	 * COMMIT is sent: COMMIT would commit whatever count it was.
	 */
	foreach(lc, list)
	{
		DtxConnection *c = lfirst(lc);

		if (DtxPipelineExpectsRows(c))
		{
			DtxPipelineCollect(c);
			check_pinned_after_pipeline(c, false);
		}
	}
	take_arrived(list);

	foreach(lc, list)
	{
		DtxConnection *c = lfirst(lc);
		char	   *sql;
		bool		sent;

		c->xact.state = DTX_REMOTE_COMMITTING;
		if (c->pipeline != NIL)
			sent = pipeline_command_no_error(c, "COMMIT");	/* behind the
															 * sends: one
															 * round trip */
		else
		{
			sql = psprintf("%sCOMMIT", take_pending(c));
			sent = DtxSendQueryNoError(c, sql);
		}
		if (!sent)
		{
			c->broken = true;
			if (c != writer && writer != NULL)
				continue;		/* the writer's COMMIT is in flight: reported below */
			if (one_phase && foreach_current_index(lc) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN),
						 errmsg("lost the connection to server \"%s\" while committing", c->servername),
						 errdetail("The transaction may or may not have committed there.")));
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("lost the connection to server \"%s\" before commit", c->servername)));
		}
	}

	/*
	 * Wait without serving interrupts: once COMMIT is sent, a cancel would
	 * leave the outcome unknown to the client.  dtx.commit_timeout bounds it.
	 */
	deadline = DtxDeadlineAfterMs(dtx_commit_timeout);
	foreach(lc, list)
	{
		DtxConnection *c = lfirst(lc);
		char	   *msg;
		char		sqlstate[6];
		PGresult   *err;
		DtxResultStatus st;

		if (c->broken)
		{
			/* a reader whose COMMIT could not be sent */
			st = DTX_RESULT_LOST;
			msg = NULL;
			err = NULL;
		}
		else if (c->pipeline != NIL)
		{
			DtxPipelineFailure fail;

			DtxSetPhase(DTX_PHASE_COMMIT, c->servername);
			st = DtxPipelineFinishNoError(c, deadline, &fail);
			DtxSetPhase(DTX_PHASE_NONE, NULL);
			msg = NULL;
			err = NULL;
			if (st == DTX_RESULT_OK && fail.sql != NULL)
			{
				/*
				 * A sent statement failed: COMMIT then rolled the remote
				 * transaction back.  (A wrong row count cannot come this
				 * late: such steps were read before COMMIT was sent, and
				 * empty statements are refused when sent.)
				 */
				c->xact.state = DTX_REMOTE_IDLE;
				c->xact.depth = 0;
				DtxPipelineRaise(c, &fail);
			}
			if (st == DTX_RESULT_OK && strcmp(fail.tag, "COMMIT") != 0)
				raise_already_failed(c);
			if (st == DTX_RESULT_OK)
				check_pinned_after_pipeline(c, true);
		}
		else
		{
			DtxSetPhase(DTX_PHASE_COMMIT, c->servername);
			st = DtxGetResultNoError(c, deadline, &msg, sqlstate, &err);
			DtxSetPhase(DTX_PHASE_NONE, NULL);
		}

		if (st == DTX_RESULT_OK)
		{
			c->xact.state = DTX_REMOTE_IDLE;
			c->xact.depth = 0;
			continue;
		}
		if (writer != NULL && c != writer)
		{
			/* the writer, first in the list, has committed */
			const char *why = st == DTX_RESULT_TIMEOUT ? "no answer within dtx.commit_timeout" :
				msg ? msg : "connection lost";

			if (err != NULL)
			{
				const char *primary = PQresultErrorField(err, PG_DIAG_MESSAGE_PRIMARY);

				if (primary != NULL)
					why = pstrdup(primary);
				PQclear(err);
			}
			warn_reader_not_committed(c, writer, why);
			continue;
		}
		if (st == DTX_RESULT_ERROR)
			report_phase_error(c, err, "COMMIT", "could not commit");
		c->broken = true;
		if (one_phase && foreach_current_index(lc) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN),
					 st == DTX_RESULT_TIMEOUT ?
					 errmsg("no answer from server \"%s\" while committing", c->servername) :
					 errmsg("lost the connection to server \"%s\" while committing", c->servername),
					 errdetail("The transaction may or may not have committed there."),
					 msg ? errcontext("%s", msg) : 0));
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 st == DTX_RESULT_TIMEOUT ?
				 errmsg("no answer from server \"%s\" while committing", c->servername) :
				 errmsg("lost the connection to server \"%s\" while committing", c->servername)));
	}
}

/*
 * check_read_only
 *		Asks the participants that ran only SELECTs whether they assigned a
 *		transaction id (a function may have written); those that did become
 *		writers.  One round trip, to all at once, within
 *		dtx.prepare_timeout (the first step of the prepare phase).
 */
static void
check_read_only(List *list)
{
	static const char *q = "SELECT pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL";
	ListCell   *lc;
	TimestampTz deadline;

	foreach(lc, list)
	{
		DtxConnection *c = lfirst(lc);
		char	   *sql = psprintf("%s%s", take_pending(c), q);

		DtxSendQuery(c, sql);
	}
	deadline = DtxDeadlineAfterMs(dtx_prepare_timeout);
	foreach(lc, list)
	{
		DtxConnection *c = lfirst(lc);
		PGresult   *res;
		PGresult   *err = NULL;

		while ((res = DtxGetResult(c, deadline, q)) != NULL)
		{
			if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
				c->xact.wrote = (strcmp(PQgetvalue(res, 0, 0), "t") == 0);
			else if (PQresultStatus(res) == PGRES_FATAL_ERROR && err == NULL)
			{
				err = res;
				continue;
			}
			PQclear(res);
		}
		c->busy = false;
		if (err)
			report_phase_error(c, err, q, NULL);
	}
}

/*
 * classify_participants
 *		Step 1 of the pre-commit: checks that every participant can commit,
 *		asks those that ran only SELECTs whether they wrote after all, and
 *		splits the participants into writers (to prepare) and readers (to
 *		commit directly).
 */
static void
classify_participants(List **writers, List **readers)
{
	List	   *to_check = NIL;
	ListCell   *lc;

	foreach(lc, participants)
	{
		DtxConnection *c = lfirst(lc);

		if (c->xact.abort_required || c->broken || c->conn == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("cannot commit: the remote transaction on server \"%s\" was lost",
							c->servername),
					 errhint("The whole transaction is rolled back; run it again.")));
		if (c->busy && c->pipeline == NIL)
			elog(ERROR, "a command is still in flight on server \"%s\"", c->servername);
		if (!c->busy && PQtransactionStatus(c->conn) == PQTRANS_INERROR)
			raise_already_failed(c);
		if (c->xact.selects_only && !c->xact.wrote && !c->xact.needs_prepare &&
			!c->xact.probed)
			to_check = lappend(to_check, c);
	}

	DtxFdwGuardWarn();

	if (to_check != NIL)
		check_read_only(to_check);

	foreach(lc, participants)
	{
		DtxConnection *c = lfirst(lc);

		if (c->xact.wrote || c->xact.needs_prepare)
			*writers = lappend(*writers, c);
		else
			*readers = lappend(*readers, c);
	}
}

/*
 * check_can_prepare
 *		Before two-phase commit: the coordinator can record a decision, and
 *		every writer allows prepared transactions.
 */
static void
check_can_prepare(List *writers)
{
	ListCell   *lc;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot commit a distributed transaction on a hot standby"),
				 errdetail("pg_dtx records the commit decision in a local table, and a standby cannot write."),
				 errhint("Run distributed transactions that write on the primary.")));
	foreach(lc, writers)
	{
		DtxConnection *c = lfirst(lc);

		if (c->remote_max_prepared <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("server \"%s\" does not allow prepared transactions", c->servername),
					 errdetail("Its max_prepared_transactions is 0, and this transaction writes on several servers."),
					 errhint("Set max_prepared_transactions on server \"%s\" to at least its max_connections, and restart it.",
							 c->servername)));
	}
}

/*
 * record_decision
 *		Step 2 of two-phase commit: inserts the decision row of fxid (it
 *		becomes the decision with the local commit record), deletes old
 *		confirmed ones, and makes the local commit durable (flushed, and on
 *		a synchronous standby) whatever the session's settings.  Returns the
 *		nonce that the global ids carry: should a crash hand this xid to
 *		another transaction, the resolver still tells this one's prepared
 *		transactions from that one's.  A 1.0 table has no nonce column (0 is
 *		returned); then the xid itself is made durable (and replicated)
 *		before any participant prepares.
 */
static uint64
record_decision(FullTransactionId fxid, uint64 coordid, List *writers)
{
	Oid		   *servers = palloc(sizeof(Oid) * list_length(writers));
	Oid		   *userids = palloc(sizeof(Oid) * list_length(writers));
	int			n = 0;
	ListCell   *lc;
	uint64		nonce;

	foreach(lc, writers)
	{
		DtxConnection *c = lfirst(lc);

		servers[n] = c->serverid;
		userids[n] = c->userid;
		n++;
	}
	/* the servers this transaction used first: recorded with the decision */
	DtxRecordFirstUses();
	nonce = DtxNewNonce();
	if (!DtxDecisionInsert(fxid, coordid, servers, userids, n, nonce))
		nonce = 0;
	DtxDecisionDeleteConfirmed(false);
	ForceSyncCommit();
	DtxDecisionRequireSyncRep();
	if (nonce == 0)
	{
		XLogFlush(XactLastRecEnd);
		SyncRepWaitForLSN(XactLastRecEnd, false);
	}
	return nonce;
}

/*
 * assign_global_ids
 *		Step 3 of two-phase commit: the name under which each writer
 *		prepares (numbered from 1, as in the decision's arrays).
 */
static void
assign_global_ids(List *writers, FullTransactionId fxid, uint64 coordid, uint64 nonce)
{
	ListCell   *lc;
	int			n = 0;

	foreach(lc, writers)
	{
		DtxConnection *c = lfirst(lc);
		DtxGid		gid;

		gid.coordinator_id = coordid;
		gid.dboid = MyDatabaseId;
		gid.fxid = fxid;
		gid.serverid = c->serverid;
		gid.userid = c->userid;
		gid.participant_no = ++n;
		gid.nonce = nonce;
		DtxFormatGid(c->xact.gid, &gid);
		c->xact.gid_fxid = fxid;
	}
}

/*
 * send_prepare
 *		Step 4 of two-phase commit: PREPARE TRANSACTION to every writer and
 *		COMMIT to every reader, all at once (nothing is waited for).
 */
static void
send_prepare(List *writers, List *readers)
{
	ListCell   *lc;

	take_arrived(writers);
	foreach(lc, writers)
	{
		DtxConnection *c = lfirst(lc);

		c->xact.state = DTX_REMOTE_PREPARING;
		if (c->pipeline != NIL)
		{
			/* behind the statements sent with dtx.send: one round trip */
			DtxPipelineSendCommand(c, take_pending_list(c),
								   psprintf("PREPARE TRANSACTION '%s'", c->xact.gid));
			continue;
		}
		DtxSendQuery(c, psprintf("%sPREPARE TRANSACTION '%s'", take_pending(c), c->xact.gid));
	}
	foreach(lc, readers)
	{
		DtxConnection *c = lfirst(lc);

		c->xact.state = DTX_REMOTE_COMMITTING;
		DtxSendQuery(c, psprintf("%sCOMMIT", take_pending(c)));
	}
}

/*
 * collect_prepare
 *		Step 5 of two-phase commit: reads every answer of send_prepare
 *		within dtx.prepare_timeout, then raises the first failure (the abort
 *		callback rolls back what was prepared).
 */
static void
collect_prepare(List *writers, List *readers)
{
	ListCell   *lc;
	TimestampTz deadline = DtxDeadlineAfterMs(dtx_prepare_timeout);
	DtxConnection *failed = NULL;
	PGresult   *volatile failed_res = NULL;
	const char *failed_sql = NULL;
	DtxConnection *failed_send = NULL;
	DtxPipelineFailure send_failure = {0};
	PGresult   *volatile send_err = NULL;	/* send_failure.err, held */
	List	   *pipelined = NIL;
	DtxConnection *already_failed = NULL;

	/*
	 * The failures held while the others are read are freed if a read
	 * raises (an interrupt, a lost connection, the deadline).
	 */
	PG_TRY();
	{
		foreach(lc, writers)
		{
			DtxConnection *c = lfirst(lc);
			PGresult   *err;

			DtxSetPhase(DTX_PHASE_PREPARE, c->servername);
			if (c->pipeline != NIL)
			{
				DtxPipelineFailure fail;

				DtxPipelineFinish(c, deadline, &fail);
				if (fail.sql != NULL && fail.user)
				{
					/*
					 * A sent statement failed (PREPARE then rolled the remote
					 * transaction back: ROLLBACK) or reported another row count
					 * (PREPARE then prepared it, for the abort to roll back);
					 * without an answer, the abort finds out.
					 */
					c->xact.state = strcmp(fail.tag, "PREPARE TRANSACTION") == 0 ? DTX_REMOTE_PREPARED :
						strcmp(fail.tag, "ROLLBACK") == 0 ? DTX_REMOTE_IDLE : DTX_REMOTE_PREPARING;
					if (PQtransactionStatus(c->conn) == PQTRANS_IDLE)
						c->xact.depth = 0;
					if (failed_send == NULL)
					{
						failed_send = c;
						send_failure = fail;
						send_err = fail.err;
					}
					else if (fail.err)
						PQclear(fail.err);
					continue;
				}
				err = fail.err;		/* PREPARE's own error, or NULL */
				if (err == NULL && strcmp(fail.tag, "ROLLBACK") == 0)
					already_failed = c;
				pipelined = lappend(pipelined, c);
			}
			else
				err = collect_result(c, deadline, "PREPARE TRANSACTION");
			if (err == NULL && c == already_failed)
			{
				c->xact.state = DTX_REMOTE_IDLE;
				c->xact.depth = 0;
				continue;
			}
			if (err == NULL)
			{
				c->xact.state = DTX_REMOTE_PREPARED;
				c->xact.depth = 0;
				continue;
			}
			DtxStatsPrepareFailure(c->serverid);
			if (failed == NULL)
			{
				failed = c;
				failed_res = err;
				failed_sql = "PREPARE TRANSACTION";
			}
			else
				PQclear(err);
			if (PQtransactionStatus(c->conn) == PQTRANS_IDLE)
			{
				/* a failed PREPARE rolls the remote transaction back */
				c->xact.state = DTX_REMOTE_IDLE;
				c->xact.depth = 0;
			}
		}
		foreach(lc, readers)
		{
			DtxConnection *c = lfirst(lc);
			PGresult   *err = collect_result(c, deadline, "COMMIT");

			if (err == NULL)
			{
				c->xact.state = DTX_REMOTE_IDLE;
				c->xact.depth = 0;
			}
			else if (failed == NULL)
			{
				failed = c;
				failed_res = err;
				failed_sql = "COMMIT";
			}
			else
				PQclear(err);
		}
	}
	PG_CATCH();
	{
		if (failed_res)
			PQclear(failed_res);
		if (send_err)
			PQclear(send_err);
		PG_RE_THROW();
	}
	PG_END_TRY();
	DtxSetPhase(DTX_PHASE_NONE, NULL);
	if (already_failed != NULL && failed_send == NULL && failed == NULL)
		raise_already_failed(already_failed);
	if (failed_send == NULL && failed == NULL)
	{
		foreach(lc, pipelined)
			check_pinned_after_pipeline(lfirst(lc), false);
	}
	if (failed_send != NULL)
	{
		/* the statement's own error first: it is what the user must see */
		if (failed_res)
			PQclear(failed_res);
		DtxPipelineRaise(failed_send, &send_failure);
	}
	if (failed != NULL)
		report_phase_error(failed, failed_res, failed_sql,
						   "could not prepare the transaction");
}

/*
 * dtx_pre_commit
 *		The pre-commit step: commits read-only participants, commits a sole
 *		writer in one phase, or runs the first phase of two-phase commit:
 *		classify, record the decision, assign global ids, send PREPARE,
 *		collect.  Any error aborts the local transaction.
 */
static void
dtx_pre_commit(void)
{
	List	   *writers = NIL;
	List	   *readers = NIL;
	FullTransactionId fxid;
	uint64		coordid;
	uint64		nonce;
	TimestampTz start;

	if (participants == NIL)
		return;

	classify_participants(&writers, &readers);

	if (writers == NIL)
	{
		commit_kind = DTX_COMMIT_READ_ONLY;
		commit_directly(readers, false);
		return;
	}
	if (list_length(writers) == 1 && !TransactionIdIsValid(GetTopTransactionIdIfAny()) &&
		XactIsoLevel != XACT_SERIALIZABLE)
	{
		commit_kind = DTX_COMMIT_ONE_PHASE;
		commit_directly(list_concat(writers, readers), true);
		return;
	}

	commit_kind = DTX_COMMIT_TWO_PHASE;
	if (!dtx_synchronous_commit_prepared)
		ensure_in_flight_table();
	check_can_prepare(writers);

	start = GetCurrentTimestamp();
	fxid = GetTopFullTransactionId();
	coordid = DtxCoordinatorIdToAct("commit");
	nonce = record_decision(fxid, coordid, writers);
	assign_global_ids(writers, fxid, coordid, nonce);
	send_prepare(writers, readers);
	collect_prepare(writers, readers);
	DtxStatsPhaseTime(DTX_PHASE_PREPARE, start);
}

/*
 * warn_not_confirmed
 *		After the local commit: c's participant has not confirmed COMMIT
 *		PREPARED (why: the reason), so the transaction stays in doubt there
 *		for the resolver.  Counted, and said to the client.
 */
static void
warn_not_confirmed(DtxConnection *c, const char *why)
{
	DtxStatsInDoubt(c->serverid);
	ereport(WARNING,
			(errcode(ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN),
			 errmsg("committed, but server \"%s\" has not confirmed COMMIT PREPARED",
					c->servername),
			 errdetail("Global id %s: %s.", c->xact.gid, why),
			 errhint("The transaction is committed; the resolver finishes it on that server (see dtx.in_doubt).")));
}

/*
 * leave_to_resolver_unreplicated
 *		After the local commit, the wait for the synchronous standby ended
 *		(cancelled) before it had the decision: COMMIT PREPARED is not sent,
 *		since a failover now would lose the decision and roll the
 *		participants back.  The resolver commits once the standby has it.
 */
static void
leave_to_resolver_unreplicated(void)
{
	ListCell   *lc;

	foreach(lc, participants)
	{
		DtxConnection *c = lfirst(lc);

		if (c->xact.state == DTX_REMOTE_PREPARED)
			DtxStatsInDoubt(c->serverid);
	}
	ereport(WARNING,
			(errcode(ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN),
			 errmsg("committed locally, but the decision has not reached the synchronous standby"),
			 errdetail("COMMIT PREPARED was not sent to the participants: should the coordinator fail over now, the promoted standby rolls the transaction back."),
			 errhint("The resolver commits the transaction on the participants once the standby has the decision (see dtx.in_doubt).")));
	DtxResolverWake();
}

/*
 * leave_commits_in_flight
 *		dtx.synchronous_commit_prepared is off: the COMMIT PREPAREDs just
 *		sent are not waited for.  Each connection remembers its global id;
 *		the answers are read by DtxFinishCommitInFlight.  A participant whose
 *		COMMIT PREPARED could not even be sent is left to the resolver, with
 *		the WARNING of the synchronous path.
 */
static void
leave_commits_in_flight(void)
{
	ListCell   *lc;
	bool		any = false;
	bool		failed = false;
	int			remaining = 0;
	uint64		key = 0;

	foreach(lc, participants)
	{
		DtxConnection *c = lfirst(lc);

		if (c->xact.gid[0] == '\0')
			continue;
		any = true;
		key = U64FromFullTransactionId(c->xact.gid_fxid);
		if (c->xact.state == DTX_REMOTE_COMMITTING)
		{
			c->xact.commit_in_flight = true;
			strlcpy(c->xact.commit_gid, c->xact.gid, DTX_GID_MAXLEN);
			c->xact.commit_fxid = c->xact.gid_fxid;
			remaining++;
			continue;
		}
		failed = true;
		warn_not_confirmed(c, "connection lost");
	}
	if (!any)
		return;
	if (failed)
		DtxResolverWake();

	/*
	 * Only a transaction whose every COMMIT PREPARED is in flight can be
	 * confirmed by its answers; without an entry (a failure, or no memory:
	 * HASH_ENTER_NULL never raises) the resolver deletes the decision.
	 */
	if (!failed && remaining > 0 && in_flight != NULL)
	{
		InFlightXact *e = hash_search(in_flight, &key, HASH_ENTER_NULL, NULL);

		if (e != NULL)
		{
			e->remaining = remaining;
			e->failed = false;
		}
	}
}

/*
 * ensure_in_flight_table
 *		Creates the table of commits in flight, before the local commit (its
 *		entries are then made without raising).
 */
static void
ensure_in_flight_table(void)
{
	HASHCTL		ctl;

	if (in_flight != NULL)
		return;
	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(InFlightXact);
	ctl.hcxt = TopMemoryContext;
	in_flight = hash_create("pg_dtx commits in flight", 16, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	before_shmem_exit(in_flight_at_exit, (Datum) 0);
}

/*
 * in_flight_at_exit
 *		The backend exits with COMMIT PREPAREDs whose answers it never read:
 *		their decisions are not confirmed; the resolver is asked to look.
 */
static void
in_flight_at_exit(int code, Datum arg)
{
	(void) code;
	(void) arg;
	if (in_flight != NULL && hash_get_num_entries(in_flight) > 0)
		DtxResolverWake();
}

/*
 * DtxFinishCommitInFlight
 *		Reads the answer to the COMMIT PREPARED left in flight on c by an
 *		earlier transaction.  DTX_IN_FLIGHT_WAIT waits for it (within
 *		dtx.commit_timeout, interruptibly: a cancel gives it up and is
 *		raised); DTX_IN_FLIGHT_POLL takes it only if it has
 *		arrived; DTX_IN_FLIGHT_DROP takes it if it has arrived and otherwise
 *		gives up on it (the connection is about to close).  The decision is
 *		confirmed once every participant of its transaction answered with
 *		success; anything else is left to the resolver (woken, and logged
 *		with the global id and the server).  Raises only on an interrupt in
 *		DTX_IN_FLIGHT_WAIT.
 */
void
DtxFinishCommitInFlight(DtxConnection *c, DtxInFlightMode mode)
{
	finish_in_flight(c, mode, 0);
}

/*
 * finish_in_flight
 *		DtxFinishCommitInFlight, where DTX_IN_FLIGHT_READ waits until limit
 *		at the latest (0: dtx.commit_timeout only): the reader behind it is
 *		a rollback, which does not wait long for what it drops.
 */
static void
finish_in_flight(DtxConnection *c, DtxInFlightMode mode, TimestampTz limit)
{
	TimestampTz deadline = DtxDeadlineAfterMs(dtx_commit_timeout);
	bool		cut = false;
	DtxResultStatus st;
	char	   *msg = NULL;
	char		sqlstate[6];
	InFlightXact *e;
	uint64		key;
	bool		arrived;
	bool		ok;

	if (!c->xact.commit_in_flight)
		return;
	if (mode == DTX_IN_FLIGHT_WAIT)
	{
		/*
		 * Before a statement of a new transaction: the wait can be cancelled
		 * (the earlier transaction is committed whatever happens here); a
		 * cancel gives the answer up, and the resolver makes sure.
		 */
		PG_TRY();
		{
			arrived = DtxWaitForAnswer(c, DtxDeadlineAfterMs(dtx_commit_timeout));
		}
		PG_CATCH();
		{
			DtxFinishCommitInFlight(c, DTX_IN_FLIGHT_DROP);
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	else if (mode == DTX_IN_FLIGHT_READ)
	{
		arrived = true;			/* read below, by the deadline */
		if (limit != 0 && (deadline == 0 || limit < deadline))
		{
			deadline = limit;
			cut = true;
		}
	}
	else
		arrived = c->conn == NULL || !PQconsumeInput(c->conn) || !PQisBusy(c->conn);
	if (mode == DTX_IN_FLIGHT_POLL && !arrived)
		return;
	if (mode != DTX_IN_FLIGHT_READ)
		deadline = DtxDeadlineAfterMs(dtx_commit_timeout);
	if (arrived && c->lead_pending)
		st = DtxLeadResultNoError(c, deadline, &msg, sqlstate);
	else if (arrived)
		st = DtxGetResultNoError(c, deadline, &msg, sqlstate, NULL);
	else if (c->conn != NULL && PQstatus(c->conn) != CONNECTION_OK)
	{
		st = DTX_RESULT_LOST;
		msg = pchomp(PQerrorMessage(c->conn));
	}
	else
		st = mode == DTX_IN_FLIGHT_WAIT ? DTX_RESULT_TIMEOUT : DTX_RESULT_LOST;
	c->xact.commit_in_flight = false;
	ok = st == DTX_RESULT_OK ||
		DtxPreparedGone(st, sqlstate);
	if (st == DTX_RESULT_LOST || st == DTX_RESULT_TIMEOUT)
		c->broken = true;
	if (!ok)
	{
		DtxStatsInDoubt(c->serverid);
		ereport(LOG,
				(errcode(ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN),
				 errmsg("pg_dtx: server \"%s\" has not confirmed COMMIT PREPARED of %s; left to the resolver",
						c->servername, c->xact.commit_gid),
				 errdetail("%s", st == DTX_RESULT_TIMEOUT ?
						   (cut ? "No answer before the rollback of the next transaction on that connection gave it up." :
							"No answer within dtx.commit_timeout.") :
						   msg ? msg : "The connection was closed before the answer.")));
		DtxResolverWake();
	}
	if (in_flight == NULL)
		return;
	key = U64FromFullTransactionId(c->xact.commit_fxid);
	e = hash_search(in_flight, &key, HASH_FIND, NULL);
	if (e == NULL)
		return;
	if (!ok)
		e->failed = true;
	if (--e->remaining > 0)
		return;
	if (!e->failed)
		DtxDecisionConfirmed(c->xact.commit_fxid);
	hash_search(in_flight, &key, HASH_REMOVE, NULL);
}

/*
 * commit_prepared_when_free
 *		After the local commit: c's COMMIT PREPARED found the prepared
 *		transaction busy, that is being finished by another session (the
 *		resolver, which only commits a decided transaction).  Tries again
 *		every DTX_BUSY_RETRY_US until the other session is done (then the
 *		answer is success or "does not exist") or deadline passes.  Returns
 *		the last try's outcome.  Never raises.
 */
static DtxResultStatus
commit_prepared_when_free(DtxConnection *c, TimestampTz deadline,
						  char **msg, char *sqlstate)
{
	DtxResultStatus st;

	do
	{
		if (GetCurrentTimestamp() >= deadline)
			return DTX_RESULT_TIMEOUT;
		pg_usleep(DTX_BUSY_RETRY_US);
		if (!DtxSendQueryNoError(c, psprintf("COMMIT PREPARED '%s'", c->xact.gid)))
			return DTX_RESULT_LOST;
		st = DtxGetResultNoError(c, deadline, msg, sqlstate, NULL);
	} while (DtxPreparedBusy(st, sqlstate));
	return st;
}

/*
 * dtx_post_commit
 *		After the local commit: COMMIT PREPARED on every prepared
 *		participant at once, within dtx.commit_timeout.  Never raises; what
 *		is not confirmed stays in doubt for the resolver, with a WARNING.
 */
static void
dtx_post_commit(void)
{
	ListCell   *lc;
	TimestampTz deadline;
	TimestampTz start = GetCurrentTimestamp();
	bool		any_prepared = false;
	bool		all_confirmed = true;
	FullTransactionId fxid = InvalidFullTransactionId;
	char	   *sql;

	DtxDecisionEndXact(true);
	if (participants != NIL)
		DtxStatsCommit(commit_kind);
	if (commit_kind == DTX_COMMIT_TWO_PHASE && !DtxDecisionReplicated(XactLastCommitEnd))
	{
		leave_to_resolver_unreplicated();
		return;
	}

	foreach(lc, participants)
	{
		DtxConnection *c = lfirst(lc);

		if (c->xact.state != DTX_REMOTE_PREPARED)
			continue;
		any_prepared = true;
		sql = psprintf("COMMIT PREPARED '%s'", c->xact.gid);

		/*
		 * Left in flight, it is sent in pipeline mode: the next transaction's
		 * statements go behind it without waiting for its answer.
		 */
		if (!(dtx_synchronous_commit_prepared ? DtxSendQueryNoError(c, sql) :
			  DtxSendLeadNoError(c, sql)))
			c->broken = true;
		else
			c->xact.state = DTX_REMOTE_COMMITTING;
	}
	if (!any_prepared)
		return;
	if (!dtx_synchronous_commit_prepared)
	{
		leave_commits_in_flight();
		return;
	}

	deadline = DtxDeadlineAfterMs(dtx_commit_timeout);
	foreach(lc, participants)
	{
		DtxConnection *c = lfirst(lc);
		char	   *msg = NULL;
		char		sqlstate[6];
		DtxResultStatus st;

		if (c->xact.gid[0] == '\0')
			continue;
		if (c->xact.state == DTX_REMOTE_COMMITTING)
		{
			DtxSetPhase(DTX_PHASE_COMMIT_PREPARED, c->servername);
			st = DtxGetResultNoError(c, deadline, &msg, sqlstate, NULL);
			if (DtxPreparedBusy(st, sqlstate))
				st = commit_prepared_when_free(c, deadline, &msg, sqlstate);
			DtxSetPhase(DTX_PHASE_NONE, NULL);
			if (st == DTX_RESULT_OK ||
				DtxPreparedGone(st, sqlstate))
			{
				c->xact.state = DTX_REMOTE_IDLE;
				continue;
			}
		}
		else
			st = DTX_RESULT_LOST;

		all_confirmed = false;
		if (st != DTX_RESULT_ERROR)
			c->broken = true;
		warn_not_confirmed(c, st == DTX_RESULT_TIMEOUT ? "no answer within dtx.commit_timeout" :
						   msg ? msg : "connection lost");
	}

	foreach(lc, participants)
	{
		DtxConnection *c = lfirst(lc);

		if (c->xact.gid[0] != '\0')
		{
			fxid = c->xact.gid_fxid;
			break;
		}
	}
	DtxStatsPhaseTime(DTX_PHASE_COMMIT_PREPARED, start);
	if (!all_confirmed)
		DtxResolverWake();
	else if (FullTransactionIdIsValid(fxid))
		DtxDecisionConfirmed(fxid);
}

/*
 * dtx_abort
 *		The local transaction aborts: every participant is rolled back,
 *		prepared ones with ROLLBACK PREPARED, all at once and within
 *		dtx.commit_timeout.  Never raises; what cannot be rolled back now is
 *		left to the resolver (there is no decision), with a WARNING.
 */
static void
dtx_abort(void)
{
	ListCell   *lc;
	TimestampTz deadline = DtxDeadlineAfterMs(dtx_commit_timeout);

	DtxDecisionEndXact(false);
	if (participants != NIL)
		DtxStatsAbort();
	DtxSetPhase(DTX_PHASE_ROLLBACK, NULL);

	foreach(lc, participants)
	{
		DtxConnection *c = lfirst(lc);
		PGTransactionStatusType ts;
		char	   *sql = NULL;

		if (c->conn == NULL)
			continue;
		if (!drain_sent(c, deadline, 0))
		{
			c->broken = true;
			continue;
		}
		ts = PQtransactionStatus(c->conn);
		if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
			sql = "ROLLBACK";
		else if (ts == PQTRANS_IDLE &&
				 (c->xact.state == DTX_REMOTE_PREPARED || c->xact.state == DTX_REMOTE_PREPARING))
			sql = psprintf("ROLLBACK PREPARED '%s'", c->xact.gid);
		else if (ts != PQTRANS_IDLE)
		{
			c->broken = true;
			continue;
		}
		if (sql != NULL)
		{
			if (!DtxSendQueryNoError(c, sql))
				c->broken = true;
		}
	}
	foreach(lc, participants)
	{
		DtxConnection *c = lfirst(lc);
		char	   *msg = NULL;
		char		sqlstate[6];
		DtxResultStatus st;

		if (c->conn == NULL || c->broken || !c->busy)
			continue;
		st = DtxGetResultNoErrorYielding(c, deadline, &msg, sqlstate, NULL);
		if (st == DTX_RESULT_OK)
		{
			c->xact.state = DTX_REMOTE_IDLE;
			continue;
		}
		if (DtxPreparedGone(st, sqlstate) &&
			c->xact.state != DTX_REMOTE_IN_XACT)
		{
			/* the PREPARE never happened */
			c->xact.state = DTX_REMOTE_IDLE;
			continue;
		}
		c->broken = true;
	}

	/* prepared transactions that could not be rolled back now */
	foreach(lc, participants)
	{
		DtxConnection *c = lfirst(lc);

		if ((c->xact.state == DTX_REMOTE_PREPARED || c->xact.state == DTX_REMOTE_PREPARING) &&
			(c->broken || c->conn == NULL))
		{
			ereport(WARNING,
					(errcode(ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN),
					 errmsg("could not roll back the prepared transaction on server \"%s\"",
							c->servername),
					 errdetail("Global id %s.", c->xact.gid),
					 errhint("The transaction is rolled back; the resolver finishes it on that server.")));
			DtxResolverWake();
		}
	}
}

/*
 * drain_limit
 *		How long a rollback reads answers still on their way:
 *		DTX_PIPELINE_DRAIN_MS from now, or deadline (0: none) if sooner.
 */
static TimestampTz
drain_limit(TimestampTz deadline)
{
	TimestampTz limit = DtxDeadlineAfterMs(DTX_PIPELINE_DRAIN_MS);

	return (deadline != 0 && deadline < limit) ? deadline : limit;
}

/*
 * drain_sent
 *		For a rollback: makes c idle.  The statements sent with dtx.send
 *		that are still unread are read for at most DTX_PIPELINE_DRAIN_MS
 *		(and deadline, 0: none), and so is the answer to a PREPARE
 *		TRANSACTION sent alone; a command still in flight then is abandoned
 *		(DtxAbandonCommand).  When rolling back subtransaction
 *		subid (0: the whole transaction), a failure of a statement sent
 *		before it, which this rollback does not undo, is said in a WARNING
 *		and the remote transaction is lost (abort_required).  False when
 *		the connection could not be made idle.  Never raises.
 */
static bool
drain_sent(DtxConnection *c, TimestampTz deadline, SubTransactionId subid)
{
	if (c->pipeline != NIL || c->lead_pending)
	{
		DtxPipelineFailure fail;
		bool		earlier;
		bool		drained;

		earlier = subid != 0 && DtxPipelineHasStepsBefore(c, subid);
		drained = DtxPipelineDrainNoError(c, drain_limit(deadline), &fail);
		if (subid != 0 && fail.sql != NULL && fail.user && fail.subid < subid)
		{
			const char *primary = fail.err ?
			PQresultErrorField(fail.err, PG_DIAG_MESSAGE_PRIMARY) : NULL;

			c->xact.abort_required = true;
			ereport(WARNING,
					(errcode(ERRCODE_IN_FAILED_SQL_TRANSACTION),
					 errmsg("a statement sent to server \"%s\" before this savepoint failed", c->servername),
					 primary ? errdetail("%s", primary) :
					 errdetail("It reported another row count than dtx.send_expect required."),
					 errhint("Roll back the whole transaction."),
					 errcontext("remote SQL on server \"%s\": %s", c->servername, fail.sql)));
		}
		else if (!drained && earlier)
		{
			/* their outcome is lost with the connection or the cancel */
			c->xact.abort_required = true;
			ereport(WARNING,
					(errcode(ERRCODE_IN_FAILED_SQL_TRANSACTION),
					 errmsg("statements sent to server \"%s\" before this savepoint had not ended", c->servername),
					 errdetail("Rolling back the savepoint cancelled them."),
					 errhint("Roll back the whole transaction.")));
		}
		if (fail.err)
			PQclear(fail.err);
	}

	/*
	 * A PREPARE TRANSACTION sent alone whose answer was never read (another
	 * participant's failure or an interrupt came first): its answer is
	 * waited for as briefly as a pipeline's, so that what it prepared is
	 * rolled back now instead of being left to the resolver.
	 */
	if (c->busy && c->pipeline == NIL && !c->lead_pending &&
		PQpipelineStatus(c->conn) == PQ_PIPELINE_OFF &&
		c->xact.state == DTX_REMOTE_PREPARING)
		(void) DtxGetResultNoErrorYielding(c, drain_limit(deadline), NULL, NULL, NULL);
	if (c->busy && !DtxAbandonCommand(c, deadline))
		return false;
	return true;
}

/*
 * before_close
 *		A connection is about to close: the answer to a COMMIT PREPARED still
 *		in flight on it is taken if it has arrived, else given up (the
 *		resolver makes sure).  Never raises.
 */
static void
before_close(DtxConnection *c)
{
	if (c->xact.commit_in_flight)
		DtxFinishCommitInFlight(c, DTX_IN_FLIGHT_DROP);
}

/*
 * answer_before_steps
 *		Statements were sent behind a COMMIT PREPARED left in flight on c
 *		(dtx.synchronous_commit_prepared off) and are about to be read: its
 *		answer is read first (DtxSetLeadHook).  A statement's read waits
 *		for it, serving interrupts; a quiet one (a commit or a rollback)
 *		serves none and gives it up at the reader's deadline, which for a
 *		rollback is short (the resolver makes sure of that transaction).
 */
static void
answer_before_steps(DtxConnection *c, bool quiet, TimestampTz deadline)
{
	if (quiet)
		finish_in_flight(c, DTX_IN_FLIGHT_READ, deadline);
	else
		finish_in_flight(c, DTX_IN_FLIGHT_WAIT, 0);
}

/*
 * poll_in_flight
 *		Takes the answer to a COMMIT PREPARED in flight on c if it has
 *		arrived (DtxForEachConnection).
 */
static void
poll_in_flight(DtxConnection *c, void *arg)
{
	(void) arg;
	if (c->xact.commit_in_flight)
		DtxFinishCommitInFlight(c, DTX_IN_FLIGHT_POLL);
}

/*
 * dtx_forget_participants
 *		Ends the transaction for every participant: resets their state and
 *		closes the connections that cannot be reused.
 */
static void
dtx_forget_participants(void)
{
	ListCell   *lc;

	foreach(lc, participants)
	{
		DtxConnection *c = lfirst(lc);

		c->xact.depth = 0;
		c->xact.state = DTX_REMOTE_IDLE;
		c->xact.wrote = false;
		c->xact.selects_only = true;
		c->xact.needs_prepare = false;
		c->xact.probed = false;
		c->xact.abort_required = false;
		c->xact.participant_no = 0;
		c->xact.gid[0] = '\0';
		if (c->xact.pending_cmds != NIL)
		{
			list_free_deep(c->xact.pending_cmds);
			c->xact.pending_cmds = NIL;
		}
	}
	list_free(participants);
	participants = NIL;
	commit_kind = DTX_COMMIT_READ_ONLY;
	DtxSetPhase(DTX_PHASE_NONE, NULL);
	DtxForEachConnection(poll_in_flight, NULL);
	DtxCloseUnusableConnections();
	DtxFdwGuardReset();
}

/*
 * dtx_xact_callback
 *		Follows the local transaction's end.
 */
static void
dtx_xact_callback(XactEvent event, void *arg)
{
	(void) arg;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			dtx_pre_commit();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
			{
				MemoryContext old = CurrentMemoryContext;

				if (commit_cxt != NULL)
					MemoryContextSwitchTo(commit_cxt);
				if (event == XACT_EVENT_COMMIT)
					dtx_post_commit();
				else
					dtx_abort();
				dtx_forget_participants();
				MemoryContextSwitchTo(old);
				if (commit_cxt != NULL)
					MemoryContextReset(commit_cxt);
			}
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (participants != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that has pg_dtx participants"),
						 errdetail("pg_dtx coordinates the commit of its participants itself."),
						 errhint("Use COMMIT; pg_dtx runs two-phase commit on the participants.")));
			DtxFdwGuardReset();
			break;
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			break;
	}
}

/*
 * dtx_subxact_callback
 *		Follows local savepoints: a released one is released remotely with
 *		the next command, a rolled-back one is rolled back remotely now, on
 *		all participants at once, within one dtx.commit_timeout.
 */
static void
dtx_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	int			level;
	ListCell   *lc;
	List	   *sent = NIL;

	(void) parentSubid;
	(void) arg;

	if (event != SUBXACT_EVENT_PRE_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB)
		return;
	level = GetCurrentTransactionNestLevel();

	foreach(lc, participants)
	{
		DtxConnection *c = lfirst(lc);

		if (c->xact.depth < level)
			continue;

		if (event == SUBXACT_EVENT_PRE_COMMIT_SUB)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			c->xact.pending_cmds = lappend(c->xact.pending_cmds,
									  psprintf("RELEASE SAVEPOINT dtx_s%d", level));
			MemoryContextSwitchTo(old);
			c->xact.depth = level - 1;
		}
		else
		{
			char	   *sql;

			/* the queued releases are of inner savepoints: rolled back too */
			list_free_deep(c->xact.pending_cmds);
			c->xact.pending_cmds = NIL;
			c->xact.depth = level - 1;
			if (c->broken || c->conn == NULL || !drain_sent(c, 0, mySubid))
			{
				c->xact.abort_required = true;
				continue;
			}
			sql = psprintf("ROLLBACK TO SAVEPOINT dtx_s%d; RELEASE SAVEPOINT dtx_s%d",
						   level, level);
			if (!DtxSendQueryNoError(c, sql))
				c->xact.abort_required = true;
			else
				sent = lappend(sent, c);
		}
	}

	/*
	 * One deadline for all: the rollbacks went out at once.  A participant
	 * that does not answer in time, or a cancel meanwhile (interrupts are
	 * held here), loses its remote transaction: the connection is closed,
	 * and the transaction can only roll back.
	 */
	if (sent != NIL)
	{
		TimestampTz deadline = DtxDeadlineAfterMs(dtx_commit_timeout);

		foreach(lc, sent)
		{
			DtxConnection *c = lfirst(lc);

			if (DtxGetResultNoErrorYielding(c, deadline, NULL, NULL, NULL) != DTX_RESULT_OK)
			{
				c->xact.abort_required = true;
				/* the shared deadline: no cancel once it has passed */
				(void) DtxAbandonCommand(c, deadline);
			}
		}
		list_free(sent);
	}
}

/*
 * dtx_participants
 *		SQL: dtx.participants() lists the participants of the current
 *		transaction: number, server, local user, state (idle, in
 *		transaction, preparing, prepared, committing), whether it wrote.
 */
PG_FUNCTION_INFO_V1(dtx_participants);
Datum
dtx_participants(PG_FUNCTION_ARGS)
{
	static const char *const state_names[] = {
		"idle", "in transaction", "preparing", "prepared", "committing"
	};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ListCell   *lc;

	DtxInitMaterializedSRF(fcinfo, 0);
	foreach(lc, participants)
	{
		DtxConnection *c = lfirst(lc);
		Datum		values[5];
		bool		nulls[5] = {0};

		values[0] = Int32GetDatum(c->xact.participant_no);
		values[1] = CStringGetTextDatum(c->servername);
		values[2] = ObjectIdGetDatum(c->userid);
		values[3] = CStringGetTextDatum(state_names[c->xact.state]);
		values[4] = BoolGetDatum(c->xact.wrote || !c->xact.selects_only);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
