/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The resolver's launcher and its per-database workers.
 *
 * With shared_preload_libraries = 'pg_dtx', a launcher (connected to no
 * database) starts, every dtx.resolver_interval, a short-lived worker in each
 * database that allows connections.  The worker checks that pg_dtx is
 * installed there, runs one resolver pass in one transaction, and exits: no
 * connection to the database is held between passes, so DROP DATABASE and
 * CREATE DATABASE ... TEMPLATE keep working (the DDL guard keeps the
 * launcher away from a database such a command needs alone).  A backend
 * whose COMMIT PREPARED was not confirmed wakes the launcher at once.
 *
 * The state it works on (a slot per database) is in shared memory, owned by
 * shared_state.c; the launcher frees the slots of dropped databases.
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
#include "catalog/pg_database.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "launcher.h"
#include "resolver.h"
#include "shared_state.h"

PGDLLEXPORT void dtx_launcher_main(Datum arg);
PGDLLEXPORT void dtx_resolver_main(Datum arg);


/*
 * DtxLauncherInit
 *		Registers the launcher, when preloaded.
 */
void
DtxLauncherInit(void)
{
	BackgroundWorker worker;

	if (!process_shared_preload_libraries_in_progress)
		return;

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

		DtxSharedLock();
		for (i = 0; i < DTX_MAX_DATABASES; i++)
			known_before[i] = DtxSlotAt(i)->dboid;
		DtxSharedUnlock();
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
		DtxDbSlot  *slot = DtxSlotAt(i);

		if (!OidIsValid(known[i]) || list_member_oid(existing, known[i]) ||
			handles[i] != NULL)
			continue;
		DtxSharedLock();
		if (slot->dboid == known[i] && slot->worker_pid == 0)
		{
			memset(slot, 0, sizeof(DtxDbSlot));
			slot->dboid = InvalidOid;
		}
		DtxSharedUnlock();
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
		DtxSharedLock();
		slot = DtxSlotFor(dboid, true);
		if (slot == NULL)
		{
			DtxSharedUnlock();
			continue;
		}
		idx = slot - DtxSlotAt(0);
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
		DtxSharedUnlock();

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

	DtxSetLauncherLatch(MyLatch);

	/*
	 * After a start or a crash, nothing is known of the databases that
	 * exist: each counts as possibly holding transactions in doubt until
	 * its first pass.
	 */
	{
		List	   *dbs = list_databases(NULL, NULL);
		ListCell   *lc;

		DtxSharedLock();
		foreach(lc, dbs)
		{
			DtxDbSlot  *slot = DtxSlotFor(lfirst_oid(lc), true);

			if (slot && slot->wakes == slot->wakes_seen)
				slot->wakes++;
		}
		DtxSharedUnlock();
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
	DtxSharedLock();
	slot = DtxSlotFor(DatumGetObjectId(arg), false);
	if (slot && slot->worker_pid == MyProcPid)
		slot->worker_pid = 0;
	DtxSharedUnlock();
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

	DtxSharedLock();
	slot = DtxSlotFor(dboid, true);
	if (slot)
		slot->worker_pid = MyProcPid;
	DtxSharedUnlock();
	before_shmem_exit(worker_exit, ObjectIdGetDatum(dboid));

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("pg_dtx resolver");

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	installed = OidIsValid(get_extension_oid(DTX_EXTENSION, true));
	DtxSharedLock();
	slot = DtxSlotFor(dboid, false);
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
	DtxSharedUnlock();

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
