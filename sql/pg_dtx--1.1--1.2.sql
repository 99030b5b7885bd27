/* pg_dtx 1.1 -> 1.2: pipelined statements (dtx.send, dtx.send_expect, dtx.wait) */

\echo Use "ALTER EXTENSION pg_dtx UPDATE TO '1.2'" to load this file. \quit

-------------------------------------------------------------------------------
-- Pipelined statements: sent at once, their results read later
-------------------------------------------------------------------------------

CREATE FUNCTION dtx.send(server pg_catalog.text, sql pg_catalog.text)
RETURNS void
AS 'MODULE_PATHNAME', 'dtx_send'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dtx.send(server pg_catalog.text, sql pg_catalog.text, VARIADIC params "any")
RETURNS void
AS 'MODULE_PATHNAME', 'dtx_send'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dtx.send(server pg_catalog.text, sql pg_catalog.text, VARIADIC params pg_catalog.text[])
RETURNS void
AS 'MODULE_PATHNAME', 'dtx_send'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dtx.send_expect(server pg_catalog.text, rows pg_catalog.int8, sql pg_catalog.text)
RETURNS void
AS 'MODULE_PATHNAME', 'dtx_send_expect'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dtx.send_expect(server pg_catalog.text, rows pg_catalog.int8, sql pg_catalog.text, VARIADIC params "any")
RETURNS void
AS 'MODULE_PATHNAME', 'dtx_send_expect'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dtx.send_expect(server pg_catalog.text, rows pg_catalog.int8, sql pg_catalog.text, VARIADIC params pg_catalog.text[])
RETURNS void
AS 'MODULE_PATHNAME', 'dtx_send_expect'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dtx.wait(server pg_catalog.text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'dtx_wait'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dtx.send(pg_catalog.text, pg_catalog.text) IS
  'send a statement to a participant server without waiting: its result is read at the next statement there, dtx.wait or COMMIT';
COMMENT ON FUNCTION dtx.send(pg_catalog.text, pg_catalog.text, "any") IS
  'send a statement with parameters $1, $2, ... to a participant server without waiting';
COMMENT ON FUNCTION dtx.send(pg_catalog.text, pg_catalog.text, pg_catalog.text[]) IS
  'send a statement with untyped parameters $1, $2, ... (typed by the statement) to a participant server without waiting';
COMMENT ON FUNCTION dtx.send_expect(pg_catalog.text, pg_catalog.int8, pg_catalog.text) IS
  'dtx.send of a statement that must affect exactly the given number of rows; checked when its result is read';
COMMENT ON FUNCTION dtx.send_expect(pg_catalog.text, pg_catalog.int8, pg_catalog.text, "any") IS
  'dtx.send_expect with parameters $1, $2, ...';
COMMENT ON FUNCTION dtx.send_expect(pg_catalog.text, pg_catalog.int8, pg_catalog.text, pg_catalog.text[]) IS
  'dtx.send_expect with untyped parameters $1, $2, ... (typed by the statement)';
COMMENT ON FUNCTION dtx.wait(pg_catalog.text) IS
  'wait for the statements sent to a server (every server when NULL) and raise the first failure';
