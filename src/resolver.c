/*-------------------------------------------------------------------------
 *
 * resolver.c
 *	  One pass of the resolver: finishes every in-doubt prepared transaction
 *	  of this coordinator and database, from the decision table.
 *
 * Which servers: every server of the wrappers dtx and postgres_fdw, and
 * every other server pg_dtx used (dtx.server_identity) or that a decision
 * names.  A postgres_fdw server may hold an orphan although nothing records
 * its use: its first use records it in the transaction that used it, and a
 * transaction that dies after its PREPARE takes that record along.  Such a
 * server that pg_dtx is not known to have used is listed quietly: failing
 * to reach it is logged at DEBUG1 only, with no backoff and no action row.  On each, the
 * pass lists the prepared transactions whose global id carries this
 * coordinator's id and this database's OID, in the participant's own
 * database only; nobody else's prepared transactions are ever touched.
 *
 * The rules, for each such prepared transaction:
 *	- a decision record exists: COMMIT PREPARED;
 *	- none exists and the local transaction is no longer running: it aborted
 *	  or never committed, ROLLBACK PREPARED;
 *	- the local transaction is still running: leave it alone.
 * The order of reads is what makes this safe against a commit in flight:
 *	1. list the participant's prepared transactions;
 *	2. note which of their local transactions are still running;
 *	3. read the decisions, with a snapshot taken now (never the caller's);
 *	4. list the participant again;
 * and act only on what both lists hold.  A transaction prepared after
 * step 1 is left for the next pass (its local transaction may have been
 * running unseen); one that left the list by step 4 was finished by its
 * backend.  A decision whose participants no longer hold its prepared
 * transactions in the second list is finished everywhere and is deleted.
 * A failure to list a participant never leads to any action on it.
 *
 * Credentials: the prepared transactions are listed through the user
 * mapping of the extension's owner (or PUBLIC, or else any mapping of the
 * server); each one is finished through the user mapping of the local role
 * that ran it, recorded in its global id, or the listing mapping when that
 * role has none.  Locally the pass runs as the extension's owner.
 *
 * Passes of one database are serialised by a transaction-scoped advisory
 * lock (DTX_PASS_LOCK_KEY1/2): the worker skips a pass when it is taken,
 * dtx.resolve() waits.  Unreachable participants are retried with an
 * exponential backoff recorded in dtx.resolver_status.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <inttypes.h>
#include <limits.h>

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "catalog/pg_user_mapping.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "catalog.h"
#include "compat.h"
#include "connection.h"
#include "decision.h"
#include "fdw_options.h"
#include "gid.h"
#include "identity.h"
#include "resolver.h"
#include "shared_state.h"
#include "stats.h"

/* the advisory lock (two-int4 form) that serialises passes of a database */
#define DTX_PASS_LOCK_KEY1 0x647478	/* "dtx" */
#define DTX_PASS_LOCK_KEY2 1


/* A prepared transaction of ours seen on a participant. */
typedef struct Candidate
{
	char	   *gid;			/* its global id */
	DtxGid		parts;			/* parsed */
	bool		running;		/* local transaction running at step 2 */
	bool		in_second;		/* still there at step 4 */
	bool		finished;		/* committed or rolled back by this pass */
	bool		undecided;		/* left prepared here without a decision */
} Candidate;

/* What the pass knows of one participant server. */
typedef struct ServerScan
{
	Oid			serverid;
	char	   *name;
	bool		listed;			/* both listings succeeded */
	bool		failed;			/* something went wrong with it */
	char	   *error;			/* the last error met */
	List	   *candidates;		/* Candidate *, from the first listing */
	List	   *second;			/* global ids (char *) of the second */
	HTAB	   *pending;		/* local xids (uint64) whose prepared
								 * transactions this pass left here */
	DtxConnection *lister;		/* the listing connection */
	List	   *conns;			/* every connection opened for it */
	bool		quiet;			/* a postgres_fdw server pg_dtx is not known
								 * to have used: its failures are no failures
								 * of the pass */
} ServerScan;

int			dtx_in_doubt_warning_age = 300;	/* dtx.in_doubt_warning_age, s */
int			dtx_resolver_interval = 10000;	/* dtx.resolver_interval, ms */

/* A decision record. */
typedef struct DecisionEntry
{
	uint64		fxid;			/* hash key */
	TimestampTz created_at;		/* when it was decided */
	uint64		nonce;			/* of its global ids (0: version 1.0) */
	int			n;				/* participants */
	Oid		   *servers;
	Oid		   *userids;
} DecisionEntry;

/* One resolver pass: what its steps share. */
typedef struct ResolvePass
{
	bool		in_worker;		/* background worker (else dtx.resolve()) */
	Oid			owner;			/* the extension's owner */
	uint64		coordid;		/* this coordinator's id */
	char	   *prefix;			/* of its global ids in this database */
	List	   *scans;			/* ServerScan *, one per server */
	HTAB	   *decisions_at_start; /* read before any listing */
	List	   *actions;		/* DtxResolveAction *: what it did */
	int			left;			/* transactions it leaves in doubt */
	bool		has_undecided;	/* dtx.undecided exists (not version 1.0) */
	uint32		generation;		/* wake-up count when it started */
} ResolvePass;

static void resolve_server(ResolvePass *pass, ServerScan *scan);

/*
 * DtxResolverInit
 *		Registers the resolver's settings.  Called from _PG_init.
 */
void
DtxResolverInit(void)
{
	DefineCustomIntVariable("dtx.resolver_interval",
							"Time between two automatic resolver passes; 0 or -1 turns them off.",
							"A backend whose COMMIT PREPARED failed wakes the resolver at once.",
							&dtx_resolver_interval,
							10000, -1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dtx.in_doubt_warning_age",
							"A resolver pass warns when a transaction has been in doubt longer than this; 0 never warns.",
							"Prepared transactions hold locks and hold back VACUUM on the participants.",
							&dtx_in_doubt_warning_age,
							300, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
}

/*
 * add_action
 *		Appends an action row to *actions and logs it.
 */
static void
add_action(List **actions, const char *server, const char *gid,
		   const char *action, const char *outcome)
{
	DtxResolveAction *a = palloc(sizeof(DtxResolveAction));

	a->server = server ? pstrdup(server) : NULL;
	a->global_id = gid ? pstrdup(gid) : NULL;
	a->action = action;
	a->outcome = pstrdup(outcome);
	*actions = lappend(*actions, a);

	if (server && gid)
		ereport(LOG,
				(errmsg("pg_dtx resolver: %s prepared transaction %s on server \"%s\": %s",
						action, gid, server, outcome)));
	else if (server)
		ereport(LOG,
				(errmsg("pg_dtx resolver: %s on server \"%s\": %s", action, server, outcome)));
	else
		ereport(LOG,
				(errmsg("pg_dtx resolver: %s: %s", action, outcome)));
}

/*
 * listing_user
 *		The role whose user mapping lists server's prepared transactions:
 *		the extension's owner (or PUBLIC through it), else any role with a
 *		mapping.  Raises when the server has no user mapping at all.
 */
static Oid
listing_user(Oid serverid, Oid owner)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Oid			user = InvalidOid;
	bool		found = false;

	if (DtxMappingExists(owner, serverid))
		return owner;

	rel = table_open(UserMappingRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_user_mapping_umserver, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(serverid));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	if ((tup = systable_getnext(scan)) != NULL)
	{
		user = ((Form_pg_user_mapping) GETSTRUCT(tup))->umuser;
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server \"%s\" has no user mapping the resolver can use",
						GetForeignServer(serverid)->servername),
				 errhint("Create a user mapping for the owner of pg_dtx on that server.")));
	return user;
}

/*
 * list_prepared
 *		The global ids with prefix prepared in c's remote database.
 */
static List *
list_prepared(DtxConnection *c, const char *prefix)
{
	static const char *sql =
		"SELECT gid FROM pg_catalog.pg_prepared_xacts "
		"WHERE database OPERATOR(pg_catalog.=) pg_catalog.current_database() "
		"AND pg_catalog.starts_with(gid, $1)";
	Oid			types[1] = {TEXTOID};
	const char *values[1];
	PGresult   *res;
	List	   *gids = NIL;
	int			i;

	values[0] = prefix;
	DtxSendPipeline(c, NIL, sql, 1, types, values);
	res = DtxGetPipelineResult(c);
	for (i = 0; i < PQntuples(res); i++)
		gids = lappend(gids, pstrdup(PQgetvalue(res, i, 0)));
	PQclear(res);
	return gids;
}

/*
 * xact_may_be_running
 *		Whether the local transaction fxid may still be running: then its
 *		prepared transactions are left alone.
 *
 * An xid at or past the next one to be assigned belongs to no transaction
 * now: it was handed out before a crash without reaching the WAL (its
 * decision never committed), so it is not running.  Its prepared
 * transactions were listed before this call, hence prepared before it, so
 * they cannot be of a transaction that gets that xid later on.
 */
static bool
xact_may_be_running(FullTransactionId fxid)
{
	FullTransactionId next = ReadNextFullTransactionId();
	uint64		distance;

	if (!FullTransactionIdPrecedes(fxid, next))
		return false;
	distance = U64FromFullTransactionId(next) - U64FromFullTransactionId(fxid);
	if (distance > (uint64) MaxTransactionId / 2)
		return false;			/* far too old to be running */
	return TransactionIdIsInProgress(XidFromFullTransactionId(fxid));
}

/*
 * read_decisions
 *		The decision records of coordinator coordid, read with a snapshot
 *		taken now.  Those of another id were inherited by a copy of another
 *		coordinator (see coordinator.c): their prepared transactions are that
 *		coordinator's, never listed here, so they are neither acted on nor
 *		deleted as finished.
 */
static HTAB *
read_decisions(uint64 coordid)
{
	HASHCTL		ctl;
	HTAB	   *decisions;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;

	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(DecisionEntry);
	ctl.hcxt = CurrentMemoryContext;
	decisions = hash_create("pg_dtx decisions", 256, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	rel = table_open(DtxTableRelid("decisions", false), AccessShareLock);
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		uint64		fxid = U64FromFullTransactionId(
												DatumGetFullTransactionId(heap_getattr(tup, Anum_dtx_decisions_xid,
																					   RelationGetDescr(rel), &isnull)));
		ArrayType  *servers = DatumGetArrayTypeP(heap_getattr(tup, Anum_dtx_decisions_servers,
															 RelationGetDescr(rel), &isnull));
		ArrayType  *userids = DatumGetArrayTypeP(heap_getattr(tup, Anum_dtx_decisions_userids,
															 RelationGetDescr(rel), &isnull));
		DecisionEntry *e;
		int			nu;

		if ((uint64) DatumGetInt64(heap_getattr(tup, Anum_dtx_decisions_coordinator,
												 RelationGetDescr(rel), &isnull)) != coordid)
			continue;
		e = hash_search(decisions, &fxid, HASH_ENTER, NULL);

		e->created_at = DatumGetTimestampTz(heap_getattr(tup, Anum_dtx_decisions_created,
														 RelationGetDescr(rel), &isnull));
		e->nonce = 0;
		if (RelationGetDescr(rel)->natts >= Anum_dtx_decisions_nonce)
		{
			Datum		d = heap_getattr(tup, Anum_dtx_decisions_nonce, RelationGetDescr(rel), &isnull);

			if (!isnull)
				e->nonce = (uint64) DatumGetInt64(d);
		}
		e->n = ArrayGetNItems(ARR_NDIM(servers), ARR_DIMS(servers));
		nu = ArrayGetNItems(ARR_NDIM(userids), ARR_DIMS(userids));
		e->servers = palloc(sizeof(Oid) * Max(e->n, 1));
		e->userids = palloc(sizeof(Oid) * Max(e->n, 1));
		memcpy(e->servers, ARR_DATA_PTR(servers), sizeof(Oid) * e->n);
		memcpy(e->userids, ARR_DATA_PTR(userids), sizeof(Oid) * Min(nu, e->n));
	}
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return decisions;
}

/*
 * connection_for
 *		The connection of scan's server that can finish a transaction run
 *		by userid: through userid's mapping when it has one, else the
 *		listing connection.
 */
static DtxConnection *
connection_for(ServerScan *scan, Oid userid, TimestampTz deadline)
{
	ListCell   *lc;
	DtxConnection *c;

	if (!DtxMappingExists(userid, scan->serverid))
		return scan->lister;

	foreach(lc, scan->conns)
	{
		c = lfirst(lc);
		if (c->userid == userid ||
			c->umid == GetUserMapping(userid, scan->serverid)->umid)
			return c;
	}
	c = DtxConnectStandalone(scan->serverid, userid, deadline);
	scan->conns = lappend(scan->conns, c);
	return c;
}

/* A step of the pass on one server, for run_guarded. */
typedef struct GuardedStep
{
	void		(*fn) (ServerScan *scan, void *arg);
	ServerScan *scan;
	void	   *arg;
} GuardedStep;

static void
guarded_step(void *arg)
{
	GuardedStep *step = arg;

	step->fn(step->scan, step->arg);
}

/*
 * run_guarded
 *		Runs fn(scan, arg) in a subtransaction; an error is recorded on the
 *		scan (and logged) instead of ending the pass.  Returns success.
 */
static bool
run_guarded(void (*fn) (ServerScan *scan, void *arg), ServerScan *scan, void *arg)
{
	GuardedStep step = {fn, scan, arg};
	ErrorData  *edata = DtxRunInSubtransaction(guarded_step, &step);

	if (edata == NULL)
		return true;
	scan->failed = true;
	scan->error = edata->detail ?
		psprintf("%s: %s", edata->message, edata->detail) : pstrdup(edata->message);
	ereport(scan->quiet ? DEBUG1 : LOG,
			(errmsg("pg_dtx resolver: server \"%s\": %s", scan->name, scan->error)));
	return false;
}

/* Arguments of step_start_connect. */
typedef struct StartArg
{
	Oid			owner;			/* the extension's owner */
	TimestampTz deadline;		/* shared by every listing connection */
} StartArg;

/* step 0: start connecting (all servers at once) */
static void
step_start_connect(ServerScan *scan, void *arg)
{
	StartArg   *a = arg;

	scan->lister = DtxConnectStandaloneStart(scan->serverid,
											 listing_user(scan->serverid, a->owner),
											 a->deadline,
											 DTX_RESOLVER_CONNECT_TIMEOUT_MS);
	scan->conns = lappend(scan->conns, scan->lister);
}

/* step 1: finish connecting and list */
static void
step_first_listing(ServerScan *scan, void *arg)
{
	const char *prefix = ((ResolvePass *) arg)->prefix;
	List	   *gids;
	ListCell   *lc;

	DtxConnectStandaloneFinish(scan->lister);
	scan->lister->op_deadline = DtxDeadlineAfterMs(DTX_RESOLVER_OP_TIMEOUT_MS);
	gids = list_prepared(scan->lister, prefix);
	foreach(lc, gids)
	{
		Candidate  *cand = palloc0(sizeof(Candidate));
		ForeignServer *owner_server;

		cand->gid = lfirst(lc);
		if (!DtxParseGid(cand->gid, &cand->parts))
			continue;

		/*
		 * Two servers may reach one database: a prepared transaction is
		 * finished through the server that prepared it while it exists.
		 */
		if (cand->parts.serverid != scan->serverid &&
			(owner_server = GetForeignServerExtended(cand->parts.serverid, FSV_MISSING_OK)) != NULL &&
			DtxServerIsParticipantKind(owner_server))
			continue;
		scan->candidates = lappend(scan->candidates, cand);
	}
}

/* A global id and its candidate, for matching the two listings. */
typedef struct GidEntry
{
	char		gid[DTX_GID_MAXLEN];	/* hash key */
	Candidate  *cand;
} GidEntry;

/* step 4: list again */
static void
step_second_listing(ServerScan *scan, void *arg)
{
	const char *prefix = ((ResolvePass *) arg)->prefix;
	ListCell   *lc;
	HASHCTL		ctl;
	HTAB	   *first;

	scan->lister->op_deadline = DtxDeadlineAfterMs(DTX_RESOLVER_OP_TIMEOUT_MS);
	scan->second = list_prepared(scan->lister, prefix);

	/* match the listings through a hash: thousands may be in doubt */
	ctl.keysize = DTX_GID_MAXLEN;
	ctl.entrysize = sizeof(GidEntry);
	ctl.hcxt = CurrentMemoryContext;
	first = hash_create("pg_dtx first listing", Max(list_length(scan->candidates), 16),
						&ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	foreach(lc, scan->candidates)
	{
		Candidate  *cand = lfirst(lc);

		((GidEntry *) hash_search(first, cand->gid, HASH_ENTER, NULL))->cand = cand;
	}
	foreach(lc, scan->second)
	{
		GidEntry   *e = hash_search(first, lfirst(lc), HASH_FIND, NULL);

		if (e != NULL)
			e->cand->in_second = true;
	}
	hash_destroy(first);
	scan->listed = true;
}

/*
 * note_pending
 *		Fills scan->pending with the local transactions that still have a
 *		prepared transaction on the server after this pass: those of the
 *		second listing that the pass did not finish (including those
 *		prepared after the first listing).
 */
static void
note_pending(ServerScan *scan)
{
	HASHCTL		ctl;
	HTAB	   *finished;
	ListCell   *lc;

	ctl.keysize = DTX_GID_MAXLEN;
	ctl.entrysize = sizeof(GidEntry);
	ctl.hcxt = CurrentMemoryContext;
	finished = hash_create("pg_dtx finished", 64, &ctl,
						   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	foreach(lc, scan->candidates)
	{
		Candidate  *cand = lfirst(lc);

		if (cand->finished)
			(void) hash_search(finished, cand->gid, HASH_ENTER, NULL);
	}

	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(uint64);
	scan->pending = hash_create("pg_dtx pending", 64, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	foreach(lc, scan->second)
	{
		DtxGid		g;
		uint64		key;

		if (!DtxParseGid((char *) lfirst(lc), &g) ||
			hash_search(finished, lfirst(lc), HASH_FIND, NULL) != NULL)
			continue;
		key = U64FromFullTransactionId(g.fxid);
		(void) hash_search(scan->pending, &key, HASH_ENTER, NULL);
	}
	hash_destroy(finished);
}

/*
 * decision_matches
 *		Whether decisions hold the commit decision of the prepared
 *		transaction gid: one for its xid, with its nonce.  A decision of the
 *		same xid with another nonce is another transaction's, which got the
 *		xid after a crash: gid's own transaction never committed.
 */
static bool
decision_matches(HTAB *decisions, const DtxGid *gid)
{
	uint64		key = U64FromFullTransactionId(gid->fxid);
	DecisionEntry *e = hash_search(decisions, &key, HASH_FIND, NULL);

	return e != NULL && e->nonce == gid->nonce;
}

/* the actions of one server: commits and rollbacks, batched per connection */
typedef struct ActArg
{
	HTAB	   *decisions;
	List	  **actions;
} ActArg;

static void
step_act(ServerScan *scan, void *arg)
{
	ActArg	   *a = arg;
	List	   *todo = NIL;
	ListCell   *lc;
	TimestampTz deadline = DtxDeadlineAfterMs(DTX_RESOLVER_OP_TIMEOUT_MS);
	bool		decided_any = false;

	foreach(lc, scan->candidates)
	{
		Candidate  *cand = lfirst(lc);

		if (cand->in_second && !cand->running && !cand->finished)
		{
			todo = lappend(todo, cand);
			decided_any |= decision_matches(a->decisions, &cand->parts);
		}
	}

	/* no COMMIT PREPARED for a decision the synchronous standby lacks */
	if (decided_any)
		DtxDecisionsWaitReplicated();

	while (todo != NIL)
	{
		Candidate  *first = linitial(todo);
		DtxConnection *c = connection_for(scan, first->parts.userid, deadline);
		List	   *batch = NIL;
		List	   *rest = NIL;
		const char **sqls;
		DtxResultStatus *status;
		char	  **msgs;
		char	  **states;
		int			n = 0;
		int			i;

		/* everything this connection serves goes in one batch */
		foreach(lc, todo)
		{
			Candidate  *cand = lfirst(lc);

			if (connection_for(scan, cand->parts.userid, deadline) == c)
				batch = lappend(batch, cand);
			else
				rest = lappend(rest, cand);
		}
		sqls = palloc(sizeof(char *) * list_length(batch));
		status = palloc(sizeof(DtxResultStatus) * list_length(batch));
		msgs = palloc(sizeof(char *) * list_length(batch));
		states = palloc(sizeof(char *) * list_length(batch));
		foreach(lc, batch)
		{
			Candidate  *cand = lfirst(lc);
			bool		decided = decision_matches(a->decisions, &cand->parts);

			sqls[n++] = psprintf("%s PREPARED '%s'", decided ? "COMMIT" : "ROLLBACK", cand->gid);
		}
		c->op_deadline = deadline;
		DtxRunBatch(c, sqls, n, status, msgs, states);
		i = 0;
		foreach(lc, batch)
		{
			Candidate  *cand = lfirst(lc);
			const char *action = (strncmp(sqls[i], "COMMIT", 6) == 0) ? "commit" : "rollback";

			if (status[i] == DTX_RESULT_OK)
			{
				cand->finished = true;
				DtxStatsResolved(scan->serverid, action[0] == 'c');
				add_action(a->actions, scan->name, cand->gid, action, "done");
			}
			else if (DtxPreparedGone(status[i], states[i]))
			{
				cand->finished = true;
				add_action(a->actions, scan->name, cand->gid, action, "already finished");
			}
			else if (DtxPreparedBusy(status[i], states[i]))
			{
				/* its backend is finishing it right now: not this server's failure */
				add_action(a->actions, scan->name, cand->gid, action,
						   "busy: another session is finishing it");
			}
			else
			{
				scan->failed = true;
				scan->error = psprintf("%s: %s", sqls[i], msgs[i] ? msgs[i] : "failed");
				add_action(a->actions, scan->name, cand->gid, action,
						   psprintf("failed: %s", msgs[i] ? msgs[i] : "unknown error"));
			}
			i++;
		}
		todo = rest;
	}
}

/*
 * decision_finished
 *		Whether every participant of decision e is known to hold none of its
 *		prepared transactions any more.
 */
static bool
decision_finished(DecisionEntry *e, List *scans)
{
	int			i;

	for (i = 0; i < e->n; i++)
	{
		ServerScan *scan = NULL;
		ListCell   *lc;

		foreach(lc, scans)
			if (((ServerScan *) lfirst(lc))->serverid == e->servers[i])
				scan = lfirst(lc);
		if (scan == NULL || !scan->listed || scan->pending == NULL)
			return false;
		if (hash_search(scan->pending, &e->fxid, HASH_FIND, NULL) != NULL)
			return false;
	}
	return true;
}

/*
 * record_status
 *		Records in dtx.resolver_status how the pass went with a server:
 *		forgotten on success, else one more failure and the next attempt
 *		after an exponential backoff.
 */
static void
record_status(ServerScan *scan, int interval_ms)
{
	Oid			argtypes[4] = {OIDOID, TEXTOID, INT4OID, INT4OID};
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	int			ret;

	args[0] = ObjectIdGetDatum(scan->serverid);
	if (!scan->failed)
	{
		ret = SPI_execute_with_args("DELETE FROM dtx.resolver_status WHERE server_id = $1",
									1, argtypes, args, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "could not update dtx.resolver_status");
		return;
	}
	args[1] = CStringGetTextDatum(scan->error ? scan->error : "failed");
	args[2] = Int32GetDatum(Max(interval_ms, 1000));
	args[3] = Int32GetDatum(DTX_RESOLVER_MAX_BACKOFF_MS);
	ret = SPI_execute_with_args(
								"INSERT INTO dtx.resolver_status AS r "
								"(server_id, failures, last_error, last_attempt, next_attempt) "
								"VALUES ($1, 1, $2, pg_catalog.now(), pg_catalog.now() + $3 * interval '1 millisecond') "
								"ON CONFLICT (server_id) DO UPDATE SET failures = r.failures + 1, "
								"last_error = excluded.last_error, last_attempt = excluded.last_attempt, "
								"next_attempt = excluded.last_attempt + "
								"LEAST($4, $3 * pg_catalog.power(2, LEAST(r.failures, 20))) "
								"* interval '1 millisecond'",
								4, argtypes, args, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not update dtx.resolver_status");
}

/*
 * count_undecided
 *		How many prepared transactions without a decision the pass left on
 *		scan's server.
 */
static int
count_undecided(ServerScan *scan)
{
	ListCell   *lc;
	int			n = 0;

	foreach(lc, scan->candidates)
	{
		if (((Candidate *) lfirst(lc))->undecided)
			n++;
	}
	return n;
}

/*
 * text_array
 *		A text[] of the n C strings in strs.
 */
static Datum
text_array(char **strs, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		elems[i] = CStringGetTextDatum(strs[i]);
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * record_undecided
 *		Records in dtx.undecided, for dtx.in_doubt, the prepared transactions
 *		without a decision that the pass left on scan's server (listed by
 *		both listings), and forgets the server's other ones.
 */
static void
record_undecided(ServerScan *scan)
{
	Oid			argtypes[5] = {OIDOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTOID};
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	int			n = 0;
	int			cap = Max(list_length(scan->candidates), 1);
	char	  **gids = palloc(sizeof(char *) * cap);
	char	  **xids = palloc(sizeof(char *) * cap);
	char	  **users = palloc(sizeof(char *) * cap);
	ListCell   *lc;

	foreach(lc, scan->candidates)
	{
		Candidate  *cand = lfirst(lc);

		if (!cand->undecided)
			continue;
		gids[n] = cand->gid;
		xids[n] = psprintf("%" PRIu64, U64FromFullTransactionId(cand->parts.fxid));
		users[n] = psprintf("%u", cand->parts.userid);
		n++;
	}
	args[0] = ObjectIdGetDatum(scan->serverid);
	args[1] = text_array(gids, n);
	args[2] = text_array(xids, n);
	args[3] = text_array(users, n);
	args[4] = scan->error ? CStringGetTextDatum(scan->error) : (Datum) 0;
	nulls[4] = scan->error ? ' ' : 'n';

	if (SPI_execute_with_args("DELETE FROM dtx.undecided WHERE server_id = $1 "
							  "AND global_id <> ALL ($2)",
							  5, argtypes, args, nulls, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not update dtx.undecided");
	if (n == 0)
		return;
	if (SPI_execute_with_args("INSERT INTO dtx.undecided AS u "
							  "(server_id, global_id, xid, userid, first_seen, seen_at, last_error) "
							  "SELECT $1, g, x::pg_catalog.xid8, r::pg_catalog.oid, "
							  "       pg_catalog.now(), pg_catalog.now(), $5 "
							  "FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4)) AS t(g, x, r) "
							  "ON CONFLICT (server_id, global_id) DO UPDATE "
							  "SET seen_at = excluded.seen_at, last_error = excluded.last_error",
							  5, argtypes, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not update dtx.undecided");
}

/*
 * resolve_server
 *		The protocol on one participant: list its prepared transactions,
 *		see which local transactions may still run, read the decisions,
 *		list again and act on what both listings hold.  Failures are
 *		recorded on scan; actions are appended to *actions.
 */
static void
resolve_server(ResolvePass *pass, ServerScan *scan)
{
	HTAB	   *decisions;
	ListCell   *lc2;
	ActArg		a;

	/* 1. list the participant's prepared transactions */
	if (!run_guarded(step_first_listing, scan, pass))
		return;

	/* 2. which of their local transactions may still run */
	foreach(lc2, scan->candidates)
	{
		Candidate  *cand = lfirst(lc2);

		cand->running = xact_may_be_running(cand->parts.fxid);
	}

	/* 3. the decisions, as of now */
	decisions = read_decisions(pass->coordid);

	/* 4. list again, and act on what both lists hold */
	if (!run_guarded(step_second_listing, scan, pass))
	{
		hash_destroy(decisions);
		return;
	}
	a.decisions = decisions;
	a.actions = &pass->actions;
	(void) run_guarded(step_act, scan, &a);
	note_pending(scan);
	foreach(lc2, scan->candidates)
	{
		Candidate  *cand = lfirst(lc2);

		cand->undecided = cand->in_second && !cand->finished &&
			!decision_matches(decisions, &cand->parts);
	}
	hash_destroy(decisions);
}

/*
 * list_servers
 *		Step 1 of a pass: the servers pg_dtx may have prepared on, into
 *		pass->scans (in the worker, those in backoff are left for later).
 */
static void
list_servers(ResolvePass *pass)
{
	MemoryContext outer = CurrentMemoryContext;
	uint64		i;
	int			ret;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute("SELECT s.oid, s.srvname, "
					  "  r.next_attempt IS NOT NULL AND r.next_attempt > pg_catalog.now(), "
					  "  w.fdwname OPERATOR(pg_catalog.<>) 'dtx' "
					  "  AND s.oid NOT IN (SELECT server_id FROM dtx.server_identity) "
					  "  AND s.oid NOT IN (SELECT pg_catalog.unnest(servers) FROM dtx.decisions) "
					  "FROM pg_catalog.pg_foreign_server s "
					  "JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid OPERATOR(pg_catalog.=) s.srvfdw "
					  "LEFT JOIN dtx.resolver_status r ON r.server_id OPERATOR(pg_catalog.=) s.oid "
					  "WHERE w.fdwname OPERATOR(pg_catalog.=) ANY (ARRAY['dtx', 'postgres_fdw']::pg_catalog.name[]) "
					  "   OR s.oid IN (SELECT server_id FROM dtx.server_identity) "
					  "   OR s.oid IN (SELECT pg_catalog.unnest(servers) FROM dtx.decisions) "
					  "ORDER BY r.failures IS NOT NULL, s.oid", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not list the participant servers");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		ServerScan *scan;
		MemoryContext spi;

		if (pass->in_worker && DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull)))
			continue;
		scan = MemoryContextAllocZero(outer, sizeof(ServerScan));
		scan->serverid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		scan->name = MemoryContextStrdup(outer, SPI_getvalue(tup, desc, 2));
		scan->quiet = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		spi = MemoryContextSwitchTo(outer);
		pass->scans = lappend(pass->scans, scan);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
}

/*
 * resolve_as_connected
 *		Step 2 of a pass: starts every listing connection at once, then runs
 *		the protocol (resolve_server) participant by participant in the
 *		order their connections come up, so that one that hangs or is slow
 *		to answer delays none that answers (those left when the connect
 *		timeout passes come last, in list_servers' order: failing ones
 *		last).
 */
static void
resolve_as_connected(ResolvePass *pass)
{
	StartArg	sa;
	List	   *waiting = NIL;
	List	   *listers = NIL;
	ListCell   *lc;

	sa.owner = pass->owner;
	sa.deadline = DtxDeadlineAfterMs(DTX_RESOLVER_CONNECT_TIMEOUT_MS);
	foreach(lc, pass->scans)
	{
		ServerScan *scan = lfirst(lc);

		if (run_guarded(step_start_connect, scan, &sa))
		{
			waiting = lappend(waiting, scan);
			listers = lappend(listers, scan->lister);
		}
	}
	while (waiting != NIL)
	{
		DtxConnection *ready = DtxConnectStandaloneWaitAny(listers);
		ServerScan *scan = NULL;
		TimestampTz began;

		foreach(lc, waiting)
		{
			if (((ServerScan *) lfirst(lc))->lister == ready)
				scan = lfirst(lc);
		}
		if (scan == NULL)
			elog(ERROR, "pg_dtx resolver: a connection of no server came up");
		waiting = list_delete_ptr(waiting, scan);
		listers = list_delete_ptr(listers, ready);

		/*
		 * The other attempts make no progress meanwhile: their deadline
		 * moves by the time this server took.
		 */
		began = GetCurrentTimestamp();
		resolve_server(pass, scan);
		DtxConnectStandalonePostpone(listers, GetCurrentTimestamp() - began);
	}
}

/*
 * retire_finished_decisions
 *		Step 3 of a pass: deletes the decisions read before any listing
 *		(pass->decisions_at_start) whose participants no longer hold any of
 *		their prepared transactions, and the confirmed ones; warns about the
 *		oldest one left past dtx.in_doubt_warning_age.
 */
static void
retire_finished_decisions(ResolvePass *pass)
{
	HASH_SEQ_STATUS hs;
	DecisionEntry *e;
	Relation	rel = table_open(DtxTableRelid("decisions", false), RowExclusiveLock);
	int			forgotten = 0;
	DecisionEntry *oldest = NULL;

	hash_seq_init(&hs, pass->decisions_at_start);
	while ((e = hash_seq_search(&hs)) != NULL)
	{
		if (decision_finished(e, pass->scans))
		{
			if (DtxDecisionDelete(rel, FullTransactionIdFromU64(e->fxid)))
				forgotten++;
			continue;
		}
		pass->left++;
		if (oldest == NULL || e->created_at < oldest->created_at)
			oldest = e;
	}
	if (oldest != NULL && dtx_in_doubt_warning_age > 0 &&
		TimestampDifferenceExceeds(oldest->created_at, GetCurrentTimestamp(),
								   dtx_in_doubt_warning_age * 1000))
		ereport(WARNING,
				(errmsg("pg_dtx: a distributed transaction has been in doubt since %s",
						timestamptz_to_str(oldest->created_at)),
				 errdetail("Transaction %" PRIu64 " is committed, but not yet on every participant; "
						   "its prepared transactions hold their locks and hold back VACUUM there.",
						   oldest->fxid),
				 errhint("See dtx.in_doubt for the participant and the last error met.")));
	table_close(rel, NoLock);
	forgotten += DtxDecisionRetireConfirmed();
	if (forgotten > 0)
		add_action(&pass->actions, NULL, NULL, "forget",
				   psprintf(ngettext("%d finished decision deleted",
									 "%d finished decisions deleted", forgotten),
							forgotten));
}

/*
 * record_pass
 *		Step 4 of a pass: records how it went with each server (backoff in
 *		dtx.resolver_status, prepared transactions without a decision in
 *		dtx.undecided), and how many transactions it left in doubt here
 *		(for DROP DATABASE).
 */
static void
record_pass(ResolvePass *pass)
{
	ListCell   *lc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("DELETE FROM dtx.resolver_status WHERE server_id NOT IN "
					"(SELECT oid FROM pg_catalog.pg_foreign_server)", false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not update dtx.resolver_status");
	if (pass->has_undecided &&
		SPI_execute("DELETE FROM dtx.undecided WHERE server_id NOT IN "
					"(SELECT oid FROM pg_catalog.pg_foreign_server)", false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not update dtx.undecided");
	foreach(lc, pass->scans)
	{
		ServerScan *scan = lfirst(lc);

		if (scan->quiet && scan->failed)
			continue;
		if (scan->failed)
			add_action(&pass->actions, scan->name, NULL, "list",
					   psprintf("failed: %s", scan->error ? scan->error : "unknown error"));
		record_status(scan, dtx_resolver_interval);
		if (scan->listed && pass->has_undecided)
			record_undecided(scan);
		pass->left += count_undecided(scan);
	}
	SPI_finish();
	DtxRecordFirstUses();
	DtxRecordInDoubt(pass->left, pass->generation);
}

/*
 * DtxResolvePass
 *		Runs one resolver pass in the current transaction and returns what
 *		it did (DtxResolveAction *): list the servers, resolve on each as its
 *		connection comes up, retire the finished decisions, record the pass.
 *		In the worker, a pass already running or a held server makes this
 *		one skip (*skipped) and servers in backoff are left for later;
 *		dtx.resolve() waits for the lock and tries every server.
 */
List *
DtxResolvePass(bool in_worker, bool *skipped)
{
	LOCKTAG		tag;
	ResolvePass *volatile pass;
	DtxOwnerScope scope;

	*skipped = false;
	if (in_worker && DtxCoordinatorHold() != NULL)
	{
		/* a copy of another coordinator: nothing to do until the hold goes */
		*skipped = true;
		return NIL;
	}
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot resolve distributed transactions on a hot standby"),
				 errdetail("The resolver records what it did on the coordinator; it starts after promotion."),
				 errhint("Run dtx.resolve() on the primary.")));
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, DTX_PASS_LOCK_KEY1, DTX_PASS_LOCK_KEY2, 2);
	if (LockAcquire(&tag, ExclusiveLock, false, in_worker) == LOCKACQUIRE_NOT_AVAIL)
	{
		*skipped = true;
		return NIL;
	}

	pass = palloc0(sizeof(ResolvePass));
	pass->in_worker = in_worker;
	pass->owner = DtxExtensionOwner();
	DtxEnterOwnerScope(&scope, pass->owner);
	/* version 1.0 has no dtx.undecided */
	pass->has_undecided = OidIsValid(DtxTableRelid("undecided", true));
	pass->generation = DtxInDoubtGeneration();
	pass->coordid = DtxCoordinatorIdToAct("resolve");
	pass->prefix = psprintf(DTX_GID_PREFIX "%" PRIu64 "_%u_", pass->coordid, MyDatabaseId);

	PG_TRY();
	{
		list_servers(pass);

		/*
		 * Decisions as of the start of the pass: only those may be deleted
		 * as finished, since every listing of the pass came after they
		 * committed.
		 */
		pass->decisions_at_start = read_decisions(pass->coordid);
		resolve_as_connected(pass);
		retire_finished_decisions(pass);
		record_pass(pass);
	}
	PG_FINALLY();
	{
		ListCell   *lc;

		foreach(lc, pass->scans)
		{
			ServerScan *scan = lfirst(lc);
			ListCell   *lc2;

			foreach(lc2, scan->conns)
				DtxDisconnect(lfirst(lc2));
		}
	}
	PG_END_TRY();
	DtxLeaveOwnerScope(&scope);

	return pass->actions;
}

/*
 * dtx_resolve
 *		SQL: dtx.resolve() runs one resolver pass now and returns one row per
 *		action: server, global id, action, outcome.
 */
PG_FUNCTION_INFO_V1(dtx_resolve);
Datum
dtx_resolve(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		skipped;
	List	   *actions;
	ListCell   *lc;

	DtxInitMaterializedSRF(fcinfo, 0);
	actions = DtxResolvePass(false, &skipped);
	foreach(lc, actions)
	{
		DtxResolveAction *a = lfirst(lc);
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = a->server ? CStringGetTextDatum(a->server) : (Datum) 0;
		nulls[0] = (a->server == NULL);
		values[1] = a->global_id ? CStringGetTextDatum(a->global_id) : (Datum) 0;
		nulls[1] = (a->global_id == NULL);
		values[2] = CStringGetTextDatum(a->action);
		values[3] = CStringGetTextDatum(a->outcome);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * dtx_global_id
 *		SQL: dtx.global_id(coordinator_id, xid, server, userid, n) formats
 *		the global id of participant n of a decision.
 */
PG_FUNCTION_INFO_V1(dtx_global_id);
Datum
dtx_global_id(PG_FUNCTION_ARGS)
{
	DtxGid		g;
	char		buf[DTX_GID_MAXLEN];

	g.coordinator_id = (uint64) PG_GETARG_INT64(0);
	g.dboid = MyDatabaseId;
	g.fxid = PG_GETARG_FULLTRANSACTIONID(1);
	g.serverid = PG_GETARG_OID(2);
	g.userid = PG_GETARG_OID(3);
	g.participant_no = PG_GETARG_INT32(4);
	/* STRICT: a NULL nonce never gets here; version 1.0 passes none */
	g.nonce = PG_NARGS() > 5 ? (uint64) PG_GETARG_INT64(5) : 0;
	DtxFormatGid(buf, &g);
	PG_RETURN_TEXT_P(cstring_to_text(buf));
}

/*
 * dtx_resolve_manually
 *		SQL: dtx.resolve_manually(global_id, commit) commits or rolls back
 *		one prepared transaction of this coordinator and database by hand,
 *		for an operator who knows better than the decision table.
 *		Superuser only; logged.
 */
PG_FUNCTION_INFO_V1(dtx_resolve_manually);
Datum
dtx_resolve_manually(PG_FUNCTION_ARGS)
{
	char	   *gid = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		commit = PG_GETARG_BOOL(1);
	DtxGid		parts;
	ForeignServer *server;
	DtxConnection *volatile c = NULL;
	Oid			user;
	char	   *sql;
	const char *sqls[1];
	DtxResultStatus status;
	char	   *msg;
	char	   *state;
	char	   *outcome;
	HTAB	   *decisions;
	bool		decided;

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a superuser can resolve a transaction by hand")));
	if (!DtxParseGid(gid, &parts) || parts.coordinator_id != DtxCoordinatorId() ||
		parts.dboid != MyDatabaseId)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a global id of this coordinator and database", gid),
				 errhint("Global ids look like dtx_<coordinator id>_<database OID>_<xid>_<server OID>_<user OID>_<n>_<nonce>; see dtx.in_doubt.")));
	server = GetForeignServerExtended(parts.serverid, FSV_MISSING_OK);
	if (server == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the server of \"%s\" (OID %u) no longer exists", gid, parts.serverid)));
	if (xact_may_be_running(parts.fxid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("the local transaction of \"%s\" is still running", gid)));

	decisions = read_decisions(parts.coordinator_id);
	decided = decision_matches(decisions, &parts);
	if (decided != commit)
		ereport(WARNING,
				(errmsg("resolving a prepared transaction by hand against its decision (%s)",
						decided ? "commit" : "none: roll back"),
				 errdetail("The other participants of the transaction are finished by the resolver according to the decision.")));

	user = DtxMappingExists(parts.userid, parts.serverid) ?
		parts.userid : listing_user(parts.serverid, DtxExtensionOwner());
	sql = psprintf("%s PREPARED '%s'", commit ? "COMMIT" : "ROLLBACK", gid);
	sqls[0] = sql;
	PG_TRY();
	{
		c = DtxConnectStandalone(parts.serverid, user,
								 DtxDeadlineAfterMs(DTX_RESOLVER_OP_TIMEOUT_MS));
		DtxRunBatch(c, sqls, 1, &status, &msg, &state);
	}
	PG_FINALLY();
	{
		if (c)
			DtxDisconnect(c);
	}
	PG_END_TRY();

	if (status == DTX_RESULT_OK)
		outcome = "done";
	else if (DtxPreparedGone(status, state))
		outcome = "already finished";
	else
		outcome = psprintf("failed: %s", msg ? msg : "unknown error");
	ereport(LOG,
			(commit ?
			 errmsg("pg_dtx: commit by hand of %s on server \"%s\" by role \"%s\": %s",
					gid, server->servername, GetUserNameFromId(GetUserId(), false), outcome) :
			 errmsg("pg_dtx: rollback by hand of %s on server \"%s\" by role \"%s\": %s",
					gid, server->servername, GetUserNameFromId(GetUserId(), false), outcome)));
	if (status != DTX_RESULT_OK && !DtxPreparedGone(status, state))
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 commit ?
				 errmsg("could not commit \"%s\" on server \"%s\": %s",
						gid, server->servername, msg ? msg : "unknown error") :
				 errmsg("could not roll back \"%s\" on server \"%s\": %s",
						gid, server->servername, msg ? msg : "unknown error")));
	PG_RETURN_TEXT_P(cstring_to_text(outcome));
}
