/*-------------------------------------------------------------------------
 *
 * connection.h
 *	  The backend's cache of connections to participant servers, and the
 *	  interruptible libpq primitives that every remote round trip uses.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_CONNECTION_H
#define DTX_CONNECTION_H

#include "libpq-fe.h"
#include "datatype/timestamp.h"
#include "access/transam.h"
#include "nodes/pg_list.h"

#include "gid.h"
#include "stmt_cache.h"

/* Where a participant's remote transaction stands. */
typedef enum DtxRemoteState
{
	DTX_REMOTE_IDLE = 0,		/* no remote transaction open */
	DTX_REMOTE_IN_XACT,			/* BEGIN sent with a statement */
	DTX_REMOTE_PREPARING,		/* PREPARE TRANSACTION sent, answer pending */
	DTX_REMOTE_PREPARED,		/* prepared under ->gid */
	DTX_REMOTE_COMMITTING		/* COMMIT or COMMIT PREPARED sent */
} DtxRemoteState;

/*
 * The remote transaction that rides on a connection and follows the local
 * one.  Owned by remote_xact.c (remote_exec.c records what a statement did
 * in wrote, selects_only and needs_prepare); the transport reads depth and
 * state, and resets them when a connection closes.
 */
typedef struct DtxRemoteXact
{
	int			depth;			/* 0 none, 1 top level, n: n-1 savepoints */
	DtxRemoteState state;		/* see above */
	bool		wrote;			/* may have written: prepare it, when in doubt */
	bool		selects_only;	/* ran only SELECT-tagged statements */
	bool		needs_prepare;	/* holds something that must last until
								 * COMMIT PREPARED (e.g. locks) */
	bool		probed;			/* wrote is known from the read-only probe
								 * that followed its last statement: no
								 * probe at commit */
	bool		abort_required; /* local transaction may not commit */
	List	   *pending_cmds;	/* commands to send before the next one
								 * (savepoint releases), palloc'd in
								 * TopMemoryContext */
	int			participant_no; /* order of first use in the transaction */
	char		gid[DTX_GID_MAXLEN];	/* global id once preparing */
	FullTransactionId gid_fxid;	/* the local transaction of gid */
	bool		commit_in_flight;	/* COMMIT PREPARED of commit_gid sent
									 * after an earlier transaction, answer
									 * not read (dtx.synchronous_commit_prepared
									 * off) */
	char		commit_gid[DTX_GID_MAXLEN];
	FullTransactionId commit_fxid;	/* the local transaction of commit_gid */
} DtxRemoteXact;

/* A connection attempt of the resolver's (owned by connection.c). */
typedef struct DtxConnectAttempt
{
	PGconn	   *conn;			/* not yet finished; NULL when none */
	PostgresPollingStatusType status;	/* last PQconnectPoll */
	bool		done;			/* returned by DtxConnectStandaloneWaitAny */
	TimestampTz deadline;		/* the attempt must be done by then */
	int			timeout_ms;		/* the bound, for messages */
} DtxConnectAttempt;

/*
 * One segment of commands sent on a connection in libpq's pipeline mode and
 * not yet read: the queued commands before a statement (BEGIN, SAVEPOINT,
 * RELEASE), a Parse of the statement cache, the statement, and a sync.
 * dtx.send leaves such segments behind; the next statement on the
 * connection, dtx.wait and the commit read them, oldest first.
 */
typedef struct DtxPipelineStep
{
	char	   *sql;			/* the statement, for messages */
	List	   *prelude;		/* commands sent before it (char *) */
	struct DtxCachedStmt *parse;	/* a Parse of the statement cache
									 * before it, or NULL */
	uint32		cache_generation;	/* of the statement cache at the Parse */
	int64		expect_rows;	/* rows it must report; -1: any count */
	bool		user;			/* a user's statement (not a commit command):
								 * a long wait looks for a deadlock */
	bool		final;			/* a statement whose result the caller reads
								 * (dtx.exec, dtx.query), not a sent one */
	bool		probe;			/* pg_dtx's read-only probe (see
								 * DtxPipelineSendProbe) */
	int			next_cmd;		/* the command whose results are read next
								 * (past the last: its sync), so that a read
								 * cut short by an error resumes there */
	bool		parsed;			/* the statement cache's Parse succeeded */
	SubTransactionId subid;		/* local subtransaction when sent */
} DtxPipelineStep;

/*
 * What reading a pipeline found: its first failure (a remote error, or a row
 * count other than the one a step required), and the command tag of pg_dtx's
 * own command at its end.
 */
typedef struct DtxPipelineFailure
{
	char	   *sql;			/* the failed statement; NULL: no failure */
	PGresult   *err;			/* its remote error (the caller clears it),
								 * NULL for a row count */
	int64		expected;		/* the row count required */
	int64		got;			/* the row count reported (-1: none) */
	bool		user;			/* a user's statement */
	SubTransactionId subid;
	char		tag[32];		/* command tag of the last command of the
								 * last step that is pg_dtx's own (COMMIT,
								 * PREPARE TRANSACTION; ROLLBACK when the
								 * remote transaction had failed); "" if
								 * none */
} DtxPipelineFailure;

/* One cached connection: a (server, user mapping) pair of this backend. */
typedef struct DtxConnection
{
	Oid			umid;			/* hash key: user mapping OID */
	Oid			serverid;		/* foreign server */
	Oid			userid;			/* local role that opened the participant */
	char		servername[NAMEDATALEN];	/* for messages */
	PGconn	   *conn;			/* NULL when not connected */
	struct WaitEventSet *wait_set;	/* the latch, postmaster death and
									 * conn's socket (dtx_wait_socket);
									 * freed when conn closes */
	int			wait_pos;		/* the socket's event in wait_set */
	int			wait_sock;		/* the socket it was made for */
	uint32		wait_events;	/* the socket events it waits for */

	bool		busy;			/* a command is in flight */
	List	   *pipeline;		/* DtxPipelineStep *, oldest first, in
								 * pipeline_cxt: sent and not yet read */
	MemoryContext pipeline_cxt; /* reset when the pipeline is read */
	bool		reading_user_step;	/* the step being read is a user's
									 * statement */
	int8		probe_wrote;	/* the last probe's answer: 1 the remote
								 * transaction has a transaction id, 0 not,
								 * -1 no answer */
	bool		lead_pending;	/* a command of the layer above (COMMIT
								 * PREPARED left in flight) was sent in
								 * pipeline mode before the steps: its
								 * answer is read first (DtxSetLeadHook) */
	bool		broken;			/* unusable: dropped at transaction end */

	/* the remote transaction that follows the local one (remote_xact.c) */
	DtxRemoteXact xact;

	/* what the remote server told us at connection */
	uint64		remote_sysid;	/* system identifier of its cluster */
	int			remote_max_prepared;	/* its max_prepared_transactions */
	char		appname[NAMEDATALEN];	/* the application_name it was given
										 * (pinned) */


	TimestampTz op_deadline;	/* if set, bounds every wait (resolver) */

	/* a connection attempt started by DtxConnectStandaloneStart */
	DtxConnectAttempt attempt;

	/* named prepared statements of the user's SQL (owned by stmt_cache.c) */
	DtxStmtCache stmts;

	/* invalidation */
	bool		invalidated;	/* server or mapping changed: drop when idle */
	uint32		server_hashvalue;	/* hash of the server's syscache key */
	uint32		mapping_hashvalue;	/* hash of the mapping's syscache key */
} DtxConnection;

/* Outcome of a non-throwing round trip (commit and abort paths). */
typedef enum DtxResultStatus
{
	DTX_RESULT_OK,				/* command succeeded */
	DTX_RESULT_ERROR,			/* the server answered with an error */
	DTX_RESULT_LOST,			/* connection lost before the answer */
	DTX_RESULT_TIMEOUT			/* no answer before the deadline */
} DtxResultStatus;

/*
 * What happens to a statement on a participant, for a layer above that
 * wants to know (the distributed deadlock detector registers itself): the
 * transport calls no module above it directly.
 */
typedef enum DtxStatementEvent
{
	DTX_STATEMENT_STARTS,		/* a statement is about to be sent */
	DTX_STATEMENT_WAITS,		/* it has waited another wait interval */
	DTX_STATEMENT_SUCCEEDED,	/* it ended without an error */
	DTX_STATEMENT_FAILED		/* it failed: the hook may raise an error of
								 * its own instead of the remote one */
} DtxStatementEvent;

typedef void (*DtxStatementHook) (DtxConnection *c, DtxStatementEvent event,
								  const char *sql);

/*
 * What COMMIT PREPARED or ROLLBACK PREPARED answered: the prepared
 * transaction is already gone (finished by somebody else), or busy (another
 * session is finishing it right now).
 */
#define DTX_SQLSTATE_PREPARED_GONE	"42704"	/* undefined_object */
#define DTX_SQLSTATE_PREPARED_BUSY	"55000"	/* object_not_in_prerequisite_state */

static inline bool
DtxPreparedGone(DtxResultStatus st, const char *sqlstate)
{
	return st == DTX_RESULT_ERROR && sqlstate != NULL &&
		strcmp(sqlstate, DTX_SQLSTATE_PREPARED_GONE) == 0;
}

static inline bool
DtxPreparedBusy(DtxResultStatus st, const char *sqlstate)
{
	return st == DTX_RESULT_ERROR && sqlstate != NULL &&
		strcmp(sqlstate, DTX_SQLSTATE_PREPARED_BUSY) == 0;
}

/* settings */
extern int	dtx_connect_timeout;

extern void DtxConnectionInit(void);
extern void DtxSetStatementHook(DtxStatementHook hook, const int *wait_interval_ms);
extern void DtxSetCloseHook(void (*hook) (DtxConnection *c));
extern void DtxSetLeadHook(void (*hook) (DtxConnection *c, bool quiet,
										   TimestampTz deadline));

/* cache */
extern DtxConnection *DtxGetConnection(Oid serverid, Oid userid);
extern void DtxConnectionEnsureOpen(DtxConnection *c);
extern void DtxDisconnect(DtxConnection *c);
extern DtxConnection *DtxConnectStandalone(Oid serverid, Oid userid, TimestampTz op_deadline);
extern DtxConnection *DtxConnectStandaloneStart(Oid serverid, Oid userid,
												TimestampTz connect_deadline,
												int timeout_ms);
extern DtxConnection *DtxConnectStandaloneWaitAny(List *conns);
extern void DtxConnectStandalonePostpone(List *conns, int64 usecs);
extern void DtxConnectStandaloneFinish(DtxConnection *c);
extern void DtxForEachConnection(void (*fn) (DtxConnection *c, void *arg), void *arg);
extern void DtxCloseUnusableConnections(void);

/* round trips that raise errors (before the local commit) */
extern void DtxSendQuery(DtxConnection *c, const char *sql);
extern void DtxSendPipeline(DtxConnection *c, List *prelude, const char *sql,
							int nparams, const Oid *types, const char *const *values);
extern void DtxSendStatement(DtxConnection *c, List *prelude, const char *sql,
							 int nparams, const Oid *types, const char *const *values);
extern PGresult *DtxGetPipelineResult(DtxConnection *c);
typedef void (*DtxRowFn) (PGresult *row, void *arg);
extern PGresult *DtxGetPipelineRows(DtxConnection *c, DtxRowFn row_fn, void *arg);
extern PGresult *DtxGetResult(DtxConnection *c, TimestampTz deadline, const char *sql);
extern void DtxExecCommand(DtxConnection *c, const char *sql);
extern void DtxReportResultError(int elevel, PGresult *res, DtxConnection *c,
								 const char *sql, const char *what);

/* round trips that never raise errors (commit and abort callbacks) */
extern bool DtxSendQueryNoError(DtxConnection *c, const char *sql);
extern bool DtxSendLeadNoError(DtxConnection *c, const char *sql);
extern DtxResultStatus DtxLeadResultNoError(DtxConnection *c, TimestampTz deadline,
											char **errmsg_out, char *sqlstate_out);
extern DtxResultStatus DtxGetResultNoError(DtxConnection *c, TimestampTz deadline,
										   char **errmsg_out, char *sqlstate_out,
										   PGresult **err_out);
extern DtxResultStatus DtxGetResultNoErrorYielding(DtxConnection *c, TimestampTz deadline,
												   char **errmsg_out, char *sqlstate_out,
												   PGresult **err_out);
extern bool DtxAbandonCommand(DtxConnection *c, TimestampTz deadline);
extern bool DtxWaitForAnswer(DtxConnection *c, TimestampTz deadline);

/* pipelined statements (dtx.send) */
extern void DtxPipelineSend(DtxConnection *c, List *prelude, const char *sql,
							int nparams, const Oid *types, const char *const *values,
							int64 expect_rows);
extern void DtxPipelineSendCommand(DtxConnection *c, List *prelude, const char *sql);
extern bool DtxPipelineHasStepsBefore(DtxConnection *c, SubTransactionId subid);
extern void DtxPipelineSendProbe(DtxConnection *c);
extern void DtxPipelineCollect(DtxConnection *c);
extern bool DtxPipelineCollectArrived(DtxConnection *c, TimestampTz deadline);
extern bool DtxPipelineExpectsRows(DtxConnection *c);
extern void DtxPipelineFinish(DtxConnection *c, TimestampTz deadline,
							  DtxPipelineFailure *fail);
extern DtxResultStatus DtxPipelineFinishNoError(DtxConnection *c, TimestampTz deadline,
												DtxPipelineFailure *fail);
extern bool DtxPipelineDrainNoError(DtxConnection *c, TimestampTz deadline,
									DtxPipelineFailure *fail);
#if PG_VERSION_NUM >= 180000
pg_noreturn extern void DtxPipelineRaise(DtxConnection *c, DtxPipelineFailure *fail);
#else
extern void DtxPipelineRaise(DtxConnection *c, DtxPipelineFailure *fail) pg_attribute_noreturn();
#endif
extern const char *DtxPinnedSettingChanged(DtxConnection *c);

extern void DtxRunBatch(DtxConnection *c, const char *const *sqls, int n,
						DtxResultStatus *status, char **errmsgs, char **sqlstates);

extern TimestampTz DtxDeadlineAfterMs(int ms);


#endif							/* DTX_CONNECTION_H */
