/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  The resolver's background workers and their shared memory.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_LAUNCHER_H
#define DTX_LAUNCHER_H

#include "access/transam.h"
#include "utils/relcache.h"

/* Most databases the launcher keeps track of at once (dropped ones are freed). */
#define DTX_MAX_DATABASES			64
/* Most resolver workers running at once. */
#define DTX_MAX_RESOLVER_WORKERS	2
/* Confirmed decisions waiting in shared memory to be deleted. */
#define DTX_CONFIRMED_SLOTS			16384
/* A database without pg_dtx is looked at again after this many intervals. */
#define DTX_NO_EXTENSION_RECHECK	6
/* How long DROP DATABASE and friends keep the resolver away, ms. */
#define DTX_DDL_PAUSE_MS			30000

extern int	dtx_resolver_interval;

extern void DtxLauncherInit(void);
extern void DtxResolverWake(void);
extern bool DtxConfirmedPush(FullTransactionId fxid);
extern int	DtxConfirmedDelete(Relation decisions);
extern uint32 DtxInDoubtGeneration(void);
extern void DtxRecordInDoubt(int n, uint32 generation);

#endif							/* DTX_LAUNCHER_H */
