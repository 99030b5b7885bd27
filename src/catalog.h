/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  Names and owner of the extension's own catalog objects.
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

#endif							/* DTX_CATALOG_H */
