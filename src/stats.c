/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  Cumulative statistics of pg_dtx (dtx.stats, dtx.server_stats) and
 *	  what each backend is waiting for (dtx.activity), in shared memory.
 *
 * PostgreSQL 15 has one wait event for all extensions, so a backend
 * waiting on a participant also records here the phase it is in and the
 * server it waits for; from 17 each phase also has a wait event of its own
 * (DtxWaitEventInfo), registered when the server starts.  Counters are updated from the commit and abort
 * callbacks, so nothing here raises; everything is under one spinlock,
 * held for a few instructions.  Without shared_preload_libraries there is
 * no shared memory: the views are empty and the updates do nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "foreign/foreign.h"
#if PG_VERSION_NUM < 170000
#include "storage/backendid.h"
#endif
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "stats.h"

typedef struct DtxServerCounters
{
	Oid			dboid;			/* coordinator database */
	Oid			serverid;		/* participant server */
	int64		prepare_failures;
	int64		in_doubt;		/* COMMIT PREPARED left to the resolver */
	int64		resolver_commits;
	int64		resolver_rollbacks;
} DtxServerCounters;

typedef struct DtxActivity
{
	int			pid;			/* 0: slot unused */
	Oid			dboid;
	DtxPhase	phase;
	char		server[NAMEDATALEN];
	TimestampTz since;
} DtxActivity;

typedef struct DtxStatsShmem
{
	slock_t		mutex;
	TimestampTz reset_at;
	int64		two_phase;
	int64		one_phase;
	int64		read_only;
	int64		aborted;
	int64		prepare_failures;
	int64		in_doubt;
	int64		resolver_commits;
	int64		resolver_rollbacks;
	int64		prepare_us;		/* total time preparing */
	int64		prepare_max_us;
	int64		commit_us;		/* total time in COMMIT PREPARED */
	int64		commit_max_us;
	int			nservers;
	DtxServerCounters servers[DTX_STATS_MAX_SERVERS];
	int			nactivity;
	DtxActivity activity[FLEXIBLE_ARRAY_MEMBER];
} DtxStatsShmem;

static DtxStatsShmem *stats = NULL;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static const char *const phase_names[] = {
	"idle", "statement", "prepare", "commit", "commit prepared", "rollback", "resolve"
};

/* The phase this backend is in (backend-local, also without shared memory). */
static DtxPhase my_phase = DTX_PHASE_NONE;

#if PG_VERSION_NUM >= 170000
/*
 * 17+: pg_stat_activity's wait event of each phase (0: not registered).  The
 * resolver does not record a phase: its waits stay "Extension".
 */
static const char *const phase_wait_event_names[] = {
	NULL, "DtxRemoteStatement", "DtxPrepare", "DtxCommit", "DtxCommitPrepared",
	"DtxRollback", NULL
};
static uint32 phase_wait_events[lengthof(phase_wait_event_names)];
#endif

/*
 * stats_size
 *		Bytes of shared memory: the counters and one activity slot per
 *		backend.
 */
static Size
stats_size(void)
{
	return add_size(offsetof(DtxStatsShmem, activity),
					mul_size(sizeof(DtxActivity), MaxBackends));
}

static void
dtx_stats_shmem_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(MAXALIGN(stats_size()));
}

static void
dtx_stats_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	stats = ShmemInitStruct("pg_dtx stats", stats_size(), &found);
	if (!found)
	{
		memset(stats, 0, stats_size());
		SpinLockInit(&stats->mutex);
		stats->reset_at = GetCurrentTimestamp();
		stats->nactivity = MaxBackends;
	}
	LWLockRelease(AddinShmemInitLock);
#if PG_VERSION_NUM >= 170000
	/* 17+: named wait events, registered once; backends inherit the ids */
	for (int i = 1; i < (int) lengthof(phase_wait_event_names); i++)
		if (phase_wait_event_names[i] != NULL)
			phase_wait_events[i] = WaitEventExtensionNew(phase_wait_event_names[i]);
#endif
}

/*
 * DtxStatsInit
 *		Asks for the shared memory when preloaded.
 */
void
DtxStatsInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = dtx_stats_shmem_request;
#else
	dtx_stats_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = dtx_stats_shmem_startup;
}

/*
 * server_counters
 *		The counters of serverid in this database, created if there is
 *		room; NULL otherwise.  Spinlock held.
 */
static DtxServerCounters *
server_counters(Oid serverid)
{
	int			i;

	for (i = 0; i < stats->nservers; i++)
		if (stats->servers[i].serverid == serverid && stats->servers[i].dboid == MyDatabaseId)
			return &stats->servers[i];
	if (stats->nservers >= DTX_STATS_MAX_SERVERS)
		return NULL;
	i = stats->nservers++;
	memset(&stats->servers[i], 0, sizeof(DtxServerCounters));
	stats->servers[i].serverid = serverid;
	stats->servers[i].dboid = MyDatabaseId;
	return &stats->servers[i];
}

/*
 * DtxStatsCommit
 *		Counts a committed distributed transaction.
 */
void
DtxStatsCommit(DtxCommitKind kind)
{
	if (stats == NULL)
		return;
	SpinLockAcquire(&stats->mutex);
	if (kind == DTX_COMMIT_TWO_PHASE)
		stats->two_phase++;
	else if (kind == DTX_COMMIT_ONE_PHASE)
		stats->one_phase++;
	else
		stats->read_only++;
	SpinLockRelease(&stats->mutex);
}

/*
 * DtxStatsAbort
 *		Counts an aborted distributed transaction.
 */
void
DtxStatsAbort(void)
{
	if (stats == NULL)
		return;
	SpinLockAcquire(&stats->mutex);
	stats->aborted++;
	SpinLockRelease(&stats->mutex);
}

/*
 * DtxStatsPrepareFailure
 *		Counts a PREPARE that failed on serverid.
 */
void
DtxStatsPrepareFailure(Oid serverid)
{
	DtxServerCounters *s;

	if (stats == NULL)
		return;
	SpinLockAcquire(&stats->mutex);
	stats->prepare_failures++;
	if ((s = server_counters(serverid)) != NULL)
		s->prepare_failures++;
	SpinLockRelease(&stats->mutex);
}

/*
 * DtxStatsInDoubt
 *		Counts a COMMIT PREPARED that serverid did not confirm.
 */
void
DtxStatsInDoubt(Oid serverid)
{
	DtxServerCounters *s;

	if (stats == NULL)
		return;
	SpinLockAcquire(&stats->mutex);
	stats->in_doubt++;
	if ((s = server_counters(serverid)) != NULL)
		s->in_doubt++;
	SpinLockRelease(&stats->mutex);
}

/*
 * DtxStatsResolved
 *		Counts a prepared transaction finished by the resolver.
 */
void
DtxStatsResolved(Oid serverid, bool committed)
{
	DtxServerCounters *s;

	if (stats == NULL)
		return;
	SpinLockAcquire(&stats->mutex);
	if (committed)
		stats->resolver_commits++;
	else
		stats->resolver_rollbacks++;
	if ((s = server_counters(serverid)) != NULL)
	{
		if (committed)
			s->resolver_commits++;
		else
			s->resolver_rollbacks++;
	}
	SpinLockRelease(&stats->mutex);
}

/*
 * DtxStatsPhaseTime
 *		Adds the time since start to the prepare or commit totals.
 */
void
DtxStatsPhaseTime(DtxPhase phase, TimestampTz start)
{
	int64		us;

	if (stats == NULL)
		return;
	us = GetCurrentTimestamp() - start;
	SpinLockAcquire(&stats->mutex);
	if (phase == DTX_PHASE_PREPARE)
	{
		stats->prepare_us += us;
		stats->prepare_max_us = Max(stats->prepare_max_us, us);
	}
	else if (phase == DTX_PHASE_COMMIT_PREPARED)
	{
		stats->commit_us += us;
		stats->commit_max_us = Max(stats->commit_max_us, us);
	}
	SpinLockRelease(&stats->mutex);
}

/*
 * DtxSetPhase
 *		Records what this backend now waits for (DTX_PHASE_NONE: nothing).
 */
void
DtxSetPhase(DtxPhase phase, const char *servername)
{
	DtxActivity *a;

	my_phase = phase;
#if PG_VERSION_NUM >= 170000
	/* 17+: MyProcNumber counts from 0; auxiliary processes come last */
	if (stats == NULL || MyProcNumber == INVALID_PROC_NUMBER ||
		MyProcNumber >= stats->nactivity)
		return;
	a = &stats->activity[MyProcNumber];
#else
	if (stats == NULL || MyBackendId == InvalidBackendId ||
		MyBackendId > stats->nactivity)
		return;
	a = &stats->activity[MyBackendId - 1];
#endif
	SpinLockAcquire(&stats->mutex);
	a->pid = (phase == DTX_PHASE_NONE) ? 0 : MyProcPid;
	a->dboid = MyDatabaseId;
	a->phase = phase;
	if (servername)
		strlcpy(a->server, servername, NAMEDATALEN);
	else
		a->server[0] = '\0';
	a->since = GetCurrentTimestamp();
	SpinLockRelease(&stats->mutex);
}

/*
 * dtx_stats
 *		SQL: dtx.stats() returns the cumulative counters (one row).
 */
PG_FUNCTION_INFO_V1(dtx_stats);
Datum
dtx_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DtxStatsShmem copy;
	Datum		values[13];
	bool		nulls[13] = {0};

	DtxInitMaterializedSRF(fcinfo, 0);
	if (stats == NULL)
		return (Datum) 0;
	SpinLockAcquire(&stats->mutex);
	memcpy(&copy, stats, offsetof(DtxStatsShmem, nservers));
	SpinLockRelease(&stats->mutex);

	values[0] = Int64GetDatum(copy.two_phase);
	values[1] = Int64GetDatum(copy.one_phase);
	values[2] = Int64GetDatum(copy.read_only);
	values[3] = Int64GetDatum(copy.aborted);
	values[4] = Int64GetDatum(copy.prepare_failures);
	values[5] = Int64GetDatum(copy.in_doubt);
	values[6] = Int64GetDatum(copy.resolver_commits);
	values[7] = Int64GetDatum(copy.resolver_rollbacks);
	values[8] = Float8GetDatum(copy.prepare_us / 1000.0);
	values[9] = Float8GetDatum(copy.prepare_max_us / 1000.0);
	values[10] = Float8GetDatum(copy.commit_us / 1000.0);
	values[11] = Float8GetDatum(copy.commit_max_us / 1000.0);
	values[12] = TimestampTzGetDatum(copy.reset_at);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/*
 * dtx_server_stats
 *		SQL: dtx.server_stats() returns the counters of each participant
 *		server of this database.
 */
PG_FUNCTION_INFO_V1(dtx_server_stats);
Datum
dtx_server_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DtxServerCounters *copy;
	int			n = 0;
	int			i;

	DtxInitMaterializedSRF(fcinfo, 0);
	if (stats == NULL)
		return (Datum) 0;
	copy = palloc(sizeof(DtxServerCounters) * DTX_STATS_MAX_SERVERS);
	SpinLockAcquire(&stats->mutex);
	for (i = 0; i < stats->nservers; i++)
		if (stats->servers[i].dboid == MyDatabaseId)
			copy[n++] = stats->servers[i];
	SpinLockRelease(&stats->mutex);

	for (i = 0; i < n; i++)
	{
		Datum		values[5];
		bool		nulls[5] = {0};

		values[0] = ObjectIdGetDatum(copy[i].serverid);
		values[1] = Int64GetDatum(copy[i].prepare_failures);
		values[2] = Int64GetDatum(copy[i].in_doubt);
		values[3] = Int64GetDatum(copy[i].resolver_commits);
		values[4] = Int64GetDatum(copy[i].resolver_rollbacks);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * dtx_stats_reset
 *		SQL: dtx.stats_reset() zeroes every counter.
 */
PG_FUNCTION_INFO_V1(dtx_stats_reset);
Datum
dtx_stats_reset(PG_FUNCTION_ARGS)
{
	if (stats == NULL)
		PG_RETURN_VOID();
	SpinLockAcquire(&stats->mutex);
	memset(((char *) stats) + offsetof(DtxStatsShmem, two_phase), 0,
		   offsetof(DtxStatsShmem, nservers) - offsetof(DtxStatsShmem, two_phase));
	stats->nservers = 0;
	stats->reset_at = GetCurrentTimestamp();
	SpinLockRelease(&stats->mutex);
	PG_RETURN_VOID();
}

/*
 * dtx_activity
 *		SQL: dtx.activity() returns, for each backend waiting on a
 *		participant, its pid, phase, server and since when.
 */
PG_FUNCTION_INFO_V1(dtx_activity);
Datum
dtx_activity(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;

	DtxInitMaterializedSRF(fcinfo, 0);
	if (stats == NULL)
		return (Datum) 0;
	for (i = 0; i < stats->nactivity; i++)
	{
		DtxActivity a;
		Datum		values[5];
		bool		nulls[5] = {0};

		SpinLockAcquire(&stats->mutex);
		a = stats->activity[i];
		SpinLockRelease(&stats->mutex);
		if (a.pid == 0 || a.phase == DTX_PHASE_NONE)
			continue;
		values[0] = Int32GetDatum(a.pid);
		values[1] = ObjectIdGetDatum(a.dboid);
		values[2] = CStringGetTextDatum(phase_names[a.phase]);
		values[3] = CStringGetTextDatum(a.server);
		nulls[3] = (a.server[0] == '\0');
		values[4] = TimestampTzGetDatum(a.since);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * DtxWaitEventInfo
 *		The wait event a backend reports while it waits on a participant:
 *		from PostgreSQL 17, pg_dtx's own for the phase it is in (DtxPrepare,
 *		DtxCommitPrepared, DtxRemoteStatement, ...); else, and without
 *		shared_preload_libraries or a phase, PostgreSQL's Extension.  Never raises:
 *		called after the local commit.
 */
uint32
DtxWaitEventInfo(void)
{
#if PG_VERSION_NUM >= 170000
	if (my_phase > DTX_PHASE_NONE && my_phase < lengthof(phase_wait_events) &&
		phase_wait_events[my_phase] != 0)
		return phase_wait_events[my_phase];
#endif
	return PG_WAIT_EXTENSION;
}
