/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The resolver's launcher, its per-database workers, and the shared
 *	  memory through which backends wake them.
 *
 * With shared_preload_libraries = 'pg_dtx', a launcher (connected to no
 * database) starts, every dtx.resolver_interval, a short-lived worker in each
 * database that allows connections.  The worker checks that pg_dtx is
 * installed there, runs one resolver pass in one transaction, and exits: no
 * connection to the database is held between passes, so DROP DATABASE and
 * CREATE DATABASE ... TEMPLATE keep working.  A utility hook also stops a
 * running worker of a database that such a command needs alone, and keeps
 * the launcher away from it for a while, once the command's own permission
 * checks are known to pass (so that nobody can do it with a command that
 * fails).
 *
 * A backend whose COMMIT PREPARED was not confirmed wakes the launcher at
 * once (DtxResolverWake).  A backend whose participants all confirmed puts
 * the transaction in a ring of confirmed decisions, which the next pass in
 * that database deletes from dtx.decisions.
 *
 * Shared state is protected by one spinlock; it is held for a few
 * instructions only, never across a call that can fail.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_tablespace.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "commands/tablespace.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "catalog.h"
#include "compat.h"
#include "decision.h"
#include "launcher.h"
#include "resolver.h"

/* One database the launcher serves. */
typedef struct DtxDbSlot
{
	Oid			dboid;			/* InvalidOid: free slot */
	bool		wake;			/* run a pass as soon as possible */
	bool		has_extension;	/* pg_dtx installed, as last seen */
	pid_t		worker_pid;		/* running worker, 0 if none */
	TimestampTz last_start;		/* when the last worker started */
	TimestampTz paused_until;	/* no worker before this (DDL) */

	/*
	 * What DROP DATABASE must know: how many transactions the last complete
	 * resolver pass left unfinished there, and whether something may have
	 * been left in doubt since (wakes moves on at each DtxResolverWake, a
	 * pass records the value it started with in wakes_seen).
	 */
	int			in_doubt;
	uint32		wakes;
	uint32		wakes_seen;
} DtxDbSlot;

/* A decision whose participants all confirmed COMMIT PREPARED. */
typedef struct DtxConfirmed
{
	Oid			dboid;
	uint64		fxid;
} DtxConfirmed;

typedef struct DtxResolverShmem
{
	slock_t		mutex;
	Latch	   *launcher_latch; /* NULL while no launcher runs */
	DtxDbSlot	dbs[DTX_MAX_DATABASES];
	int			nconfirmed;
	DtxConfirmed confirmed[DTX_CONFIRMED_SLOTS];
} DtxResolverShmem;

int			dtx_resolver_interval = 10000;	/* dtx.resolver_interval, ms */

static DtxResolverShmem *shared = NULL;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

PGDLLEXPORT void dtx_launcher_main(Datum arg);
PGDLLEXPORT void dtx_resolver_main(Datum arg);

static void dtx_shmem_request(void);
static void dtx_shmem_startup(void);
static void dtx_process_utility(PlannedStmt *pstmt, const char *queryString,
								bool readOnlyTree, ProcessUtilityContext context,
								ParamListInfo params, QueryEnvironment *queryEnv,
								DestReceiver *dest, QueryCompletion *qc);

/*
 * DtxLauncherInit
 *		Registers the resolver's setting and, when preloaded, its shared
 *		memory and launcher; installs the utility hook.
 */
void
DtxLauncherInit(void)
{
	BackgroundWorker worker;

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

	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = dtx_process_utility;

	if (!process_shared_preload_libraries_in_progress)
		return;

#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = dtx_shmem_request;
#else
	dtx_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = dtx_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	strlcpy(worker.bgw_library_name, "pg_dtx", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "dtx_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "pg_dtx resolver launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "pg_dtx resolver launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/*
 * dtx_shmem_request
 *		Asks for the resolver's shared memory.
 */
static void
dtx_shmem_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(MAXALIGN(sizeof(DtxResolverShmem)));
}

/*
 * dtx_shmem_startup
 *		Creates or attaches to the resolver's shared memory.
 */
static void
dtx_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("pg_dtx resolver", sizeof(DtxResolverShmem), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(DtxResolverShmem));
		SpinLockInit(&shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * slot_for
 *		The slot of dboid, created if missing and create; NULL if none.
 *		Call with the spinlock held.
 */
static DtxDbSlot *
slot_for(Oid dboid, bool create)
{
	int			i;
	DtxDbSlot  *free_slot = NULL;

	for (i = 0; i < DTX_MAX_DATABASES; i++)
	{
		if (shared->dbs[i].dboid == dboid)
			return &shared->dbs[i];
		if (shared->dbs[i].dboid == InvalidOid && free_slot == NULL)
			free_slot = &shared->dbs[i];
	}
	if (create && free_slot != NULL)
	{
		memset(free_slot, 0, sizeof(DtxDbSlot));
		free_slot->dboid = dboid;
		free_slot->has_extension = true;
	}
	return create ? free_slot : NULL;
}

/*
 * DtxResolverWake
 *		Asks for a resolver pass in this database as soon as possible.
 *		Never raises: called from the commit callback.
 */
void
DtxResolverWake(void)
{
	Latch	   *latch = NULL;
	DtxDbSlot  *slot;

	if (shared == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	slot = slot_for(MyDatabaseId, true);
	if (slot)
	{
		slot->wake = true;
		slot->has_extension = true;
		slot->wakes++;
	}
	latch = shared->launcher_latch;
	SpinLockRelease(&shared->mutex);
	if (latch)
		SetLatch(latch);
}

/*
 * DtxInDoubtGeneration
 *		The wake-up count of this database, read by a resolver pass as it
 *		starts (0 without shared memory).
 */
uint32
DtxInDoubtGeneration(void)
{
	DtxDbSlot  *slot;
	uint32		generation = 0;

	if (shared == NULL)
		return 0;
	SpinLockAcquire(&shared->mutex);
	slot = slot_for(MyDatabaseId, false);
	if (slot)
		generation = slot->wakes;
	SpinLockRelease(&shared->mutex);
	return generation;
}

/*
 * DtxRecordInDoubt
 *		A resolver pass that started at wake-up count generation ended with
 *		n transactions of this database unfinished.
 */
void
DtxRecordInDoubt(int n, uint32 generation)
{
	DtxDbSlot  *slot;

	if (shared == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	slot = slot_for(MyDatabaseId, true);
	if (slot)
	{
		slot->in_doubt = n;
		slot->wakes_seen = generation;
	}
	SpinLockRelease(&shared->mutex);
}

/*
 * DtxConfirmedPush
 *		Queues fxid's decision for deletion by the next pass; false when
 *		there is no shared memory or no room (the caller keeps it).  Never
 *		raises.
 */
bool
DtxConfirmedPush(FullTransactionId fxid)
{
	bool		done = false;

	if (shared == NULL)
		return false;
	SpinLockAcquire(&shared->mutex);
	if (shared->nconfirmed < DTX_CONFIRMED_SLOTS)
	{
		shared->confirmed[shared->nconfirmed].dboid = MyDatabaseId;
		shared->confirmed[shared->nconfirmed].fxid = U64FromFullTransactionId(fxid);
		shared->nconfirmed++;
		done = true;
	}
	SpinLockRelease(&shared->mutex);
	return done;
}

/*
 * DtxConfirmedDelete
 *		Deletes from decisions (opened RowExclusiveLock) the decisions of
 *		this database queued as confirmed; returns how many.  Those lost to
 *		an abort of the current transaction are found finished by a later
 *		pass.
 */
int
DtxConfirmedDelete(Relation decisions)
{
	uint64	   *mine;
	int			n = 0;
	int			i;
	int			j;
	int			deleted = 0;

	if (shared == NULL)
		return 0;
	mine = palloc(sizeof(uint64) * DTX_CONFIRMED_SLOTS);
	SpinLockAcquire(&shared->mutex);
	for (i = 0, j = 0; i < shared->nconfirmed; i++)
	{
		if (shared->confirmed[i].dboid == MyDatabaseId)
			mine[n++] = shared->confirmed[i].fxid;
		else
			shared->confirmed[j++] = shared->confirmed[i];
	}
	shared->nconfirmed = j;
	SpinLockRelease(&shared->mutex);

	for (i = 0; i < n; i++)
		if (DtxDecisionDelete(decisions, FullTransactionIdFromU64(mine[i])))
			deleted++;
	pfree(mine);
	return deleted;
}

/*
 * dtx_confirmed_pending
 *		SQL: dtx.confirmed_pending() returns the transactions of this
 *		database whose participants all confirmed, not yet deleted.
 */
PG_FUNCTION_INFO_V1(dtx_confirmed_pending);
Datum
dtx_confirmed_pending(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uint64	   *mine;
	int			n = 0;
	int			i;

	DtxInitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (shared == NULL)
		return (Datum) 0;
	mine = palloc(sizeof(uint64) * DTX_CONFIRMED_SLOTS);
	SpinLockAcquire(&shared->mutex);
	for (i = 0; i < shared->nconfirmed; i++)
		if (shared->confirmed[i].dboid == MyDatabaseId)
			mine[n++] = shared->confirmed[i].fxid;
	SpinLockRelease(&shared->mutex);
	for (i = 0; i < n; i++)
	{
		Datum		v = FullTransactionIdGetDatum(FullTransactionIdFromU64(mine[i]));
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &v, &isnull);
	}
	return (Datum) 0;
}

/*
 * dtx_resolver_enabled
 *		SQL: whether the background resolver is available (pg_dtx preloaded).
 */
PG_FUNCTION_INFO_V1(dtx_resolver_enabled);
Datum
dtx_resolver_enabled(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(shared != NULL);
}

/*
 * start_worker
 *		Starts a resolver worker for dboid; NULL handle if none could start.
 */
static BackgroundWorkerHandle *
start_worker(Oid dboid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "pg_dtx", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "dtx_resolver_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "pg_dtx resolver for database %u", dboid);
	strlcpy(worker.bgw_type, "pg_dtx resolver", BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		return NULL;
	return handle;
}

/*
 * list_databases
 *		The OIDs of the databases that allow connections and are not
 *		templates.  With existing, also the OIDs of all databases, read
 *		after known_before (when not NULL) was filled with the database of
 *		each slot: a slot's database exists from before it is read, so it is
 *		missing from existing only once it has been dropped.
 */
static List *
list_databases(List **existing, Oid *known_before)
{
	List	   *dbs = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext cxt = CurrentMemoryContext;

	if (known_before)
	{
		int			i;

		SpinLockAcquire(&shared->mutex);
		for (i = 0; i < DTX_MAX_DATABASES; i++)
			known_before[i] = shared->dbs[i].dboid;
		SpinLockRelease(&shared->mutex);
	}

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;

		old = MemoryContextSwitchTo(cxt);
		if (existing)
			*existing = lappend_oid(*existing, db->oid);
		if (db->datallowconn && !db->datistemplate)
			dbs = lappend_oid(dbs, db->oid);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dbs;
}

/* the launcher's handles of running workers, by slot index */
static BackgroundWorkerHandle *handles[DTX_MAX_DATABASES];

/*
 * free_dropped_slots
 *		Frees the slots of the databases of known (read before existing)
 *		that are not in existing: dropped since.  A slot whose worker still
 *		runs is freed in a later round.
 */
static void
free_dropped_slots(const Oid *known, List *existing)
{
	int			i;

	for (i = 0; i < DTX_MAX_DATABASES; i++)
	{
		DtxDbSlot  *slot = &shared->dbs[i];

		if (!OidIsValid(known[i]) || list_member_oid(existing, known[i]) ||
			handles[i] != NULL)
			continue;
		SpinLockAcquire(&shared->mutex);
		if (slot->dboid == known[i] && slot->worker_pid == 0)
		{
			memset(slot, 0, sizeof(DtxDbSlot));
			slot->dboid = InvalidOid;
		}
		SpinLockRelease(&shared->mutex);
	}
}

/*
 * launcher_round
 *		Frees the slots of dropped databases (see list_databases for
 *		existing and known), then starts the workers that are due: woken
 *		databases at once, the others every dtx.resolver_interval (databases
 *		without pg_dtx less often).
 */
static void
launcher_round(List *dbs, List *existing, const Oid *known)
{
	TimestampTz now = GetCurrentTimestamp();
	int			running = 0;
	int			i;
	ListCell   *lc;

	/* reap finished workers */
	for (i = 0; i < DTX_MAX_DATABASES; i++)
	{
		pid_t		pid;

		if (handles[i] == NULL)
			continue;
		if (GetBackgroundWorkerPid(handles[i], &pid) == BGWH_STOPPED)
		{
			pfree(handles[i]);
			handles[i] = NULL;
		}
		else
			running++;
	}

	free_dropped_slots(known, existing);

	foreach(lc, dbs)
	{
		Oid			dboid = lfirst_oid(lc);
		DtxDbSlot  *slot;
		bool		due;
		long		interval = dtx_resolver_interval;
		int			idx;

		if (running >= DTX_MAX_RESOLVER_WORKERS)
			break;
		SpinLockAcquire(&shared->mutex);
		slot = slot_for(dboid, true);
		if (slot == NULL)
		{
			SpinLockRelease(&shared->mutex);
			continue;
		}
		idx = slot - shared->dbs;
		if (!slot->has_extension)
			interval *= DTX_NO_EXTENSION_RECHECK;
		due = handles[idx] == NULL &&
			dtx_resolver_interval > 0 &&
			now >= slot->paused_until &&
			(slot->wake ||
			 TimestampDifferenceExceeds(slot->last_start, now, (int) Min(interval, INT_MAX)));
		if (due)
		{
			slot->wake = false;
			slot->last_start = now;
		}
		SpinLockRelease(&shared->mutex);

		if (due && (handles[idx] = start_worker(dboid)) != NULL)
			running++;
	}
}

/*
 * dtx_launcher_main
 *		The launcher's main loop.
 */
void
dtx_launcher_main(Datum arg)
{
	(void) arg;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("pg_dtx resolver launcher");

	SpinLockAcquire(&shared->mutex);
	shared->launcher_latch = MyLatch;
	SpinLockRelease(&shared->mutex);

	/*
	 * After a start or a crash, nothing is known of the databases that
	 * exist: each counts as possibly holding transactions in doubt until
	 * its first pass.
	 */
	{
		List	   *dbs = list_databases(NULL, NULL);
		ListCell   *lc;

		SpinLockAcquire(&shared->mutex);
		foreach(lc, dbs)
		{
			DtxDbSlot  *slot = slot_for(lfirst_oid(lc), true);

			if (slot && slot->wakes == slot->wakes_seen)
				slot->wakes++;
		}
		SpinLockRelease(&shared->mutex);
		list_free(dbs);
	}

	for (;;)
	{
		List	   *dbs;
		List	   *existing = NIL;
		Oid			known[DTX_MAX_DATABASES];
		long		timeout;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		dbs = list_databases(&existing, known);
		launcher_round(dbs, existing, known);
		list_free(dbs);
		list_free(existing);

		/* look again soon: woken slots, finished workers, the interval */
		timeout = dtx_resolver_interval > 0 ? Min(dtx_resolver_interval, 1000) : 1000;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * worker_exit
 *		A resolver worker leaves its slot.
 */
static void
worker_exit(int code, Datum arg)
{
	DtxDbSlot  *slot;

	(void) code;
	SpinLockAcquire(&shared->mutex);
	slot = slot_for(DatumGetObjectId(arg), false);
	if (slot && slot->worker_pid == MyProcPid)
		slot->worker_pid = 0;
	SpinLockRelease(&shared->mutex);
}

/*
 * dtx_resolver_main
 *		A resolver worker: one pass in database arg, then exit.
 */
void
dtx_resolver_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	DtxDbSlot  *slot;
	bool		installed;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	SpinLockAcquire(&shared->mutex);
	slot = slot_for(dboid, true);
	if (slot)
		slot->worker_pid = MyProcPid;
	SpinLockRelease(&shared->mutex);
	before_shmem_exit(worker_exit, ObjectIdGetDatum(dboid));

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("pg_dtx resolver");

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	installed = OidIsValid(get_extension_oid(DTX_EXTENSION, true));
	SpinLockAcquire(&shared->mutex);
	slot = slot_for(dboid, false);
	if (slot)
	{
		slot->has_extension = installed;
		if (!installed)
		{
			/* nothing of pg_dtx's can be in doubt here */
			slot->in_doubt = 0;
			slot->wakes_seen = slot->wakes;
		}
	}
	SpinLockRelease(&shared->mutex);

	if (installed)
	{
		bool		skipped;

		pgstat_report_activity(STATE_RUNNING, "pg_dtx resolver pass");
		(void) DtxResolvePass(true, &skipped);
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}

/*
 * utility_option
 *		The option name of ALTER DATABASE stmt, NULL if absent.
 */
static DefElem *
utility_option(AlterDatabaseStmt *stmt, const char *name)
{
	ListCell   *lc;

	foreach(lc, stmt->options)
	{
		DefElem    *def = lfirst(lc);

		if (strcmp(def->defname, name) == 0 && def->arg != NULL)
			return def;
	}
	return NULL;
}

/*
 * database_of_utility
 *		The database that stmt needs without other sessions (DROP DATABASE,
 *		CREATE DATABASE ... TEMPLATE, ALTER DATABASE ... RENAME / SET
 *		TABLESPACE), or InvalidOid.
 */
static Oid
database_of_utility(Node *stmt)
{
	const char *name = NULL;

	if (IsA(stmt, DropdbStmt))
		name = ((DropdbStmt *) stmt)->dbname;
	else if (IsA(stmt, CreatedbStmt))
	{
		ListCell   *lc;

		foreach(lc, ((CreatedbStmt *) stmt)->options)
		{
			DefElem    *def = lfirst(lc);

			if (strcmp(def->defname, "template") == 0 && def->arg != NULL)
				name = defGetString(def);
		}
	}
	else if (IsA(stmt, RenameStmt) && ((RenameStmt *) stmt)->renameType == OBJECT_DATABASE)
		name = ((RenameStmt *) stmt)->subname;
	else if (IsA(stmt, AlterDatabaseStmt) &&
			 utility_option((AlterDatabaseStmt *) stmt, "tablespace") != NULL)
		name = ((AlterDatabaseStmt *) stmt)->dbname;

	return name ? get_database_oid(name, true) : InvalidOid;
}

/*
 * owns_database
 *		Whether the current user owns dboid (or is a superuser).
 */
static bool
owns_database(Oid dboid)
{
#if PG_VERSION_NUM >= 160000
	return object_ownercheck(DatabaseRelationId, dboid, GetUserId());
#else
	return pg_database_ownercheck(dboid, GetUserId());
#endif
}

/*
 * may_create_databases
 *		Whether the current user has CREATEDB (or is a superuser).
 */
static bool
may_create_databases(void)
{
	HeapTuple	tup;
	bool		result;

	if (superuser())
		return true;
	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(GetUserId()));
	if (!HeapTupleIsValid(tup))
		return false;
	result = ((Form_pg_authid) GETSTRUCT(tup))->rolcreatedb;
	ReleaseSysCache(tup);
	return result;
}

/*
 * passes_permission_checks
 *		Whether the current user passes the permission checks that stmt, one
 *		of database_of_utility's commands on dboid, makes itself.  A command
 *		that is going to fail them must not keep the resolver away.
 */
static bool
passes_permission_checks(Node *stmt, Oid dboid)
{
	if (IsA(stmt, DropdbStmt))
		return owns_database(dboid);
	if (IsA(stmt, RenameStmt))
		return owns_database(dboid) && may_create_databases();
	if (IsA(stmt, AlterDatabaseStmt))
	{
		DefElem    *def = utility_option((AlterDatabaseStmt *) stmt, "tablespace");
		Oid			spcoid = get_tablespace_oid(defGetString(def), true);

		return owns_database(dboid) && OidIsValid(spcoid) &&
#if PG_VERSION_NUM >= 160000
			object_aclcheck(TableSpaceRelationId, spcoid, GetUserId(), ACL_CREATE) == ACLCHECK_OK;
#else
			pg_tablespace_aclcheck(spcoid, GetUserId(), ACL_CREATE) == ACLCHECK_OK;
#endif
	}
	if (IsA(stmt, CreatedbStmt))
	{
		ListCell   *lc;
		HeapTuple	tup;
		bool		is_template = false;

		if (!may_create_databases())
			return false;
		/* a new owner other than oneself needs membership in it */
		foreach(lc, ((CreatedbStmt *) stmt)->options)
		{
			DefElem    *def = lfirst(lc);

			if (strcmp(def->defname, "owner") == 0 && def->arg != NULL)
			{
				Oid			owner = get_role_oid(defGetString(def), true);

				if (!OidIsValid(owner) || !is_member_of_role(GetUserId(), owner))
					return false;
			}
		}
		/* a database that is not a template can be copied by its owner only */
		tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
		if (HeapTupleIsValid(tup))
		{
			is_template = ((Form_pg_database) GETSTRUCT(tup))->datistemplate;
			ReleaseSysCache(tup);
		}
		return is_template || owns_database(dboid);
	}
	return false;
}

/*
 * dtx_process_utility
 *		Before a command that needs a database without other sessions, once
 *		the current user is known to pass the command's own permission
 *		checks: keeps the resolver away from it and ends its running worker.
 */
static void
dtx_process_utility(PlannedStmt *pstmt, const char *queryString,
					bool readOnlyTree, ProcessUtilityContext context,
					ParamListInfo params, QueryEnvironment *queryEnv,
					DestReceiver *dest, QueryCompletion *qc)
{
	Oid			dboid;

	if (shared != NULL && OidIsValid(dboid = database_of_utility(pstmt->utilityStmt)) &&
		passes_permission_checks(pstmt->utilityStmt, dboid))
	{
		pid_t		pid = 0;
		DtxDbSlot  *slot;
		int			waited;
		int			in_doubt = 0;
		bool		unknown = false;
		Latch	   *wake_latch = NULL;

		SpinLockAcquire(&shared->mutex);
		slot = slot_for(dboid, false);
		if (slot)
		{
			in_doubt = slot->in_doubt;
			unknown = slot->wakes != slot->wakes_seen;
			if (IsA(pstmt->utilityStmt, DropdbStmt) && (in_doubt > 0 || unknown))
			{
				/* refused below: let the resolver finish them first, now */
				slot->wake = true;
				slot->paused_until = 0;
				wake_latch = shared->launcher_latch;
			}
			else
			{
				slot->paused_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
																 DTX_DDL_PAUSE_MS);
				pid = slot->worker_pid;
			}
		}
		SpinLockRelease(&shared->mutex);
		if (wake_latch)
			SetLatch(wake_latch);

		/*
		 * Dropping a database forgets the decisions of its transactions in
		 * doubt, and nothing would ever finish their prepared transactions
		 * on the participants: refused while the resolver knows of any, or
		 * cannot know.
		 */
		if (IsA(pstmt->utilityStmt, DropdbStmt) && (in_doubt > 0 || unknown))
		{
			const char *name = ((DropdbStmt *) pstmt->utilityStmt)->dbname;

			if (in_doubt > 0)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_IN_USE),
						 errmsg("database \"%s\" has %d distributed transaction(s) in doubt",
								name, in_doubt),
						 errdetail("Dropping it would leave their prepared transactions on the participants for good."),
						 errhint("Connect to \"%s\" and let the resolver finish them (dtx.resolve(), dtx.in_doubt), or finish them by hand with dtx.resolve_manually(); then drop it.",
								 name)));
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("database \"%s\" may have distributed transactions in doubt", name),
					 errdetail("No resolver pass has completed there since a transaction was left in doubt or since the server started."),
					 errhint("Wait for the resolver's next pass (dtx.resolver_interval), or connect to \"%s\" and run dtx.resolve(); then drop it.",
							 name)));
		}

		/* end the worker and wait for it to leave, a few seconds at most */
		if (pid != 0)
		{
			(void) kill(pid, SIGTERM);
			for (waited = 0; waited < 5000; waited += 10)
			{
				bool		gone;

				SpinLockAcquire(&shared->mutex);
				gone = (slot->dboid != dboid || slot->worker_pid != pid);
				SpinLockRelease(&shared->mutex);
				if (gone)
					break;
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 10, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
			}
		}
	}

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}
