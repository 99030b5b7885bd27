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
 * The table is read and written as the extension's owner, through SPI, at
 * connection time only (never in the commit path).  Concurrent first uses
 * are harmless (ON CONFLICT DO NOTHING).
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

#include "catalog.h"
#include "decision.h"
#include "fdw_options.h"
#include "identity.h"

/* class of the advisory locks that serialise first uses of a server */
#define DTX_IDENTITY_LOCK_KEY 0x647479

/*
 * DtxCheckServerIdentity
 *		Compares the cluster (sysid) and database reached through serverid
 *		with the record made at first use; records them when there is none
 *		and the transaction may write.  Raises on a mismatch.
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
	else if (!XactReadOnly && !RecoveryInProgress() &&
			 DatumGetBool(DirectFunctionCall2(pg_try_advisory_xact_lock_int4,
											  Int32GetDatum(DTX_IDENTITY_LOCK_KEY),
											  Int32GetDatum((int32) serverid))))
	{
		/*
		 * Only one transaction records a server at a time; the others go
		 * on without waiting (waiting on each other's uncommitted rows,
		 * transactions that meet two new servers in opposite orders would
		 * deadlock).  A record lost to an abort is made at a later use.
		 */
		ret = SPI_execute_with_args("INSERT INTO dtx.server_identity "
									"(server_id, system_identifier, database) "
									"VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
									3, argtypes, args, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "could not record the identity of server \"%s\": %s",
				 servername, SPI_result_code_string(ret));
	}
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
