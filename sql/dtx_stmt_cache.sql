-- Statement cache: a dtx.exec statement text sent a second time on a
-- connection runs as a named prepared statement of that remote session.
SELECT dtx.disconnect_all();
-- the participant session's own prepared statements, seen through dtx.query
-- (which never prepares its statements)
CREATE FUNCTION remote_stmts(srv text) RETURNS TABLE (name text, statement text, types regtype[])
LANGUAGE sql AS $$
  SELECT * FROM dtx.query(srv, 'SELECT name, statement, parameter_types FROM pg_prepared_statements ORDER BY name')
    AS t(name text, statement text, types regtype[])
$$;

-- seen once: not prepared; seen twice: prepared, and run from then on
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + $1 WHERE id = 1', 0);
SELECT * FROM remote_stmts('p1');
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + $1 WHERE id = 1', 0);
SELECT * FROM remote_stmts('p1');
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + $1 WHERE id = 1', 5);
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + $1 WHERE id = 1', -5);
COMMIT;
SELECT * FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 1') AS t(b bigint);

-- it outlives the transaction, a rolled-back one included; other parameter
-- types make another statement
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + $1 WHERE id = 1', 7);
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + $1 WHERE id = 1', 1::bigint);
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + $1 WHERE id = 1', 1::bigint);
ROLLBACK;
SELECT * FROM remote_stmts('p1');
SELECT * FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 1') AS t(b bigint);

-- a statement that fails when it is prepared is not taken for prepared
BEGIN;
SELECT dtx.exec('p1', 'INSERT INTO later VALUES ($1)', 1);
ROLLBACK;
BEGIN;
SELECT dtx.exec('p1', 'INSERT INTO later VALUES ($1)', 1);
ROLLBACK;
SELECT * FROM remote_stmts('p1');
BEGIN;
SELECT dtx.exec('p1', 'CREATE TABLE later (x int)');
SELECT dtx.exec('p1', 'INSERT INTO later VALUES ($1)', 1);
SELECT dtx.exec('p1', 'INSERT INTO later VALUES ($1)', 2);
SELECT * FROM dtx.query('p1', 'SELECT x FROM later ORDER BY x') AS t(x int);
ROLLBACK;
SELECT * FROM remote_stmts('p1');

-- a statement whose table changed is planned again by the participant
SELECT dtx.exec('p1', 'CREATE TABLE later (x int)');
SELECT dtx.exec('p1', 'INSERT INTO later VALUES ($1)', 1);
SELECT dtx.exec('p1', 'INSERT INTO later VALUES ($1)', 2);
SELECT dtx.exec('p1', 'ALTER TABLE later ADD COLUMN y text DEFAULT ''new''');
SELECT dtx.exec('p1', 'INSERT INTO later VALUES ($1)', 3);
SELECT * FROM dtx.query('p1', 'SELECT x, y FROM later ORDER BY x') AS t(x int, y text);
SELECT dtx.exec('p1', 'DROP TABLE later');

-- DEALLOCATE run by the user: pg_dtx forgets its statements and prepares
-- them again under new names
BEGIN;
SELECT dtx.exec('p1', 'DEALLOCATE ALL');
SELECT * FROM remote_stmts('p1');
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + $1 WHERE id = 1', 0);
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + $1 WHERE id = 1', 0);
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + $1 WHERE id = 1', 0);
SELECT * FROM remote_stmts('p1');
COMMIT;

-- dtx.statement_cache_size bounds the statements prepared per connection;
-- 0 prepares none
SELECT dtx.disconnect_all();
SET dtx.statement_cache_size = 1;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1', 2);
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1', 2);
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1', 3);
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1 + 0', 3);
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1 + 0', 3);
SELECT * FROM remote_stmts('p1');
SELECT dtx.disconnect_all();
SET dtx.statement_cache_size = 0;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1', 2);
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1', 2);
SELECT * FROM remote_stmts('p1');
RESET dtx.statement_cache_size;
SET dtx.statement_cache_size = -1;

-- a connection closed and opened again starts with an empty cache
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1', 2);
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1', 2);
SELECT count(*) FROM remote_stmts('p1');
SELECT dtx.disconnect('p1');
SELECT count(*) FROM remote_stmts('p1');
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1', 2);
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1', 2);
SELECT * FROM remote_stmts('p1');

-- a statement interrupted by statement_timeout closes its connection (with
-- libpq 17+ it is cancelled and the connection kept): either way the cached
-- texts work afterwards (the names differ: not shown from here on)
SET statement_timeout = '300ms';
SELECT dtx.exec('p1', 'DO $$BEGIN PERFORM pg_sleep(10); END$$');
RESET statement_timeout;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1', 2);
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1', 2);
SELECT statement, types FROM remote_stmts('p1');

-- statements deallocated behind pg_dtx's back: the next use fails once
-- (26000) and pg_dtx forgets them; the one after prepares again
SELECT dtx.exec('p1', 'DO $$BEGIN EXECUTE ''DEALLOCATE ALL''; END$$');
SELECT * FROM remote_stmts('p1');
\set VERBOSITY sqlstate
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1', 2);
\set VERBOSITY default
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1', 2);
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1', 2);
SELECT statement, types FROM remote_stmts('p1');

DROP FUNCTION remote_stmts(text);
SELECT dtx.disconnect_all();
