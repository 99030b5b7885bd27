/*-------------------------------------------------------------------------
 *
 * deadlock.h
 *	  Detection of deadlocks that span servers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_DEADLOCK_H
#define DTX_DEADLOCK_H

#include "connection.h"

extern int	dtx_deadlock_check_interval;

extern void DtxDeadlockInit(void);
extern void DtxDeadlockCheck(DtxConnection *c);

#endif							/* DTX_DEADLOCK_H */
