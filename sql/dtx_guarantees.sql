-- What pg_dtx guarantees whatever the session does: no leak of other roles'
-- transactions through dtx.in_doubt, parameters sent in a fixed text form,
-- the remote session's formats kept pinned, and no ERROR for a transaction
-- that committed.
SELECT current_database() AS regress_db \gset
SELECT dtx.coordinator_id() AS coord \gset
SELECT oid AS p1 FROM pg_foreign_server WHERE srvname = 'p1' \gset
SELECT oid AS me FROM pg_roles WHERE rolname = current_user \gset

-- dtx.in_doubt is a security barrier: a cheap leaky function in WHERE does
-- not see the rows of other roles
INSERT INTO dtx.decisions VALUES ('424242', :coord, ARRAY[:p1]::oid[], ARRAY[:me]::oid[], now());
SELECT server, decision, xid FROM dtx.in_doubt WHERE xid = '424242';
CREATE ROLE dtx_mallory;
GRANT USAGE ON SCHEMA dtx TO dtx_mallory;
SET ROLE dtx_mallory;
CREATE FUNCTION pg_temp.leak(x xid8) RETURNS bool LANGUAGE plpgsql COST 0.0000001 AS
$$BEGIN RAISE NOTICE 'leaked: xid %', x; RETURN true; END$$;
SELECT count(*) AS visible FROM dtx.in_doubt WHERE pg_temp.leak(xid);
SELECT count(*) AS visible FROM dtx.in_doubt WHERE xid = '424242' AND pg_temp.leak(xid);
RESET ROLE;
SELECT c.relname, c.reloptions FROM pg_class c WHERE c.oid = 'dtx.in_doubt'::regclass;
DELETE FROM dtx.decisions WHERE xid = '424242';

-- Parameters travel in one text form whatever the session's DateStyle,
-- IntervalStyle and extra_float_digits: the participant stores the local
-- value exactly
\c dtx_p1
CREATE TABLE fmt (tag text, d date, ts timestamp, tz timestamptz, i interval, i2 interval, f float8, r float4);
\c :regress_db
CREATE TABLE fmt_expected AS
SELECT date '2024-02-03' AS d, timestamp '2024-02-03 04:05:06.789' AS ts,
       timestamptz '2024-02-03 12:05:06.789+00' AS tz, interval '1 year 2 mons 3 days 04:05:06.5' AS i,
       interval '-1 day -02:00:00' AS i2, 0.1::float8 + 0.2::float8 AS f, 1.0000001::float4 AS r;
CREATE FUNCTION pg_temp.send(tag text) RETURNS bigint LANGUAGE sql AS
$$SELECT dtx.exec('p1', 'INSERT INTO fmt VALUES ($1, $2, $3, $4, $5, $6, $7, $8)', tag, d, ts, tz, i, i2, f, r)
    FROM fmt_expected$$;
SET DateStyle = 'ISO, MDY';
SELECT pg_temp.send('datestyle ISO, MDY');
SET DateStyle = 'ISO, DMY';
SELECT pg_temp.send('datestyle ISO, DMY');
SET DateStyle = 'SQL, MDY';
SELECT pg_temp.send('datestyle SQL, MDY');
SET DateStyle = 'SQL, DMY';
SELECT pg_temp.send('datestyle SQL, DMY');
SET DateStyle = 'German';
SELECT pg_temp.send('datestyle German');
SHOW DateStyle;
-- the elements of a VARIADIC array too
SELECT dtx.exec('p1', 'INSERT INTO fmt (tag, d) VALUES (''variadic'', $1)', VARIADIC ARRAY[date '2024-02-03']);
SELECT * FROM dtx.query('p1', 'SELECT d::text FROM fmt WHERE tag = ''variadic''') AS t(d text);
SELECT dtx.exec('p1', 'DELETE FROM fmt WHERE tag = ''variadic''');
SET DateStyle = 'Postgres, MDY';
SELECT pg_temp.send('datestyle Postgres, MDY');
SET DateStyle = 'Postgres, DMY';
SELECT pg_temp.send('datestyle Postgres, DMY');
RESET DateStyle;
SET IntervalStyle = postgres;
SELECT pg_temp.send('intervalstyle postgres');
SET IntervalStyle = postgres_verbose;
SELECT pg_temp.send('intervalstyle postgres_verbose');
SET IntervalStyle = sql_standard;
SELECT pg_temp.send('intervalstyle sql_standard');
SET IntervalStyle = iso_8601;
SELECT pg_temp.send('intervalstyle iso_8601');
RESET IntervalStyle;
SET extra_float_digits = -15;
SELECT pg_temp.send('extra_float_digits -15');
SET extra_float_digits = 0;
SELECT pg_temp.send('extra_float_digits 0');
SET extra_float_digits = 1;
SELECT pg_temp.send('extra_float_digits 1');
SET extra_float_digits = 3;
SELECT pg_temp.send('extra_float_digits 3');
RESET extra_float_digits;
-- the stored values, as the participant prints them, against the local ones
-- printed in the same forms
SET DateStyle = 'ISO, MDY';
SET IntervalStyle = postgres;
SET extra_float_digits = 3;
SELECT q.tag, q.d = e.d::text AS d, q.ts = e.ts::text AS ts, q.tz::timestamptz = e.tz AS tz,
       q.i = e.i::text AS i, q.i2 = e.i2::text AS i2, q.f = e.f::text AS f, q.r = e.r::text AS r
  FROM dtx.query('p1', 'SELECT tag, d::text, ts::text, tz::text, i::text, i2::text, f::text, r::text FROM fmt')
       AS q(tag text, d text, ts text, tz text, i text, i2 text, f text, r text), fmt_expected e
 ORDER BY q.tag;
-- dtx.query's results are read right whatever the local settings
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = sql_standard;
SET extra_float_digits = -15;
SELECT count(*) AS rows,
       count(*) FILTER (WHERE q.d = e.d AND q.ts = e.ts AND q.tz = e.tz AND q.i::text = e.i::text
                          AND q.i2::text = e.i2::text AND q.f = e.f AND q.r = e.r) AS exact
  FROM dtx.query('p1', 'SELECT d, ts, tz, i, i2, f, r FROM fmt')
       AS q(d date, ts timestamp, tz timestamptz, i interval, i2 interval, f float8, r float4), fmt_expected e;
SET DateStyle = 'German';
SET IntervalStyle = postgres_verbose;
SELECT count(*) AS rows,
       count(*) FILTER (WHERE q.d = e.d AND q.ts = e.ts AND q.tz = e.tz AND q.i::text = e.i::text
                          AND q.i2::text = e.i2::text AND q.f = e.f AND q.r = e.r) AS exact
  FROM dtx.query('p1', 'SELECT d, ts, tz, i, i2, f, r FROM fmt')
       AS q(d date, ts timestamp, tz timestamptz, i interval, i2 interval, f float8, r float4), fmt_expected e;
RESET DateStyle;
RESET IntervalStyle;
RESET extra_float_digits;
DROP TABLE fmt_expected;

-- The settings pg_dtx pins on its connections cannot be changed through it:
-- later results would be misread
SELECT dtx.exec('p1', 'SET DateStyle = ''SQL, DMY''');
SELECT dtx.exec('p1', 'SET LOCAL datestyle TO German');
SELECT dtx.exec('p1', 'set session IntervalStyle = sql_standard');
SELECT dtx.exec('p1', '/* hidden */ SET "extra_float_digits" = 0');
SELECT dtx.exec('p1', 'SET client_encoding = ''LATIN1''');
SELECT dtx.exec('p1', 'SET NAMES ''LATIN1''');
SELECT dtx.exec('p1', 'SET application_name = ''somebody''');
SELECT dtx.exec('p1', 'RESET DateStyle');
SELECT dtx.exec('p1', 'RESET ALL');
SELECT * FROM dtx.query('p1', 'SET IntervalStyle = iso_8601') AS t(x text);
-- a name written with Unicode escapes is no disguise: such names are refused
-- after SET and RESET (the server does not report extra_float_digits, so a
-- change of it would go unnoticed)
SELECT dtx.exec('p1', 'SET U&"extra_float_digits" = 0');
SELECT dtx.exec('p1', 'SET LOCAL u&"\0061pplication_name" = ''x''');
SELECT dtx.exec('p1', 'RESET U&"DateStyle"');
-- a function that changes application_name (by which pg_dtx finds its
-- sessions, e.g. for the deadlock detector) is noticed as well
SELECT * FROM dtx.query('p1', 'SELECT pg_catalog.set_config(''application_name'', ''psql'', false)') AS t(s text);
-- the prepared transaction's owner must be the user mapping's role, which
-- the resolver connects as: role changes are refused
SELECT dtx.exec('p1', 'SET ROLE postgres');
SELECT dtx.exec('p1', 'set local role postgres');
SELECT dtx.exec('p1', 'SET SESSION ROLE NONE');
SELECT dtx.exec('p1', 'SET SESSION AUTHORIZATION DEFAULT');
SELECT dtx.exec('p1', 'SET LOCAL SESSION AUTHORIZATION DEFAULT');
SELECT dtx.exec('p1', 'RESET ROLE');
-- the remote transaction takes the local one's isolation level and mode
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT dtx.exec('p1', 'SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT dtx.exec('p1', 'SET transaction_isolation = ''read committed''');
ROLLBACK;
SELECT dtx.exec('p1', 'SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY');
SELECT dtx.exec('p1', 'SET SESSION SESSION CHARACTERISTICS AS TRANSACTION READ ONLY');
SELECT dtx.exec('p1', 'SET LOCAL transaction_read_only = on');
SELECT dtx.exec('p1', 'RESET transaction_isolation');
SELECT dtx.exec('p1', 'RESET TRANSACTION ISOLATION LEVEL');
SELECT dtx.exec('p1', 'SET session_authorization = ''postgres''');
-- going back to the mapping's own role is fine
SELECT dtx.exec('p1', 'RESET SESSION AUTHORIZATION');
-- a function that changes one is noticed after the statement: the
-- transaction is rolled back, which undoes it
SELECT * FROM dtx.query('p1', 'SELECT pg_catalog.set_config(''DateStyle'', ''SQL, DMY'', false)') AS t(s text);
-- other settings can be changed
SELECT dtx.exec('p1', 'SET search_path = public');
SELECT dtx.exec('p1', 'SET LOCAL work_mem = ''8MB''');
SELECT dtx.exec('p1', 'RESET search_path');
-- the remote session's formats are still the pinned ones
SELECT * FROM dtx.query('p1', 'SELECT pg_catalog.current_setting(''DateStyle''), pg_catalog.current_setting(''IntervalStyle''),
                                      pg_catalog.current_setting(''extra_float_digits''), pg_catalog.current_setting(''client_encoding''),
                                      pg_catalog.current_setting(''application_name'') LIKE ''pg\_dtx:%''')
         AS t(datestyle text, intervalstyle text, extra_float_digits text, client_encoding text, application_name_ok bool);
SELECT q.d = date '2024-02-03' AS date_read_right FROM dtx.query('p1', 'SELECT d FROM fmt LIMIT 1') AS q(d date);

-- One-phase commit: a participant that only read and fails at COMMIT after
-- the sole writer committed does not turn the commit into an ERROR (a
-- client would run the transaction again and apply it twice).  This client
-- retries when COMMIT fails.  A cursor WITH HOLD runs at COMMIT: it fails
-- the reader's COMMIT there.
\c dtx_p2
CREATE FUNCTION open_hold_cursor(q text) RETURNS int LANGUAGE plpgsql AS
$$BEGIN
  EXECUTE 'DECLARE run_at_commit CURSOR WITH HOLD FOR ' || q;
  RETURN 1;
END$$;
\c :regress_db
SELECT balance AS before FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 3') AS t(balance bigint) \gset
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 3');
SELECT pid AS p2_pid FROM dtx.query('p2', 'SELECT pg_catalog.pg_backend_pid()') AS t(pid int) \gset
SELECT * FROM dtx.query('p2', 'SELECT open_hold_cursor(''SELECT 1 / (x - x) FROM generate_series(1, 1) x'')') AS t(x int);
COMMIT;
\if :ERROR
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 3');
COMMIT;
\endif
SELECT balance - :before AS applied FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 3') AS t(balance bigint);
-- the reader's session is replaced: nothing of the failed transaction is left
SELECT pid <> :p2_pid AS new_session, cursors
  FROM dtx.query('p2', 'SELECT pg_catalog.pg_backend_pid(), (SELECT count(*) FROM pg_catalog.pg_cursors WHERE name = ''run_at_commit'')')
       AS t(pid int, cursors bigint);
-- the same when the reader's connection is lost in its COMMIT
SELECT balance AS before FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 3') AS t(balance bigint) \gset
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 3');
SELECT * FROM dtx.query('p2', 'SELECT open_hold_cursor(''SELECT pg_catalog.pg_terminate_backend(pg_catalog.pg_backend_pid())'')') AS t(x int);
\set VERBOSITY terse
COMMIT;
\set VERBOSITY default
\if :ERROR
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 3');
COMMIT;
\endif
SELECT balance - :before AS applied FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 3') AS t(balance bigint);
SELECT * FROM dtx.query('p2', 'SELECT 1') AS t(reconnected int);
-- and when the reader does not answer its COMMIT within dtx.commit_timeout
SELECT balance AS before FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 3') AS t(balance bigint) \gset
SET dtx.commit_timeout = '300ms';
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 3');
SELECT * FROM dtx.query('p2', 'SELECT open_hold_cursor(''SELECT pg_catalog.pg_sleep(2)'')') AS t(x int);
COMMIT;
\if :ERROR
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 3');
COMMIT;
\endif
RESET dtx.commit_timeout;
SELECT balance - :before AS applied FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 3') AS t(balance bigint);
SELECT * FROM dtx.query('p2', 'SELECT 1') AS t(reconnected int);
-- a reader lost before COMMIT: its read-only probe came with its query, so
-- the writer commits in one phase and the lost reader (it wrote nothing) gets
-- a WARNING; were it an error, the retry would apply the write once
SELECT balance AS before FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 3') AS t(balance bigint) \gset
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 3');
SELECT pid AS p2_pid FROM dtx.query('p2', 'SELECT pg_catalog.pg_backend_pid()') AS t(pid int) \gset
SELECT pg_terminate_backend(:p2_pid, 10000) AS terminated;
\set VERBOSITY terse
COMMIT;
\set VERBOSITY default
\if :ERROR
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 3');
COMMIT;
\endif
SELECT balance - :before AS applied FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 3') AS t(balance bigint);
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;
REVOKE USAGE ON SCHEMA dtx FROM dtx_mallory;
DROP ROLE dtx_mallory;
