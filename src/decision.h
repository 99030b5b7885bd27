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
#include "utils/relcache.h"

/* Confirmed decisions are deleted in batches of at most this many. */
#define DTX_CONFIRMED_BATCH 256

extern bool DtxDecisionInsert(FullTransactionId fxid, uint64 coordinator_id,
							  const Oid *servers, const Oid *userids, int nservers,
							  uint64 nonce);
extern void DtxDecisionConfirmed(FullTransactionId fxid);
extern int	DtxDecisionDeleteConfirmed(void);
extern void DtxDecisionEndXact(bool committed);
extern bool DtxDecisionDelete(Relation rel, FullTransactionId fxid);

#endif							/* DTX_DECISION_H */
