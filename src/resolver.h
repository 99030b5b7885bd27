/*-------------------------------------------------------------------------
 *
 * resolver.h
 *	  Finishing in-doubt prepared transactions from the decision table.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_RESOLVER_H
#define DTX_RESOLVER_H

#include "nodes/pg_list.h"

/* Backoff of a participant that cannot be reached: doubled up to this cap. */
#define DTX_RESOLVER_MAX_BACKOFF_MS (5 * 60 * 1000)
/* Longest a pass waits for a connection to a participant. */
#define DTX_RESOLVER_CONNECT_TIMEOUT_MS (3 * 1000)
/* Longest any one remote operation of a pass may take. */
#define DTX_RESOLVER_OP_TIMEOUT_MS	(15 * 1000)

/* One thing a resolver pass did (or failed to do). */
typedef struct DtxResolveAction
{
	char	   *server;			/* participant server, NULL for local work */
	char	   *global_id;		/* prepared transaction, NULL if none */
	const char *action;			/* commit, rollback, list, forget */
	char	   *outcome;		/* done, already finished, failed: ... */
} DtxResolveAction;

extern int	dtx_in_doubt_warning_age;
extern int	dtx_resolver_interval;

extern void DtxResolverInit(void);

extern List *DtxResolvePass(bool in_worker, bool *skipped);

#endif							/* DTX_RESOLVER_H */
