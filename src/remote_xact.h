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

#endif							/* DTX_REMOTE_XACT_H */
