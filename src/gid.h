/*-------------------------------------------------------------------------
 *
 * gid.h
 *	  Global transaction ids: the names of pg_dtx's prepared transactions.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_GID_H
#define DTX_GID_H

#include "access/transam.h"

#include "coordinator.h"

/* Every prepared transaction of pg_dtx has a name that starts so. */
#define DTX_GID_PREFIX "dtx_"

/* PostgreSQL's limit on a prepared transaction's name (GIDSIZE), NUL included. */
#define DTX_GID_MAXLEN 200

/* The parts of a global id. */
typedef struct DtxGid
{
	uint64		coordinator_id; /* coordinator that prepared it */
	Oid			dboid;			/* coordinator's database */
	FullTransactionId fxid;		/* coordinator's local transaction */
	Oid			serverid;		/* participant foreign server */
	Oid			userid;			/* local role whose user mapping was used */
	int			participant_no; /* participant's number in the transaction */
	uint64		nonce;			/* random, distinguishes two transactions
								 * that got the same xid across a crash;
								 * 0 in global ids of version 1.0 */
} DtxGid;

extern uint64 DtxNewNonce(void);
extern void DtxFormatGid(char *buf, const DtxGid *gid);
extern bool DtxParseGid(const char *str, DtxGid *gid);

#endif							/* DTX_GID_H */
