/*-------------------------------------------------------------------------
 *
 * gid.c
 *	  Global transaction ids: their format, and the nonce they carry.
 *
 * A global id is the name under which a participant prepares its part of a
 * distributed transaction:
 *
 *		dtx_<coordinator id>_<database OID>_<64-bit xid>_<server OID>_<user OID>_<n>_<nonce>
 *
 * It says everything the resolver needs after a crash that left no decision
 * record: which coordinator and database own it (so that nobody else's
 * prepared transactions are touched), which local transaction decides its
 * fate, and which server and user mapping to use to finish it.  The longest
 * possible id is 4 + 20 + 10 + 20 + 10 + 10 + 10 + 19 + 6 separators = 109 bytes,
 * well within PostgreSQL's 200.
 *
 * The coordinator id, one per cluster, is owned by coordinator.c.  The
 * nonce (a random number of the transaction, kept with its decision) is
 * the last part; global ids of version 1.0 have none.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <inttypes.h>

#include "common/pg_prng.h"
#include "utils/builtins.h"

#include "gid.h"

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
 *		without _<nonce> when it is 0 (version 1.0's format).  Written digit
 *		by digit: twice per participant and transaction, and snprintf cost
 *		3,000 instructions a time.
 */
void
DtxFormatGid(char *buf, const DtxGid *gid)
{
	char	   *p = buf;

	/* the longest: the prefix, 4 numbers of 20 digits, 3 of 10, 6 '_' */
	StaticAssertStmt(sizeof(DTX_GID_PREFIX) + 4 * 20 + 3 * 10 + 6 <= DTX_GID_MAXLEN,
					 "DTX_GID_MAXLEN too small");
	Assert(gid->participant_no >= 0);

	memcpy(p, DTX_GID_PREFIX, sizeof(DTX_GID_PREFIX) - 1);
	p += sizeof(DTX_GID_PREFIX) - 1;
	p += pg_ulltoa_n(gid->coordinator_id, p);
	*p++ = '_';
	p += pg_ultoa_n(gid->dboid, p);
	*p++ = '_';
	p += pg_ulltoa_n(U64FromFullTransactionId(gid->fxid), p);
	*p++ = '_';
	p += pg_ultoa_n(gid->serverid, p);
	*p++ = '_';
	p += pg_ultoa_n(gid->userid, p);
	*p++ = '_';
	p += pg_ultoa_n((uint32) gid->participant_no, p);
	if (gid->nonce != 0)
	{
		*p++ = '_';
		p += pg_ulltoa_n(gid->nonce, p);
	}
	*p = '\0';
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
