/*-------------------------------------------------------------------------
 *
 * stats.h
 *	  Cumulative statistics and per-backend activity of pg_dtx, in shared
 *	  memory.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_STATS_H
#define DTX_STATS_H

#include "datatype/timestamp.h"

/* Most participant servers with their own counters. */
#define DTX_STATS_MAX_SERVERS 256

/* What a commit did. */
typedef enum DtxCommitKind
{
	DTX_COMMIT_TWO_PHASE,
	DTX_COMMIT_ONE_PHASE,
	DTX_COMMIT_READ_ONLY
} DtxCommitKind;

/* What a backend is waiting for, in dtx.activity. */
typedef enum DtxPhase
{
	DTX_PHASE_NONE = 0,
	DTX_PHASE_STATEMENT,
	DTX_PHASE_PREPARE,
	DTX_PHASE_COMMIT,
	DTX_PHASE_COMMIT_PREPARED,
	DTX_PHASE_ROLLBACK,
	DTX_PHASE_RESOLVE
} DtxPhase;

extern void DtxStatsInit(void);
extern void DtxStatsCommit(DtxCommitKind kind);
extern void DtxStatsAbort(void);
extern void DtxStatsPrepareFailure(Oid serverid);
extern void DtxStatsInDoubt(Oid serverid);
extern void DtxStatsResolved(Oid serverid, bool committed);
extern void DtxStatsPhaseTime(DtxPhase phase, TimestampTz start);
extern void DtxSetPhase(DtxPhase phase, const char *servername);
extern uint32 DtxWaitEventInfo(void);

#endif							/* DTX_STATS_H */
