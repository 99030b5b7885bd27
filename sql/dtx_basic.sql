-- The transfer of the README: two participants and a local write, atomic.
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance - $1 WHERE id = $2', 100, 1);
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance + $1 WHERE id = $2', 100, 7);
SELECT * FROM dtx.query('p1', 'SELECT id, balance FROM accounts WHERE id = $1', 1) AS t(id int, balance bigint);
INSERT INTO audit (msg) VALUES ('transfer 1 -> 7');
SELECT pg_current_xact_id() AS xid \gset
COMMIT;
SELECT * FROM dtx.query('p1', 'SELECT id, balance FROM accounts WHERE id = 1') AS t(id int, balance bigint);
SELECT * FROM dtx.query('p2', 'SELECT id, balance FROM accounts WHERE id = 7') AS t(id int, balance bigint);
SELECT msg FROM audit;
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;
-- the decision of that two-phase commit was recorded
SELECT servers = ARRAY(SELECT oid FROM pg_foreign_server WHERE srvname IN ('p1', 'p2') ORDER BY oid) AS servers_ok,
       userids = ARRAY[(SELECT oid FROM pg_roles WHERE rolname = current_user), (SELECT oid FROM pg_roles WHERE rolname = current_user)] AS user_ok,
       coordinator_id = dtx.coordinator_id() AS coordinator_ok
  FROM dtx.decisions WHERE xid = :'xid';

-- Rolled back: nothing anywhere.
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance - 500 WHERE id = 2');
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance + 500 WHERE id = 2');
INSERT INTO audit (msg) VALUES ('rolled back');
ROLLBACK;
SELECT * FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 2') AS t(b bigint);
SELECT * FROM dtx.query('p2', 'SELECT balance FROM accounts WHERE id = 2') AS t(b bigint);
SELECT count(*) FROM audit WHERE msg = 'rolled back';

-- An error in the middle aborts everything.
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance - 10 WHERE id = 3');
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance - 5000 WHERE id = 3');
COMMIT;
SELECT * FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 3') AS t(b bigint);

-- A deferred constraint fails at PREPARE on p2: p1 is rolled back too,
-- the error names the server and carries the remote SQLSTATE.
BEGIN;
SELECT dtx.exec('p1', 'INSERT INTO ledger VALUES (1, 10)');
SELECT dtx.exec('p2', 'INSERT INTO uniq VALUES (1), (1)');
COMMIT;
SELECT * FROM dtx.query('p1', 'SELECT count(*) FROM ledger') AS t(n bigint);
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;

-- One writer, no local write: one-phase commit, no decision recorded.
-- (a new session: no confirmed decision of this backend is pending
-- deletion, so a decision written by mistake would show in the count)
SELECT current_database() AS regress_db \gset
\c :regress_db
SELECT count(*) AS decisions_before FROM dtx.decisions \gset
BEGIN;
SELECT dtx.exec('p1', 'INSERT INTO ledger VALUES (2, 20)');
SELECT * FROM dtx.query('p2', 'SELECT count(*) FROM ledger') AS t(n bigint);
COMMIT;
SELECT count(*) - :decisions_before AS new_decisions FROM dtx.decisions;
SELECT * FROM dtx.query('p1', 'SELECT transfer_id, amount FROM ledger') AS t(id int, a bigint);

-- One-phase commit failing on a deferred constraint: a clean error.
BEGIN;
SELECT dtx.exec('p2', 'INSERT INTO uniq VALUES (2), (2)');
COMMIT;
SELECT * FROM dtx.query('p2', 'SELECT count(*) FROM uniq') AS t(n bigint);

-- Read-only participants are committed without PREPARE, even when a
-- function writes (the remote transaction id says so).
BEGIN;
SELECT * FROM dtx.query('p1', 'SELECT count(*) FROM accounts') AS t(n bigint);
SELECT * FROM dtx.query('p2', 'SELECT count(*) FROM accounts') AS t(n bigint);
COMMIT;
SELECT count(*) - :decisions_before AS new_decisions FROM dtx.decisions;
BEGIN;
SELECT * FROM dtx.query('p1', 'WITH w AS (INSERT INTO ledger VALUES (3, 30) RETURNING transfer_id) SELECT count(*) FROM w') AS t(n bigint);
SELECT * FROM dtx.query('p2', 'SELECT count(*) FROM pg_catalog.pg_class WHERE false') AS t(n bigint);
INSERT INTO audit (msg) VALUES ('with a writing query');
SELECT pg_current_xact_id() AS xid \gset
COMMIT;
-- the writing query made p1 a writer: two-phase commit, with a decision
SELECT count(*) AS decisions FROM dtx.decisions WHERE xid = :'xid';
SELECT * FROM dtx.query('p1', 'SELECT count(*) FROM ledger WHERE transfer_id = 3') AS t(n bigint);

-- Outside an explicit transaction block each statement is its own transaction.
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + 1 WHERE id = 10');
SELECT * FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 10') AS t(b bigint);

-- Isolation level and read-only mode follow the local transaction.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM dtx.query('p1', 'SHOW transaction_isolation') AS t(l text);
COMMIT;
BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY;
SELECT * FROM dtx.query('p1', 'SELECT current_setting(''transaction_isolation''), current_setting(''transaction_read_only'')') AS t(l text, r text);
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = 0 WHERE id = 10');
ROLLBACK;

-- The remote session is identifiable and keeps pinned data formats.
SELECT * FROM dtx.query('p1', 'SELECT application_name ~ ''^pg_dtx:[0-9]+:[0-9]+:[0-9]+$'', current_setting(''DateStyle''), current_setting(''extra_float_digits'') FROM pg_stat_activity WHERE pid = pg_backend_pid()') AS t(ok bool, ds text, efd text);

-- The connection is cached: the same remote backend serves the next call.
SELECT * FROM dtx.query('p1', 'SELECT pg_backend_pid()') AS t(pid int) \gset first_
SELECT pid = :first_pid AS same_backend FROM dtx.query('p1', 'SELECT pg_backend_pid()') AS t(pid int);

-- An index added to dtx.decisions, and dropped again, is seen by a session
-- that wrote decisions before: every decision row is in every index.
CREATE EXTENSION amcheck;
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = 1');
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance WHERE id = 1');
COMMIT;
CREATE INDEX decisions_created ON dtx.decisions (created_at);
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = 1');
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance WHERE id = 1');
COMMIT;
SELECT bt_index_check('dtx.decisions_created', true);
SELECT bt_index_check('dtx.decisions_pkey', true);
SELECT count(*) > 0 AS has_decisions FROM dtx.decisions;
DROP INDEX dtx.decisions_created;
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = 1');
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance WHERE id = 1');
COMMIT;
SELECT bt_index_check('dtx.decisions_pkey', true);
DROP EXTENSION amcheck;

-- Nothing left prepared on the participants.
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;
