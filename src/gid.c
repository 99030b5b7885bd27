/*-------------------------------------------------------------------------
 *
 * gid.c
 *	  Global transaction ids and the coordinator id they carry.
 *
 * A global id is the name under which a participant prepares its part of a
 * distributed transaction:
 *
 *		dtx_<coordinator id>_<database OID>_<64-bit xid>_<server OID>_<user OID>_<n>
 *
 * It says everything the resolver needs after a crash that left no decision
 * record: which coordinator and database own it (so that nobody else's
 * prepared transactions are touched), which local transaction decides its
 * fate, and which server and user mapping to use to finish it.  The longest
 * possible id is 4 + 20 + 10 + 20 + 10 + 10 + 10 + 6 separators = 90 bytes,
 * well within PostgreSQL's 200.
 *
 * The coordinator id is the system identifier, unless an operator stored
 * another one in dtx.coordinator (a server cloned with pg_basebackup shares
 * its origin's system identifier and must not finish its transactions).  It
 * is read once per backend.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <inttypes.h>

#include "access/xlog.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "utils/builtins.h"

#include "catalog.h"
#include "gid.h"

static bool coordinator_id_valid = false;
static uint64 coordinator_id = 0;

/*
 * DtxCoordinatorId
 *		The id that this server's global ids carry; read once per backend.
 *
 * Must be called inside a transaction the first time.
 */
uint64
DtxCoordinatorId(void)
{
	DtxOwnerScope scope;
	int			ret;
	uint64		value;

	if (coordinator_id_valid)
		return coordinator_id;

	value = GetSystemIdentifier();

	DtxEnterOwnerScope(&scope, InvalidOid);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute("SELECT coordinator_id FROM dtx.coordinator", true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read dtx.coordinator: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			value = (uint64) DatumGetInt64(d);
	}
	SPI_finish();
	DtxLeaveOwnerScope(&scope);

	coordinator_id = value;
	coordinator_id_valid = true;
	return coordinator_id;
}

/*
 * dtx_coordinator_id_sql
 *		SQL: dtx.coordinator_id() returns this server's coordinator id.
 */
PG_FUNCTION_INFO_V1(dtx_coordinator_id_sql);
Datum
dtx_coordinator_id_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64((int64) DtxCoordinatorId());
}

/*
 * DtxNewNonce
 *		A random positive 63-bit number for the global ids and the decision
 *		of a new distributed transaction.
 *
 * A coordinator that crashes may hand an xid that was never made durable to
 * another transaction after restart.  The nonce tells the two apart: the
 * resolver commits a prepared transaction only if the decision of its xid
 * carries its nonce, which is why the xid need not be made durable before
 * PREPARE.
 */
uint64
DtxNewNonce(void)
{
	uint64		nonce;

	do
	{
		nonce = pg_prng_uint64(&pg_global_prng_state) & (uint64) PG_INT64_MAX;
	} while (nonce == 0);
	return nonce;
}

/*
 * DtxFormatGid
 *		Writes the global id of *gid into buf (DTX_GID_MAXLEN bytes):
 *		dtx_<coordinator>_<database>_<xid>_<server>_<user>_<n>_<nonce>, or
 *		without _<nonce> when it is 0 (version 1.0's format).
 */
void
DtxFormatGid(char *buf, const DtxGid *gid)
{
	if (gid->nonce == 0)
		snprintf(buf, DTX_GID_MAXLEN, DTX_GID_PREFIX "%" PRIu64 "_%u_%" PRIu64 "_%u_%u_%d",
				 gid->coordinator_id, gid->dboid,
				 U64FromFullTransactionId(gid->fxid),
				 gid->serverid, gid->userid, gid->participant_no);
	else
		snprintf(buf, DTX_GID_MAXLEN, DTX_GID_PREFIX "%" PRIu64 "_%u_%" PRIu64 "_%u_%u_%d_%" PRIu64,
				 gid->coordinator_id, gid->dboid,
				 U64FromFullTransactionId(gid->fxid),
				 gid->serverid, gid->userid, gid->participant_no, gid->nonce);
}

/*
 * DtxParseGid
 *		Splits a global id into *gid; false when str is not one of pg_dtx's.
 */
bool
DtxParseGid(const char *str, DtxGid *gid)
{
	uint64		coord;
	uint64		xid;
	unsigned int db;
	unsigned int server;
	unsigned int user;
	int			n;
	uint64		nonce = 0;
	int			consumed = 0;
	const char *rest;

	if (strncmp(str, DTX_GID_PREFIX, strlen(DTX_GID_PREFIX)) != 0)
		return false;
	if (sscanf(str + strlen(DTX_GID_PREFIX), "%" SCNu64 "_%u_%" SCNu64 "_%u_%u_%d%n",
			   &coord, &db, &xid, &server, &user, &n, &consumed) != 6)
		return false;
	rest = str + strlen(DTX_GID_PREFIX) + consumed;
	if (*rest == '_')
	{
		consumed = 0;
		if (sscanf(rest + 1, "%" SCNu64 "%n", &nonce, &consumed) != 1 || nonce == 0 ||
			!isdigit((unsigned char) rest[1]))
			return false;
		rest += 1 + consumed;
	}
	if (*rest != '\0')
		return false;

	gid->coordinator_id = coord;
	gid->dboid = db;
	gid->fxid = FullTransactionIdFromU64(xid);
	gid->serverid = server;
	gid->userid = user;
	gid->participant_no = n;
	gid->nonce = nonce;
	return true;
}

/*
 * dtx_set_coordinator_id
 *		SQL: dtx.set_coordinator_id(new_id) gives this server another
 *		coordinator id (NULL: back to the system identifier).  For a server
 *		cloned from a coordinator (pg_basebackup, point-in-time restore),
 *		whose resolver must never finish its origin's transactions.  A
 *		promoted standby keeps its id.  Superuser only.
 */
PG_FUNCTION_INFO_V1(dtx_set_coordinator_id);
Datum
dtx_set_coordinator_id(PG_FUNCTION_ARGS)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1];
	int			ret;
	int			level;

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a superuser can change the coordinator id")));
	level = DtxUseSafeSearchPath();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute("DELETE FROM dtx.coordinator", false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not update dtx.coordinator");
	if (!PG_ARGISNULL(0))
	{
		args[0] = PG_GETARG_DATUM(0);
		ret = SPI_execute_with_args("INSERT INTO dtx.coordinator (coordinator_id) VALUES ($1)",
									1, argtypes, args, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "could not update dtx.coordinator");
	}
	SPI_finish();
	DtxRestoreSearchPath(level);
	coordinator_id_valid = false;
	ereport(NOTICE,
			(errmsg("the coordinator id of this server is now %s",
					PG_ARGISNULL(0) ? "its system identifier" : "the given one"),
			 errhint("Sessions that used pg_dtx before keep the old id until they reconnect: restart the server.")));
	PG_RETURN_VOID();
}
