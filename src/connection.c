/*-------------------------------------------------------------------------
 *
 * connection.c
 *	  The backend's connections to participant servers.
 *
 * Connections are cached per backend in a hash table keyed by user mapping
 * OID (one per (server, user mapping) pair), reused across transactions and
 * dropped when the server or the mapping changes (syscache callbacks), when
 * a command on them was interrupted half-way, or when the remote side went
 * away.  The remote transaction that rides on a connection is the business
 * of remote_xact.c; this file only opens connections and moves commands and
 * results.
 *
 * Every wait on a socket before the local commit goes through
 * WaitLatchOrSocket, so that query cancel, statement_timeout, backend
 * termination and postmaster death are noticed while a remote server is
 * slow.  The functions that raise errors are for use before the local
 * commit; the *NoError variants are for the commit and abort callbacks,
 * where interrupts are held and nothing may be raised: they are bounded by
 * a deadline and wait with poll(), which needs no new descriptor.  Every
 * socket counts as an external descriptor of fd.c.
 *
 * This is the bottom of the layers that talk to participants (see
 * src/README.md): a module above that must act on what happens here
 * registers a hook (DtxSetStatementHook, DtxSetCloseHook).
 *
 * Nothing here is shared between backends, so nothing is locked.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>

#include "access/xact.h"
#include "catalog/pg_user_mapping.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "connection.h"
#include "fdw_options.h"
#include "gid.h"
#include "identity.h"
#include "stats.h"
#include "stmt_cache.h"


/* Longest slice of a wait that cannot use the latch (dtx_poll_socket), ms. */
#define DTX_POLL_SLICE_MS 100

/* Longest wait for a cancelled command to end (libpq 17+), ms. */
#define DTX_CANCEL_TIMEOUT_MS 1000

/* The most connection parameters we pass to libpq, terminator included. */
#define DTX_MAX_CONN_PARAMS			64

int			dtx_connect_timeout = 10000;	/* dtx.connect_timeout, ms */
static int	dtx_keepalives_idle = 30;	/* dtx.keepalives_idle, s */
static int	dtx_keepalives_interval = 10;	/* dtx.keepalives_interval, s */
static int	dtx_keepalives_count = 3;	/* dtx.keepalives_count */

static HTAB *ConnectionHash = NULL;


/*
 * The wait sets kept from one wait to the next (wait_on_set): at most
 * DTX_WAIT_SETS, each of one connection, those the latest waits were on.
 * Each holds a descriptor (an epoll instance), so they are few, and they
 * are given up first when the backend runs short of descriptors.
 */
#define DTX_WAIT_SETS 8
static DtxConnection *wait_set_owners[DTX_WAIT_SETS];
static int	wait_set_next = 0;

/* set by DtxGetResultNoErrorYielding: a pending cancel or die ends waits */
static bool dtx_yield_to_interrupts = false;

/* the layer above that follows statements (DtxSetStatementHook) */
static DtxStatementHook statement_hook = NULL;
static const int *statement_wait_interval = NULL;

/* told before a connection closes (DtxSetCloseHook) */
static void (*close_hook) (DtxConnection *c) = NULL;

/* reads the answer to a lead command before the steps (DtxSetLeadHook) */
static void (*lead_hook) (DtxConnection *c, bool quiet, TimestampTz deadline) = NULL;

static void dtx_inval_callback(Datum arg, int cacheid, uint32 hashvalue);
static bool dtx_connection_alive(DtxConnection *c);
static PGconn *dtx_connect(DtxConnection *c, ForeignServer *server, UserMapping *um);
static PGconn *dtx_connect_start(DtxConnection *c, ForeignServer *server, UserMapping *um);
static bool dtx_connect_pending(PGconn *conn, PostgresPollingStatusType st);
static void dtx_connect_complete(DtxConnection *c, ForeignServer *server, UserMapping *um,
								 PGconn *conn, PostgresPollingStatusType st,
								 TimestampTz deadline, int timeout_ms);
static void dtx_configure_session(DtxConnection *c);
static void dtx_close(PGconn *conn);
static int	wait_on_set(DtxConnection *c, int events, long timeout);
static void forget_wait_set(DtxConnection *c);
static void forget_wait_sets(void);
static bool room_for_fd(void);
static void close_conn(DtxConnection *c);
#if PG_VERSION_NUM >= 180000
pg_noreturn static void report_statement_failure(DtxConnection *c, PGresult *err, const char *sql);
#else
static void report_statement_failure(DtxConnection *c, PGresult *err, const char *sql) pg_attribute_noreturn();
#endif
#if PG_VERSION_NUM >= 180000
pg_noreturn static void raise_too_many_files(DtxConnection *c);
#else
static void raise_too_many_files(DtxConnection *c) pg_attribute_noreturn();
#endif
static void dtx_check_identity_or_close(DtxConnection *c);
static DtxConnection *standalone_entry(ForeignServer *server, UserMapping *um,
									   Oid userid, TimestampTz op_deadline);
static int	dtx_wait_attempts(List *conns, int npending, long timeout,
							  WaitEvent *occurred);
static void dtx_send_pipeline(DtxConnection *c, List *prelude, const char *sql,
							  int nparams, const Oid *types, const char *const *values,
							  bool cached, int64 expect_rows, bool user, bool final);
static void pipeline_forget(DtxConnection *c);
#ifdef LIBPQ_HAS_ASYNC_CANCEL
static bool pipeline_parse_in_flight(DtxConnection *c);
#endif
static bool dtx_is_copy(ExecStatusType st);
static bool dtx_poll_socket(PGconn *conn, int events, TimestampTz deadline);
static bool dtx_wait_socket(DtxConnection *c, PGconn *conn, int events, TimestampTz deadline,
							bool interruptible);
static bool dtx_flush(DtxConnection *c, TimestampTz deadline, bool interruptible);
#ifdef LIBPQ_HAS_ASYNC_CANCEL
static bool dtx_cancel_command(DtxConnection *c, TimestampTz deadline);
#endif
#if PG_VERSION_NUM >= 180000
pg_noreturn static void dtx_raise_lost(DtxConnection *c, const char *sql);
#else
static void dtx_raise_lost(DtxConnection *c, const char *sql) pg_attribute_noreturn();
#endif
#if PG_VERSION_NUM >= 180000
pg_noreturn static void dtx_raise_timeout(DtxConnection *c, const char *sql);
#else
static void dtx_raise_timeout(DtxConnection *c, const char *sql) pg_attribute_noreturn();
#endif
static PGresult *dtx_next_result(DtxConnection *c, TimestampTz deadline, const char *sql);
#if PG_VERSION_NUM >= 180000
pg_noreturn static void dtx_refuse_copy(DtxConnection *c, PGresult *res, TimestampTz deadline,
							const char *sql);
#else
static void dtx_refuse_copy(DtxConnection *c, PGresult *res, TimestampTz deadline,
							const char *sql) pg_attribute_noreturn();
#endif

/*
 * DtxConnectionInit
 *		Registers the connection settings; called from _PG_init.
 */
void
DtxConnectionInit(void)
{
	DefineCustomIntVariable("dtx.connect_timeout",
							"Time allowed to open a connection to a participant server.",
							"0 waits without limit (statement_timeout and cancel still apply).",
							&dtx_connect_timeout,
							10000, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dtx.keepalives_idle",
							"TCP keepalive idle time on connections to participants, unless the server's options set keepalives_idle.",
							NULL, &dtx_keepalives_idle, 30, 1, 3600,
							PGC_USERSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("dtx.keepalives_interval",
							"TCP keepalive interval on connections to participants, unless the server's options set keepalives_interval.",
							NULL, &dtx_keepalives_interval, 10, 1, 3600,
							PGC_USERSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("dtx.keepalives_count",
							"TCP keepalive probes before a connection to a participant is dropped, unless the server's options set keepalives_count.",
							NULL, &dtx_keepalives_count, 3, 1, 100,
							PGC_USERSET, 0, NULL, NULL, NULL);
}

/*
 * DtxSetStatementHook
 *		Registers the function told what happens to remote statements; a
 *		statement of a distributed transaction that waits is reported every
 *		*wait_interval_ms (0: never).  Called from _PG_init.
 */
void
DtxSetStatementHook(DtxStatementHook hook, const int *wait_interval_ms)
{
	statement_hook = hook;
	statement_wait_interval = wait_interval_ms;
}

/*
 * DtxSetCloseHook
 *		Registers the function called before a connection is closed (the
 *		commit protocol reads, or gives up, an answer still in flight).
 *		Called from _PG_init.
 */
void
DtxSetCloseHook(void (*hook) (DtxConnection *c))
{
	close_hook = hook;
}

/*
 * DtxSetLeadHook
 *		Registers the function that reads the answer to a lead command (see
 *		DtxSendLeadNoError) when steps sent behind it are read: quiet when
 *		it must neither raise nor serve interrupts (a commit or a rollback),
 *		and then within the reader's deadline (0: none).  It must read it
 *		with DtxLeadResultNoError, or leave the connection broken.
 */
void
DtxSetLeadHook(void (*hook) (DtxConnection *c, bool quiet, TimestampTz deadline))
{
	lead_hook = hook;
}

/*
 * DtxDeadlineAfterMs
 *		The time ms milliseconds from now; 0 (no deadline) when ms <= 0.
 */
TimestampTz
DtxDeadlineAfterMs(int ms)
{
	if (ms <= 0)
		return 0;
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
}

/*
 * dtx_ms_until
 *		Milliseconds left until deadline (-1: no deadline, 0: passed).
 */
static long
dtx_ms_until(TimestampTz deadline)
{
	TimestampTz now;

	if (deadline == 0)
		return -1;
	now = GetCurrentTimestamp();
	if (now >= deadline)
		return 0;
	return (long) ((deadline - now + 999) / 1000);
}

/*
 * DtxGetConnection
 *		The cached connection entry for the user mapping of userid on
 *		serverid, created (not yet connected) when missing.
 *
 * The caller has already checked the server and the mapping
 * (DtxResolveServer).  The connection itself is opened by
 * DtxConnectionEnsureOpen.
 */
DtxConnection *
DtxGetConnection(Oid serverid, Oid userid)
{
	Oid			umid;
	const char *servername;
	DtxConnection *c;
	bool		found;

	if (ConnectionHash == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(DtxConnection);
		ctl.hcxt = TopMemoryContext;
		ConnectionHash = hash_create("pg_dtx connections", 16, &ctl,
									 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterSyscacheCallback(FOREIGNSERVEROID, dtx_inval_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(USERMAPPINGOID, dtx_inval_callback, (Datum) 0);
	}

	umid = DtxMappingFor(serverid, userid, &servername);

	c = hash_search(ConnectionHash, &umid, HASH_ENTER, &found);
	if (!found)
	{
		memset(c, 0, sizeof(DtxConnection));
		c->umid = umid;
	}
	if (c->conn == NULL)
	{
		c->serverid = serverid;
		c->userid = userid;
		strlcpy(c->servername, servername, NAMEDATALEN);
	}
	return c;
}

/*
 * dtx_connection_alive
 *		Whether c's idle connection still looks usable.  Reads, without
 *		waiting, what the server sent since the last command: nothing is
 *		expected between transactions, but a server that shut down or
 *		restarted has sent its goodbye and closed the connection, which libpq
 *		notices at the second read.
 */
static bool
dtx_connection_alive(DtxConnection *c)
{
	int			i;
	pgsocket	sock = PQsocket(c->conn);

	/*
	 * The usual case, nothing arrived: one look at the socket says so (two
	 * reads would each fail with EAGAIN).  With TLS, what arrived may sit
	 * in the library's buffer instead: read.
	 */
	if (sock != PGINVALID_SOCKET && !PQsslInUse(c->conn) &&
		PQstatus(c->conn) == CONNECTION_OK)
	{
		char		b;
		ssize_t		n = recv(sock, &b, 1, MSG_PEEK | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
	}
	for (i = 0; i < 2 && PQstatus(c->conn) == CONNECTION_OK; i++)
	{
		if (!PQconsumeInput(c->conn))
			break;
	}
	return PQstatus(c->conn) == CONNECTION_OK;
}

/*
 * DtxConnectionEnsureOpen
 *		Connects c if it is not connected; drops and reopens a connection
 *		invalidated by a change of its server or mapping, or found dead,
 *		when no remote transaction is open on it (a participant restarted
 *		between two transactions is reconnected transparently; once a
 *		remote transaction has started on a connection, its loss is an
 *		error).
 */
void
DtxConnectionEnsureOpen(DtxConnection *c)
{
	ForeignServer *server;
	UserMapping *um;

	/* no remote transaction yet: a connection found dead is reopened */
	if (c->conn != NULL && c->xact.depth == 0 && !c->busy && !c->xact.commit_in_flight &&
		!dtx_connection_alive(c))
		c->broken = true;
	if (c->conn != NULL && c->xact.depth == 0 && (c->invalidated || c->broken))
		DtxDisconnect(c);
	if (c->conn != NULL)
		return;

	server = GetForeignServer(c->serverid);
	um = GetUserMapping(c->userid, c->serverid);
	strlcpy(c->servername, server->servername, NAMEDATALEN);

	c->xact.depth = 0;
	c->xact.state = DTX_REMOTE_IDLE;
	c->busy = false;
	c->broken = false;
	c->invalidated = false;
	c->xact.abort_required = false;
	c->server_hashvalue = GetSysCacheHashValue1(FOREIGNSERVEROID,
												ObjectIdGetDatum(c->serverid));
	c->mapping_hashvalue = GetSysCacheHashValue1(USERMAPPINGOID,
												 ObjectIdGetDatum(c->umid));
	c->conn = dtx_connect(c, server, um);

	/* the participant must still be the cluster recorded at first use */
	DtxCheckServerIdentity(c->serverid, c->servername, c->remote_sysid,
						   PQdb(c->conn));
}

/*
 * dtx_check_identity_or_close
 *		Checks that c's new connection reaches the cluster recorded at first
 *		use of its server; closes it and raises if not.
 */
static void
dtx_check_identity_or_close(DtxConnection *c)
{
	PG_TRY();
	{
		DtxCheckServerIdentity(c->serverid, c->servername, c->remote_sysid,
							   PQdb(c->conn));
	}
	PG_CATCH();
	{
		DtxDisconnect(c);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * standalone_entry
 *		A new connection entry outside the cache for userid's mapping um on
 *		server, not connected.
 */
static DtxConnection *
standalone_entry(ForeignServer *server, UserMapping *um, Oid userid,
				 TimestampTz op_deadline)
{
	DtxConnection *c = palloc0(sizeof(DtxConnection));

	c->umid = um->umid;
	c->serverid = server->serverid;
	c->userid = userid;
	c->op_deadline = op_deadline;
	strlcpy(c->servername, server->servername, NAMEDATALEN);
	return c;
}

/*
 * DtxConnectStandalone
 *		Opens a connection outside the cache, for userid's user mapping on
 *		serverid (the resolver's: never part of a user's transaction).
 *		Every wait on it is bounded by op_deadline (0: none).  The caller
 *		closes it with DtxDisconnect.
 */
DtxConnection *
DtxConnectStandalone(Oid serverid, Oid userid, TimestampTz op_deadline)
{
	ForeignServer *server = GetForeignServer(serverid);
	UserMapping *um = GetUserMapping(userid, serverid);
	DtxConnection *c = standalone_entry(server, um, userid, op_deadline);

	c->conn = dtx_connect(c, server, um);
	dtx_check_identity_or_close(c);
	return c;
}

/*
 * DtxConnectStandaloneStart
 *		Like DtxConnectStandalone, but only starts the connection attempt,
 *		to be completed by connect_deadline (0: none) and reported as a
 *		timeout of timeout_ms when it is not.  Several attempts progress at
 *		once in DtxConnectStandaloneWaitAny; DtxConnectStandaloneFinish
 *		completes one.  The caller closes it with DtxDisconnect in any case.
 */
DtxConnection *
DtxConnectStandaloneStart(Oid serverid, Oid userid, TimestampTz connect_deadline,
						  int timeout_ms)
{
	ForeignServer *server = GetForeignServer(serverid);
	UserMapping *um = GetUserMapping(userid, serverid);
	DtxConnection *c = standalone_entry(server, um, userid, connect_deadline);

	c->attempt.conn = dtx_connect_start(c, server, um);
	c->attempt.status = PGRES_POLLING_WRITING;
	c->attempt.deadline = connect_deadline;
	c->attempt.timeout_ms = timeout_ms;
	return c;
}

/*
 * attempts_wait_set
 *		A new wait set for nevents events, for dtx_wait_attempts; the wait
 *		sets kept for connections make room for its descriptor.
 */
static WaitEventSet *
attempts_wait_set(int nevents)
{
	(void) room_for_fd();
#if PG_VERSION_NUM >= 170000
	return CreateWaitEventSet(CurrentResourceOwner, nevents);
#else
	return CreateWaitEventSet(CurrentMemoryContext, nevents);
#endif
}

/*
 * dtx_wait_attempts
 *		Waits up to timeout ms for the latch or a socket event of the
 *		npending unfinished attempts of conns; returns the events in
 *		occurred (room for npending + 2).
 */
static int
dtx_wait_attempts(List *conns, int npending, long timeout, WaitEvent *occurred)
{
	/* the set holds a kernel descriptor: freed on every path */
	WaitEventSet *volatile set = attempts_wait_set(npending + 2);
	int			nevents = 0;

	PG_TRY();
	{
		ListCell   *lc;

		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		foreach(lc, conns)
		{
			DtxConnection *c = lfirst(lc);

			if (c->attempt.conn == NULL || c->attempt.done)
				continue;
			AddWaitEventToSet(set,
							  c->attempt.status == PGRES_POLLING_READING ?
							  WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE,
							  PQsocket(c->attempt.conn), NULL, c);
		}
		nevents = WaitEventSetWait(set, timeout, occurred, npending + 2,
								   DtxWaitEventInfo());
	}
	PG_FINALLY();
	{
		FreeWaitEventSet(set);
	}
	PG_END_TRY();
	return nevents;
}

/*
 * DtxConnectStandaloneWaitAny
 *		Advances the started attempts of conns (DtxConnection *) until one
 *		of them has no more to wait for (connected, failed, or past its
 *		deadline), and returns it; NULL when none is left.  An attempt is
 *		returned once: the caller finishes it (DtxConnectStandaloneFinish
 *		raises its failure) before calling again.  Interruptible.
 */
DtxConnection *
DtxConnectStandaloneWaitAny(List *conns)
{
	WaitEvent  *occurred = palloc(sizeof(WaitEvent) * (list_length(conns) + 2));

	for (;;)
	{
		ListCell   *lc;
		int			npending = 0;
		TimestampTz earliest = 0;
		int			nevents;
		int			i;
		bool		latch = false;

		foreach(lc, conns)
		{
			DtxConnection *c = lfirst(lc);

			if (c->attempt.conn == NULL || c->attempt.done)
				continue;
			if (dtx_connect_pending(c->attempt.conn, c->attempt.status) &&
				PQsocket(c->attempt.conn) < 0)
				c->attempt.status = PGRES_POLLING_FAILED;	/* no socket to wait on */
			if (!dtx_connect_pending(c->attempt.conn, c->attempt.status) ||
				dtx_ms_until(c->attempt.deadline) == 0)
			{
				c->attempt.done = true;
				pfree(occurred);
				return c;
			}
			npending++;
			if (c->attempt.deadline != 0 &&
				(earliest == 0 || c->attempt.deadline < earliest))
				earliest = c->attempt.deadline;
		}
		if (npending == 0)
		{
			pfree(occurred);
			return NULL;
		}

		nevents = dtx_wait_attempts(conns, npending, dtx_ms_until(earliest), occurred);

		for (i = 0; i < nevents; i++)
		{
			if (occurred[i].events & WL_LATCH_SET)
				latch = true;
			else if (occurred[i].user_data != NULL)
			{
				DtxConnection *c = occurred[i].user_data;

				c->attempt.status = PQconnectPoll(c->attempt.conn);
			}
		}
		if (latch)
		{
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
}

/*
 * DtxConnectStandalonePostpone
 *		Moves the deadlines of the unfinished attempts of conns by usecs:
 *		time the caller spent elsewhere, during which they could not
 *		progress.
 */
void
DtxConnectStandalonePostpone(List *conns, int64 usecs)
{
	ListCell   *lc;

	foreach(lc, conns)
	{
		DtxConnection *c = lfirst(lc);

		if (c->attempt.conn != NULL && c->attempt.deadline != 0)
			c->attempt.deadline += usecs;
	}
}

/*
 * DtxConnectStandaloneFinish
 *		Completes c's started attempt (waiting for it until its deadline
 *		at most) as DtxConnectStandalone does: configures the session and
 *		checks the participant's identity.  Raises on failure; c->conn is
 *		then NULL.  c->op_deadline is left bounding the set-up round trip.
 */
void
DtxConnectStandaloneFinish(DtxConnection *c)
{
	ForeignServer *server = GetForeignServer(c->serverid);
	UserMapping *um = GetUserMapping(c->userid, c->serverid);
	PGconn	   *conn = c->attempt.conn;

	Assert(conn != NULL);
	c->attempt.conn = NULL;
	c->attempt.done = true;
	c->op_deadline = DtxDeadlineAfterMs(c->attempt.timeout_ms);
	dtx_connect_complete(c, server, um, conn, c->attempt.status,
						 c->attempt.deadline, c->attempt.timeout_ms);
	dtx_check_identity_or_close(c);
}

/*
 * DtxDisconnect
 *		Closes c's connection, if any; the entry stays in the cache.
 */
void
DtxDisconnect(DtxConnection *c)
{
	if (close_hook != NULL)
		close_hook(c);
	if (c->conn != NULL)
		close_conn(c);
	if (c->attempt.conn != NULL)
	{
		dtx_close(c->attempt.conn);
		c->attempt.conn = NULL;
	}
	DtxStmtCacheReset(&c->stmts);
	pipeline_forget(c);
	if (c->pipeline_cxt != NULL)
	{
		/* a standalone entry is freed after this: nothing may be left */
		MemoryContextDelete(c->pipeline_cxt);
		c->pipeline_cxt = NULL;
	}
	c->xact.depth = 0;
	c->xact.state = DTX_REMOTE_IDLE;
	c->busy = false;
	c->broken = false;
	if (c->xact.pending_cmds != NIL)
	{
		list_free_deep(c->xact.pending_cmds);
		c->xact.pending_cmds = NIL;
	}
}

/*
 * DtxForEachConnection
 *		Calls fn on every cached connection entry.
 */
void
DtxForEachConnection(void (*fn) (DtxConnection *c, void *arg), void *arg)
{
	HASH_SEQ_STATUS scan;
	DtxConnection *c;

	if (ConnectionHash == NULL)
		return;
	hash_seq_init(&scan, ConnectionHash);
	while ((c = hash_seq_search(&scan)) != NULL)
		fn(c, arg);
}

/*
 * DtxCloseUnusableConnections
 *		At the end of a transaction: closes connections that are broken,
 *		invalidated, or not idle outside a transaction.
 */
void
DtxCloseUnusableConnections(void)
{
	HASH_SEQ_STATUS scan;
	DtxConnection *c;

	if (ConnectionHash == NULL)
		return;
	hash_seq_init(&scan, ConnectionHash);
	while ((c = hash_seq_search(&scan)) != NULL)
	{
		if (c->conn == NULL)
			continue;
		if (c->xact.commit_in_flight)
			continue;			/* its answer is read later (remote_xact.c) */
		if (c->broken || c->invalidated || c->busy ||
			PQstatus(c->conn) != CONNECTION_OK ||
			PQtransactionStatus(c->conn) != PQTRANS_IDLE)
			DtxDisconnect(c);
		c->xact.depth = 0;
		c->xact.state = DTX_REMOTE_IDLE;
		c->xact.abort_required = false;
	}
}

/*
 * dtx_inval_callback
 *		A foreign server or user mapping changed: mark the connections that
 *		use it, to be dropped when no transaction is open on them.
 */
static void
dtx_inval_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	HASH_SEQ_STATUS scan;
	DtxConnection *c;

	(void) arg;
	hash_seq_init(&scan, ConnectionHash);
	while ((c = hash_seq_search(&scan)) != NULL)
	{
		if (c->conn == NULL)
			continue;
		if (hashvalue == 0 ||
			(cacheid == FOREIGNSERVEROID && c->server_hashvalue == hashvalue) ||
			(cacheid == USERMAPPINGOID && c->mapping_hashvalue == hashvalue))
			c->invalidated = true;
	}
}

/*
 * dtx_wait_socket
 *		Waits until conn's socket is ready for events or the deadline passes
 *		(false).  When interruptible, through the latch: an interrupt is
 *		raised, a dead postmaster ends the backend.  When not (after the
 *		local commit, in the abort path), through dtx_poll_socket, which
 *		needs no resource that could run out; a pending cancel or
 *		termination ends that wait (false) inside
 *		DtxGetResultNoErrorYielding.  c (or NULL) is the entry whose
 *		connection conn is: its wait set is kept from one wait to the next
 *		(wait_on_set).
 */
static bool
dtx_wait_socket(DtxConnection *c, PGconn *conn, int events, TimestampTz deadline,
				bool interruptible)
{
	if (!interruptible)
		return dtx_poll_socket(conn, events, deadline);
	for (;;)
	{
		long		timeout = dtx_ms_until(deadline);
		int			rc;

		if (timeout == 0)
			return false;
		if (c != NULL && c->conn == conn && PQsocket(conn) != PGINVALID_SOCKET)
			rc = wait_on_set(c, events, timeout);
		else
		{
			/* its wait set needs a descriptor: the kept ones make room */
			(void) room_for_fd();
			rc = WaitLatchOrSocket(MyLatch,
								   WL_LATCH_SET | events | WL_EXIT_ON_PM_DEATH |
								   (timeout > 0 ? WL_TIMEOUT : 0),
								   PQsocket(conn), timeout, DtxWaitEventInfo());
		}
		if (rc & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
		if (rc & events)
			return true;
	}
}

/*
 * wait_on_set
 *		One wait of dtx_wait_socket on c's connection (timeout in ms, -1:
 *		none) through a wait set kept for it (see wait_set_owners):
 *		WaitLatchOrSocket makes and frees one, an epoll instance, at every
 *		wait (five system calls).  Without room for one more descriptor it
 *		is that.  Returns the events that happened, as WaitLatchOrSocket
 *		does.
 */
static int
wait_on_set(DtxConnection *c, int events, long timeout)
{
	WaitEvent	ev;
	pgsocket	sock = PQsocket(c->conn);

	if (c->wait_set != NULL && c->wait_sock != sock)
		forget_wait_set(c);
	if (c->wait_set == NULL)
	{
		int			slot;

		for (slot = 0; slot < DTX_WAIT_SETS; slot++)
			if (wait_set_owners[slot] == NULL)
				break;
		if (slot == DTX_WAIT_SETS)
		{
			slot = wait_set_next;
			wait_set_next = (wait_set_next + 1) % DTX_WAIT_SETS;
			forget_wait_set(wait_set_owners[slot]);
		}
		if (!room_for_fd())
			return WaitLatchOrSocket(MyLatch,
									 WL_LATCH_SET | events | WL_EXIT_ON_PM_DEATH |
									 (timeout > 0 ? WL_TIMEOUT : 0),
									 sock, timeout, DtxWaitEventInfo());
#if PG_VERSION_NUM >= 170000
		c->wait_set = CreateWaitEventSet(NULL, 3);
#else
		c->wait_set = CreateWaitEventSet(TopMemoryContext, 3);
#endif
		wait_set_owners[slot] = c;
		AddWaitEventToSet(c->wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(c->wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		c->wait_pos = AddWaitEventToSet(c->wait_set, events, sock, NULL, NULL);
		c->wait_sock = sock;
		c->wait_events = events;
	}
	else if (c->wait_events != (uint32) events)
	{
		ModifyWaitEvent(c->wait_set, c->wait_pos, events, NULL);
		c->wait_events = events;
	}
	if (WaitEventSetWait(c->wait_set, timeout, &ev, 1, DtxWaitEventInfo()) == 0)
		return WL_TIMEOUT;
	return ev.events;
}

/*
 * forget_wait_set
 *		Frees c's wait set, if any: before its connection closes, or to make
 *		room.
 */
static void
forget_wait_set(DtxConnection *c)
{
	int			i;

	if (c == NULL || c->wait_set == NULL)
		return;
	FreeWaitEventSet(c->wait_set);
	c->wait_set = NULL;
	for (i = 0; i < DTX_WAIT_SETS; i++)
		if (wait_set_owners[i] == c)
			wait_set_owners[i] = NULL;
}

/*
 * forget_wait_sets
 *		Frees every kept wait set.
 */
static void
forget_wait_sets(void)
{
	int			i;

	for (i = 0; i < DTX_WAIT_SETS; i++)
		forget_wait_set(wait_set_owners[i]);
}

/*
 * room_for_fd
 *		Whether the backend may open one more descriptor outside the file
 *		manager (AcquireExternalFD), the kept wait sets given up first if
 *		they are in the way.  Reserves nothing.
 */
static bool
room_for_fd(void)
{
	if (!AcquireExternalFD())
	{
		forget_wait_sets();
		if (!AcquireExternalFD())
			return false;
	}
	ReleaseExternalFD();
	return true;
}

/*
 * close_conn
 *		Closes c's connection (the caller forgets what rode on it).
 */
static void
close_conn(DtxConnection *c)
{
	forget_wait_set(c);
	if (c->conn != NULL)
		dtx_close(c->conn);
	c->conn = NULL;
}

/*
 * dtx_poll_socket
 *		The wait of dtx_wait_socket when it is not interruptible: after the
 *		local commit and in the abort path, where an ERROR would become a
 *		PANIC.  It needs no descriptor and no memory (a wait event set needs
 *		both): poll() on the socket, in slices of DTX_POLL_SLICE_MS so that a
 *		dead postmaster, and a cancel or termination the caller yields to,
 *		are seen.  Interrupts are held here anyway.  Returns whether an
 *		event (or an error condition on the socket) arrived.
 */
static bool
dtx_poll_socket(PGconn *conn, int events, TimestampTz deadline)
{
	struct pollfd pfd;

	pfd.fd = PQsocket(conn);
	pfd.events = ((events & WL_SOCKET_READABLE) ? POLLIN : 0) |
		((events & WL_SOCKET_WRITEABLE) ? POLLOUT : 0);
	if (pfd.fd < 0)
		return false;
	for (;;)
	{
		long		timeout = dtx_ms_until(deadline);
		int			rc;

		if (timeout == 0)
			return false;
		if (dtx_yield_to_interrupts && (QueryCancelPending || ProcDiePending))
			return false;
		if (!PostmasterIsAlive())
			return false;
		if (timeout < 0 || timeout > DTX_POLL_SLICE_MS)
			timeout = DTX_POLL_SLICE_MS;
		pfd.revents = 0;
		pgstat_report_wait_start(DtxWaitEventInfo());
		rc = poll(&pfd, 1, (int) timeout);
		pgstat_report_wait_end();
		if (rc > 0)
			return true;
		if (rc < 0 && errno != EINTR)
			return false;
	}
}

/*
 * dtx_connect_start
 *		Starts a non-blocking libpq connection attempt for c (nothing is
 *		waited for).  Raises when the mapping gives no password although one
 *		is required, or on out of memory.
 */
static PGconn *
dtx_connect_start(DtxConnection *c, ForeignServer *server, UserMapping *um)
{
	const char *keywords[DTX_MAX_CONN_PARAMS];
	const char *values[DTX_MAX_CONN_PARAMS];
	char		appname[NAMEDATALEN];
	char		ka_idle[16];
	char		ka_interval[16];
	char		ka_count[16];
	int			n;
	PGconn	   *conn;

	DtxCheckPasswordGiven(server, um, c->userid);

	n = DtxCollectConnParams(server, um, keywords, values, DTX_MAX_CONN_PARAMS - 8);

	/*
	 * application_name names pg_dtx (or its resolver), the coordinator, its
	 * database and this backend, so that a DBA on a participant can tell
	 * whose session it is.
	 */
	snprintf(appname, sizeof(appname), "%s:%" PRIu64 ":%u:%d",
			 c->op_deadline != 0 ? "pg_dtx_resolver" : "pg_dtx",
			 DtxCoordinatorId(), MyDatabaseId, MyProcPid);
	keywords[n] = "application_name";
	values[n++] = appname;
	strlcpy(c->appname, appname, sizeof(c->appname));
	keywords[n] = "client_encoding";
	values[n++] = GetDatabaseEncodingName();
	if (!DtxConnParamGiven(keywords, n, "keepalives"))
	{
		keywords[n] = "keepalives";
		values[n++] = "1";
	}
	if (!DtxConnParamGiven(keywords, n, "keepalives_idle"))
	{
		snprintf(ka_idle, sizeof(ka_idle), "%d", dtx_keepalives_idle);
		keywords[n] = "keepalives_idle";
		values[n++] = ka_idle;
	}
	if (!DtxConnParamGiven(keywords, n, "keepalives_interval"))
	{
		snprintf(ka_interval, sizeof(ka_interval), "%d", dtx_keepalives_interval);
		keywords[n] = "keepalives_interval";
		values[n++] = ka_interval;
	}
	if (!DtxConnParamGiven(keywords, n, "keepalives_count"))
	{
		snprintf(ka_count, sizeof(ka_count), "%d", dtx_keepalives_count);
		keywords[n] = "keepalives_count";
		values[n++] = ka_count;
	}
	keywords[n] = NULL;
	values[n] = NULL;

	/*
	 * The socket counts against the backend's descriptors, so that the file
	 * manager closes cached files to make room rather than let a later
	 * descriptor fail with "Too many open files".  Room for one more is
	 * checked too: a wait on the new socket needs a descriptor of its own
	 * (a wait event set), and it should fail here, clearly, not there.  The
	 * wait sets kept for other connections make room if needed.
	 */
	if (!room_for_fd() || !AcquireExternalFD())
		raise_too_many_files(c);
	if (!room_for_fd())
	{
		ReleaseExternalFD();
		raise_too_many_files(c);
	}
	conn = PQconnectStartParams(keywords, values, false);
	if (conn == NULL)
	{
		ReleaseExternalFD();
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while connecting to server \"%s\"",
						c->servername)));
	}
	return conn;
}

/*
 * raise_too_many_files
 *		Raises the error of a connection to c's server that the backend's
 *		file descriptors leave no room for.
 */
static void
raise_too_many_files(DtxConnection *c)
{
	ereport(ERROR,
			(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
			 errmsg("could not connect to server \"%s\"", c->servername),
			 errdetail("Too many open files: this backend has as many connections as its file descriptors allow."),
			 errhint("Use fewer participants in one transaction, or raise max_files_per_process and the limit of open files of the server (ulimit -n).")));
}

/*
 * dtx_close
 *		Closes conn, made by dtx_connect_start, and gives its descriptor
 *		back.  Never raises.
 */
static void
dtx_close(PGconn *conn)
{
	PQfinish(conn);
	ReleaseExternalFD();
}

/*
 * dtx_connect_pending
 *		Whether the attempt on conn, last polled with status st, still needs
 *		socket events.
 */
static bool
dtx_connect_pending(PGconn *conn, PostgresPollingStatusType st)
{
	return PQstatus(conn) != CONNECTION_BAD &&
		st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED;
}

/*
 * dtx_connect_complete
 *		Completes c's started attempt conn: waits for it (interruptibly,
 *		until deadline), then checks it, makes it non-blocking and configures
 *		the session.  timeout_ms is the bound named in the timeout error.
 *		Closes conn and raises on any failure; on success c->conn is conn.
 */
static void
dtx_connect_complete(DtxConnection *c, ForeignServer *server, UserMapping *um,
					 PGconn *conn, PostgresPollingStatusType st,
					 TimestampTz deadline, int timeout_ms)
{
	volatile PostgresPollingStatusType status = st;

	PG_TRY();
	{
		while (dtx_connect_pending(conn, status))
		{
			int			events = (status == PGRES_POLLING_READING) ?
				WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;

			if (!dtx_wait_socket(NULL, conn, events, deadline, true))
				ereport(ERROR,
						(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
						 errmsg("could not connect to server \"%s\": timeout after %d ms",
								c->servername, timeout_ms),
						 errhint("Check that the server is up and reachable, or raise dtx.connect_timeout.")));
			status = PQconnectPoll(conn);
		}
		if (PQstatus(conn) != CONNECTION_OK)
			ereport(ERROR,
					(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
					 errmsg("could not connect to server \"%s\"", c->servername),
					 errdetail_internal("%s", pchomp(PQerrorMessage(conn))),
					 errhint("Check the server's options (host, port, dbname) and the user mapping.")));

		DtxCheckPasswordUsed(conn, server, um, c->userid);

		if (PQsetnonblocking(conn, 1) != 0)
			elog(ERROR, "could not set the connection to server \"%s\" non-blocking",
				 c->servername);

		c->conn = conn;
		/* a new session has none of the statements of an earlier one */
		DtxStmtCacheReset(&c->stmts);
		pipeline_forget(c);
		dtx_configure_session(c);
	}
	PG_CATCH();
	{
		forget_wait_set(c);
		c->conn = NULL;
		dtx_close(conn);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * dtx_connect
 *		Opens a libpq connection for c, interruptibly and within
 *		dtx.connect_timeout (and c->op_deadline, if set), and configures the
 *		remote session.
 */
static PGconn *
dtx_connect(DtxConnection *c, ForeignServer *server, UserMapping *um)
{
	PGconn	   *conn = dtx_connect_start(c, server, um);
	TimestampTz deadline = DtxDeadlineAfterMs(dtx_connect_timeout);
	int			timeout_ms = dtx_connect_timeout;

	if (c->op_deadline != 0 && (deadline == 0 || c->op_deadline < deadline))
	{
		deadline = c->op_deadline;
		timeout_ms = (int) Min(dtx_ms_until(deadline), INT_MAX);
	}
	dtx_connect_complete(c, server, um, conn, PGRES_POLLING_WRITING, deadline,
						 timeout_ms);
	return conn;
}

/*
 * dtx_configure_session
 *		Pins the data-format settings of a new remote session and reads the
 *		participant's identity, in one round trip.
 *
 * Users' SQL keeps the remote role's own search_path; pg_dtx's own remote
 * queries are schema-qualified.
 */
static void
dtx_configure_session(DtxConnection *c)
{
	static const char *sql =
		"SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; "
		"SELECT s.system_identifier, "
		"pg_catalog.current_setting('max_prepared_transactions')::pg_catalog.int4 "
		"FROM pg_catalog.pg_control_system() s";
	PGresult   *volatile res = NULL;
	PGresult   *volatile last = NULL;

	DtxSendQuery(c, sql);
	PG_TRY();
	{
		while ((res = DtxGetResult(c, c->op_deadline ? c->op_deadline :
								   DtxDeadlineAfterMs(dtx_connect_timeout), sql)) != NULL)
		{
			ExecStatusType st = PQresultStatus(res);

			if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
			{
				PGresult   *failed = res;

				res = NULL;
				DtxReportResultError(ERROR, failed, c, sql, NULL);
			}
			if (st == PGRES_TUPLES_OK)
			{
				if (last)
					PQclear(last);
				last = res;
			}
			else
				PQclear(res);
			res = NULL;
		}
		c->busy = false;
		if (last == NULL || PQntuples(last) != 1)
			elog(ERROR, "unexpected answer from server \"%s\" to the session set-up",
				 c->servername);
		c->remote_sysid = strtou64(PQgetvalue(last, 0, 0), NULL, 10);
		c->remote_max_prepared = atoi(PQgetvalue(last, 0, 1));
	}
	PG_FINALLY();
	{
		if (res)
			PQclear(res);
		if (last)
			PQclear(last);
	}
	PG_END_TRY();
}

/*
 * DtxPinnedSettingChanged
 *		The name of a setting pinned on c's session (dtx_configure_session)
 *		that a statement changed and the server reports (a function calling
 *		set_config), or NULL.
 *		extra_float_digits is not reported, hence not checked: only a SET
 *		or RESET naming it is refused (sql_head), not a function that
 *		changes it.
 */
const char *
DtxPinnedSettingChanged(DtxConnection *c)
{
	const char *datestyle = PQparameterStatus(c->conn, "DateStyle");
	const char *intervalstyle = PQparameterStatus(c->conn, "IntervalStyle");
	const char *encoding = PQparameterStatus(c->conn, "client_encoding");
	const char *appname;


	if (datestyle != NULL && strncmp(datestyle, "ISO,", 4) != 0)
		return "DateStyle";
	if (intervalstyle != NULL && strcmp(intervalstyle, "postgres") != 0)
		return "IntervalStyle";
	if (encoding != NULL && strcmp(encoding, GetDatabaseEncodingName()) != 0)
		return "client_encoding";
	if (c->appname[0] != '\0' && (appname = PQparameterStatus(c->conn, "application_name")) != NULL &&
		strcmp(appname, c->appname) != 0)
		return "application_name";
	return NULL;
}

/*
 * dtx_flush
 *		Sends what libpq buffered for c; false on a lost connection or a
 *		passed deadline.  Raises on interrupts when interruptible.
 */
static bool
dtx_flush(DtxConnection *c, TimestampTz deadline, bool interruptible)
{
	for (;;)
	{
		int			r = PQflush(c->conn);

		if (r == 0)
			return true;
		if (r < 0)
			return false;
		if (!dtx_wait_socket(c, c->conn, WL_SOCKET_WRITEABLE | WL_SOCKET_READABLE,
							 deadline, interruptible))
			return false;
		/* the server may be sending us something (a notice) meanwhile */
		if (PQconsumeInput(c->conn) == 0)
			return false;
	}
}

/*
 * report_statement_failure
 *		Raises the error err (which is cleared) of the statement sql on c:
 *		the statement hook's own error if it raises one (deadlock.c: 40P01
 *		for a victim), else the remote error.
 */
static void
report_statement_failure(DtxConnection *c, PGresult *err, const char *sql)
{
	if (statement_hook != NULL)
	{
		PG_TRY();
		{
			statement_hook(c, DTX_STATEMENT_FAILED, sql);
		}
		PG_CATCH();
		{
			PQclear(err);
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	DtxReportResultError(ERROR, err, c, sql, NULL);
	pg_unreachable();
}

/*
 * statement_event
 *		Tells the registered statement hook, if any, what happens to the
 *		statement sql on c.
 */
static void
statement_event(DtxConnection *c, DtxStatementEvent event, const char *sql)
{
	if (statement_hook != NULL)
		statement_hook(c, event, sql);
}

/*
 * dtx_raise_lost
 *		Raises the error for a connection lost while talking to c's server;
 *		marks the connection broken.
 */
static void
dtx_raise_lost(DtxConnection *c, const char *sql)
{
	c->broken = true;
	c->busy = false;
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("lost the connection to server \"%s\"", c->servername),
			 errdetail_internal("%s", pchomp(PQerrorMessage(c->conn))),
			 sql ? errcontext("remote SQL on server \"%s\": %s", c->servername, sql) : 0));
}

/*
 * DtxSendQuery
 *		Sends sql (simple protocol, possibly several statements) on c.
 */
void
DtxSendQuery(DtxConnection *c, const char *sql)
{
	/* the statements sent before, first (the simple protocol needs it) */
	if (c->lead_pending && c->pipeline == NIL && lead_hook != NULL)
		lead_hook(c, false, 0);
	DtxPipelineCollect(c);
	statement_event(c, DTX_STATEMENT_STARTS, sql);
	if (c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK)
		dtx_raise_lost(c, sql);
	if (!PQsendQuery(c->conn, sql))
		dtx_raise_lost(c, sql);
	c->busy = true;
	if (!dtx_flush(c, 0, true))
		dtx_raise_lost(c, sql);
}

/*
 * DtxSendPipeline
 *		Sends the commands of prelude (no parameters), then sql with its
 *		parameters in text form, as one step of c's pipeline: one round trip
 *		with whatever steps are still unread before it.
 *
 * The results are read with DtxGetPipelineResult.  Parameters whose type is
 * 0 are typed by the remote server.
 */
void
DtxSendPipeline(DtxConnection *c, List *prelude, const char *sql,
				int nparams, const Oid *types, const char *const *values)
{
	dtx_send_pipeline(c, prelude, sql, nparams, types, values, false, -1, true, true);
}

/*
 * DtxSendStatement
 *		DtxSendPipeline for a user's statement: a text sent repeatedly on c
 *		runs as a named prepared statement (stmt_cache.c).  Read the results
 *		with DtxGetPipelineResult.
 */
void
DtxSendStatement(DtxConnection *c, List *prelude, const char *sql,
				 int nparams, const Oid *types, const char *const *values)
{
	dtx_send_pipeline(c, prelude, sql, nparams, types, values, true, -1, true, true);
}

/*
 * DtxPipelineSend
 *		dtx.send: DtxSendStatement whose results are not read now but with
 *		the next statement on c, at DtxPipelineCollect, or at commit.  With
 *		expect_rows >= 0, the statement must report exactly that many rows.
 */
void
DtxPipelineSend(DtxConnection *c, List *prelude, const char *sql,
				int nparams, const Oid *types, const char *const *values,
				int64 expect_rows)
{
	dtx_send_pipeline(c, prelude, sql, nparams, types, values, true, expect_rows, true, false);
}

/*
 * DtxPipelineSendCommand
 *		Appends the commands of prelude and pg_dtx's own command sql (COMMIT,
 *		PREPARE TRANSACTION) to c's pipeline, behind the unread steps; read
 *		with DtxPipelineFinish or DtxPipelineFinishNoError.
 */
void
DtxPipelineSendCommand(DtxConnection *c, List *prelude, const char *sql)
{
	dtx_send_pipeline(c, prelude, sql, 0, NULL, NULL, false, -1, false, false);
}

/* The read-only probe: whether the remote transaction has a transaction id. */
#define DTX_PROBE_SQL "SELECT pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL"

/*
 * DtxPipelineSendProbe
 *		Appends the read-only probe to c's pipeline, behind the statement
 *		just sent: when the pipeline is read, c->probe_wrote says whether
 *		the remote transaction has written so far (a function may write in
 *		a SELECT), at no round trip of its own.
 */
void
DtxPipelineSendProbe(DtxConnection *c)
{
	DtxPipelineStep *step;

	c->probe_wrote = -1;
	dtx_send_pipeline(c, NIL, DTX_PROBE_SQL, 0, NULL, NULL, false, -1, false, false);
	step = llast(c->pipeline);
	step->probe = true;
}

/*
 * dtx_send_pipeline
 *		Appends one step to c's pipeline (entering pipeline mode if needed):
 *		the commands of prelude, sql (through the statement cache when
 *		cached), a sync; flushes it and reads nothing.  The step is
 *		remembered, so that its results are read in order later.
 */
static void
dtx_send_pipeline(DtxConnection *c, List *prelude, const char *sql,
				  int nparams, const Oid *types, const char *const *values,
				  bool cached, int64 expect_rows, bool user, bool final)
{
	ListCell   *lc;
	struct DtxCachedStmt *stmt = NULL;
	bool		prepare = false;
	DtxPipelineStep *step;
	MemoryContext old;

	if (user)
		statement_event(c, DTX_STATEMENT_STARTS, sql);
	if (c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK)
		dtx_raise_lost(c, sql);
	if (!PQenterPipelineMode(c->conn))
		dtx_raise_lost(c, sql);
	c->busy = true;

	if (c->pipeline_cxt == NULL)
		c->pipeline_cxt = AllocSetContextCreate(TopMemoryContext, "pg_dtx pipeline",
												ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(c->pipeline_cxt);
	step = palloc0(sizeof(DtxPipelineStep));
	step->sql = pstrdup(sql);
	foreach(lc, prelude)
		step->prelude = lappend(step->prelude, pstrdup((const char *) lfirst(lc)));
	step->expect_rows = expect_rows;
	step->user = user;
	step->final = final;
	step->subid = GetCurrentSubTransactionId();
	c->pipeline = lappend(c->pipeline, step);
	MemoryContextSwitchTo(old);

	foreach(lc, prelude)
	{
		if (!PQsendQueryParams(c->conn, (const char *) lfirst(lc), 0, NULL, NULL, NULL, NULL, 0))
			dtx_raise_lost(c, (const char *) lfirst(lc));
	}
	if (cached)
		stmt = DtxStmtCacheLookup(&c->stmts, sql, nparams, types, &prepare);
	if (stmt == NULL)
	{
		if (!PQsendQueryParams(c->conn, sql, nparams, types, values, NULL, NULL, 0))
			dtx_raise_lost(c, sql);
	}
	else
	{
		if (prepare)
		{
			step->parse = stmt;
			step->cache_generation = DtxStmtCacheGeneration(&c->stmts);
			if (!PQsendPrepare(c->conn, DtxStmtCacheName(stmt), sql, nparams, types))
				dtx_raise_lost(c, sql);
		}
		if (!PQsendQueryPrepared(c->conn, DtxStmtCacheName(stmt), nparams, values,
								 NULL, NULL, 0))
			dtx_raise_lost(c, sql);
	}
	if (!PQpipelineSync(c->conn))
		dtx_raise_lost(c, sql);

	/*
	 * pg_dtx's own commands (COMMIT, PREPARE TRANSACTION, the probe) are
	 * flushed whole, within a bound: a cancel must not leave half of a
	 * COMMIT written, to be sent by the next read.
	 */
	if (!dtx_flush(c, user ? 0 : DtxDeadlineAfterMs(dtx_connect_timeout > 0 ? dtx_connect_timeout : 10000),
				   user))
		dtx_raise_lost(c, sql);
}

/*
 * pipeline_forget
 *		Forgets the unread steps of c, whose connection is closing.
 */
static void
pipeline_forget(DtxConnection *c)
{
	ListCell   *lc;

	/* a Parse whose answer is lost: the entry is prepared again if needed */
	foreach(lc, c->pipeline)
	{
		DtxPipelineStep *step = lfirst(lc);

		if (step->parse != NULL &&
			step->cache_generation == DtxStmtCacheGeneration(&c->stmts))
			DtxStmtCachePrepared(&c->stmts, step->parse, false);
	}
	c->pipeline = NIL;
	c->reading_user_step = false;
	c->lead_pending = false;
	if (c->pipeline_cxt != NULL)
		MemoryContextReset(c->pipeline_cxt);
}

#ifdef LIBPQ_HAS_ASYNC_CANCEL
/*
 * pipeline_parse_in_flight
 *		Whether an unread step of c prepares a statement of the cache (its
 *		name would be in doubt if the step were cancelled).
 */
static bool
pipeline_parse_in_flight(DtxConnection *c)
{
	ListCell   *lc;

	foreach(lc, c->pipeline)
		if (((DtxPipelineStep *) lfirst(lc))->parse != NULL)
			return true;
	return false;
}
#endif

/*
 * quiet_next_result
 *		The next result of the command in flight on c (NULL at the end of its
 *		results) without raising or serving interrupts; a passed deadline
 *		(0: none) or a lost connection returns NULL with *status set.
 */
static PGresult *
quiet_next_result(DtxConnection *c, TimestampTz deadline, DtxResultStatus *status)
{
	PGresult   *res;

	*status = DTX_RESULT_OK;
	while (PQisBusy(c->conn))
	{
		if (!dtx_wait_socket(c, c->conn, WL_SOCKET_READABLE, deadline, false))
		{
			*status = DTX_RESULT_TIMEOUT;
			return NULL;
		}
		if (!PQconsumeInput(c->conn))
		{
			*status = DTX_RESULT_LOST;
			return NULL;
		}
	}
	res = PQgetResult(c->conn);
	if (res != NULL && (dtx_is_copy(PQresultStatus(res)) ||
						PQresultStatus(res) == PGRES_BAD_RESPONSE))
	{
		/* never read on quietly: the connection is given up */
		PQclear(res);
		*status = DTX_RESULT_LOST;
		return NULL;
	}
	return res;
}

/*
 * record_failure
 *		Makes the failure of step (err, or a row count) the first one of the
 *		pipeline; what failed is copied into cxt.
 */
static void
record_failure(DtxPipelineFailure *fail, DtxPipelineStep *step, const char *what,
			   PGresult *err, int64 got, MemoryContext cxt)
{
	fail->sql = MemoryContextStrdup(cxt, what);
	fail->err = err;
	fail->expected = step->expect_rows;
	fail->got = got;
	fail->user = step->user;
	fail->subid = step->subid;
}

/*
 * result_arrived
 *		Whether the next result of c can be read without waiting: what has
 *		arrived is taken in first (one read that does not block).  A lost
 *		connection raises (sql names the statement in flight).
 */
static bool
result_arrived(DtxConnection *c, const char *sql)
{
	if (!PQisBusy(c->conn))
		return true;
	if (!PQconsumeInput(c->conn))
		dtx_raise_lost(c, sql);
	return !PQisBusy(c->conn);
}

/*
 * read_pipeline
 *		Reads the results of every unread step of c, oldest first, each up to
 *		its sync, and leaves pipeline mode.  The first failure (a remote
 *		error, or a row count other than its step required) goes to *fail
 *		(fail->sql NULL when there was none), allocated in the caller's
 *		memory context.  With want_final, the last step is a statement whose
 *		result is returned (the caller PQclears it), its rows handed to
 *		row_fn first when given (see DtxGetPipelineRows).
 *
 * With quiet false, interrupts, a lost connection and a passed deadline (0:
 * none) raise, as every wait of the transport does, and a long wait of a
 * user's statement in a remote transaction looks for a deadlock.  With
 * quiet true, nothing is raised or served: such an end returns NULL with
 * *status set, the pipeline left as it is for the caller to abandon.
 *
 * With poll (and quiet false), nothing is waited for: the reading stops,
 * *status DTX_RESULT_TIMEOUT and the pipeline left in pipeline mode, at the
 * first result that has not arrived, to go on later where it stopped.  Once
 * a failure is read, the rest is waited for as without poll, so that the
 * failure is raised with the pipeline read.
 */
static PGresult *
read_pipeline(DtxConnection *c, TimestampTz deadline, bool quiet, bool poll,
			  bool want_final, DtxRowFn row_fn, void *arg,
			  DtxPipelineFailure *fail, DtxResultStatus *status)
{
	PGresult   *volatile final = NULL;
	PGresult   *volatile res = NULL;
	ErrorData  *volatile row_error = NULL;
	volatile bool empty = false;
	MemoryContext cxt = CurrentMemoryContext;
	volatile DtxResultStatus st = DTX_RESULT_OK;

	memset(fail, 0, sizeof(DtxPipelineFailure));
	if (status)
		*status = DTX_RESULT_OK;

	/* the answer to the command the steps were sent behind, first */
	if (c->lead_pending && lead_hook != NULL)
		lead_hook(c, quiet, quiet ? deadline : 0);
	if (c->lead_pending)
	{
		if (!quiet)
			dtx_raise_lost(c, NULL);
		if (status)
			*status = DTX_RESULT_LOST;
		return NULL;
	}

	PG_TRY();
	{
		while (c->pipeline != NIL)
		{
			DtxPipelineStep *step = linitial(c->pipeline);
			int			nprelude = list_length(step->prelude);
			int			ncmds = nprelude + (step->parse ? 1 : 0) + 1;
			bool		final_step = want_final && step->final && final == NULL;
			bool		stale = step->parse != NULL &&
			step->cache_generation != DtxStmtCacheGeneration(&c->stmts);
			volatile int i;

			c->reading_user_step = step->user;
			for (i = step->next_cmd; i < ncmds; i++)
			{
				const char *what = (i < nprelude) ?
				(const char *) list_nth(step->prelude, i) : step->sql;

				/* the statement's rows one by one, when they are wanted so */
				if (final_step && row_fn != NULL && i == ncmds - 1 && fail->sql == NULL)
					(void) PQsetSingleRowMode(c->conn);

				/* each command's results end with a NULL */
				for (;;)
				{
					ExecStatusType rst;

					if (quiet)
					{
						DtxResultStatus qst;

						res = quiet_next_result(c, deadline, &qst);
						st = qst;
						if (st != DTX_RESULT_OK)
							break;
					}
					else
					{
						if (poll && fail->sql == NULL && !result_arrived(c, what))
						{
							st = DTX_RESULT_TIMEOUT;
							break;
						}
						res = DtxGetResult(c, deadline, what);
					}
					if (res == NULL)
						break;
					rst = PQresultStatus(res);
					if (rst == PGRES_FATAL_ERROR || rst == PGRES_BAD_RESPONSE)
					{
						if (fail->sql == NULL)
						{
							record_failure(fail, step, what, res, -1, cxt);
							res = NULL;
							continue;
						}
					}
					else if (rst == PGRES_SINGLE_TUPLE && final_step && row_fn != NULL)
					{
						/* rows that keep coming may never leave time to wait */
						if (!quiet)
							CHECK_FOR_INTERRUPTS();
						if (fail->sql == NULL && row_error == NULL)
						{
							PG_TRY();
							{
								row_fn(res, arg);
							}
							PG_CATCH();
							{
								/* kept for after the remaining results */
								MemoryContextSwitchTo(cxt);
								row_error = CopyErrorData();
								FlushErrorState();
							}
							PG_END_TRY();
						}
					}
					else if (i == ncmds - 1 && (rst == PGRES_COMMAND_OK || rst == PGRES_TUPLES_OK))
					{
						if (final_step && final == NULL)
						{
							final = res;
							res = NULL;
							continue;
						}
						if (step->probe && rst == PGRES_TUPLES_OK && PQntuples(res) == 1)
							c->probe_wrote = (strcmp(PQgetvalue(res, 0, 0), "t") == 0) ? 1 : 0;
						if (!step->user && !step->probe)
							strlcpy(fail->tag, PQcmdStatus(res), sizeof(fail->tag));
						if (step->expect_rows >= 0 && fail->sql == NULL)
						{
							const char *tuples = PQcmdTuples(res);
							int64		got = tuples[0] ? strtoi64(tuples, NULL, 10) : -1;

							if (got != step->expect_rows)
								record_failure(fail, step, what, NULL, got, cxt);
						}
					}
					else if (i == ncmds - 1 && rst == PGRES_EMPTY_QUERY)
					{
						empty = empty || final_step;
						if (!final_step && fail->sql == NULL)
							record_failure(fail, step, what, NULL, -2, cxt);
					}
					else if (step->parse != NULL && i == nprelude && rst == PGRES_COMMAND_OK)
						step->parsed = true;	/* the cache's Parse */
					PQclear(res);
					res = NULL;
				}
				if (st != DTX_RESULT_OK)
					break;
				step->next_cmd = i + 1;
			}
			if (st != DTX_RESULT_OK)
				break;
			/* the name of the cache exists from now on, or never will */
			if (step->parse != NULL && !stale)
				DtxStmtCachePrepared(&c->stmts, step->parse, step->parsed);
			step->parse = NULL;

			/* then the sync */
			if (quiet)
			{
				DtxResultStatus qst;

				res = quiet_next_result(c, deadline, &qst);
				st = qst;
			}
			else
			{
				if (poll && fail->sql == NULL && !result_arrived(c, step->sql))
				{
					st = DTX_RESULT_TIMEOUT;
					break;
				}
				res = DtxGetResult(c, deadline, step->sql);
			}
			if (res == NULL || PQresultStatus(res) != PGRES_PIPELINE_SYNC)
			{
				if (res != NULL)
					PQclear(res);
				res = NULL;
				if (!quiet)
					dtx_raise_lost(c, step->sql);
				if (st == DTX_RESULT_OK)
					st = DTX_RESULT_LOST;
				break;
			}
			PQclear(res);
			res = NULL;
			c->pipeline = list_delete_first(c->pipeline);
		}
		c->reading_user_step = false;
		if (st == DTX_RESULT_OK)
		{
			if (!PQexitPipelineMode(c->conn))
			{
				if (!quiet)
					dtx_raise_lost(c, NULL);
				st = DTX_RESULT_LOST;
			}
			else
			{
				c->busy = false;
				pipeline_forget(c);
			}
		}
		if (status)
			*status = st;

		if (!quiet && fail->sql == NULL && st == DTX_RESULT_OK)
			statement_event(c, DTX_STATEMENT_SUCCEEDED, NULL);
		if (row_error != NULL)
			ReThrowError(row_error);
		if (fail->err != NULL)
		{
			const char *state = PQresultErrorField(fail->err, PG_DIAG_SQLSTATE);

			/*
			 * A prepared statement of the cache is gone (deallocated behind
			 * pg_dtx's back): forget them all, the next use prepares again.
			 */
			if (state != NULL && strcmp(state, "26000") == 0)
				DtxStmtCacheReset(&c->stmts);
		}
		if (want_final && final == NULL && fail->sql == NULL && st == DTX_RESULT_OK)
			ereport(ERROR,
					(errcode(empty ? ERRCODE_SYNTAX_ERROR : ERRCODE_PROTOCOL_VIOLATION),
					 empty ? errmsg("the statement for server \"%s\" is empty", c->servername) :
					 errmsg("server \"%s\" sent no result for the statement", c->servername)));
	}
	PG_CATCH();
	{
		c->reading_user_step = false;

		/*
		 * A failure already read (its step is gone) that rolling back the
		 * current subtransaction would not undo: the remote transaction
		 * cannot go on.
		 */
		if (fail->sql != NULL && fail->user && fail->subid < GetCurrentSubTransactionId())
			c->xact.abort_required = true;
		if (res)
			PQclear(res);
		if (final)
			PQclear(final);
		if (fail->err)
			PQclear(fail->err);
		fail->err = NULL;
		PG_RE_THROW();
	}
	PG_END_TRY();

	return final;
}

/*
 * DtxGetPipelineResult
 *		Reads the results of c's pipeline, whose last step was sent by
 *		DtxSendPipeline or DtxSendStatement; raises the first failure
 *		(earlier steps and prelude included) and returns the result of the
 *		last statement, which the caller must PQclear.
 */
PGresult *
DtxGetPipelineResult(DtxConnection *c)
{
	return DtxGetPipelineRows(c, NULL, NULL);
}

/*
 * DtxGetPipelineRows
 *		DtxGetPipelineResult that hands the rows of the last statement to
 *		row_fn as they arrive (libpq's single-row mode), each PGresult freed
 *		once row_fn returns, so that a large result is never held in memory;
 *		the result returned then carries no rows (or all of them, should
 *		libpq refuse single-row mode), only the command's status.  An error
 *		raised by row_fn is raised once the remaining results are read and
 *		discarded, so that the connection stays usable.  With row_fn NULL,
 *		the rows stay in the returned result.
 */
PGresult *
DtxGetPipelineRows(DtxConnection *c, DtxRowFn row_fn, void *arg)
{
	DtxPipelineFailure fail;
	PGresult   *final;

	final = read_pipeline(c, c->op_deadline, false, false, true, row_fn, arg, &fail, NULL);
	if (fail.sql != NULL)
	{
		if (final)
			PQclear(final);
		DtxPipelineRaise(c, &fail);
	}
	return final;
}

/*
 * DtxPipelineCollect
 *		Reads the results of every unread step of c (dtx.send's statements);
 *		raises the first failure.  Interruptible; a long wait of a statement
 *		looks for a deadlock.
 */
void
DtxPipelineCollect(DtxConnection *c)
{
	DtxPipelineFailure fail;

	if (c->pipeline == NIL)
		return;
	(void) read_pipeline(c, c->op_deadline, false, false, false, NULL, NULL, &fail, NULL);
	if (fail.sql != NULL)
		DtxPipelineRaise(c, &fail);
}

/*
 * DtxPipelineCollectArrived
 *		DtxPipelineCollect that reads only what has arrived and never waits,
 *		unless a failure is read (then the rest is waited for, within
 *		deadline, 0: none, and the failure raised).  True when every step of c is read and c has left
 *		pipeline mode; false when some answer is still on its way (what was
 *		read is done with: the next collection goes on from there).
 */
bool
DtxPipelineCollectArrived(DtxConnection *c, TimestampTz deadline)
{
	DtxPipelineFailure fail;
	DtxResultStatus st;

	if (c->pipeline == NIL)
		return !c->busy;
	if (c->lead_pending || c->conn == NULL)
		return false;
	(void) read_pipeline(c, deadline, false, true, false, NULL, NULL, &fail, &st);
	if (fail.sql != NULL)
		DtxPipelineRaise(c, &fail);
	return st == DTX_RESULT_OK;
}

/*
 * DtxPipelineFinish
 *		Reads the results of every unread step of c, the last of which is
 *		pg_dtx's own command (DtxPipelineSendCommand), within deadline (0:
 *		none); the first failure goes to *fail for the caller to report (see
 *		DtxPipelineRaise).  Raises on interrupts, a lost connection and a
 *		passed deadline.
 */
void
DtxPipelineFinish(DtxConnection *c, TimestampTz deadline, DtxPipelineFailure *fail)
{
	(void) read_pipeline(c, deadline, false, false, false, NULL, NULL, fail, NULL);
}

/*
 * DtxPipelineFinishNoError
 *		DtxPipelineFinish that neither raises nor serves interrupts (commit
 *		paths): a lost connection or a passed deadline is returned.
 */
DtxResultStatus
DtxPipelineFinishNoError(DtxConnection *c, TimestampTz deadline, DtxPipelineFailure *fail)
{
	DtxResultStatus st;

	(void) read_pipeline(c, deadline, true, false, false, NULL, NULL, fail, &st);
	if (st == DTX_RESULT_LOST)
		c->broken = true;
	return st;
}

/*
 * DtxPipelineDrainNoError
 *		For a rollback: reads what is left of c's unread steps within
 *		deadline, without raising or serving interrupts, so that the
 *		connection is idle again; false when they did not all end in time
 *		(the caller abandons the command, DtxAbandonCommand).  The first
 *		failure goes to *fail.
 */
bool
DtxPipelineDrainNoError(DtxConnection *c, TimestampTz deadline, DtxPipelineFailure *fail)
{
	DtxResultStatus st;

	memset(fail, 0, sizeof(DtxPipelineFailure));
	if (c->pipeline == NIL && !c->lead_pending)
		return !c->busy;
	if (c->conn == NULL)
		return false;
	(void) read_pipeline(c, deadline, true, false, false, NULL, NULL, fail, &st);
	return st == DTX_RESULT_OK;
}

/*
 * DtxPipelineHasStepsBefore
 *		Whether an unread step of c is a user's statement sent in a
 *		subtransaction older than subid (whose failure a rollback of subid
 *		would not undo).
 */
bool
DtxPipelineHasStepsBefore(DtxConnection *c, SubTransactionId subid)
{
	ListCell   *lc;

	foreach(lc, c->pipeline)
	{
		DtxPipelineStep *step = lfirst(lc);

		if (step->user && step->subid < subid)
			return true;
	}
	return false;
}

/*
 * DtxPipelineExpectsRows
 *		Whether an unread step of c requires a row count (dtx.send_expect).
 */
bool
DtxPipelineExpectsRows(DtxConnection *c)
{
	ListCell   *lc;

	foreach(lc, c->pipeline)
		if (((DtxPipelineStep *) lfirst(lc))->expect_rows >= 0)
			return true;
	return false;
}

/*
 * DtxPipelineRaise
 *		Raises the failure of a step of c's pipeline: the remote error with
 *		its SQLSTATE (or the deadlock detector's 40P01, for a victim), or
 *		the wrong row count of dtx.send_expect, naming the server and the
 *		statement.  A statement sent in an earlier subtransaction than the
 *		current one cannot be undone by rolling the current one back: the
 *		remote transaction is then lost until the whole transaction rolls
 *		back.
 */
void
DtxPipelineRaise(DtxConnection *c, DtxPipelineFailure *fail)
{
	if (fail->user && fail->subid < GetCurrentSubTransactionId())
		c->xact.abort_required = true;
	if (fail->err != NULL)
	{
		PGresult   *err = fail->err;

		fail->err = NULL;
		if (fail->user)
			report_statement_failure(c, err, fail->sql);
		DtxReportResultError(ERROR, err, c, fail->sql, NULL);
	}
	if (fail->got == -2)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("the statement for server \"%s\" is empty", c->servername),
				 errcontext("remote SQL on server \"%s\": %s", c->servername, fail->sql)));
	if (fail->got == -1)
		ereport(ERROR,
				(errcode(ERRCODE_CARDINALITY_VIOLATION),
				 errmsg("the statement for server \"%s\" reported no row count", c->servername),
				 errdetail("dtx.send_expect required %lld.", (long long) fail->expected),
				 errhint("Use dtx.send for statements that report no row count."),
				 errcontext("remote SQL on server \"%s\": %s", c->servername, fail->sql)));
	ereport(ERROR,
			(errcode(ERRCODE_CARDINALITY_VIOLATION),
			 errmsg_plural("the statement for server \"%s\" affected %lld row, not %lld",
						   "the statement for server \"%s\" affected %lld rows, not %lld",
						   (unsigned long) fail->got, c->servername,
						   (long long) fail->got, (long long) fail->expected),
			 errdetail("dtx.send_expect required exactly %lld; the transaction cannot commit.",
					   (long long) fail->expected),
			 errcontext("remote SQL on server \"%s\": %s", c->servername, fail->sql)));
}

/*
 * dtx_raise_timeout
 *		Raises the error for a deadline passed while waiting for c's server.
 */
static void
dtx_raise_timeout(DtxConnection *c, const char *sql)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("timed out waiting for server \"%s\"", c->servername),
			 sql ? errcontext("remote SQL on server \"%s\": %s", c->servername, sql) : 0));
}

/*
 * dtx_next_result
 *		Waits for and returns the next result of the command in flight on c,
 *		whatever its status (NULL when its results are all read); raises on
 *		interrupts, on a lost connection and on a passed deadline (0: none).
 *		A statement of a distributed transaction that waits long looks for a
 *		distributed deadlock meanwhile.
 */
static PGresult *
dtx_next_result(DtxConnection *c, TimestampTz deadline, const char *sql)
{
	int			interval = (statement_hook != NULL && statement_wait_interval != NULL) ?
	*statement_wait_interval : 0;
	TimestampTz next_check = (interval > 0 && c->xact.depth > 0 &&
							  (c->xact.state == DTX_REMOTE_IN_XACT ||
							   c->reading_user_step)) ?
	DtxDeadlineAfterMs(interval) : 0;

	while (PQisBusy(c->conn))
	{
		bool		checking = next_check != 0 && (deadline == 0 || next_check < deadline);

		if (!dtx_wait_socket(c, c->conn, WL_SOCKET_READABLE, checking ? next_check : deadline, true))
		{
			if (checking)
			{
				statement_event(c, DTX_STATEMENT_WAITS, sql);
				next_check = DtxDeadlineAfterMs(interval);
				continue;
			}
			dtx_raise_timeout(c, sql);
		}
		if (!PQconsumeInput(c->conn))
			dtx_raise_lost(c, sql);
	}
	return PQgetResult(c->conn);
}

/*
 * dtx_is_copy
 *		Whether st says that the server entered a COPY sub-protocol.
 */
static bool
dtx_is_copy(ExecStatusType st)
{
	return st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH;
}

/*
 * dtx_discard_copy_out
 *		Reads and discards the data of a COPY TO STDOUT in progress on c,
 *		until its end; interruptible, bounded by deadline (0: none).
 */
static void
dtx_discard_copy_out(DtxConnection *c, TimestampTz deadline, const char *sql)
{
	for (;;)
	{
		char	   *buf = NULL;
		int			n = PQgetCopyData(c->conn, &buf, 1);

		if (n > 0)
		{
			PQfreemem(buf);
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		if (n == -1)
			return;				/* the command's own result follows */
		if (n < -1)
			dtx_raise_lost(c, sql);
		if (!dtx_wait_socket(c, c->conn, WL_SOCKET_READABLE, deadline, true))
			dtx_raise_timeout(c, sql);
		if (!PQconsumeInput(c->conn))
			dtx_raise_lost(c, sql);
	}
}

/*
 * dtx_refuse_copy
 *		The server entered COPY mode for the command in flight on c (res is
 *		its PGRES_COPY_* result; freed here): ends the COPY (a COPY FROM
 *		STDIN fails with CopyFail, the rows of a COPY TO STDOUT are read and
 *		discarded), reads the rest of the command's results (up to the sync
 *		of a pipeline), leaving the connection idle, and raises 0A000.  A
 *		COPY BOTH (replication) cannot be ended: the connection is closed.
 *		Never returns.
 */
static void
dtx_refuse_copy(DtxConnection *c, PGresult *res, TimestampTz deadline, const char *sql)
{
	bool		pipeline = PQpipelineStatus(c->conn) != PQ_PIPELINE_OFF;
	int			syncs = Max(list_length(c->pipeline), 1);	/* to read in a
															 * pipeline */

	/*
	 * The pipeline's memory goes below.  A failed COPY FROM aborted the
	 * remote transaction, which a statement sent in an earlier
	 * subtransaction cannot survive.
	 */
	sql = sql ? pstrdup(sql) : NULL;
	if (DtxPipelineHasStepsBefore(c, GetCurrentSubTransactionId()))
		c->xact.abort_required = true;

	for (;;)
	{
		ExecStatusType st;

		if (res == NULL)
		{
			if (!pipeline)
				break;
			res = dtx_next_result(c, deadline, sql);
			continue;
		}
		st = PQresultStatus(res);
		PQclear(res);
		res = NULL;
		if (st == PGRES_PIPELINE_SYNC)
		{
			/* the steps sent after this one are read and dropped too */
			if (--syncs == 0)
				break;
			res = dtx_next_result(c, deadline, sql);
			continue;
		}
		if (st == PGRES_COPY_IN)
		{
			if (PQputCopyEnd(c->conn, "COPY FROM STDIN is not supported through pg_dtx") != 1 ||
				!dtx_flush(c, deadline, true))
				dtx_raise_lost(c, sql);
		}
		else if (st == PGRES_COPY_OUT)
			dtx_discard_copy_out(c, deadline, sql);
		else if (st == PGRES_COPY_BOTH)
		{
			close_conn(c);
			DtxStmtCacheReset(&c->stmts);
			c->broken = true;
			break;
		}
		res = dtx_next_result(c, deadline, sql);
	}
	if (c->conn != NULL && pipeline && !PQexitPipelineMode(c->conn))
		dtx_raise_lost(c, sql);
	c->busy = false;
	pipeline_forget(c);
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("COPY FROM STDIN and COPY TO STDOUT are not supported through pg_dtx"),
			 errdetail("Server \"%s\" started a COPY with the client; pg_dtx ended it.",
					   c->servername),
			 errhint("Use COPY with a file on the participant, or INSERT through dtx.exec and SELECT through dtx.query."),
			 sql ? errcontext("remote SQL on server \"%s\": %s", c->servername, sql) : 0));
}

/*
 * DtxGetResult
 *		Waits for and returns the next result of the command in flight on c
 *		(NULL when its results are all read); raises on interrupts, on a
 *		lost connection, on a passed deadline (0: none), and when the server
 *		starts a COPY with the client (ended first: see dtx_refuse_copy).
 */
PGresult *
DtxGetResult(DtxConnection *c, TimestampTz deadline, const char *sql)
{
	PGresult   *res = dtx_next_result(c, deadline, sql);

	if (res != NULL && dtx_is_copy(PQresultStatus(res)))
		dtx_refuse_copy(c, res, deadline, sql);
	return res;
}

/*
 * DtxExecCommand
 *		Runs a command that returns no rows on c; raises its error.
 */
void
DtxExecCommand(DtxConnection *c, const char *sql)
{
	PGresult   *volatile res = NULL;
	PGresult   *volatile err = NULL;

	DtxSendQuery(c, sql);
	PG_TRY();
	{
		while ((res = DtxGetResult(c, c->op_deadline, sql)) != NULL)
		{
			if (PQresultStatus(res) == PGRES_FATAL_ERROR && err == NULL)
				err = res;
			else
				PQclear(res);
			res = NULL;
		}
		c->busy = false;
		if (err)
		{
			PGresult   *failed = err;

			err = NULL;
			DtxReportResultError(ERROR, failed, c, sql, NULL);
		}
	}
	PG_FINALLY();
	{
		if (res)
			PQclear(res);
		if (err)
			PQclear(err);
	}
	PG_END_TRY();
}

/*
 * DtxReportResultError
 *		Re-raises a remote error with the remote SQLSTATE, message, detail and
 *		hint, naming the server; what, when given, prefixes the message.
 *		Takes ownership of res and frees it: the caller must forget it.
 */
void
DtxReportResultError(int elevel, PGresult *res, DtxConnection *c,
					 const char *sql, const char *what)
{
	const char *diag_sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
	const char *rcontext = res ? PQresultErrorField(res, PG_DIAG_CONTEXT) : NULL;
	int			sqlstate;
	char	   *msg;
	char	   *det = detail ? pstrdup(detail) : NULL;
	char	   *hin = hint ? pstrdup(hint) : NULL;
	char	   *ctx = rcontext ? pstrdup(rcontext) : NULL;

	if (diag_sqlstate && strlen(diag_sqlstate) == 5)
		sqlstate = MAKE_SQLSTATE(diag_sqlstate[0], diag_sqlstate[1], diag_sqlstate[2],
								 diag_sqlstate[3], diag_sqlstate[4]);
	else
		sqlstate = ERRCODE_CONNECTION_FAILURE;

	if (primary == NULL)
		primary = pchomp(PQerrorMessage(c->conn));
	if (what)
		msg = psprintf("%s on server \"%s\": %s", what, c->servername, primary);
	else
		msg = psprintf("%s", primary);

	/* a lost connection cannot be trusted with anything more */
	if (c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK)
		c->broken = true;

	PQclear(res);
	ereport(elevel,
			(errcode(sqlstate),
			 errmsg_internal("%s", msg),
			 det ? errdetail_internal("%s", det) : 0,
			 hin ? errhint("%s", hin) : 0,
			 ctx ? errcontext("remote context: %s", ctx) : 0,
			 sql ? errcontext("remote SQL on server \"%s\": %s", c->servername, sql) : 0));
}

/*
 * DtxWaitForAnswer
 *		Waits, interruptibly (cancel and statement_timeout raise), until the
 *		answer to the command in flight on c has arrived, or until deadline
 *		(0: none); false on a timeout or a lost connection.  The result is
 *		then read without waiting.
 */
bool
DtxWaitForAnswer(DtxConnection *c, TimestampTz deadline)
{
	if (c->conn == NULL)
		return false;
	for (;;)
	{
		if (!PQconsumeInput(c->conn))
			return false;
		if (!PQisBusy(c->conn))
			return true;
		if (!dtx_wait_socket(c, c->conn, WL_SOCKET_READABLE, deadline, true))
			return false;
	}
}

/*
 * DtxSendQueryNoError
 *		Sends sql on c without raising; false when the connection is lost.
 *		Used after the local commit and during abort.
 */
bool
DtxSendQueryNoError(DtxConnection *c, const char *sql)
{
	if (c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK)
		return false;
	if (c->pipeline != NIL)
		return false;			/* the caller drains pipelines first */
	if (!PQsendQuery(c->conn, sql))
		return false;
	c->busy = true;
	/* a short flush; the deadline of the caller's wait bounds the rest */
	return dtx_flush(c, DtxDeadlineAfterMs(dtx_connect_timeout > 0 ? dtx_connect_timeout : 10000),
					 false);
}

/*
 * DtxSendLeadNoError
 *		Sends sql on the idle connection c in pipeline mode, with its sync,
 *		without raising (after the local commit): a lead command, whose
 *		answer may be read later with DtxLeadResultNoError, while steps are
 *		sent behind it (DtxSendStatement, DtxPipelineSend) and wait for it
 *		in the same pipeline: the layer above reads it through its lead
 *		hook.  False when the connection is lost.
 */
bool
DtxSendLeadNoError(DtxConnection *c, const char *sql)
{
	if (c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK || c->busy)
		return false;
	if (!PQenterPipelineMode(c->conn) ||
		!PQsendQueryParams(c->conn, sql, 0, NULL, NULL, NULL, NULL, 0) ||
		!PQpipelineSync(c->conn))
		return false;
	c->busy = true;
	c->lead_pending = true;
	/* a short flush; the deadline of whoever reads the answer bounds the rest */
	return dtx_flush(c, DtxDeadlineAfterMs(dtx_connect_timeout > 0 ? dtx_connect_timeout : 10000),
					 false);
}

/*
 * DtxLeadResultNoError
 *		Reads the answer to c's lead command (DtxSendLeadNoError) up to its
 *		sync, within deadline, neither raising nor serving interrupts; leaves
 *		pipeline mode when no step follows.  On DTX_RESULT_ERROR,
 *		*errmsg_out (palloc'd) and sqlstate_out (6 bytes) say why.  On a
 *		timeout or a lost connection the lead stays pending (the caller
 *		gives the connection up).
 */
DtxResultStatus
DtxLeadResultNoError(DtxConnection *c, TimestampTz deadline,
					 char **errmsg_out, char *sqlstate_out)
{
	DtxResultStatus status = DTX_RESULT_OK;
	DtxResultStatus st;
	PGresult   *res;

	if (errmsg_out)
		*errmsg_out = NULL;
	if (sqlstate_out)
		sqlstate_out[0] = '\0';
	if (c->conn == NULL || !c->lead_pending)
		return DTX_RESULT_LOST;
	while ((res = quiet_next_result(c, deadline, &st)) != NULL)
	{
		if (PQresultStatus(res) == PGRES_FATAL_ERROR && status == DTX_RESULT_OK)
		{
			const char *ss = PQresultErrorField(res, PG_DIAG_SQLSTATE);

			status = DTX_RESULT_ERROR;
			if (errmsg_out)
				*errmsg_out = pchomp(PQresultErrorMessage(res));
			if (sqlstate_out && ss)
				strlcpy(sqlstate_out, ss, 6);
		}
		PQclear(res);
	}
	if (st != DTX_RESULT_OK)
		return st;
	res = quiet_next_result(c, deadline, &st);
	if (res == NULL || PQresultStatus(res) != PGRES_PIPELINE_SYNC)
	{
		if (res)
			PQclear(res);
		return st != DTX_RESULT_OK ? st : DTX_RESULT_LOST;
	}
	PQclear(res);
	c->lead_pending = false;
	if (c->pipeline == NIL)
	{
		if (!PQexitPipelineMode(c->conn))
			return DTX_RESULT_LOST;
		c->busy = false;
	}
	return status;
}

/*
 * DtxGetResultNoError
 *		Waits, without raising and without serving interrupts, for all the
 *		results of the command in flight on c, until deadline (0: none).
 *		On DTX_RESULT_ERROR, *errmsg_out (palloc'd) and sqlstate_out (6 bytes)
 *		describe the remote error when they are given, and *err_out, when
 *		given, receives the error result (the caller PQclears it).
 */
DtxResultStatus
DtxGetResultNoError(DtxConnection *c, TimestampTz deadline,
					char **errmsg_out, char *sqlstate_out, PGresult **err_out)
{
	DtxResultStatus status = DTX_RESULT_OK;
	PGresult   *res;

	if (errmsg_out)
		*errmsg_out = NULL;
	if (sqlstate_out)
		sqlstate_out[0] = '\0';
	if (err_out)
		*err_out = NULL;
	if (c->conn == NULL)
		return DTX_RESULT_LOST;

	for (;;)
	{
		while (PQisBusy(c->conn))
		{
			if (!dtx_wait_socket(c, c->conn, WL_SOCKET_READABLE, deadline, false))
				return DTX_RESULT_TIMEOUT;
			if (!PQconsumeInput(c->conn))
			{
				if (errmsg_out)
					*errmsg_out = pchomp(PQerrorMessage(c->conn));
				return DTX_RESULT_LOST;
			}
		}
		res = PQgetResult(c->conn);
		if (res == NULL)
			break;
		if (dtx_is_copy(PQresultStatus(res)) || PQresultStatus(res) == PGRES_BAD_RESPONSE)
		{
			/* pg_dtx's own commands never COPY: give the connection up */
			PQclear(res);
			c->broken = true;
			if (errmsg_out)
				*errmsg_out = pstrdup("unexpected answer from the server");
			return DTX_RESULT_LOST;
		}
		if (PQresultStatus(res) == PGRES_FATAL_ERROR && status == DTX_RESULT_OK)
		{
			const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

			status = (st != NULL) ? DTX_RESULT_ERROR : DTX_RESULT_LOST;
			if (errmsg_out)
				*errmsg_out = pchomp(PQresultErrorMessage(res));
			if (sqlstate_out && st)
				strlcpy(sqlstate_out, st, 6);
			if (err_out && st)
			{
				*err_out = res;
				continue;
			}
		}
		PQclear(res);
	}
	c->busy = false;
	if (PQstatus(c->conn) != CONNECTION_OK)
		return DTX_RESULT_LOST;
	return status;
}

/*
 * DtxGetResultNoErrorYielding
 *		DtxGetResultNoError for a wait that may be cut short, with interrupts
 *		held: a pending query cancel or backend termination ends it as the
 *		deadline would (DTX_RESULT_TIMEOUT), and is served once interrupts
 *		are no longer held.  For rollbacks (ROLLBACK TO SAVEPOINT, the abort
 *		of a transaction), whose outcome does not depend on the answer.
 */
DtxResultStatus
DtxGetResultNoErrorYielding(DtxConnection *c, TimestampTz deadline,
							char **errmsg_out, char *sqlstate_out, PGresult **err_out)
{
	DtxResultStatus st;

	dtx_yield_to_interrupts = true;
	st = DtxGetResultNoError(c, deadline, errmsg_out, sqlstate_out, err_out);
	dtx_yield_to_interrupts = false;
	return st;
}

/*
 * DtxAbandonCommand
 *		Makes c's connection idle after an interrupted command: true when
 *		nothing was in flight.  A command in flight is abandoned: the
 *		connection is closed (marked broken, its remote transaction state
 *		kept for the caller), and the remote backend ends its transaction
 *		when it notices.  PostgreSQL 15's libpq has only a blocking cancel
 *		request, which a paused server would never answer; closing is
 *		bounded.  With libpq 17+, the command is first cancelled on its
 *		server (dtx_cancel_command, at most DTX_CANCEL_TIMEOUT_MS) and the
 *		connection kept when that works.  Never raises.
 */
bool
DtxAbandonCommand(DtxConnection *c, TimestampTz deadline)
{
	if (c->conn == NULL)
		return false;
	if (!c->busy && PQstatus(c->conn) == CONNECTION_OK)
		return true;
#ifdef LIBPQ_HAS_ASYNC_CANCEL
	if (dtx_cancel_command(c, deadline))
	{
		c->busy = false;
		return true;
	}
#else
	(void) deadline;
#endif
	close_conn(c);
	DtxStmtCacheReset(&c->stmts);
	pipeline_forget(c);
	c->busy = false;
	c->broken = true;
	return false;
}

#ifdef LIBPQ_HAS_ASYNC_CANCEL
/*
 * dtx_cancel_command
 *		libpq 17+: cancels the command in flight on c on its server with a
 *		non-blocking cancel request, then reads what is left of its results
 *		(up to the pipeline's sync); true when the connection is then idle
 *		and usable.  Bounded by deadline (0: none) and DTX_CANCEL_TIMEOUT_MS,
 *		whichever comes first: a server that does not answer that soon has
 *		its connection closed by the caller.  Not tried while a statement of
 *		the cache is being prepared (its name would be in doubt).  Never
 *		raises and serves no interrupt (the abort path).
 */
static bool
dtx_cancel_command(DtxConnection *c, TimestampTz deadline)
{
	TimestampTz limit = DtxDeadlineAfterMs(DTX_CANCEL_TIMEOUT_MS);
	PGcancelConn *cc;
	bool		cancelled = false;
	bool		in_pipeline;
	int			syncs;

	if (deadline != 0 && deadline < limit)
		limit = deadline;
	if (dtx_ms_until(limit) == 0 ||
		PQstatus(c->conn) != CONNECTION_OK || pipeline_parse_in_flight(c))
		return false;
	cc = PQcancelCreate(c->conn);
	if (cc == NULL)
		return false;
	if (PQcancelStart(cc))
	{
		for (;;)
		{
			PostgresPollingStatusType st = PQcancelPoll(cc);
			struct pollfd pfd;
			long		timeout = dtx_ms_until(limit);

			if (st == PGRES_POLLING_OK)
			{
				cancelled = true;
				break;
			}
			if (st == PGRES_POLLING_FAILED || timeout == 0 || !PostmasterIsAlive())
				break;
			pfd.fd = PQcancelSocket(cc);
			pfd.events = (st == PGRES_POLLING_READING) ? POLLIN : POLLOUT;
			pfd.revents = 0;
			if (pfd.fd < 0 ||
				(poll(&pfd, 1, (int) Min(timeout, DTX_POLL_SLICE_MS)) < 0 && errno != EINTR))
				break;
		}
	}
	PQcancelFinish(cc);
	if (!cancelled)
		return false;

	/* the rest of the command's results, up to the last sync of a pipeline */
	in_pipeline = (PQpipelineStatus(c->conn) != PQ_PIPELINE_OFF);
	syncs = Max(list_length(c->pipeline) + (c->lead_pending ? 1 : 0), 1);
	for (;;)
	{
		PGresult   *res;
		ExecStatusType st;

		while (PQisBusy(c->conn))
		{
			if (!dtx_wait_socket(c, c->conn, WL_SOCKET_READABLE, limit, false) ||
				!PQconsumeInput(c->conn))
				return false;
		}
		res = PQgetResult(c->conn);
		if (res == NULL)
		{
			if (!in_pipeline)
				break;
			if (dtx_ms_until(limit) == 0)
				return false;
			continue;
		}
		st = PQresultStatus(res);
		PQclear(res);
		if (dtx_is_copy(st) || st == PGRES_BAD_RESPONSE)
			return false;
		if (in_pipeline && st == PGRES_PIPELINE_SYNC && --syncs == 0)
		{
			if (!PQexitPipelineMode(c->conn))
				return false;
			pipeline_forget(c);
			break;
		}
	}
	return PQstatus(c->conn) == CONNECTION_OK &&
		(PQtransactionStatus(c->conn) == PQTRANS_IDLE ||
		 PQtransactionStatus(c->conn) == PQTRANS_INERROR);
}
#endif

/*
 * DtxRunBatch
 *		Runs n commands on c in one pipeline, each in its own implicit
 *		transaction (a sync after each), so that commands that refuse to
 *		run in a transaction block (COMMIT PREPARED) can be batched.
 *		status[i] says how command i ended; for errors, errmsgs[i] and
 *		sqlstates[i] (palloc'd) say why.  Raises on interrupts, on a lost
 *		connection and on c's op_deadline.
 */
void
DtxRunBatch(DtxConnection *c, const char *const *sqls, int n,
			DtxResultStatus *status, char **errmsgs, char **sqlstates)
{
	int			i;

	if (n == 0)
		return;
	if (c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK)
		dtx_raise_lost(c, sqls[0]);
	if (!PQenterPipelineMode(c->conn))
		dtx_raise_lost(c, sqls[0]);
	c->busy = true;
	for (i = 0; i < n; i++)
	{
		if (!PQsendQueryParams(c->conn, sqls[i], 0, NULL, NULL, NULL, NULL, 0) ||
			!PQpipelineSync(c->conn))
			dtx_raise_lost(c, sqls[i]);
	}
	if (!dtx_flush(c, c->op_deadline, true))
		dtx_raise_lost(c, sqls[0]);

	for (i = 0; i < n; i++)
	{
		PGresult   *res;

		status[i] = DTX_RESULT_OK;
		errmsgs[i] = NULL;
		sqlstates[i] = NULL;
		/* the command's results, then NULL, then its sync */
		while ((res = DtxGetResult(c, c->op_deadline, sqls[i])) != NULL)
		{
			ExecStatusType st = PQresultStatus(res);

			if (st == PGRES_PIPELINE_SYNC)
			{
				PQclear(res);
				break;
			}
			if (st == PGRES_FATAL_ERROR && status[i] == DTX_RESULT_OK)
			{
				const char *ss = PQresultErrorField(res, PG_DIAG_SQLSTATE);
				const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

				status[i] = DTX_RESULT_ERROR;
				errmsgs[i] = pstrdup(msg ? msg : "unknown error");
				sqlstates[i] = pstrdup(ss ? ss : "");
			}
			PQclear(res);
		}
		if (res == NULL)
		{
			/* the NULL that ends the command's results: its sync follows */
			res = DtxGetResult(c, c->op_deadline, sqls[i]);
			if (res == NULL || PQresultStatus(res) != PGRES_PIPELINE_SYNC)
			{
				if (res)
					PQclear(res);
				dtx_raise_lost(c, sqls[i]);
			}
			PQclear(res);
		}
	}
	if (!PQexitPipelineMode(c->conn))
		dtx_raise_lost(c, sqls[0]);
	c->busy = false;
}

/*
 * dtx_connections
 *		SQL: dtx.connections() lists this backend's cached connections:
 *		server, local user, remote backend pid, whether a remote
 *		transaction is open, whether the connection is invalidated.
 */
PG_FUNCTION_INFO_V1(dtx_connections);
Datum
dtx_connections(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS scan;
	DtxConnection *c;

	DtxInitMaterializedSRF(fcinfo, 0);
	if (ConnectionHash == NULL)
		return (Datum) 0;
	hash_seq_init(&scan, ConnectionHash);
	while ((c = hash_seq_search(&scan)) != NULL)
	{
		Datum		values[6];
		bool		nulls[6] = {0};

		if (c->conn == NULL)
			continue;
		values[0] = CStringGetTextDatum(c->servername);
		values[1] = ObjectIdGetDatum(c->userid);
		values[2] = Int32GetDatum(PQbackendPID(c->conn));
		values[3] = BoolGetDatum(c->xact.depth > 0);
		values[4] = BoolGetDatum(PQstatus(c->conn) == CONNECTION_OK && !c->broken);
		values[5] = BoolGetDatum(c->invalidated);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * disconnect_matching
 *		Closes the cached connections to servername (all when NULL) that no
 *		remote transaction uses; returns whether any was closed.  Raises
 *		when one is in use.
 */
static bool
disconnect_matching(const char *servername)
{
	HASH_SEQ_STATUS scan;
	DtxConnection *c;
	bool		closed = false;

	if (ConnectionHash == NULL)
		return false;
	hash_seq_init(&scan, ConnectionHash);
	while ((c = hash_seq_search(&scan)) != NULL)
	{
		if (c->conn == NULL)
			continue;
		if (servername && strcmp(c->servername, servername) != 0)
			continue;
		if (c->xact.depth > 0)
		{
			hash_seq_term(&scan);
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("cannot close the connection to server \"%s\": the current transaction uses it",
							c->servername),
					 errhint("Run it after the transaction ends.")));
		}
		DtxDisconnect(c);
		closed = true;
	}
	return closed;
}

/*
 * dtx_disconnect
 *		SQL: dtx.disconnect(server) closes this backend's connections to a
 *		server; false when there was none.
 */
PG_FUNCTION_INFO_V1(dtx_disconnect);
Datum
dtx_disconnect(PG_FUNCTION_ARGS)
{
	char	   *servername = text_to_cstring(PG_GETARG_TEXT_PP(0));

	(void) GetForeignServerByName(servername, false);
	PG_RETURN_BOOL(disconnect_matching(servername));
}

/*
 * dtx_disconnect_all
 *		SQL: dtx.disconnect_all() closes all of this backend's connections.
 */
PG_FUNCTION_INFO_V1(dtx_disconnect_all);
Datum
dtx_disconnect_all(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(disconnect_matching(NULL));
}
