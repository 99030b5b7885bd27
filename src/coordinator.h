/*-------------------------------------------------------------------------
 *
 * coordinator.h
 *	  This server's identity as a coordinator: the id its global ids carry,
 *	  and the hold that keeps a copy of another coordinator from acting.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_COORDINATOR_H
#define DTX_COORDINATOR_H

/* Files in the data directory (durable, cluster-wide, not WAL-logged). */
#define DTX_COORDINATOR_ID_FILE "pg_dtx_coordinator_id"
#define DTX_HOLD_FILE "pg_dtx_hold"

extern void DtxCoordinatorInit(void);
extern uint64 DtxCoordinatorId(void);
extern char *DtxCoordinatorHold(void);
extern uint64 DtxCoordinatorIdToAct(const char *what);

#endif							/* DTX_COORDINATOR_H */
