/*-------------------------------------------------------------------------
 *
 * identity.c
 *	  Records which cluster and database each participant server reaches,
 *	  and refuses to go on when a server has been re-pointed elsewhere.
 *
 * Prepared transactions live in one cluster: a server whose host or port
 * was changed to reach another cluster could never finish what it prepared
 * before.  The first connection to a server records the remote system
 * identifier and database in dtx.server_identity; every later connection
 * compares.  An operator who re-points a server on purpose, with nothing in
 * doubt on it, clears the record with dtx.forget_server_identity().
 *
 * The table is read as the extension's owner, through SPI, at connection
 * time.  A first use is recorded later, where the transaction writes on the
 * coordinator anyway (DtxRecordFirstUses: with the decision of a two-phase
 * commit, or by a resolver pass), so that recording it never turns a
 * one-phase commit into a two-phase one.  Concurrent first uses are
 * harmless (ON CONFLICT DO NOTHING).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <inttypes.h>

#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "decision.h"
#include "fdw_options.h"
#include "identity.h"

/* class of the advisory locks that serialise first uses of a server */
#define DTX_IDENTITY_LOCK_KEY 0x647479

/* A first use met by the current transaction, not yet recorded. */
typedef struct FirstUse
{
	Oid			serverid;
	char	   *servername;
	uint64		sysid;
	char	   *dbname;
} FirstUse;

/* FirstUse *, in TopTransactionContext; forgotten at the end of it */
static List *first_uses = NIL;

/*
 * identity_xact_callback
 *		The first uses of a transaction that ends are forgotten: recorded by
 *		then, or at a later use.
 */
static void
identity_xact_callback(XactEvent event, void *arg)
{
	(void) arg;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
		first_uses = NIL;
}

/*
 * DtxIdentityInit
 *		Registers the callback that forgets first uses.  Called from
 *		_PG_init.
 */
void
DtxIdentityInit(void)
{
	RegisterXactCallback(identity_xact_callback, NULL);
}

/*
 * remember_first_use
 *		Remembers, for the rest of the transaction, that it reached serverid
 *		(servername) in cluster sysid, database dbname, with no record yet.
 */
static void
remember_first_use(Oid serverid, const char *servername, uint64 sysid,
				   const char *dbname)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	FirstUse   *u = palloc(sizeof(FirstUse));

	u->serverid = serverid;
	u->servername = pstrdup(servername);
	u->sysid = sysid;
	u->dbname = pstrdup(dbname);
	first_uses = lappend(first_uses, u);
	MemoryContextSwitchTo(old);
}

/*
 * DtxRecordFirstUses
 *		Records in dtx.server_identity the servers that the current
 *		transaction used first.  Called where the transaction writes on the
 *		coordinator anyway: before the decision of a two-phase commit, and at
 *		the end of a resolver pass.  Not from a transaction that would
 *		otherwise commit in one phase: the local write would make it a
 *		two-phase one, which a participant without prepared transactions
 *		cannot join.
 *
 * Only one transaction records a server at a time; the others go on
 * without waiting (waiting on each other's uncommitted rows, transactions
 * that meet two new servers in opposite orders would deadlock).  A record
 * lost to an abort is made at a later use.
 */
void
DtxRecordFirstUses(void)
{
	DtxOwnerScope scope;
	ListCell   *lc;
	bool		pushed;

	if (first_uses == NIL)
		return;
	/* at COMMIT there is no active snapshot (as for deferred triggers) */
	pushed = !ActiveSnapshotSet();
	if (pushed)
		PushActiveSnapshot(GetTransactionSnapshot());
	DtxEnterOwnerScope(&scope, InvalidOid);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	foreach(lc, first_uses)
	{
		FirstUse   *u = lfirst(lc);
		Oid			argtypes[3] = {OIDOID, INT8OID, NAMEOID};
		Datum		args[3];
		int			ret;

		if (!DatumGetBool(DirectFunctionCall2(pg_try_advisory_xact_lock_int4,
											  Int32GetDatum(DTX_IDENTITY_LOCK_KEY),
											  Int32GetDatum((int32) u->serverid))))
			continue;
		args[0] = ObjectIdGetDatum(u->serverid);
		args[1] = Int64GetDatum((int64) u->sysid);
		args[2] = CStringGetDatum(u->dbname);
		ret = SPI_execute_with_args("INSERT INTO dtx.server_identity "
									"(server_id, system_identifier, database) "
									"VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
									3, argtypes, args, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "could not record the identity of server \"%s\": %s",
				 u->servername, SPI_result_code_string(ret));
	}
	SPI_finish();
	DtxLeaveOwnerScope(&scope);
	if (pushed)
		PopActiveSnapshot();
	first_uses = NIL;
}

/*
 * DtxCheckServerIdentity
 *		Compares the cluster (sysid) and database reached through serverid
 *		with the record made at first use; when there is none and the
 *		transaction may write, remembers them for DtxRecordFirstUses.
 *		Raises on a mismatch.
 */
void
DtxCheckServerIdentity(Oid serverid, const char *servername,
					   uint64 sysid, const char *dbname)
{
	DtxOwnerScope scope;
	Oid			argtypes[3] = {OIDOID, INT8OID, NAMEOID};
	Datum		args[3];
	int			ret;
	bool		mismatch = false;
	bool		same_cluster = false;
	uint64		rec_sysid = 0;
	char	   *rec_db = NULL;

	args[0] = ObjectIdGetDatum(serverid);
	args[1] = Int64GetDatum((int64) sysid);
	args[2] = CStringGetDatum(dbname);

	DtxEnterOwnerScope(&scope, InvalidOid);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	ret = SPI_execute_with_args("SELECT system_identifier, database "
								"FROM dtx.server_identity WHERE server_id = $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read dtx.server_identity: %s", SPI_result_code_string(ret));

	if (SPI_processed > 0)
	{
		bool		isnull;

		rec_sysid = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 1, &isnull));
		rec_db = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		mismatch = (rec_sysid != sysid || strcmp(rec_db, dbname) != 0);
		same_cluster = (rec_sysid == sysid);
		if (mismatch)
			rec_db = MemoryContextStrdup(TopTransactionContext, rec_db);
	}
	else if (!XactReadOnly && !RecoveryInProgress())
		remember_first_use(serverid, servername, sysid, dbname);
	SPI_finish();
	DtxLeaveOwnerScope(&scope);

	if (mismatch)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("server \"%s\" now reaches another cluster or database", servername),
				 same_cluster ?
				 errdetail("It reached database \"%s\" when first used; it now reaches database \"%s\" of the same cluster.",
						   rec_db, dbname) :
				 errdetail("It reached database \"%s\" of the cluster with system identifier %" PRIu64
						   " when first used; it now reaches database \"%s\" of the cluster %" PRIu64 ".",
						   rec_db, rec_sysid, dbname, sysid),
				 errhint("If the server was re-pointed on purpose and nothing is in doubt on it, run SELECT dtx.forget_server_identity(%s).",
						 quote_literal_cstr(servername))));
}

/*
 * dtx_forget_server_identity
 *		SQL: dtx.forget_server_identity(server text) clears the record of the
 *		cluster a server reaches, so that the next use records it anew.
 *		Refused while transactions in doubt still need the server.
 */
PG_FUNCTION_INFO_V1(dtx_forget_server_identity);
Datum
dtx_forget_server_identity(PG_FUNCTION_ARGS)
{
	char	   *servername = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ForeignServer *server = GetForeignServerByName(servername, false);
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];
	int			ret;
	int			level;
	bool		needed;

	/* confirmed decisions are not in doubt: clear them first */
	(void) DtxDecisionRetireConfirmed();
	CommandCounterIncrement();

	args[0] = ObjectIdGetDatum(server->serverid);
	level = DtxUseSafeSearchPath();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* not read-only: a new snapshot, which sees the deletion above */
	ret = SPI_execute_with_args("SELECT 1 FROM dtx.decisions WHERE $1 = ANY (servers)",
								1, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read dtx.decisions: %s", SPI_result_code_string(ret));
	needed = SPI_processed > 0;
	if (!needed)
	{
		ret = SPI_execute_with_args("DELETE FROM dtx.server_identity WHERE server_id = $1",
									1, argtypes, args, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "could not update dtx.server_identity: %s", SPI_result_code_string(ret));
	}
	SPI_finish();
	DtxRestoreSearchPath(level);

	if (needed)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("server \"%s\" is still needed by transactions in doubt", servername),
				 errhint("Let the resolver finish them first (see dtx.in_doubt).")));
	PG_RETURN_VOID();
}
