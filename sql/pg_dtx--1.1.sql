/* pg_dtx 1.1: atomic transactions across PostgreSQL servers */

\echo Use "CREATE EXTENSION pg_dtx" to load this file. \quit

-- Every object below is schema-qualified; nothing here depends on the caller's search_path.

-------------------------------------------------------------------------------
-- The foreign-data wrapper that names the participant servers
-------------------------------------------------------------------------------

CREATE FUNCTION dtx.fdw_validator(pg_catalog.text[], pg_catalog.oid)
RETURNS pg_catalog.void
AS 'MODULE_PATHNAME', 'dtx_fdw_validator'
LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER dtx VALIDATOR dtx.fdw_validator;

COMMENT ON FOREIGN DATA WRAPPER dtx IS
  'participant servers of pg_dtx transactions (libpq connection options)';

-------------------------------------------------------------------------------
-- Catalog tables
-------------------------------------------------------------------------------

-- One row per distributed transaction that reached the decision to commit.
-- The row is inserted inside the local transaction, so the local commit
-- record is the commit decision. Rows go once every participant confirmed
-- COMMIT PREPARED.  Participant i (from 1) of a decision prepared under
-- the global id dtx_<coordinator_id>_<database OID>_<xid>_<servers[i]>_<userids[i]>_<i>_<nonce>.
-- The nonce, random, tells apart two transactions that got the same xid
-- across a crash of the coordinator (0, and no _<nonce>, for version 1.0).
CREATE TABLE dtx.decisions (
    xid             pg_catalog.xid8        NOT NULL PRIMARY KEY,  -- local (coordinator) transaction
    coordinator_id  pg_catalog.int8        NOT NULL,              -- coordinator id in the global ids
    servers         pg_catalog.oid[]       NOT NULL,              -- foreign servers that prepared
    userids         pg_catalog.oid[]       NOT NULL,              -- local role of each one's user mapping
    created_at      pg_catalog.timestamptz NOT NULL,
    nonce           pg_catalog.int8        NOT NULL DEFAULT 0     -- in the global ids
);

-- The cluster behind each participant server, recorded at first use, so that
-- a server re-pointed to another cluster is noticed.
CREATE TABLE dtx.server_identity (
    server_id          pg_catalog.oid         NOT NULL PRIMARY KEY,
    system_identifier  pg_catalog.int8        NOT NULL,
    database           pg_catalog.name        NOT NULL,
    recorded_at        pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
);

REVOKE ALL ON dtx.decisions, dtx.server_identity FROM PUBLIC;

-------------------------------------------------------------------------------
-- Running SQL on participants
-------------------------------------------------------------------------------

CREATE FUNCTION dtx.exec(server pg_catalog.text, sql pg_catalog.text)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'dtx_exec'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dtx.exec(server pg_catalog.text, sql pg_catalog.text, VARIADIC params "any")
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'dtx_exec'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dtx.query(server pg_catalog.text, sql pg_catalog.text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dtx_query'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dtx.query(server pg_catalog.text, sql pg_catalog.text, VARIADIC params "any")
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dtx_query'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dtx.exec(pg_catalog.text, pg_catalog.text) IS
  'run a statement on a participant server inside the distributed transaction; returns the rows affected';
COMMENT ON FUNCTION dtx.exec(pg_catalog.text, pg_catalog.text, "any") IS
  'run a statement with parameters $1, $2, ... on a participant server; returns the rows affected';
COMMENT ON FUNCTION dtx.query(pg_catalog.text, pg_catalog.text) IS
  'run a query on a participant server inside the distributed transaction; returns its rows';
COMMENT ON FUNCTION dtx.query(pg_catalog.text, pg_catalog.text, "any") IS
  'run a query with parameters $1, $2, ... on a participant server; returns its rows';

-- Parameters without a type (drivers' server-side binding) resolve to these
-- forms; their values go to the participant untyped, for its statement to type.
CREATE FUNCTION dtx.exec(server pg_catalog.text, sql pg_catalog.text, VARIADIC params pg_catalog.text[])
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'dtx_exec'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dtx.query(server pg_catalog.text, sql pg_catalog.text, VARIADIC params pg_catalog.text[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dtx_query'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dtx.exec(pg_catalog.text, pg_catalog.text, pg_catalog.text[]) IS
  'run a statement with untyped parameters $1, $2, ... (typed by the statement) on a participant server; returns the rows affected';
COMMENT ON FUNCTION dtx.query(pg_catalog.text, pg_catalog.text, pg_catalog.text[]) IS
  'run a query with untyped parameters $1, $2, ... (typed by the query) on a participant server; returns its rows';

-------------------------------------------------------------------------------
-- Coordinator identity
-------------------------------------------------------------------------------

CREATE FUNCTION dtx.coordinator_id()
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'dtx_coordinator_id_sql'
LANGUAGE C STABLE STRICT;

COMMENT ON FUNCTION dtx.coordinator_id() IS
  'the coordinator id carried by this server''s global transaction ids';

CREATE FUNCTION dtx.forget_server_identity(server pg_catalog.text)
RETURNS pg_catalog.void
AS 'MODULE_PATHNAME', 'dtx_forget_server_identity'
LANGUAGE C STRICT;

REVOKE ALL ON FUNCTION dtx.forget_server_identity(pg_catalog.text) FROM PUBLIC;

COMMENT ON FUNCTION dtx.forget_server_identity(pg_catalog.text) IS
  'forget the cluster a server reached at first use (after re-pointing it on purpose)';

-------------------------------------------------------------------------------
-- The resolver
-------------------------------------------------------------------------------

-- Participants the resolver could not finish its work on, with the backoff
-- before the next attempt.  A row goes when a pass succeeds with the server.
CREATE TABLE dtx.resolver_status (
    server_id     pg_catalog.oid         NOT NULL PRIMARY KEY,
    failures      pg_catalog.int4        NOT NULL,
    last_error    pg_catalog.text,
    last_attempt  pg_catalog.timestamptz NOT NULL,
    next_attempt  pg_catalog.timestamptz NOT NULL
);
REVOKE ALL ON dtx.resolver_status FROM PUBLIC;

CREATE FUNCTION dtx.resolve(
    OUT server pg_catalog.text,
    OUT global_id pg_catalog.text,
    OUT action pg_catalog.text,
    OUT outcome pg_catalog.text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dtx_resolve'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION dtx.resolve() FROM PUBLIC;
COMMENT ON FUNCTION dtx.resolve() IS
  'run one resolver pass now: finish every in-doubt transaction of this database that can be finished';

CREATE FUNCTION dtx.global_id(coordinator_id pg_catalog.int8, xid pg_catalog.xid8,
                              server pg_catalog.oid, userid pg_catalog.oid, n pg_catalog.int4,
                              nonce pg_catalog.int8 DEFAULT 0)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'dtx_global_id'
LANGUAGE C STABLE STRICT;

CREATE FUNCTION dtx.confirmed_pending(OUT xid pg_catalog.xid8)
RETURNS SETOF pg_catalog.xid8
AS 'MODULE_PATHNAME', 'dtx_confirmed_pending'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION dtx.resolver_enabled()
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'dtx_resolver_enabled'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION dtx.resolver_enabled() IS
  'whether the background resolver runs (pg_dtx in shared_preload_libraries)';



-- The coordinator id is one per cluster, kept in the data directory.  A
-- copy of a coordinator (base backup, point-in-time restore) is held at its
-- first start until one of the next two functions says what it is.
CREATE FUNCTION dtx.set_coordinator_id(new_id pg_catalog.int8)
RETURNS pg_catalog.void
AS 'MODULE_PATHNAME', 'dtx_set_coordinator_id'
LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION dtx.set_coordinator_id(pg_catalog.int8) FROM PUBLIC;
COMMENT ON FUNCTION dtx.set_coordinator_id(pg_catalog.int8) IS
  'make a held copy of a coordinator a coordinator of its own, with this id';

CREATE FUNCTION dtx.confirm_successor()
RETURNS pg_catalog.void
AS 'MODULE_PATHNAME', 'dtx_confirm_successor'
LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION dtx.confirm_successor() FROM PUBLIC;
COMMENT ON FUNCTION dtx.confirm_successor() IS
  'lift the hold of a server that replaces the coordinator it was copied from';

CREATE FUNCTION dtx.coordinator_hold()
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'dtx_coordinator_hold'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION dtx.coordinator_hold() IS
  'why this server is held (a copy of a coordinator), or NULL';

-------------------------------------------------------------------------------
-- Statistics and activity (shared memory: needs shared_preload_libraries)
-------------------------------------------------------------------------------

CREATE FUNCTION dtx.stats(
    OUT two_phase_commits pg_catalog.int8,
    OUT one_phase_commits pg_catalog.int8,
    OUT read_only_commits pg_catalog.int8,
    OUT aborts pg_catalog.int8,
    OUT prepare_failures pg_catalog.int8,
    OUT left_in_doubt pg_catalog.int8,
    OUT resolver_commits pg_catalog.int8,
    OUT resolver_rollbacks pg_catalog.int8,
    OUT prepare_time_ms pg_catalog.float8,
    OUT prepare_time_max_ms pg_catalog.float8,
    OUT commit_prepared_time_ms pg_catalog.float8,
    OUT commit_prepared_time_max_ms pg_catalog.float8,
    OUT stats_reset pg_catalog.timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dtx_stats'
LANGUAGE C VOLATILE STRICT;

CREATE VIEW dtx.stats AS SELECT * FROM dtx.stats();
COMMENT ON VIEW dtx.stats IS 'pg_dtx counters since the last dtx.stats_reset()';

CREATE FUNCTION dtx.server_stats(
    OUT server_id pg_catalog.oid,
    OUT prepare_failures pg_catalog.int8,
    OUT left_in_doubt pg_catalog.int8,
    OUT resolver_commits pg_catalog.int8,
    OUT resolver_rollbacks pg_catalog.int8)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dtx_server_stats'
LANGUAGE C VOLATILE STRICT;

CREATE VIEW dtx.server_stats AS
SELECT s.srvname AS server, st.prepare_failures, st.left_in_doubt, st.resolver_commits, st.resolver_rollbacks
  FROM dtx.server_stats() st
  LEFT JOIN pg_catalog.pg_foreign_server s ON s.oid OPERATOR(pg_catalog.=) st.server_id;
COMMENT ON VIEW dtx.server_stats IS 'pg_dtx counters per participant server of this database';

CREATE FUNCTION dtx.stats_reset()
RETURNS pg_catalog.void
AS 'MODULE_PATHNAME', 'dtx_stats_reset'
LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION dtx.stats_reset() FROM PUBLIC;

CREATE FUNCTION dtx.activity(
    OUT pid pg_catalog.int4,
    OUT database_id pg_catalog.oid,
    OUT phase pg_catalog.text,
    OUT server pg_catalog.text,
    OUT since pg_catalog.timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dtx_activity'
LANGUAGE C VOLATILE STRICT;

CREATE VIEW dtx.activity AS
SELECT a.pid, d.datname AS database, a.phase, a.server, a.since
  FROM dtx.activity() a
  LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) a.database_id;
COMMENT ON VIEW dtx.activity IS 'backends waiting on a participant: the phase (statement, prepare, commit prepared, ...) and the server';

-------------------------------------------------------------------------------
-- This backend's participants and connections
-------------------------------------------------------------------------------

CREATE FUNCTION dtx.participants(
    OUT participant pg_catalog.int4,
    OUT server pg_catalog.text,
    OUT userid pg_catalog.oid,
    OUT state pg_catalog.text,
    OUT wrote pg_catalog.bool)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dtx_participants'
LANGUAGE C VOLATILE STRICT;

CREATE VIEW dtx.participants AS SELECT * FROM dtx.participants();
COMMENT ON VIEW dtx.participants IS 'the participants of the current transaction and their state';

CREATE FUNCTION dtx.connections(
    OUT server pg_catalog.text,
    OUT userid pg_catalog.oid,
    OUT remote_pid pg_catalog.int4,
    OUT in_transaction pg_catalog.bool,
    OUT usable pg_catalog.bool,
    OUT invalidated pg_catalog.bool)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dtx_connections'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION dtx.connections() IS 'the cached connections of this backend';

CREATE FUNCTION dtx.disconnect(server pg_catalog.text)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'dtx_disconnect'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION dtx.disconnect(pg_catalog.text) IS 'close this backend''s connections to a server';

CREATE FUNCTION dtx.disconnect_all()
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'dtx_disconnect_all'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION dtx.disconnect_all() IS 'close all of this backend''s connections';

-------------------------------------------------------------------------------
-- Manual resolution, and dtx.in_doubt for everybody (their own transactions)
-------------------------------------------------------------------------------

CREATE FUNCTION dtx.resolve_manually(global_id pg_catalog.text, commit pg_catalog.bool)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'dtx_resolve_manually'
LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION dtx.resolve_manually(pg_catalog.text, pg_catalog.bool) FROM PUBLIC;
COMMENT ON FUNCTION dtx.resolve_manually(pg_catalog.text, pg_catalog.bool) IS
  'commit or roll back one prepared transaction by hand (superuser; logged)';

-- Prepared transactions without a decision that the resolver's last pass
-- could not finish, for dtx.in_doubt (rewritten by every pass).
CREATE TABLE dtx.undecided (
    server_id   pg_catalog.oid         NOT NULL,
    global_id   pg_catalog.text        NOT NULL,
    xid         pg_catalog.xid8        NOT NULL,
    userid      pg_catalog.oid         NOT NULL,
    first_seen  pg_catalog.timestamptz NOT NULL,
    seen_at     pg_catalog.timestamptz NOT NULL,
    last_error  pg_catalog.text,
    PRIMARY KEY (server_id, global_id)
);
REVOKE ALL ON dtx.undecided FROM PUBLIC;

-- Transactions not yet finished everywhere.  'commit': one row per
-- participant of a commit decision not yet confirmed by all of them (those
-- that did commit stay listed until the decision is confirmed or a resolver
-- pass finds it finished everywhere).
-- 'none yet': a prepared transaction without a decision that the
-- resolver's last pass saw on a participant and could not finish (its local
-- transaction was still running, or ROLLBACK PREPARED failed); age counts
-- from the first pass that saw it.  Everybody sees the transactions of the
-- roles they belong to; pg_read_all_stats all.  A security barrier, so that
-- a user's cheap function in WHERE never sees the rows of other roles (the
-- UNION ALL is wrapped: a view that is a bare UNION ALL is flattened by the
-- planner, barrier or not).
CREATE VIEW dtx.in_doubt WITH (security_barrier) AS
SELECT i.global_id, i.server, i.decision, i.xid, i.age, i.failures, i.last_error, i.next_attempt
  FROM (
  SELECT dtx.global_id(d.coordinator_id, d.xid, p.server, p.userid, p.n::pg_catalog.int4, d.nonce) AS global_id,
         s.srvname AS server,
         'commit'::pg_catalog.text AS decision,
         d.xid AS xid,
         pg_catalog.now() OPERATOR(pg_catalog.-) d.created_at AS age,
         r.failures AS failures,
         r.last_error AS last_error,
         r.next_attempt AS next_attempt
    FROM dtx.decisions d
   CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(d.servers), pg_catalog.unnest(d.userids)) WITH ORDINALITY AS p(server, userid, n)
    LEFT JOIN pg_catalog.pg_foreign_server s ON s.oid OPERATOR(pg_catalog.=) p.server
    LEFT JOIN dtx.resolver_status r ON r.server_id OPERATOR(pg_catalog.=) p.server
   WHERE d.xid OPERATOR(pg_catalog.<>) ALL (ARRAY(SELECT c.xid FROM dtx.confirmed_pending() c))
     AND d.coordinator_id OPERATOR(pg_catalog.=) dtx.coordinator_id()
     AND (pg_catalog.pg_has_role(p.userid, 'MEMBER')
          OR pg_catalog.pg_has_role('pg_read_all_stats', 'MEMBER'))
  UNION ALL
  SELECT u.global_id,
         s.srvname,
         'none yet'::pg_catalog.text,
         u.xid,
         pg_catalog.now() OPERATOR(pg_catalog.-) u.first_seen,
         r.failures,
         COALESCE(u.last_error, r.last_error),
         r.next_attempt
    FROM dtx.undecided u
    LEFT JOIN pg_catalog.pg_foreign_server s ON s.oid OPERATOR(pg_catalog.=) u.server_id
    LEFT JOIN dtx.resolver_status r ON r.server_id OPERATOR(pg_catalog.=) u.server_id
   WHERE NOT EXISTS (SELECT 1 FROM dtx.decisions d WHERE d.xid OPERATOR(pg_catalog.=) u.xid)
     AND (pg_catalog.pg_has_role(u.userid, 'MEMBER')
          OR pg_catalog.pg_has_role('pg_read_all_stats', 'MEMBER'))
       ) i;
GRANT SELECT ON dtx.in_doubt TO PUBLIC;

-------------------------------------------------------------------------------
-- Distributed locks
-------------------------------------------------------------------------------

CREATE FUNCTION dtx.lock(servers pg_catalog.text[], key pg_catalog.int8,
                         lock_local_too pg_catalog.bool DEFAULT false)
RETURNS pg_catalog.void
AS 'MODULE_PATHNAME', 'dtx_lock'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dtx.lock(servers pg_catalog.text[], key1 pg_catalog.int4, key2 pg_catalog.int4,
                         lock_local_too pg_catalog.bool DEFAULT false)
RETURNS pg_catalog.void
AS 'MODULE_PATHNAME', 'dtx_lock'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dtx.try_lock(servers pg_catalog.text[], key pg_catalog.int8,
                             lock_local_too pg_catalog.bool DEFAULT false)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'dtx_try_lock'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dtx.try_lock(servers pg_catalog.text[], key1 pg_catalog.int4, key2 pg_catalog.int4,
                             lock_local_too pg_catalog.bool DEFAULT false)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'dtx_try_lock'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dtx.lock(pg_catalog.text[], pg_catalog.int8, pg_catalog.bool) IS
  'take a transaction-scoped advisory lock on every listed server, in one global order, held until the distributed transaction ends everywhere';
COMMENT ON FUNCTION dtx.try_lock(pg_catalog.text[], pg_catalog.int8, pg_catalog.bool) IS
  'like dtx.lock, but returns false instead of waiting';

DO $$
BEGIN
  IF NOT dtx.resolver_enabled() THEN
    RAISE NOTICE 'pg_dtx is not in shared_preload_libraries: in-doubt transactions are not resolved automatically'
      USING HINT = 'Add pg_dtx to shared_preload_libraries and restart, or run SELECT * FROM dtx.resolve() from time to time.';
  END IF;
END $$;
