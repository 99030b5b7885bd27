/*-------------------------------------------------------------------------
 *
 * fdw_guard.h
 *	  Warns about writes through postgres_fdw foreign tables, which are not
 *	  part of pg_dtx's atomic commit.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_FDW_GUARD_H
#define DTX_FDW_GUARD_H

extern void DtxFdwGuardInit(void);
extern void DtxFdwGuardWarn(void);
extern void DtxFdwGuardReset(void);

#endif							/* DTX_FDW_GUARD_H */
