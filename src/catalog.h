/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  Names and owner of the extension's own catalog objects, and the
 *	  context (owner, search_path, subtransaction) its internal work runs in.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_CATALOG_H
#define DTX_CATALOG_H

#define DTX_SCHEMA "dtx"
#define DTX_EXTENSION "pg_dtx"

extern Oid	DtxExtensionOwner(void);
extern Oid	DtxTableRelid(const char *relname, bool missing_ok);
extern int	DtxUseSafeSearchPath(void);
extern void DtxRestoreSearchPath(int level);

/* Running pg_dtx's own SQL as the extension's owner, with a safe search_path. */
typedef struct DtxOwnerScope
{
	Oid			save_userid;	/* the caller's user */
	int			save_sec_context;	/* and security context */
	int			guc_level;		/* GUC nest level of the search_path */
} DtxOwnerScope;

extern void DtxEnterOwnerScope(DtxOwnerScope *scope, Oid owner);
extern void DtxLeaveOwnerScope(DtxOwnerScope *scope);

/* Running a step that may fail without failing the caller. */
struct ErrorData;
extern struct ErrorData *DtxRunInSubtransaction(void (*fn) (void *arg), void *arg);

#endif							/* DTX_CATALOG_H */
