/*-------------------------------------------------------------------------
 *
 * deadlock.h
 *	  Detection of deadlocks that span servers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_DEADLOCK_H
#define DTX_DEADLOCK_H

extern int	dtx_deadlock_check_interval;

extern void DtxDeadlockInit(void);

#endif							/* DTX_DEADLOCK_H */
