/*-------------------------------------------------------------------------
 *
 * shared_state.c
 *	  pg_dtx's shared memory: one slot per database for the resolver, and
 *	  the ring of decisions whose participants all confirmed COMMIT
 *	  PREPARED.
 *
 * Backends wake the resolver of their database through its slot
 * (DtxResolverWake) and queue confirmed decisions for deletion
 * (DtxConfirmedPush); resolver passes record how many transactions they left
 * in doubt (DtxRecordInDoubt), which DROP DATABASE reads; the launcher and
 * the DDL guard read and write the slots directly.  Without
 * shared_preload_libraries there is no shared memory: every function here
 * then does nothing (DtxSharedStateAvailable is false).
 *
 * Locking: one spinlock, held for a few instructions only, never across a
 * call that can fail; DtxSharedLock / DtxSharedUnlock for the callers that
 * work on slots.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/xid8.h"

#include "compat.h"
#include "shared_state.h"

/* A decision whose participants all confirmed COMMIT PREPARED. */
typedef struct DtxConfirmed
{
	Oid			dboid;
	uint64		fxid;
} DtxConfirmed;

typedef struct DtxSharedState
{
	slock_t		mutex;
	Latch	   *launcher_latch; /* NULL while no launcher runs */
	DtxDbSlot	dbs[DTX_MAX_DATABASES];
	int			nconfirmed;
	DtxConfirmed confirmed[DTX_CONFIRMED_SLOTS];
} DtxSharedState;

static DtxSharedState *shared = NULL;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void shared_state_request(void);
static void shared_state_startup(void);

/*
 * DtxSharedStateInit
 *		Asks for the shared memory, when preloaded.  Called from _PG_init.
 */
void
DtxSharedStateInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shared_state_request;
#else
	shared_state_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shared_state_startup;
}

/*
 * shared_state_request
 *		Asks for the shared memory's space.
 */
static void
shared_state_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(MAXALIGN(sizeof(DtxSharedState)));
}

/*
 * shared_state_startup
 *		Creates or attaches to the shared memory.
 */
static void
shared_state_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("pg_dtx resolver", sizeof(DtxSharedState), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(DtxSharedState));
		SpinLockInit(&shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * DtxSharedStateAvailable
 *		Whether there is shared memory (pg_dtx preloaded).
 */
bool
DtxSharedStateAvailable(void)
{
	return shared != NULL;
}

/*
 * DtxSharedLock
 *		Takes the spinlock of the slots (shared memory must exist).
 */
void
DtxSharedLock(void)
{
	SpinLockAcquire(&shared->mutex);
}

/*
 * DtxSharedUnlock
 *		Releases the spinlock of the slots.
 */
void
DtxSharedUnlock(void)
{
	SpinLockRelease(&shared->mutex);
}

/*
 * DtxSlotFor
 *		The slot of dboid, taken if missing and create; NULL if none.  Call
 *		with the lock held.
 */
DtxDbSlot *
DtxSlotFor(Oid dboid, bool create)
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
 * DtxSlotAt
 *		Slot number i (0 .. DTX_MAX_DATABASES - 1), free or not.  Call with
 *		the lock held.
 */
DtxDbSlot *
DtxSlotAt(int i)
{
	Assert(i >= 0 && i < DTX_MAX_DATABASES);
	return &shared->dbs[i];
}

/*
 * DtxLauncherLatch
 *		The running launcher's latch, NULL if none.  Call with the lock held.
 */
Latch *
DtxLauncherLatch(void)
{
	return shared->launcher_latch;
}

/*
 * DtxSetLauncherLatch
 *		The launcher announces its latch.
 */
void
DtxSetLauncherLatch(Latch *latch)
{
	SpinLockAcquire(&shared->mutex);
	shared->launcher_latch = latch;
	SpinLockRelease(&shared->mutex);
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
	slot = DtxSlotFor(MyDatabaseId, true);
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
	slot = DtxSlotFor(MyDatabaseId, false);
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
	slot = DtxSlotFor(MyDatabaseId, true);
	if (slot)
	{
		slot->in_doubt = n;
		slot->wakes_seen = generation;
	}
	SpinLockRelease(&shared->mutex);
}

/*
 * DtxConfirmedPush
 *		Queues fxid's decision (this database's) for deletion; false when
 *		there is no shared memory or no room.  Never raises.
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
 * confirmed_of_database
 *		Copies into fxids (room for max) the queued confirmed decisions of
 *		this database, removing them from the ring when take; returns how
 *		many.
 */
static int
confirmed_of_database(uint64 *fxids, int max, bool take)
{
	int			n = 0;
	int			i;
	int			j;

	if (shared == NULL)
		return 0;
	SpinLockAcquire(&shared->mutex);
	for (i = 0, j = 0; i < shared->nconfirmed; i++)
	{
		if (shared->confirmed[i].dboid == MyDatabaseId && n < max)
		{
			fxids[n++] = shared->confirmed[i].fxid;
			if (take)
				continue;
		}
		shared->confirmed[j++] = shared->confirmed[i];
	}
	shared->nconfirmed = j;
	SpinLockRelease(&shared->mutex);
	return n;
}

/*
 * DtxConfirmedTake
 *		Takes out of the ring (at most max of) this database's confirmed
 *		decisions, into fxids; returns how many.  The caller deletes them:
 *		those lost to an abort are found finished by a later pass.
 */
int
DtxConfirmedTake(uint64 *fxids, int max)
{
	return confirmed_of_database(fxids, max, true);
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
	int			n;
	int			i;

	DtxInitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	mine = palloc(sizeof(uint64) * DTX_CONFIRMED_SLOTS);
	n = confirmed_of_database(mine, DTX_CONFIRMED_SLOTS, false);
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
