/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  The resolver's launcher and its per-database background workers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_LAUNCHER_H
#define DTX_LAUNCHER_H

/* Most resolver workers running at once. */
#define DTX_MAX_RESOLVER_WORKERS	2
/* A database without pg_dtx is looked at again after this many intervals. */
#define DTX_NO_EXTENSION_RECHECK	6

extern void DtxLauncherInit(void);

#endif							/* DTX_LAUNCHER_H */
