/*-------------------------------------------------------------------------
 *
 * fdw_guard.c
 *	  Notices writes through foreign tables of other wrappers (postgres_fdw
 *	  above all) in a transaction that also has pg_dtx participants.
 *
 * postgres_fdw commits its own remote transactions in its pre-commit
 * callback, one after the other and without PREPARE: those writes are not
 * part of pg_dtx's atomic commit.  An ExecutorStart hook remembers the
 * servers written through foreign tables; at commit, if the transaction has
 * pg_dtx participants, a WARNING names each of them.  The hook is installed
 * when the library is loaded, so writes before the first use of pg_dtx in a
 * backend are seen only with shared_preload_libraries.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/executor.h"
#include "catalog/pg_class.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "parser/parsetree.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "fdw_guard.h"

static ExecutorStart_hook_type prev_ExecutorStart = NULL;

/* servers written through foreign tables in this transaction */
static List *written_servers = NIL;

static void dtx_executor_start(QueryDesc *queryDesc, int eflags);

/*
 * DtxFdwGuardInit
 *		Installs the ExecutorStart hook.
 */
void
DtxFdwGuardInit(void)
{
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = dtx_executor_start;
}

/*
 * dtx_executor_start
 *		Remembers the servers of foreign tables that a statement modifies.
 */
static void
dtx_executor_start(QueryDesc *queryDesc, int eflags)
{
	PlannedStmt *stmt = queryDesc->plannedstmt;

	if (stmt->commandType != CMD_SELECT && stmt->resultRelations != NIL &&
		!(eflags & EXEC_FLAG_EXPLAIN_ONLY))
	{
		ListCell   *lc;

		foreach(lc, stmt->resultRelations)
		{
			RangeTblEntry *rte = rt_fetch(lfirst_int(lc), stmt->rtable);

			if (rte->relkind == RELKIND_FOREIGN_TABLE)
			{
				Oid			serverid = GetForeignServerIdByRelId(rte->relid);
				MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

				written_servers = list_append_unique_oid(written_servers, serverid);
				MemoryContextSwitchTo(old);
			}
		}
	}

	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/*
 * DtxFdwGuardWarn
 *		At the commit of a transaction with pg_dtx participants: a WARNING
 *		for each server written through foreign tables.
 */
void
DtxFdwGuardWarn(void)
{
	ListCell   *lc;

	foreach(lc, written_servers)
	{
		ForeignServer *server = GetForeignServer(lfirst_oid(lc));

		ereport(WARNING,
				(errmsg("writes through foreign tables of server \"%s\" are not part of the atomic commit",
						server->servername),
				 errdetail("The foreign-data wrapper \"%s\" commits them on its own, without two-phase commit.",
						   GetForeignDataWrapper(server->fdwid)->fdwname),
				 errhint("Write to that server with dtx.exec() to make the writes atomic with the rest.")));
	}
}

/*
 * DtxFdwGuardReset
 *		Forgets the transaction's foreign-table writes.  Never raises.
 */
void
DtxFdwGuardReset(void)
{
	/* the list lives in TopTransactionContext, which goes with the transaction */
	written_servers = NIL;
}
