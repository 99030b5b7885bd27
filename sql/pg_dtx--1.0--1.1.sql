/* pg_dtx 1.0 -> 1.1: statistics, activity, connections, manual resolution */

\echo Use "ALTER EXTENSION pg_dtx UPDATE TO '1.1'" to load this file. \quit

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

-- Global ids carry a nonce, kept with the decision.
ALTER TABLE dtx.decisions ADD COLUMN nonce pg_catalog.int8 NOT NULL DEFAULT 0;
DROP VIEW dtx.in_doubt;
DROP FUNCTION dtx.global_id(pg_catalog.int8, pg_catalog.xid8, pg_catalog.oid, pg_catalog.oid, pg_catalog.int4);
CREATE FUNCTION dtx.global_id(coordinator_id pg_catalog.int8, xid pg_catalog.xid8,
                              server pg_catalog.oid, userid pg_catalog.oid, n pg_catalog.int4,
                              nonce pg_catalog.int8 DEFAULT 0)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'dtx_global_id'
LANGUAGE C STABLE STRICT;

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

-------------------------------------------------------------------------------
-- The coordinator id: one per cluster, in the data directory, instead of a
-- table per database; copies of a coordinator are held at their first start
-------------------------------------------------------------------------------

DO $$
BEGIN
  IF EXISTS (SELECT FROM dtx.coordinator) THEN
    RAISE EXCEPTION 'dtx.coordinator holds a coordinator id set by hand'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'Version 1.1 keeps the coordinator id of the whole cluster in its data directory.',
            HINT = 'Finish every transaction in doubt, empty dtx.coordinator, and update again; a copy of a coordinator is then held at its first start and given its own id.';
  END IF;
END $$;
DROP TABLE dtx.coordinator;

DROP FUNCTION dtx.set_coordinator_id(pg_catalog.int8);
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
-- Running SQL on participants: parameters without a type
-------------------------------------------------------------------------------

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
