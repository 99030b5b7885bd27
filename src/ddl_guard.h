/*-------------------------------------------------------------------------
 *
 * ddl_guard.h
 *	  Refuses DDL that would strand in-doubt transactions.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_DDL_GUARD_H
#define DTX_DDL_GUARD_H

extern void DtxDdlGuardInit(void);

#endif							/* DTX_DDL_GUARD_H */
