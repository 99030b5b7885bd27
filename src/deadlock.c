/*-------------------------------------------------------------------------
 *
 * deadlock.c
 *	  Detection of deadlocks that span servers.
 *
 * T1 holds a row on server A and waits on server B, T2 holds the row on B
 * and waits on A: neither server sees a cycle.  A backend whose remote
 * statement has waited dtx.deadlock_check_interval looks for such a cycle
 * itself: it collects the lock waits on every participant server (pg_locks
 * and pg_blocking_pids, through its own user mapping) and on its own
 * server, and names each session by the distributed transaction it belongs
 * to: a pg_dtx session by the application_name that connection.c sets
 * (pg_dtx:<coordinator id>:<database OID>:<pid>, the coordinator backend),
 * any other session by <cluster>:<database OID>:<pid> (on the coordinator's
 * own cluster, the coordinator id stands for the cluster, so that a local
 * backend and its pg_dtx sessions elsewhere have one name).
 *
 * A cycle of these waits is PostgreSQL's to break when it is a cycle of
 * sessions of one cluster (each waiting session is the blocker of the one
 * before); any other cycle, one through two clusters, or one through two
 * sessions of the same transaction (a transaction that blocks itself
 * through two servers that reach one database, or through the
 * coordinator's own database after a local write), is a distributed
 * deadlock.
 *
 * The victim.  Every backend of a cycle that waits on a remote statement
 * runs this check, possibly on other coordinators, each with its own view
 * of the names of the servers.  They must all choose the same victim from
 * the same facts, and only the victim can make its own statement fail with
 * the deadlock error, so each checker acts only when it is the victim
 * itself: it cancels its own remote statement.  The order is computed from
 * what the participants report about the waiting sessions: transactions
 * that wait on a local lock of a coordinator (their backend does not run
 * this check) come first, then those that wait in a pg_dtx session, by the
 * xact_start of that session on the participant (the one that joined the
 * cycle last comes last), then by name; the victim of a cycle is its last
 * transaction in this order.  A checker is the victim when it finds a
 * cycle through itself in which every other transaction comes before it:
 * the last transaction of any cycle finds that cycle, so every cycle has a
 * victim, and all checkers agree on it.
 *
 * Nothing is collected while no statement waits; the cost is a few short
 * connections per check of a waiting backend.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <inttypes.h>
#include <limits.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "connection.h"
#include "deadlock.h"
#include "fdw_options.h"
#include "gid.h"

int			dtx_deadlock_check_interval = 2000; /* ms; 0 turns detection off */

/* A wait of one distributed transaction (coordinator backend) on another. */
typedef struct WaitEdge
{
	char	   *waiter;			/* "<coordinator id>:<database OID>:<pid>" */
	char	   *blocker;
	char	   *server;			/* where it was seen: a server name, or "local" */
	uint64		sysid;			/* the cluster of the two sessions */
	int			waiter_pid;		/* the waiting session there */
	int			blocker_pid;	/* the session that holds the lock */
	bool		checks;			/* the waiting session is a pg_dtx one: its
								 * coordinator backend runs this check */
	int64		waiter_start;	/* xact_start of the waiting session, in
								 * microseconds since 1970; 0 unknown */
} WaitEdge;

/* The facts about the participants and this backend that a check uses. */
typedef struct CheckScope
{
	uint64		coordid;		/* this coordinator's id */
	uint64		local_sysid;	/* this server's system identifier */
	List	   *edges;			/* WaitEdge * */
} CheckScope;

static bool in_check = false;

/*
 * The statement this backend cancelled as a deadlock's victim: its error is
 * raised as 40P01 naming the cycle.  Forgotten when the statement ends
 * otherwise, when another starts, and at the end of the transaction.
 */
static DtxConnection *victim = NULL;
static char *victim_cycle = NULL;	/* in TopMemoryContext */
static bool victim_self = false;	/* the cycle is through this
									 * transaction's own sessions only */

static void statement_hook(DtxConnection *c, DtxStatementEvent event, const char *sql);
static void forget_victim(void);
static void deadlock_check(DtxConnection *c);
static void deadlock_xact_callback(XactEvent event, void *arg);

/*
 * DtxDeadlockInit
 *		Registers dtx.deadlock_check_interval.
 */
void
DtxDeadlockInit(void)
{
	DefineCustomIntVariable("dtx.deadlock_check_interval",
							"How long a remote statement waits before its backend looks for a deadlock across servers; 0 never looks.",
							NULL,
							&dtx_deadlock_check_interval,
							2000, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DtxSetStatementHook(statement_hook, &dtx_deadlock_check_interval);
	RegisterXactCallback(deadlock_xact_callback, NULL);
}

/*
 * forget_victim
 *		Forgets the statement cancelled as a victim.  Never raises.
 */
static void
forget_victim(void)
{
	victim = NULL;
	victim_self = false;
	if (victim_cycle != NULL)
	{
		pfree(victim_cycle);
		victim_cycle = NULL;
	}
}

/*
 * deadlock_xact_callback
 *		A victim belongs to its transaction.
 */
static void
deadlock_xact_callback(XactEvent event, void *arg)
{
	(void) arg;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
		forget_victim();
}

/*
 * statement_hook
 *		What the transport reports of a statement on c (DtxStatementHook): a
 *		long wait looks for a deadlock; the failure of the statement this
 *		backend cancelled as a victim is raised as 40P01 naming the cycle; a
 *		victim's statement that ended otherwise (its cancel came too late)
 *		or a new statement makes the victim forgotten.
 */
static void
statement_hook(DtxConnection *c, DtxStatementEvent event, const char *sql)
{
	switch (event)
	{
		case DTX_STATEMENT_WAITS:
			deadlock_check(c);
			break;
		case DTX_STATEMENT_FAILED:
			if (victim == c)
			{
				char	   *cycle = pstrdup(victim_cycle);
				bool		self = victim_self;

				forget_victim();
				if (self)
					ereport(ERROR,
							(errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
							 errmsg("distributed deadlock detected"),
							 errdetail("%s.", cycle),
							 errhint("The transaction reaches one database through two sessions; write a row through one of them only."),
							 errcontext("remote SQL on server \"%s\": %s", c->servername, sql)));
				ereport(ERROR,
						(errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
						 errmsg("distributed deadlock detected"),
						 errdetail("%s.", cycle),
						 errhint("The youngest transaction of the cycle was cancelled; retry it."),
						 errcontext("remote SQL on server \"%s\": %s", c->servername, sql)));
			}
			break;
		case DTX_STATEMENT_STARTS:
		case DTX_STATEMENT_SUCCEEDED:
			if (victim == c)
				forget_victim();
			break;
	}
}

/*
 * The lock waits on a server: waiting session (pid, application_name,
 * database, xact_start in microseconds), blocking session (pid,
 * application_name, database).  Run on the participants and locally.  A
 * row held by a prepared transaction (a transaction that prepared on one
 * server while its statement sent with dtx.send waits on another) has no
 * session: its blocker is pid 0 named DTX_PREPARED_HOLDER and the global
 * id (see session_name).
 */
#define DTX_PREPARED_HOLDER "prepared "

static const char *edges_sql =
"SELECT w.pid, COALESCE(w.application_name, ''), COALESCE(w.datid, 0), "
"COALESCE((pg_catalog.date_part('epoch', w.xact_start) * 1000000)::pg_catalog.int8, 0), "
"b.pid, COALESCE(b.application_name, ''), COALESCE(b.datid, 0) "
"FROM (SELECT DISTINCT pid FROM pg_catalog.pg_locks WHERE NOT granted) l "
"JOIN pg_catalog.pg_stat_activity w ON w.pid = l.pid "
"CROSS JOIN LATERAL pg_catalog.unnest(pg_catalog.pg_blocking_pids(l.pid)) AS bp(pid) "
"JOIN pg_catalog.pg_stat_activity b ON b.pid = bp.pid "
"UNION ALL "
"SELECT w.pid, COALESCE(w.application_name, ''), COALESCE(w.datid, 0), "
"COALESCE((pg_catalog.date_part('epoch', w.xact_start) * 1000000)::pg_catalog.int8, 0), "
"0, '" DTX_PREPARED_HOLDER "' OPERATOR(pg_catalog.||) p.gid, COALESCE(w.datid, 0) "
"FROM pg_catalog.pg_locks l "
"JOIN pg_catalog.pg_prepared_xacts p ON p.transaction OPERATOR(pg_catalog.=) l.transactionid "
"JOIN pg_catalog.pg_stat_activity w ON w.pid OPERATOR(pg_catalog.=) l.pid "
"WHERE NOT l.granted AND l.locktype OPERATOR(pg_catalog.=) 'transactionid'";

/*
 * session_name
 *		The name of the distributed transaction a session of cluster sysid
 *		belongs to: the coordinator backend of a pg_dtx session, else the
 *		session itself.
 */
static char *
session_name(CheckScope *scope, uint64 sysid, const char *appname,
			 const char *datid, const char *pid)
{
	if (strncmp(appname, "pg_dtx:", 7) == 0)
		return pstrdup(appname + 7);
	if (strncmp(appname, DTX_PREPARED_HOLDER, strlen(DTX_PREPARED_HOLDER)) == 0)
	{
		const char *gidtext = appname + strlen(DTX_PREPARED_HOLDER);
		DtxGid		gid;
		int			holder = 0;

		/*
		 * A prepared transaction of this coordinator whose local transaction
		 * is still committing (it waits for another participant) is the
		 * transaction of that backend.  Another coordinator's cannot be
		 * named so from here: see README, "Deadlocks".
		 */
		if (DtxParseGid(gidtext, &gid) && gid.coordinator_id == scope->coordid)
			holder = BackendXidGetPid(XidFromFullTransactionId(gid.fxid));
		if (holder != 0)
			return psprintf("%" PRIu64 ":%u:%d", gid.coordinator_id, gid.dboid, holder);
		return psprintf("%s", appname);
	}
	return psprintf("%" PRIu64 ":%s:%s",
					sysid == scope->local_sysid ? scope->coordid : sysid,
					datid, pid);
}

/*
 * add_edge
 *		Adds the wait described by the seven columns of edges_sql (vals),
 *		seen through server on cluster sysid, unless the same wait is known
 *		already (the same cluster reached twice).
 */
static void
add_edge(CheckScope *scope, const char *server, uint64 sysid, char **vals)
{
	WaitEdge   *e;
	int			waiter_pid = atoi(vals[0]);
	int			blocker_pid = atoi(vals[4]);
	char	   *blocker = session_name(scope, sysid, vals[5], vals[6], vals[4]);
	ListCell   *lc;

	foreach(lc, scope->edges)
	{
		WaitEdge   *o = lfirst(lc);

		if (o->sysid == sysid && o->waiter_pid == waiter_pid &&
			o->blocker_pid == blocker_pid && strcmp(o->blocker, blocker) == 0)
			return;
	}
	e = palloc(sizeof(WaitEdge));
	e->waiter = session_name(scope, sysid, vals[1], vals[2], vals[0]);
	e->blocker = blocker;
	e->server = pstrdup(server);
	e->sysid = sysid;
	e->waiter_pid = waiter_pid;
	e->blocker_pid = blocker_pid;
	e->checks = strncmp(vals[1], "pg_dtx:", 7) == 0;
	e->waiter_start = strtoi64(vals[3], NULL, 10);
	scope->edges = lappend(scope->edges, e);
}

/*
 * collect_remote
 *		Adds the lock waits on serverid to scope, through the current
 *		user's mapping (servers without one are skipped).
 */
static void
collect_remote(CheckScope *scope, Oid serverid)
{
	DtxConnection *c;
	PGresult   *res;
	int			i;
	int			j;
	TimestampTz deadline = DtxDeadlineAfterMs(Max(dtx_deadlock_check_interval, 5000));

	if (!DtxMappingExists(GetUserId(), serverid))
		return;
	c = DtxConnectStandalone(serverid, GetUserId(), deadline);
	PG_TRY();
	{
		DtxSendPipeline(c, NIL, edges_sql, 0, NULL, NULL);
		res = DtxGetPipelineResult(c);
		for (i = 0; i < PQntuples(res); i++)
		{
			char	   *vals[7];

			for (j = 0; j < 7; j++)
				vals[j] = PQgetvalue(res, i, j);
			add_edge(scope, c->servername, c->remote_sysid, vals);
		}
		PQclear(res);
	}
	PG_FINALLY();
	{
		DtxDisconnect(c);
	}
	PG_END_TRY();
}

/*
 * collect_local
 *		Adds the lock waits on this server to scope.
 */
static void
collect_local(CheckScope *scope)
{
	uint64		i;
	int			j;
	MemoryContext outer = CurrentMemoryContext;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(edges_sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the local lock waits");
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *vals[7];
		MemoryContext spi;

		for (j = 0; j < 7; j++)
			vals[j] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, j + 1);
		spi = MemoryContextSwitchTo(outer);
		add_edge(scope, "local", scope->local_sysid, vals);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
}

/*
 * order_key
 *		Where transaction name stands in the order of victims (see the
 *		header): whether it waits in a pg_dtx session, and the latest
 *		xact_start of its waiting sessions.
 */
static void
order_key(CheckScope *scope, const char *name, bool *checks, int64 *start)
{
	ListCell   *lc;

	*checks = false;
	*start = 0;
	foreach(lc, scope->edges)
	{
		WaitEdge   *e = lfirst(lc);

		if (!e->checks || strcmp(e->waiter, name) != 0)
			continue;
		*checks = true;
		*start = Max(*start, e->waiter_start);
	}
}

/*
 * comes_before
 *		Whether transaction a comes before transaction b in the order of
 *		victims (b is chosen rather than a).
 */
static bool
comes_before(CheckScope *scope, const char *a, const char *b)
{
	bool		a_checks;
	bool		b_checks;
	int64		a_start;
	int64		b_start;

	order_key(scope, a, &a_checks, &a_start);
	order_key(scope, b, &b_checks, &b_start);
	if (a_checks != b_checks)
		return b_checks;
	if (a_start != b_start)
		return a_start < b_start;
	return strcmp(a, b) < 0;
}

/*
 * find_cycle
 *		Depth-first search from node for a path back to start through
 *		transactions that come before start in the order of victims; the
 *		edges of the path are appended to *path.  visited guards against
 *		loops that do not pass through start.
 */
static bool
find_cycle(CheckScope *scope, const char *start, const char *node, List **path,
		   List **visited, int depth)
{
	ListCell   *lc;

	if (depth > 64)
		return false;
	foreach(lc, scope->edges)
	{
		WaitEdge   *e = lfirst(lc);
		ListCell   *v;
		bool		seen = false;

		if (strcmp(e->waiter, node) != 0)
			continue;
		*path = lappend(*path, e);
		if (strcmp(e->blocker, start) == 0)
			return true;
		foreach(v, *visited)
			if (strcmp((char *) lfirst(v), e->blocker) == 0)
				seen = true;
		if (!seen && comes_before(scope, e->blocker, start))
		{
			*visited = lappend(*visited, e->blocker);
			if (find_cycle(scope, start, e->blocker, path, visited, depth + 1))
				return true;
		}
		*path = list_delete_last(*path);
	}
	return false;
}

/*
 * postgres_sees
 *		Whether the cycle path is one of sessions of one cluster, each
 *		waiting for the next: PostgreSQL's own detector breaks it.
 */
static bool
postgres_sees(List *path)
{
	int			n = list_length(path);
	int			i;

	for (i = 0; i < n; i++)
	{
		WaitEdge   *e = list_nth(path, i);
		WaitEdge   *next = list_nth(path, (i + 1) % n);

		if (e->sysid != next->sysid || e->blocker_pid != next->waiter_pid)
			return false;
	}
	return true;
}

/* for own_server: the session to look for, and what was found */
typedef struct OwnSearch
{
	uint64		sysid;
	int			pid;
	const char *server;
} OwnSearch;

/*
 * match_own
 *		DtxForEachConnection callback: notes c's server when c is the
 *		session searched for.
 */
static void
match_own(DtxConnection *c, void *arg)
{
	OwnSearch  *h = arg;

	if (c->conn != NULL && c->remote_sysid == h->sysid &&
		PQbackendPID(c->conn) == h->pid)
		h->server = c->servername;
}

/*
 * own_server
 *		The server of this backend's connection that is session pid of
 *		cluster sysid; NULL when none is.
 */
static const char *
own_server(uint64 sysid, int pid)
{
	OwnSearch	h;

	h.sysid = sysid;
	h.pid = pid;
	h.server = NULL;
	DtxForEachConnection(match_own, &h);
	return h.server;
}

/*
 * describe_edge
 *		Appends the wait e, of the cycle, to msg.  A wait of this backend
 *		on itself names the server of the waiting session and what holds
 *		the lock: another of its connections, or its own local transaction.
 */
static void
describe_edge(CheckScope *scope, StringInfo msg, WaitEdge *e, const char *me)
{
	const char *waiting;
	const char *holding;

	if (msg->len > 0)
		appendStringInfoString(msg, "; ");
	if (strcmp(e->waiter, me) != 0 || strcmp(e->blocker, me) != 0)
	{
		appendStringInfo(msg, "transaction of backend %s waits on server \"%s\" for transaction of backend %s",
						 e->waiter, e->server, e->blocker);
		return;
	}
	waiting = own_server(e->sysid, e->waiter_pid);
	if (waiting == NULL)
		waiting = e->server;
	if (e->sysid == scope->local_sysid && e->blocker_pid == MyProcPid)
	{
		appendStringInfo(msg, "transaction of backend %s waits on server \"%s\" for a lock that it holds itself on the coordinator",
						 e->waiter, waiting);
		return;
	}
	holding = own_server(e->sysid, e->blocker_pid);
	if (holding != NULL)
		appendStringInfo(msg, "transaction of backend %s waits on server \"%s\" for a lock that it holds itself through server \"%s\"",
						 e->waiter, waiting, holding);
	else
		appendStringInfo(msg, "transaction of backend %s waits on server \"%s\" for a lock that it holds itself in session %d there",
						 e->waiter, waiting, e->blocker_pid);
}

/*
 * cancel_own_statement
 *		Cancels the statement in flight on c, through a second connection
 *		with the same user mapping; raises when the cancel is refused.
 */
static void
cancel_own_statement(DtxConnection *c)
{
	DtxConnection *side = DtxConnectStandalone(c->serverid, c->userid,
											   DtxDeadlineAfterMs(Max(dtx_deadlock_check_interval, 5000)));
	char	   *sql = psprintf("SELECT pg_catalog.pg_cancel_backend(%d)", PQbackendPID(c->conn));
	volatile bool sent = false;

	PG_TRY();
	{
		PGresult   *res;

		DtxSendPipeline(side, NIL, sql, 0, NULL, NULL);
		res = DtxGetPipelineResult(side);
		sent = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
	}
	PG_FINALLY();
	{
		DtxDisconnect(side);
	}
	PG_END_TRY();
	if (!sent)
		elog(ERROR, "the cancel request for session %d on server \"%s\" was refused",
			 PQbackendPID(c->conn), c->servername);
}

/*
 * check
 *		The body of deadlock_check, inside a subtransaction.
 */
static void
check(DtxConnection *c)
{
	CheckScope	scope;
	char	   *me;
	List	   *path = NIL;
	List	   *visited = NIL;
	List	   *servers = NIL;
	ListCell   *lc;
	DtxOwnerScope owner;
	int			ret;
	uint64		i;
	bool		self = false;
	StringInfoData msg;

	scope.coordid = DtxCoordinatorId();
	scope.local_sysid = GetSystemIdentifier();
	scope.edges = NIL;
	me = psprintf("%" PRIu64 ":%u:%d", scope.coordid, MyDatabaseId, MyProcPid);

	/* the servers pg_dtx may be waiting on, in a fixed order */
	DtxEnterOwnerScope(&owner, InvalidOid);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute("SELECT s.oid FROM pg_catalog.pg_foreign_server s "
					  "JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw "
					  "WHERE w.fdwname = 'dtx' OR s.oid IN (SELECT server_id FROM dtx.server_identity) "
					  "ORDER BY s.srvname",
					  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not list the participant servers");
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			oid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 1, &isnull));
		MemoryContext spi = MemoryContextSwitchTo(CurTransactionContext);

		servers = lappend_oid(servers, oid);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	DtxLeaveOwnerScope(&owner);

	/* remote first: a wait seen twice keeps the name of the server */
	foreach(lc, servers)
		collect_remote(&scope, lfirst_oid(lc));
	DtxEnterOwnerScope(&owner, InvalidOid);
	collect_local(&scope);
	DtxLeaveOwnerScope(&owner);

	if (!find_cycle(&scope, me, me, &path, &visited, 0))
		return;					/* no cycle, or another transaction is its victim */
	if (postgres_sees(path))
		return;					/* PostgreSQL breaks it */

	initStringInfo(&msg);
	foreach(lc, path)
	{
		WaitEdge   *e = lfirst(lc);

		if (strcmp(e->waiter, me) == 0 && strcmp(e->blocker, me) == 0)
			self = true;
		describe_edge(&scope, &msg, e, me);
	}

	/*
	 * Cancel our own remote statement: its error becomes the deadlock error.
	 * The message is set once the cancel is sent (the answer to the
	 * statement is read only after this check returns); when it could not
	 * be sent, the next check tries again.
	 */
	cancel_own_statement(c);
	forget_victim();
	victim_cycle = MemoryContextStrdup(TopMemoryContext, msg.data);
	victim_self = self;
	victim = c;
}

/*
 * check_step
 *		check, as a DtxRunInSubtransaction step.
 */
static void
check_step(void *arg)
{
	bool		pushed = false;

	/*
	 * At COMMIT (a statement sent with dtx.send waits) no snapshot is set;
	 * the queries need one.  An error pops it with the subtransaction.
	 */
	if (!ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		pushed = true;
	}
	check((DtxConnection *) arg);
	if (pushed)
		PopActiveSnapshot();
}

/*
 * deadlock_check
 *		Looks for a distributed deadlock through this backend, whose
 *		statement on c has waited a while.  When this backend is the victim,
 *		its remote statement is cancelled and the cycle remembered: the
 *		statement's error is then raised as 40P01 (statement_hook).  A failure of
 *		the check itself is logged and changes nothing.
 */
static void
deadlock_check(DtxConnection *c)
{
	ErrorData  *edata;

	if (in_check || victim == c)
		return;
	in_check = true;
	PG_TRY();
	{
		edata = DtxRunInSubtransaction(check_step, c);
	}
	PG_FINALLY();
	{
		in_check = false;
	}
	PG_END_TRY();
	if (edata != NULL)
		ereport(LOG,
				(errmsg("pg_dtx: could not look for a distributed deadlock: %s", edata->message)));
}
