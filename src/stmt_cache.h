/*-------------------------------------------------------------------------
 *
 * stmt_cache.h
 *	  Named prepared statements for SQL sent repeatedly to a participant.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_STMT_CACHE_H
#define DTX_STMT_CACHE_H

#include "connection.h"

extern int	dtx_statement_cache_size;

extern void DtxStmtCacheInit(void);
extern struct DtxCachedStmt *DtxStmtCacheLookup(DtxConnection *c, const char *sql,
												int nparams, const Oid *types,
												bool *prepare);
extern const char *DtxStmtCacheName(struct DtxCachedStmt *e);
extern void DtxStmtCachePrepared(DtxConnection *c, struct DtxCachedStmt *e, bool ok);
extern void DtxStmtCacheReset(DtxConnection *c);

#endif							/* DTX_STMT_CACHE_H */
