/* pg_dtx 1.0: atomic transactions across PostgreSQL servers */

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
-- COMMIT PREPARED.
CREATE TABLE dtx.decisions (
    xid             pg_catalog.xid8        NOT NULL PRIMARY KEY,  -- local (coordinator) transaction
    coordinator_id  pg_catalog.int8        NOT NULL,              -- coordinator id in the global ids
    userid          pg_catalog.oid         NOT NULL,              -- local role whose user mappings were used
    servers         pg_catalog.oid[]       NOT NULL,              -- foreign servers that prepared
    created_at      pg_catalog.timestamptz NOT NULL
);

-- The cluster behind each participant server, recorded at first use, so that
-- a server re-pointed to another cluster is noticed.
CREATE TABLE dtx.server_identity (
    server_id          pg_catalog.oid         NOT NULL PRIMARY KEY,
    system_identifier  pg_catalog.int8        NOT NULL,
    database           pg_catalog.name        NOT NULL,
    recorded_at        pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- An operator's override of the coordinator id (empty: the system identifier).
CREATE TABLE dtx.coordinator (
    singleton       pg_catalog.bool NOT NULL PRIMARY KEY DEFAULT true CHECK (singleton),
    coordinator_id  pg_catalog.int8 NOT NULL
);

REVOKE ALL ON dtx.decisions, dtx.server_identity, dtx.coordinator FROM PUBLIC;

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
