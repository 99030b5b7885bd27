-- Every error is clear, and loses nothing.
\set VERBOSITY default

-- bad arguments
SELECT dtx.exec(NULL, 'SELECT 1');
SELECT dtx.exec('p1', NULL);
SELECT * FROM dtx.query(NULL, 'SELECT 1') AS t(a int);
SELECT dtx.exec('p1', 'SELECT 1');
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = 1 RETURNING id');
SELECT * FROM dtx.query('p1', 'UPDATE accounts SET balance = balance WHERE id = 1') AS t(a int);
SELECT dtx.query('p1', 'SELECT 1');
SELECT * FROM dtx.query('p1', 'SELECT 1, 2') AS t(a int);
SELECT * FROM dtx.query('p1', 'SELECT 1::bigint') AS t(a int);
SELECT * FROM dtx.query('p1', 'SELECT ''x''::text') AS t(a varchar);

-- transaction control is refused
SELECT dtx.exec('p1', 'COMMIT');
SELECT dtx.exec('p1', '  begin');
SELECT dtx.exec('p1', '/* comment */ ROLLBACK');
SELECT dtx.exec('p1', '-- comment
  SAVEPOINT x');
SELECT dtx.exec('p1', 'RELEASE SAVEPOINT x');
SELECT dtx.exec('p1', 'PREPARE TRANSACTION ''x''');
SELECT dtx.exec('p1', 'START TRANSACTION');
SELECT dtx.exec('p1', 'END');
SELECT dtx.exec('p1', 'ABORT');
-- several statements in one string are refused by the remote
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = 1; COMMIT');
-- empty statements in front hide nothing: the remote would run "; COMMIT"
-- as a COMMIT, ending its transaction before the decision
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 7');
SELECT dtx.exec('p1', '; COMMIT');
ROLLBACK;
BEGIN;
SELECT dtx.send('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 7');
SELECT dtx.send('p1', ' ;/* x */; commit');
ROLLBACK;
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 7');
SELECT dtx.exec('p1', ';PREPARE TRANSACTION ''mine''');
ROLLBACK;
-- a carriage return ends a -- comment for the remote too (another row: a
-- transaction prepared above, were it not refused, would hold this one)
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 6');
SELECT dtx.exec('p1', E'-- note\rCOMMIT');
ROLLBACK;
SELECT dtx.exec('p1', '; SET DateStyle = German');
SELECT dtx.exec('p1', ';RESET ALL');
SELECT * FROM dtx.query('p1', 'SELECT id, balance FROM accounts WHERE id IN (6, 7) ORDER BY id') AS t(id int, b bigint);
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;
SELECT * FROM dtx.query('p1', 'SELECT count(*) FROM pg_prepared_xacts') AS t(n bigint);
-- PREPARE of a statement (not of a transaction) is fine
SELECT dtx.exec('p1', 'PREPARE q AS SELECT 1');
SELECT dtx.exec('p1', 'DEALLOCATE q');

-- unknown server, another wrapper, no user mapping
SELECT dtx.exec('nosuch', 'SELECT 1');
CREATE FOREIGN DATA WRAPPER other_fdw;
CREATE SERVER other FOREIGN DATA WRAPPER other_fdw;
SELECT dtx.exec('other', 'SELECT 1');
DO $$
BEGIN
  EXECUTE format('CREATE SERVER p3 FOREIGN DATA WRAPPER dtx OPTIONS (port %L, dbname %L)',
                 current_setting('port'), 'dtx_p1');
END $$;
SELECT dtx.exec('p3', 'SELECT 1');

-- the validator
-- (the hint lists libpq's options, which differ between versions: checked
-- for the options every version has, and for the absence of user options)
\set VERBOSITY terse
CREATE SERVER bad1 FOREIGN DATA WRAPPER dtx OPTIONS (nosuch 'x');
CREATE SERVER bad2 FOREIGN DATA WRAPPER dtx OPTIONS (user 'x');
\set VERBOSITY default
DO $$
DECLARE
	h text;
BEGIN
	CREATE SERVER bad1 FOREIGN DATA WRAPPER dtx OPTIONS (nosuch 'x');
EXCEPTION WHEN fdw_invalid_option_name THEN
	GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
	RAISE NOTICE 'hint names host, port, dbname, sslmode: %; names user or password: %',
		h ~ '^Valid options in this context are: ' AND h ~ '\mhost\M' AND h ~ '\mport\M'
		AND h ~ '\mdbname\M' AND h ~ '\msslmode\M',
		h ~ '\m(user|password)\M';
END
$$;
CREATE SERVER bad3 FOREIGN DATA WRAPPER dtx OPTIONS (port 'abc');
CREATE USER MAPPING FOR CURRENT_USER SERVER p3 OPTIONS (host 'x');
ALTER FOREIGN DATA WRAPPER dtx OPTIONS (host 'x');

-- remote errors keep their SQLSTATE and name the server
SELECT dtx.exec('p1', 'UPDATE nosuch SET x = 1');
\echo :LAST_ERROR_SQLSTATE
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = -1 WHERE id = 1');
\echo :LAST_ERROR_SQLSTATE
SELECT dtx.exec('p1', 'SELEC 1');
\echo :LAST_ERROR_SQLSTATE

-- a server that is down
CREATE SERVER down FOREIGN DATA WRAPPER dtx OPTIONS (host '127.0.0.1', port '1', dbname 'x');
CREATE USER MAPPING FOR CURRENT_USER SERVER down;
SELECT dtx.exec('down', 'SELECT 1');

-- PREPARE TRANSACTION of a local transaction with participants
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 9');
PREPARE TRANSACTION 'local_one';
SELECT * FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 9') AS t(b bigint);
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;

-- a participant whose session dies in the middle of the transaction
\set VERBOSITY terse
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 8');
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance + 1 WHERE id = 8');
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE datname = 'dtx_p2' AND application_name LIKE 'pg_dtx:%' AND pid <> pg_backend_pid();
SELECT pg_sleep(0.2);
-- (the WARNING that the PREPARE's fate is unknown comes in no fixed order)
SET client_min_messages = error;
COMMIT;
RESET client_min_messages;
\set VERBOSITY default
SELECT * FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 8') AS t(b bigint);
SELECT * FROM dtx.query('p2', 'SELECT balance FROM accounts WHERE id = 8') AS t(b bigint);
-- and one that dies between two statements
BEGIN;
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance + 1 WHERE id = 8');
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE datname = 'dtx_p2' AND application_name LIKE 'pg_dtx:%' AND pid <> pg_backend_pid();
SELECT pg_sleep(0.2);
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance + 1 WHERE id = 8');
ROLLBACK;
SELECT * FROM dtx.query('p2', 'SELECT balance FROM accounts WHERE id = 8') AS t(b bigint);
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;

-- non-superusers: USAGE is needed, and a password that the server asks for
CREATE ROLE dtx_alice LOGIN;
GRANT USAGE ON SCHEMA dtx TO dtx_alice;
SET ROLE dtx_alice;
SELECT dtx.exec('p1', 'SELECT 1');
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER p1 TO dtx_alice;
SET ROLE dtx_alice;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = 1');
RESET ROLE;
CREATE USER MAPPING FOR dtx_alice SERVER p1 OPTIONS (user 'postgres');
SET ROLE dtx_alice;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = 1');
RESET ROLE;
ALTER USER MAPPING FOR dtx_alice SERVER p1 OPTIONS (ADD password 'secret');
SET ROLE dtx_alice;
-- trust authentication does not ask for it: still refused
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = 1');
-- only a superuser may waive the password
ALTER USER MAPPING FOR dtx_alice SERVER p1 OPTIONS (ADD password_required 'false');
RESET ROLE;
ALTER USER MAPPING FOR dtx_alice SERVER p1 OPTIONS (ADD password_required 'false');
SET ROLE dtx_alice;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = 1');
-- the catalog tables are not theirs
SELECT * FROM dtx.decisions;
RESET ROLE;

-- servers of postgres_fdw are participants too; writes through its foreign
-- tables are not part of the atomic commit, and a WARNING says so
CREATE EXTENSION postgres_fdw;
DO $$
BEGIN
  EXECUTE format('CREATE SERVER pg1 FOREIGN DATA WRAPPER postgres_fdw OPTIONS (port %L, dbname %L, use_remote_estimate %L)',
                 current_setting('port'), 'dtx_p1', 'false');
END $$;
CREATE USER MAPPING FOR CURRENT_USER SERVER pg1;
CREATE FOREIGN TABLE ledger_fdw (transfer_id int, amount bigint) SERVER pg1 OPTIONS (table_name 'ledger');
BEGIN;
SELECT dtx.exec('pg1', 'INSERT INTO ledger VALUES (300, 1)');
SELECT dtx.exec('p2', 'INSERT INTO ledger VALUES (300, 1)');
INSERT INTO ledger_fdw VALUES (301, 1);
COMMIT;
SELECT * FROM dtx.query('p1', 'SELECT transfer_id FROM ledger WHERE transfer_id >= 300 ORDER BY 1') AS t(id int);
-- without pg_dtx participants, no warning
INSERT INTO ledger_fdw VALUES (302, 1);

-- a server re-pointed to another database is noticed
ALTER SERVER p3 OPTIONS (SET dbname 'dtx_p2');
SELECT dtx.exec('p3', 'SELECT 1');
CREATE USER MAPPING FOR CURRENT_USER SERVER p3;
-- its first two-phase commit records where it leads (a one-phase use does not)
BEGIN;
SELECT dtx.exec('p3', 'UPDATE accounts SET balance = balance WHERE id = 1');
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = 1');
COMMIT;
ALTER SERVER p3 OPTIONS (SET dbname 'dtx_p1');
SELECT dtx.exec('p3', 'UPDATE accounts SET balance = balance WHERE id = 1');
SELECT dtx.forget_server_identity('p3');
SELECT dtx.exec('p3', 'UPDATE accounts SET balance = balance WHERE id = 1');

-- too many participants
SET dtx.max_participants = 1;
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = 1');
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance WHERE id = 1');
ROLLBACK;
RESET dtx.max_participants;

-- cancel and statement_timeout interrupt a slow remote statement
SET statement_timeout = '300ms';
SELECT dtx.exec('p1', 'SELECT pg_sleep(10)');
RESET statement_timeout;
SELECT * FROM dtx.query('p1', 'SELECT 1') AS t(a int);


-- what a call found out about a server is looked up again after a change:
-- a server renamed (and another one given its name), a user mapping
-- dropped; USAGE is checked on every call (a role membership changes no
-- server)
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance WHERE id = 1');
ALTER SERVER p2 RENAME TO p2_renamed;
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance WHERE id = 1');
SELECT dtx.exec('p2_renamed', 'UPDATE accounts SET balance = balance WHERE id = 1');
ALTER SERVER other RENAME TO p2;
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance WHERE id = 1');
ALTER SERVER p2 RENAME TO other;
ALTER SERVER p2_renamed RENAME TO p2;
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance WHERE id = 1');
SELECT dtx.exec('p3', 'UPDATE accounts SET balance = balance WHERE id = 1');
DROP USER MAPPING FOR CURRENT_USER SERVER p3;
SELECT dtx.exec('p3', 'UPDATE accounts SET balance = balance WHERE id = 1');
CREATE USER MAPPING FOR CURRENT_USER SERVER p3;
SELECT dtx.exec('p3', 'UPDATE accounts SET balance = balance WHERE id = 1');
CREATE ROLE dtx_users;
GRANT USAGE ON FOREIGN SERVER p2 TO dtx_users;
GRANT dtx_users TO dtx_alice;
CREATE USER MAPPING FOR dtx_alice SERVER p2 OPTIONS (user 'postgres', password_required 'false');
SET ROLE dtx_alice;
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance WHERE id = 1');
RESET ROLE;
REVOKE dtx_users FROM dtx_alice;
SET ROLE dtx_alice;
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance WHERE id = 1');
RESET ROLE;
DROP USER MAPPING FOR dtx_alice SERVER p2;
REVOKE USAGE ON FOREIGN SERVER p2 FROM dtx_users;
DROP ROLE dtx_users;

SELECT count(*) AS prepared_left FROM pg_prepared_xacts;
