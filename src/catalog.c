/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  The extension's own objects (its owner, its tables), and the context
 *	  its internal work runs in: as the extension's owner with a safe
 *	  search_path (DtxEnterOwnerScope), a step that may fail without failing
 *	  the caller (DtxRunInSubtransaction).
 *
 * Nothing is cached: a syscache lookup is cheap, and the extension may be
 * dropped and created again while a backend lives.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/resowner.h"

#include "catalog.h"

/*
 * DtxExtensionOwner
 *		The role that owns the pg_dtx extension; errors when it is not
 *		installed in this database.
 */
Oid
DtxExtensionOwner(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum(DTX_EXTENSION));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"%s\" is not installed in this database", DTX_EXTENSION),
				 errhint("Run CREATE EXTENSION %s.", DTX_EXTENSION)));
	return owner;
}

/*
 * DtxTableRelid
 *		OID of the table dtx.<relname>, InvalidOid if missing and missing_ok.
 */
Oid
DtxTableRelid(const char *relname, bool missing_ok)
{
	Oid			nsp = get_namespace_oid(DTX_SCHEMA, missing_ok);
	Oid			relid = InvalidOid;

	if (OidIsValid(nsp))
		relid = get_relname_relid(relname, nsp);
	if (!OidIsValid(relid) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table %s.%s of extension %s does not exist",
						DTX_SCHEMA, relname, DTX_EXTENSION),
				 errhint("Run CREATE EXTENSION %s.", DTX_EXTENSION)));
	return relid;
}

/*
 * DtxUseSafeSearchPath
 *		Sets search_path to pg_catalog, pg_temp until DtxRestoreSearchPath,
 *		so that pg_dtx's own SQL cannot be hijacked by objects in the
 *		caller's schemas; returns the GUC nest level to restore.  An error
 *		restores it with the (sub)transaction.
 */
int
DtxUseSafeSearchPath(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/*
 * DtxRestoreSearchPath
 *		Undoes DtxUseSafeSearchPath.
 */
void
DtxRestoreSearchPath(int level)
{
	AtEOXact_GUC(true, level);
}

/*
 * DtxEnterOwnerScope
 *		Switches to the extension's owner (owner, or looked up when
 *		InvalidOid) and a safe search_path, for pg_dtx's own SQL on its
 *		tables; DtxLeaveOwnerScope switches back.  An error undoes both
 *		with the (sub)transaction.
 */
void
DtxEnterOwnerScope(DtxOwnerScope *scope, Oid owner)
{
	if (!OidIsValid(owner))
		owner = DtxExtensionOwner();
	GetUserIdAndSecContext(&scope->save_userid, &scope->save_sec_context);
	SetUserIdAndSecContext(owner, scope->save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	scope->guc_level = DtxUseSafeSearchPath();
}

/*
 * DtxLeaveOwnerScope
 *		Undoes DtxEnterOwnerScope.
 */
void
DtxLeaveOwnerScope(DtxOwnerScope *scope)
{
	DtxRestoreSearchPath(scope->guc_level);
	SetUserIdAndSecContext(scope->save_userid, scope->save_sec_context);
}

/*
 * DtxRunInSubtransaction
 *		Runs fn(arg) in an internal subtransaction.  Returns NULL when it
 *		succeeded; when it raised, rolls the subtransaction back and returns
 *		the error (in the caller's memory context).  A cancel or
 *		statement_timeout (57014) is raised again: it ends the caller's work
 *		too.
 */
ErrorData *
DtxRunInSubtransaction(void (*fn) (void *arg), void *arg)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();

	if (edata != NULL && edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		ReThrowError(edata);
	return edata;
}
