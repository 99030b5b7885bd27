-- Operating pg_dtx: statistics, activity, participants, connections,
-- manual resolution, and SQL that a hostile search_path cannot hijack.
SELECT current_database() AS regress_db \gset
SELECT dtx.stats_reset();
SELECT two_phase_commits, one_phase_commits, read_only_commits, aborts FROM dtx.stats;

-- one transaction of each kind
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = 1');
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance WHERE id = 1');
SELECT participant, server, state, wrote FROM dtx.participants ORDER BY participant;
COMMIT;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = 1');
SELECT * FROM dtx.query('p1', 'SELECT 1') AS t(a int);
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = 1');
ROLLBACK;
BEGIN;
SELECT dtx.exec('p1', 'INSERT INTO ledger VALUES (700, 1)');
SELECT dtx.exec('p2', 'INSERT INTO uniq VALUES (7), (7)');
COMMIT;
SELECT two_phase_commits, one_phase_commits, read_only_commits, aborts, prepare_failures, left_in_doubt,
       prepare_time_ms > 0 AS prepare_timed, prepare_time_max_ms <= prepare_time_ms AS max_ok
  FROM dtx.stats;
SELECT server, prepare_failures FROM dtx.server_stats ORDER BY server;
SELECT count(*) AS participants_after_commit FROM dtx.participants;
-- nobody waits now
SELECT count(*) FROM dtx.activity WHERE pid = pg_backend_pid();

-- this backend's connections, and closing them
SELECT server, in_transaction, usable, invalidated, remote_pid > 0 AS has_pid FROM dtx.connections() ORDER BY server;
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = 1');
SELECT dtx.disconnect('p1');
ROLLBACK;
SELECT dtx.disconnect('p1');
SELECT dtx.disconnect('p1');
SELECT dtx.disconnect('nosuch');
SELECT server FROM dtx.connections() ORDER BY server;
SELECT dtx.disconnect_all();
SELECT count(*) FROM dtx.connections();
-- and they come back on use
SELECT * FROM dtx.query('p1', 'SELECT 1') AS t(a int);

-- manual resolution of a prepared transaction nobody decided
SELECT dtx.coordinator_id() AS coord, oid AS db FROM pg_database WHERE datname = current_database() \gset
SELECT oid AS p1 FROM pg_foreign_server WHERE srvname = 'p1' \gset
SELECT oid AS me FROM pg_roles WHERE rolname = current_user \gset
BEGIN; CREATE TEMP TABLE z (); SELECT pg_current_xact_id() AS done_xid \gset
COMMIT;
SELECT format('dtx_%s_%s_%s_%s_%s_1', CASE WHEN :coord < 0 THEN :coord::numeric + 18446744073709551616 ELSE :coord END,
              :db, :'done_xid', :p1, :me) AS gid \gset
\c dtx_p1
BEGIN; INSERT INTO ledger VALUES (710, 1); PREPARE TRANSACTION :'gid';
\c :regress_db
SELECT dtx.resolve_manually(:'gid', true);
SELECT dtx.resolve_manually(:'gid', true);
SELECT * FROM dtx.query('p1', 'SELECT count(*) FROM ledger WHERE transfer_id = 710') AS t(n bigint);
SELECT dtx.resolve_manually('not_a_global_id', false);
SET ROLE dtx_alice;
SELECT dtx.resolve_manually(:'gid', false);
SELECT dtx.stats_reset();
-- everybody may look at dtx.in_doubt, but sees only their own transactions
SELECT count(*) FROM dtx.in_doubt;
RESET ROLE;
INSERT INTO dtx.decisions VALUES ('2', :coord, ARRAY[:p1]::oid[], ARRAY[:me]::oid[], now());
SELECT count(*) AS mine FROM dtx.in_doubt;
SET ROLE dtx_alice;
SELECT count(*) AS alices FROM dtx.in_doubt;
RESET ROLE;
DELETE FROM dtx.decisions WHERE xid = '2';

-- a hostile search_path: objects that shadow built-ins come first
CREATE SCHEMA evil;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'evil now() called'; END $$;
CREATE FUNCTION evil.unnest(oid[]) RETURNS SETOF oid LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'evil unnest() called'; END $$;
CREATE FUNCTION evil.count(anyelement) RETURNS int8 LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'evil count() called'; END $$;
CREATE FUNCTION evil.oideq(oid, oid) RETURNS bool LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'evil = called'; END $$;
CREATE OPERATOR evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = evil.oideq);
CREATE TABLE evil.decisions (xid xid8);
SET search_path = evil, pg_catalog, public;
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = 2');
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance WHERE id = 2');
INSERT INTO public.audit (msg) VALUES ('hostile search_path');
COMMIT;
SELECT action FROM dtx.resolve() WHERE action <> 'forget';
SELECT count(*) FROM dtx.in_doubt;
SELECT dtx.coordinator_id() = :coord AS coordinator_ok;
CREATE SERVER p4 FOREIGN DATA WRAPPER dtx OPTIONS (dbname 'dtx_p2');
DROP SERVER p4;
RESET search_path;
DROP SCHEMA evil CASCADE;
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;
