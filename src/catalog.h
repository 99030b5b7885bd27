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

#endif							/* DTX_CATALOG_H */
