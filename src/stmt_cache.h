/*-------------------------------------------------------------------------
 *
 * stmt_cache.h
 *	  Named prepared statements for SQL sent repeatedly to a participant.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_STMT_CACHE_H
#define DTX_STMT_CACHE_H

#include "nodes/pg_list.h"

/*
 * The statement cache of one connection: a part of DtxConnection that only
 * stmt_cache.c reads and writes (connection.c hands it over).
 */
typedef struct DtxStmtCache
{
	List	   *stmts;			/* struct DtxCachedStmt *, in cxt */
	MemoryContext cxt;			/* NULL until the first statement */
	int			nprepared;		/* how many exist on the server */
	uint32		counter;		/* names dtx_stmt_<n> are never reused */
	uint32		generation;		/* advanced by every reset: a pipeline step
								 * of an earlier one has a stale entry */
} DtxStmtCache;

extern int	dtx_statement_cache_size;

extern void DtxStmtCacheInit(void);
extern struct DtxCachedStmt *DtxStmtCacheLookup(DtxStmtCache *sc, const char *sql,
												int nparams, const Oid *types,
												bool *prepare);
extern const char *DtxStmtCacheName(struct DtxCachedStmt *e);
extern void DtxStmtCachePrepared(DtxStmtCache *sc, struct DtxCachedStmt *e, bool ok);
extern void DtxStmtCacheReset(DtxStmtCache *sc);
extern uint32 DtxStmtCacheGeneration(DtxStmtCache *sc);

#endif							/* DTX_STMT_CACHE_H */
