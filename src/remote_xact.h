/*-------------------------------------------------------------------------
 *
 * remote_xact.h
 *	  Remote transactions that follow the local one, and the commit
 *	  protocol that makes them atomic.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_REMOTE_XACT_H
#define DTX_REMOTE_XACT_H

#include "nodes/pg_list.h"

#include "connection.h"

/* settings */
extern int	dtx_commit_timeout;
extern int	dtx_prepare_timeout;
extern int	dtx_max_participants;

extern void DtxRemoteXactInit(void);
extern List *DtxRemoteXactPrelude(DtxConnection *c);
extern List *DtxCurrentParticipants(void);

/* a COMMIT PREPARED left in flight on a connection */
typedef enum DtxInFlightMode
{
	DTX_IN_FLIGHT_WAIT,			/* wait for the answer */
	DTX_IN_FLIGHT_POLL,			/* take it if it has arrived */
	DTX_IN_FLIGHT_DROP,			/* take it if arrived, else give up */
	DTX_IN_FLIGHT_READ			/* wait for it within dtx.commit_timeout
								 * (and, behind a quiet reader, within that
								 * reader's deadline), serving no interrupt */
} DtxInFlightMode;
extern void DtxFinishCommitInFlight(DtxConnection *c, DtxInFlightMode mode);

#endif							/* DTX_REMOTE_XACT_H */
