/*-------------------------------------------------------------------------
 *
 * deadlock.c
 *	  Detection of deadlocks that span servers.
 *
 * T1 holds a row on server A and waits on server B, T2 holds the row on B
 * and waits on A: neither server sees a cycle.  A backend whose remote
 * statement has waited dtx.deadlock_check_interval looks for such a cycle
 * itself: it collects the lock waits between pg_dtx sessions on every
 * participant server (pg_locks and pg_blocking_pids, through its own user
 * mapping), and between local backends, maps each remote session to its
 * coordinator backend through the application_name that connection.c sets
 * (pg_dtx:<coordinator id>:<database OID>:<pid>), and follows the edges from
 * itself.  A cycle through at least two servers is a distributed deadlock
 * (a cycle inside one server is PostgreSQL's to break).  Every backend of
 * the cycle finds the same cycle; only the youngest transaction of it (the
 * latest xact_start, then the highest id) acts: it cancels its own remote
 * statement and fails with SQLSTATE 40P01 and a message naming the cycle.
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
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "connection.h"
#include "deadlock.h"
#include "gid.h"

int			dtx_deadlock_check_interval = 2000; /* ms; 0 turns detection off */

/* A wait of one distributed transaction (coordinator backend) on another. */
typedef struct WaitEdge
{
	char	   *waiter;			/* "<coordinator id>:<database OID>:<pid>" */
	char	   *blocker;
	char	   *server;			/* where: a server name, or "local" */
	int			remote_pid;		/* the waiting session there */
} WaitEdge;

static bool in_check = false;

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
}

/* the edges among pg_dtx sessions waiting on locks, on a participant */
static const char *remote_edges_sql =
"SELECT pg_catalog.substr(w.application_name, 8), pg_catalog.substr(b.application_name, 8), w.pid "
"FROM (SELECT DISTINCT pid FROM pg_catalog.pg_locks WHERE NOT granted) l "
"JOIN pg_catalog.pg_stat_activity w ON w.pid = l.pid "
"CROSS JOIN LATERAL pg_catalog.unnest(pg_catalog.pg_blocking_pids(l.pid)) AS bp(pid) "
"JOIN pg_catalog.pg_stat_activity b ON b.pid = bp.pid "
"WHERE w.application_name LIKE 'pg\\_dtx:%' AND b.application_name LIKE 'pg\\_dtx:%'";

/*
 * collect_remote
 *		Adds the waits among pg_dtx sessions on serverid to *edges, through
 *		the current user's mapping (servers without one are skipped).
 */
static void
collect_remote(Oid serverid, List **edges)
{
	DtxConnection *c;
	PGresult   *res;
	int			i;
	TimestampTz deadline = DtxDeadlineAfterMs(Max(dtx_deadlock_check_interval, 5000));

	if (!SearchSysCacheExists2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(GetUserId()),
							   ObjectIdGetDatum(serverid)) &&
		!SearchSysCacheExists2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(InvalidOid),
							   ObjectIdGetDatum(serverid)))
		return;
	c = DtxConnectStandalone(serverid, GetUserId(), deadline);
	PG_TRY();
	{
		DtxSendPipeline(c, NIL, remote_edges_sql, 0, NULL, NULL);
		res = DtxGetPipelineResult(c, NIL, remote_edges_sql);
		for (i = 0; i < PQntuples(res); i++)
		{
			WaitEdge   *e = palloc(sizeof(WaitEdge));

			e->waiter = pstrdup(PQgetvalue(res, i, 0));
			e->blocker = pstrdup(PQgetvalue(res, i, 1));
			e->server = pstrdup(c->servername);
			e->remote_pid = atoi(PQgetvalue(res, i, 2));
			*edges = lappend(*edges, e);
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
 *		Adds the lock waits among this coordinator's backends to *edges.
 */
static void
collect_local(List **edges, uint64 coordid)
{
	int			i;
	char	   *sql = psprintf(
							   "SELECT '%" PRIu64 ":' || w.datid || ':' || w.pid, '%" PRIu64 ":' || b.datid || ':' || b.pid "
							   "FROM (SELECT DISTINCT pid FROM pg_catalog.pg_locks WHERE NOT granted) l "
							   "JOIN pg_catalog.pg_stat_activity w ON w.pid = l.pid "
							   "CROSS JOIN LATERAL pg_catalog.unnest(pg_catalog.pg_blocking_pids(l.pid)) AS bp(pid) "
							   "JOIN pg_catalog.pg_stat_activity b ON b.pid = bp.pid",
							   coordid, coordid);
	MemoryContext outer = CurrentMemoryContext;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the local lock waits");
	for (i = 0; i < (int) SPI_processed; i++)
	{
		WaitEdge   *e = MemoryContextAlloc(outer, sizeof(WaitEdge));

		e->waiter = MemoryContextStrdup(outer, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		e->blocker = MemoryContextStrdup(outer, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
		e->server = "local";
		e->remote_pid = 0;
		{
			MemoryContext spi = MemoryContextSwitchTo(outer);

			*edges = lappend(*edges, e);
			MemoryContextSwitchTo(spi);
		}
	}
	SPI_finish();
}

/*
 * find_cycle
 *		Depth-first search from node for a path back to start; the edges of
 *		the path are appended to *path.  visited guards against loops that
 *		do not pass through start.
 */
static bool
find_cycle(List *edges, const char *start, const char *node, List **path, List **visited, int depth)
{
	ListCell   *lc;

	if (depth > 64)
		return false;
	foreach(lc, edges)
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
		if (!seen)
		{
			*visited = lappend(*visited, e->blocker);
			if (find_cycle(edges, start, e->blocker, path, visited, depth + 1))
				return true;
		}
		*path = list_delete_last(*path);
	}
	return false;
}

/*
 * youngest
 *		The youngest transaction of the cycle: the latest xact_start among
 *		this coordinator's backends, the highest id among the others.
 */
static char *
youngest(List *path, uint64 coordid)
{
	char	   *best = NULL;
	TimestampTz best_start = 0;
	ListCell   *lc;
	char	   *prefix = psprintf("%" PRIu64 ":", coordid);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	foreach(lc, path)
	{
		char	   *id = ((WaitEdge *) lfirst(lc))->waiter;
		TimestampTz start = DT_NOEND;	/* unknown: as young as can be */

		if (strncmp(id, prefix, strlen(prefix)) == 0)
		{
			const char *pid = strrchr(id, ':') + 1;

			if (SPI_execute(psprintf("SELECT xact_start FROM pg_catalog.pg_stat_activity WHERE pid = %d",
									 atoi(pid)), true, 1) == SPI_OK_SELECT &&
				SPI_processed == 1)
			{
				bool		isnull;
				Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

				if (!isnull)
					start = DatumGetTimestampTz(d);
			}
		}
		if (best == NULL || start > best_start ||
			(start == best_start && strcmp(id, best) > 0))
		{
			best = id;
			best_start = start;
		}
	}
	SPI_finish();
	return best;
}

/*
 * check
 *		The body of DtxDeadlockCheck, inside a subtransaction.
 */
static void
check(DtxConnection *c)
{
	uint64		coordid = DtxCoordinatorId();
	char	   *me = psprintf("%" PRIu64 ":%u:%d", coordid, MyDatabaseId, MyProcPid);
	List	   *edges = NIL;
	List	   *path = NIL;
	List	   *visited = NIL;
	List	   *servers = NIL;
	ListCell   *lc;
	DtxOwnerScope scope;
	int			ret;
	uint64		i;
	bool		spans = false;
	char	   *victim;
	StringInfoData msg;

	/* the servers pg_dtx may be waiting on */
	DtxEnterOwnerScope(&scope, InvalidOid);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute("SELECT s.oid FROM pg_catalog.pg_foreign_server s "
					  "JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw "
					  "WHERE w.fdwname = 'dtx' OR s.oid IN (SELECT server_id FROM dtx.server_identity)",
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
	collect_local(&edges, coordid);
	DtxLeaveOwnerScope(&scope);

	foreach(lc, servers)
		collect_remote(lfirst_oid(lc), &edges);

	if (!find_cycle(edges, me, me, &path, &visited, 0))
		return;
	foreach(lc, path)
		if (strcmp(((WaitEdge *) lfirst(lc))->server, ((WaitEdge *) linitial(path))->server) != 0)
			spans = true;
	if (!spans)
		return;					/* inside one server: PostgreSQL breaks it */

	victim = youngest(path, coordid);
	if (strcmp(victim, me) != 0)
		return;					/* the youngest of the cycle acts */

	initStringInfo(&msg);
	foreach(lc, path)
	{
		WaitEdge   *e = lfirst(lc);

		appendStringInfo(&msg, "%stransaction of backend %s waits on server \"%s\" for transaction of backend %s",
						 msg.len > 0 ? "; " : "", e->waiter, e->server, e->blocker);
	}
	c->deadlock_msg = MemoryContextStrdup(TopMemoryContext, msg.data);

	/* cancel our own remote statement: its error becomes the deadlock error */
	{
		DtxConnection *side = DtxConnectStandalone(c->serverid, c->userid,
												   DtxDeadlineAfterMs(Max(dtx_deadlock_check_interval, 5000)));
		char	   *sql = psprintf("SELECT pg_catalog.pg_cancel_backend(%d)", PQbackendPID(c->conn));

		PG_TRY();
		{
			DtxSendPipeline(side, NIL, sql, 0, NULL, NULL);
			PQclear(DtxGetPipelineResult(side, NIL, sql));
		}
		PG_FINALLY();
		{
			DtxDisconnect(side);
		}
		PG_END_TRY();
	}
}

/*
 * DtxDeadlockCheck
 *		Looks for a distributed deadlock through this backend, whose
 *		statement on c has waited a while.  When this backend is the victim,
 *		its remote statement is cancelled and c->deadlock_msg names the
 *		cycle: the statement's error is then raised as 40P01.  A failure of
 *		the check itself is logged and changes nothing.
 */
static void
check_step(void *arg)
{
	check((DtxConnection *) arg);
}

void
DtxDeadlockCheck(DtxConnection *c)
{
	ErrorData  *edata;

	if (in_check || c->deadlock_msg != NULL)
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
