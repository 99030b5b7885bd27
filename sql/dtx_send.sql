-- dtx.send, dtx.send_expect, dtx.wait: statements sent in pipeline mode,
-- their results read later (the next statement on that server, dtx.wait,
-- COMMIT), errors raised there with the remote SQLSTATE and the statement.
CREATE FUNCTION p_rows(srv text, q text) RETURNS bigint LANGUAGE sql
  AS $$ SELECT n FROM dtx.query(srv, q) AS t(n bigint) $$;
\set VERBOSITY default
-- tables of their own on both participants
BEGIN;
SELECT dtx.exec(s, 'CREATE TABLE sent (transfer_id int PRIMARY KEY, amount bigint)'),
       dtx.exec(s, 'CREATE TABLE sacc (id int PRIMARY KEY, balance bigint NOT NULL)'),
       dtx.exec(s, 'INSERT INTO sacc SELECT g, 1000 FROM generate_series(1, 10) g')
  FROM unnest(ARRAY['p1', 'p2']) s;
COMMIT;

-- A transfer: two sends, checked row counts, one COMMIT (two-phase).
BEGIN;
SELECT dtx.send_expect('p1', 1, 'UPDATE sacc SET balance = balance - 5 WHERE id = $1', 1);
SELECT dtx.send_expect('p2', 1, 'UPDATE sacc SET balance = balance + 5 WHERE id = $1', 1);
SELECT server, state, wrote FROM dtx.participants() ORDER BY 1;
COMMIT;
SELECT p_rows('p1', 'SELECT balance FROM sacc WHERE id = 1') AS p1,
       p_rows('p2', 'SELECT balance FROM sacc WHERE id = 1') AS p2;

-- A wrong row count fails the transaction at COMMIT; nothing is applied,
-- nothing is left prepared.
BEGIN;
SELECT dtx.send_expect('p1', 1, 'UPDATE sacc SET balance = balance - 5 WHERE id = $1', 1);
SELECT dtx.send_expect('p2', 1, 'UPDATE sacc SET balance = balance + 5 WHERE id = $1', 999);
COMMIT;
SELECT p_rows('p1', 'SELECT balance FROM sacc WHERE id = 1') AS p1,
       p_rows('p2', 'SELECT balance FROM sacc WHERE id = 1') AS p2;
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;

-- The same with one participant (one-phase commit): checked before COMMIT.
BEGIN;
SELECT dtx.send_expect('p1', 2, 'UPDATE sacc SET balance = balance - 5 WHERE id = $1', 1);
COMMIT;
SELECT p_rows('p1', 'SELECT balance FROM sacc WHERE id = 1') AS p1;
-- ... and a statement that reports no row count
BEGIN;
SELECT dtx.send_expect('p1', 0, 'CREATE TEMP TABLE tt (a int)');
COMMIT;

-- A remote error of a sent statement, raised at COMMIT with its SQLSTATE,
-- detail and the statement's text; one participant (one-phase) and two.
BEGIN;
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (1, 1)');
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (1, 1)');
COMMIT;
BEGIN;
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (2, 1)');
SELECT dtx.send('p2', 'INSERT INTO sacc VALUES (1, 0)');
COMMIT;
SELECT p_rows('p1', 'SELECT count(*) FROM sent WHERE transfer_id IN (1, 2)') AS p1_ledger;
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;

-- dtx.wait: the failure is raised there, in the transaction.
BEGIN;
SELECT dtx.send('p1', 'SELECT 1/0');
SELECT dtx.wait('p2');   -- nothing sent to p2: nothing to wait for
SELECT dtx.wait();
ROLLBACK;
BEGIN;
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (3, 1)');
SELECT dtx.send('p2', 'INSERT INTO sent VALUES (3, 1)');
SELECT dtx.wait('p1');
SELECT dtx.wait();
SELECT dtx.wait();       -- nothing left
COMMIT;

-- The next dtx.exec / dtx.query on the server reads the sent results first,
-- in order: read-your-writes on one connection.
BEGIN;
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (4, 1)');
SELECT dtx.send('p1', 'UPDATE sent SET amount = 7 WHERE transfer_id = 4');
SELECT * FROM dtx.query('p1', 'SELECT amount FROM sent WHERE transfer_id = 4') AS t(a bigint);
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (4, 1)');
SELECT dtx.exec('p1', 'INSERT INTO sent VALUES (5, 1)');
ROLLBACK;
SELECT p_rows('p1', 'SELECT count(*) FROM sent WHERE transfer_id IN (4, 5)') AS rolled_back;

-- Parameters, typed, untyped (the text[] form), NULL.
BEGIN;
SELECT dtx.send('p1', 'INSERT INTO sent VALUES ($1, $2)', 6, 60::bigint);
SELECT dtx.send('p1', 'INSERT INTO sent VALUES ($1, $2)', VARIADIC ARRAY['7', '70']);
SELECT dtx.send_expect('p1', 1, 'INSERT INTO sent VALUES ($1, $2)', 8, NULL::bigint);
COMMIT;
SELECT * FROM dtx.query('p1', 'SELECT transfer_id, amount FROM sent WHERE transfer_id BETWEEN 6 AND 8 ORDER BY 1') AS t(id int, a bigint);

-- Bad input: clear errors, before anything is sent.
SELECT dtx.send(NULL, 'SELECT 1');
SELECT dtx.send('p1', NULL);
SELECT dtx.send('nosuch', 'SELECT 1');
SELECT dtx.send_expect('p1', NULL, 'SELECT 1');
SELECT dtx.send_expect('p1', -1, 'SELECT 1');
SELECT dtx.send('p1', 'COMMIT');
SELECT dtx.send('p1', 'SET DateStyle = German');
SELECT dtx.wait('nosuch');
SELECT dtx.send('p1', '');
SELECT dtx.send('p1', ' ; /* nothing */ ;');
SELECT dtx.send('p1', ';COPY accounts TO STDOUT');

-- A server that only received sends is a writer: both are prepared.
SELECT two_phase_commits AS two_phase_before FROM dtx.stats \gset
BEGIN;
SELECT dtx.send('p1', 'SELECT 1');
SELECT dtx.send('p2', 'SELECT 1');
COMMIT;
SELECT two_phase_commits - :two_phase_before AS two_phase_commits FROM dtx.stats;

-- Savepoints: a send inside a savepoint that is rolled back is undone, its
-- error dropped; a send released into the parent commits.
BEGIN;
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (10, 1)');
SAVEPOINT a;
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (11, 1)');
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (11, 1)');   -- fails
ROLLBACK TO a;
SAVEPOINT b;
SELECT dtx.send('p2', 'INSERT INTO sent VALUES (12, 1)');
RELEASE b;
COMMIT;
SELECT p_rows('p1', 'SELECT count(*) FROM sent WHERE transfer_id IN (10, 11)') AS p1_10_11,
       p_rows('p2', 'SELECT count(*) FROM sent WHERE transfer_id = 12') AS p2_12;

-- The error of a statement sent before a savepoint is not lost when that
-- savepoint is rolled back: it is raised at the next collection...
BEGIN;
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (10, 1)');   -- fails
SAVEPOINT a;
SELECT 1/0;
ROLLBACK TO a;
SELECT dtx.exec('p1', 'SELECT 1');
ROLLBACK;
-- ... or, when the rollback must read it (a statement was sent to the same
-- server inside the savepoint), said in a WARNING; the transaction cannot
-- commit.
BEGIN;
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (10, 1)');   -- fails
SAVEPOINT a;
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (13, 1)');
ROLLBACK TO a;
SELECT dtx.exec('p1', 'SELECT 1');
COMMIT;
SELECT p_rows('p1', 'SELECT count(*) FROM sent WHERE transfer_id = 13') AS p1_13;

-- PL/pgSQL: an exception block catches the error of a statement sent and
-- collected inside it; what it sent is rolled back with it.
DO $$
BEGIN
  PERFORM dtx.send('p1', 'INSERT INTO sent VALUES (20, 1)');
  BEGIN
    PERFORM dtx.send('p2', 'INSERT INTO sent VALUES (20, 1)');
    PERFORM dtx.send('p1', 'INSERT INTO sent VALUES (20, 1)');   -- duplicate
    PERFORM dtx.wait();
  EXCEPTION WHEN unique_violation THEN
    RAISE NOTICE 'caught: %', SQLERRM;
  END;
  PERFORM dtx.send('p2', 'INSERT INTO sent VALUES (21, 1)');
END $$;
SELECT p_rows('p1', 'SELECT count(*) FROM sent WHERE transfer_id = 20') AS p1_20,
       p_rows('p2', 'SELECT count(*) FROM sent WHERE transfer_id IN (20, 21)') AS p2_20_21;
-- ... but not one sent before the block and collected inside it.
DO $$
BEGIN
  PERFORM dtx.send('p1', 'INSERT INTO sent VALUES (20, 1)');   -- duplicate
  BEGIN
    PERFORM dtx.wait();
  EXCEPTION WHEN unique_violation THEN
    RAISE NOTICE 'caught: %', SQLERRM;
  END;
  PERFORM dtx.exec('p1', 'SELECT 1');
END $$;

-- statement_timeout: a sent statement that runs too long is cancelled where
-- it is collected; the connection stays usable.
BEGIN;
SELECT dtx.send('p1', 'SELECT pg_sleep(5)');
SET LOCAL statement_timeout = '200ms';
SELECT dtx.wait();
ROLLBACK;
SELECT p_rows('p1', 'SELECT 1::bigint') AS usable;

-- dtx.lock after sends on the same server: in order, one pipeline.
BEGIN;
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (30, 1)');
SELECT dtx.lock(ARRAY['p1', 'p2'], 42);
SELECT dtx.send('p2', 'INSERT INTO sent VALUES (30, 1)');
COMMIT;
SELECT p_rows('p1', 'SELECT count(*) FROM sent WHERE transfer_id = 30') +
       p_rows('p2', 'SELECT count(*) FROM sent WHERE transfer_id = 30') AS both_30;

-- The statement cache: a text sent again runs as a prepared statement, also
-- when the first use and the Parse are in the same pipeline.
SET dtx.statement_cache_size = 10;
BEGIN;
SELECT dtx.send('p1', 'UPDATE sacc SET balance = balance + $1 WHERE id = 2', g) FROM generate_series(1, 5) g;
COMMIT;
SELECT p_rows('p1', 'SELECT balance FROM sacc WHERE id = 2') AS p1_2;
SELECT * FROM dtx.query('p1', 'SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE ''UPDATE sacc SET balance = balance + $1%''') AS t(n bigint);
-- a DEALLOCATE ALL sent is read at once and the cache forgets its names
BEGIN;
SELECT dtx.send('p1', 'DEALLOCATE ALL');
SELECT dtx.send('p1', 'UPDATE sacc SET balance = balance + $1 WHERE id = 2', 1);
COMMIT;
RESET dtx.statement_cache_size;

-- A sent statement that changes a pinned setting fails the commit.
BEGIN;
SELECT dtx.send('p1', 'SELECT set_config(''DateStyle'', ''German'', false)');
SELECT dtx.send('p2', 'SELECT 1');
COMMIT;
SELECT * FROM dtx.query('p1', 'SELECT current_setting(''DateStyle'')') AS t(s text);

-- ... and with one writer: when its answer is in before COMMIT is sent (the
-- client paused), the commit fails too and the write is rolled back;
BEGIN;
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (39, 1)');
SELECT dtx.send('p1', 'SELECT set_config(''DateStyle'', ''German'', false)');
SELECT pg_sleep(0.3);
COMMIT;
SELECT p_rows('p1', 'SELECT count(*) FROM sent WHERE transfer_id = 39') AS committed_39;
-- when COMMIT went behind it (the statement still ran) and committed: a
-- WARNING, the write stands, the connection is replaced.
BEGIN;
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (40, 1)');
SELECT dtx.send('p1', 'SELECT set_config(''DateStyle'', ''German'', false), pg_sleep(0.3)');
COMMIT;
SELECT p_rows('p1', 'SELECT count(*) FROM sent WHERE transfer_id = 40') AS committed_40;
SELECT * FROM dtx.query('p1', 'SELECT current_setting(''DateStyle'')') AS t(s text);

-- A wrong row count sent before a savepoint whose rollback must give up a
-- statement still running: a WARNING, and the transaction cannot commit.
BEGIN;
SELECT dtx.send_expect('p1', 1, 'UPDATE sacc SET balance = balance WHERE id = 999');
SAVEPOINT a;
SELECT dtx.send('p1', 'SELECT pg_sleep(1)');
ROLLBACK TO a;
COMMIT;
-- The same failure already read when a wait in an exception block is
-- cancelled: the transaction cannot commit.
BEGIN;
SELECT dtx.send_expect('p1', 1, 'UPDATE sacc SET balance = balance WHERE id = 999');
SET LOCAL statement_timeout = '300ms';
DO $$
BEGIN
  PERFORM dtx.send('p1', 'SELECT pg_sleep(2)');
  PERFORM dtx.wait();
EXCEPTION WHEN query_canceled THEN
  RAISE NOTICE 'cancelled';
END $$;
COMMIT;
-- A remote error of a statement sent before an exception block and caught
-- in it (where a rollback cannot undo it): the remote transaction is gone,
-- nothing commits, not even the earlier write.
BEGIN;
SELECT dtx.exec('p1', 'INSERT INTO sent VALUES (41, 1)');
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (41, 1)');
DO $$
BEGIN
  PERFORM dtx.wait();
EXCEPTION WHEN unique_violation THEN
  RAISE NOTICE 'caught: %', SQLERRM;
END $$;
COMMIT;
SELECT p_rows('p1', 'SELECT count(*) FROM sent WHERE transfer_id = 41') AS not_committed_41;
-- COPY is refused when sent (it would stop what is sent behind it).
SELECT dtx.send('p1', 'COPY sent FROM STDIN');
-- Empty statements are refused when sent.
SELECT dtx.send('p1', ' ; /* nothing */ ;');

-- A transaction of one statement (a transfer in one client round trip):
-- the same outcomes as in a block, applied everywhere, or nowhere and
-- nothing left prepared.
SELECT dtx.send_expect('p1', 1, 'UPDATE sacc SET balance = balance - 7 WHERE id = $1', 2),
       dtx.send_expect('p2', 1, 'UPDATE sacc SET balance = balance + 7 WHERE id = $1', 2);
SELECT p_rows('p1', 'SELECT balance FROM sacc WHERE id = 2') AS p1,
       p_rows('p2', 'SELECT balance FROM sacc WHERE id = 2') AS p2;
-- a sent statement that fails: the PREPARE behind it rolls back
SELECT dtx.send_expect('p1', 1, 'UPDATE sacc SET balance = balance - 7 WHERE id = $1', 2),
       dtx.send('p2', 'UPDATE sacc SET balance = balance + 7 / 0 WHERE id = 2');
SELECT p_rows('p1', 'SELECT balance FROM sacc WHERE id = 2') AS p1,
       p_rows('p2', 'SELECT balance FROM sacc WHERE id = 2') AS p2;
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;
-- a wrong row count: the PREPARE runs, and the abort rolls it back
SELECT dtx.send_expect('p1', 1, 'UPDATE sacc SET balance = balance - 7 WHERE id = $1', 2),
       dtx.send_expect('p2', 1, 'UPDATE sacc SET balance = balance + 7 WHERE id = $1', 999);
SELECT p_rows('p1', 'SELECT balance FROM sacc WHERE id = 2') AS p1,
       p_rows('p2', 'SELECT balance FROM sacc WHERE id = 2') AS p2;
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;
-- two statements to one server, and dtx.wait on it, in the same statement
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (50, 1)'),
       dtx.send('p1', 'INSERT INTO sent VALUES (51, 1)'),
       dtx.wait('p1'),
       dtx.send('p2', 'INSERT INTO sent VALUES (50, 1)');
SELECT p_rows('p1', 'SELECT count(*) FROM sent WHERE transfer_id IN (50, 51)') AS p1_50_51,
       p_rows('p2', 'SELECT count(*) FROM sent WHERE transfer_id = 50') AS p2_50;
-- a local error after the sends rolls them back
SELECT dtx.send('p1', 'INSERT INTO sent VALUES (52, 1)'),
       dtx.send('p2', 'INSERT INTO sent VALUES (52, 1)'),
       1 / 0;
SELECT p_rows('p1', 'SELECT count(*) FROM sent WHERE transfer_id = 52') AS p1_52,
       p_rows('p2', 'SELECT count(*) FROM sent WHERE transfer_id = 52') AS p2_52;
-- one participant (one-phase COMMIT)
SELECT dtx.send_expect('p1', 1, 'UPDATE sacc SET balance = balance + 1 WHERE id = $1', 3);
SELECT dtx.send_expect('p1', 1, 'UPDATE sacc SET balance = balance + 1 WHERE id = $1', 999);
SELECT dtx.send('p1', 'UPDATE sacc SET balance = balance + 1 / 0 WHERE id = 3');
SELECT p_rows('p1', 'SELECT balance FROM sacc WHERE id = 3') AS p1_3;

-- Nothing left behind.
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;
BEGIN;
SELECT dtx.exec(s, 'DROP TABLE sent, sacc') FROM unnest(ARRAY['p1', 'p2']) s;
COMMIT;
DROP FUNCTION p_rows(text, text);
