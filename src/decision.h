/*-------------------------------------------------------------------------
 *
 * decision.h
 *	  The commit decisions of distributed transactions (dtx.decisions).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_DECISION_H
#define DTX_DECISION_H

#include "access/transam.h"
#include "access/xlogdefs.h"
#include "utils/relcache.h"

/* columns of dtx.decisions (a 1.0 table has no nonce) */
#define Natts_dtx_decisions				6
#define Anum_dtx_decisions_xid			1
#define Anum_dtx_decisions_coordinator	2
#define Anum_dtx_decisions_servers		3
#define Anum_dtx_decisions_userids		4
#define Anum_dtx_decisions_created		5
#define Anum_dtx_decisions_nonce		6

/* Confirmed decisions are deleted in batches of at most this many. */
#define DTX_CONFIRMED_BATCH 256

/*
 * A backend that remembers confirmed decisions itself (no room in shared
 * memory) deletes them once it has this many, with one index scan.
 */
#define DTX_RETIRE_BATCH 32

extern bool DtxDecisionInsert(FullTransactionId fxid, uint64 coordinator_id,
							  const Oid *servers, const Oid *userids, int nservers,
							  uint64 nonce);
extern void DtxDecisionConfirmed(FullTransactionId fxid);
extern int	DtxDecisionDeleteConfirmed(bool all);
extern int	DtxDecisionRetireConfirmed(void);
extern void DtxDecisionEndXact(bool committed);
extern bool DtxDecisionDelete(Relation rel, FullTransactionId fxid);
extern void DtxDecisionRequireSyncRep(void);
extern bool DtxDecisionReplicated(XLogRecPtr lsn);
extern void DtxDecisionsWaitReplicated(void);

#endif							/* DTX_DECISION_H */
