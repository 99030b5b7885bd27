/*-------------------------------------------------------------------------
 *
 * stmt_cache.c
 *	  Named prepared statements for the SQL that users send again and again
 *	  to a participant through one cached connection.
 *
 * A statement text (with its parameter types) seen a second time on a
 * connection is prepared there under a name of its own (dtx_stmt_<n>) in
 * the same pipeline that runs it; from then on only Bind and Execute are
 * sent, so that the participant neither parses nor analyses it again, and
 * may use a generic plan as for any prepared statement.  At most
 * dtx.statement_cache_size statements are prepared per connection, and as
 * many texts seen once are remembered; 0 turns the cache off.
 *
 * The cache lives as long as the connection.  Names are never reused, so a
 * statement the user deallocated (DEALLOCATE, DISCARD) is simply forgotten
 * and prepared again under a new name.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "common/hashfn.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "stmt_cache.h"

int			dtx_statement_cache_size = 100; /* dtx.statement_cache_size */

/* One statement text known on a connection. */
typedef struct DtxCachedStmt
{
	uint32		hash;			/* of sql and types */
	char	   *sql;
	int			nparams;
	Oid		   *types;
	bool		prepared;		/* exists on the server under name */
	bool		parsing;		/* its Parse is in a pipeline not yet read:
								 * later statements in the same pipeline use
								 * the name, and it is never evicted */
	char		name[NAMEDATALEN];
} DtxCachedStmt;

/*
 * DtxStmtCacheInit
 *		Registers the setting; called from _PG_init.
 */
void
DtxStmtCacheInit(void)
{
	DefineCustomIntVariable("dtx.statement_cache_size",
							"Statements prepared per connection to a participant for SQL sent repeatedly.",
							"A statement text is prepared on the participant the second time it is sent; 0 turns this off.",
							&dtx_statement_cache_size,
							100, 0, 10000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
}

/*
 * stmt_hash
 *		Hash of a statement text and its parameter types.
 */
static uint32
stmt_hash(const char *sql, int nparams, const Oid *types)
{
	uint32		h = hash_bytes((const unsigned char *) sql, strlen(sql));

	if (nparams > 0)
		h = hash_combine(h, hash_bytes((const unsigned char *) types,
									   nparams * sizeof(Oid)));
	return hash_combine(h, (uint32) nparams);
}

/*
 * DtxStmtCacheLookup
 *		What to send for sql with its parameter types on c: NULL to send it
 *		unnamed, else the cache entry; *prepare is set when the entry must be
 *		prepared first (its name is then fixed, and DtxStmtCachePrepared
 *		must be told whether the server accepted it).
 */
DtxCachedStmt *
DtxStmtCacheLookup(DtxStmtCache *sc, const char *sql, int nparams,
				   const Oid *types, bool *prepare)
{
	uint32		h;
	ListCell   *lc;
	DtxCachedStmt *e;
	DtxCachedStmt *oldest_once = NULL;
	int			nonce = 0;
	MemoryContext old;

	*prepare = false;
	if (dtx_statement_cache_size <= 0)
		return NULL;

	h = stmt_hash(sql, nparams, types);
	foreach(lc, sc->stmts)
	{
		e = lfirst(lc);
		if (e->hash == h && e->nparams == nparams && strcmp(e->sql, sql) == 0 &&
			(nparams == 0 || memcmp(e->types, types, nparams * sizeof(Oid)) == 0))
		{
			if (!e->prepared && !e->parsing)
			{
				if (sc->nprepared >= dtx_statement_cache_size)
					return NULL;
				snprintf(e->name, sizeof(e->name), "dtx_stmt_%u", ++sc->counter);
				e->parsing = true;
				*prepare = true;
			}
			return e;
		}
		if (!e->prepared && !e->parsing)
		{
			nonce++;
			if (oldest_once == NULL)
				oldest_once = e;
		}
	}

	/* first sighting: remember it, forgetting the oldest text seen once */
	if (sc->cxt == NULL)
		sc->cxt = AllocSetContextCreate(TopMemoryContext, "pg_dtx statements",
											ALLOCSET_SMALL_SIZES);
	if (nonce >= dtx_statement_cache_size && oldest_once != NULL)
	{
		sc->stmts = list_delete_ptr(sc->stmts, oldest_once);
		pfree(oldest_once->sql);
		if (oldest_once->types)
			pfree(oldest_once->types);
		pfree(oldest_once);
	}
	old = MemoryContextSwitchTo(sc->cxt);
	e = palloc0(sizeof(DtxCachedStmt));
	e->hash = h;
	e->sql = pstrdup(sql);
	e->nparams = nparams;
	if (nparams > 0)
	{
		e->types = palloc(nparams * sizeof(Oid));
		memcpy(e->types, types, nparams * sizeof(Oid));
	}
	sc->stmts = lappend(sc->stmts, e);
	MemoryContextSwitchTo(old);
	return NULL;
}

/*
 * DtxStmtCacheName
 *		The server-side name of a cache entry.
 */
const char *
DtxStmtCacheName(DtxCachedStmt *e)
{
	return e->name;
}

/*
 * DtxStmtCachePrepared
 *		Records whether the server accepted the preparation of e (its Parse
 *		is no longer in flight).
 */
void
DtxStmtCachePrepared(DtxStmtCache *sc, DtxCachedStmt *e, bool ok)
{
	e->parsing = false;
	if (ok && !e->prepared)
	{
		e->prepared = true;
		sc->nprepared++;
	}
}

/*
 * DtxStmtCacheReset
 *		Forgets every statement of c: after its connection closed, or after
 *		a statement that may have deallocated some.
 */
void
DtxStmtCacheReset(DtxStmtCache *sc)
{
	sc->stmts = NIL;
	sc->nprepared = 0;
	sc->generation++;
	if (sc->cxt != NULL)
	{
		MemoryContextDelete(sc->cxt);
		sc->cxt = NULL;
	}
}

/*
 * DtxStmtCacheGeneration
 *		Advanced by every DtxStmtCacheReset: an entry remembered from an
 *		earlier generation is gone.
 */
uint32
DtxStmtCacheGeneration(DtxStmtCache *sc)
{
	return sc->generation;
}
