/*-------------------------------------------------------------------------
 *
 * shared_state.h
 *	  pg_dtx's shared memory: one slot per database for the resolver
 *	  (wake-ups, the worker, what DROP DATABASE must know), and the ring of
 *	  decisions whose participants all confirmed COMMIT PREPARED.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_SHARED_STATE_H
#define DTX_SHARED_STATE_H

#include "access/transam.h"
#include "datatype/timestamp.h"
#include "storage/latch.h"

/* Most databases the launcher keeps track of at once (dropped ones are freed). */
#define DTX_MAX_DATABASES			64
/* Confirmed decisions waiting in shared memory to be deleted. */
#define DTX_CONFIRMED_SLOTS			16384

/* One database the resolver serves; read and written under DtxSharedLock. */
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

extern void DtxSharedStateInit(void);
extern bool DtxSharedStateAvailable(void);

/* the slots: only between DtxSharedLock and DtxSharedUnlock */
extern void DtxSharedLock(void);
extern void DtxSharedUnlock(void);
extern DtxDbSlot *DtxSlotFor(Oid dboid, bool create);
extern DtxDbSlot *DtxSlotAt(int i);
extern Latch *DtxLauncherLatch(void);
extern void DtxSetLauncherLatch(Latch *latch);

/* for backends and resolver passes; none of them raises */
extern void DtxResolverWake(void);
extern uint32 DtxInDoubtGeneration(void);
extern void DtxRecordInDoubt(int n, uint32 generation);
extern bool DtxConfirmedPush(FullTransactionId fxid);
extern int	DtxConfirmedTake(uint64 *fxids, int max);

#endif							/* DTX_SHARED_STATE_H */
