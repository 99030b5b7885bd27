-- Every DDL path that would strand an in-doubt transaction is refused with
-- 55006 while one exists, and allowed once nothing is in doubt: drops that
-- reach a server, a user mapping or the decisions through CASCADE or DROP
-- OWNED BY, a user mapping re-pointed to another remote user, and servers
-- whose only prepared transactions have no decision yet (dtx.undecided).
-- In-doubt rows are made by hand (as in dtx_resolver), in a database of
-- their own.
SELECT current_database() AS regress_db \gset
CREATE DATABASE dtx_ddl;
\c dtx_ddl
CREATE EXTENSION pg_dtx;
CREATE EXTENSION postgres_fdw;
CREATE FOREIGN DATA WRAPPER dtx_ddl_wrapper;
CREATE ROLE dtx_ddl_bob;
DO $$
BEGIN
  EXECUTE format('CREATE SERVER q1 FOREIGN DATA WRAPPER dtx OPTIONS (port %L, dbname %L)',
                 current_setting('port'), 'dtx_p1');
  EXECUTE format('CREATE SERVER f1 FOREIGN DATA WRAPPER postgres_fdw OPTIONS (port %L, dbname %L)',
                 current_setting('port'), 'dtx_p2');
END $$;
CREATE SERVER w1 FOREIGN DATA WRAPPER dtx_ddl_wrapper;
CREATE USER MAPPING FOR CURRENT_USER SERVER q1;
CREATE USER MAPPING FOR dtx_ddl_bob SERVER q1 OPTIONS (user 'postgres');
CREATE USER MAPPING FOR PUBLIC SERVER f1;
CREATE USER MAPPING FOR CURRENT_USER SERVER w1;
SELECT dtx.coordinator_id() AS coord \gset
SELECT oid AS me FROM pg_roles WHERE rolname = current_user \gset
SELECT oid AS bob FROM pg_roles WHERE rolname = 'dtx_ddl_bob' \gset
SELECT oid AS q1 FROM pg_foreign_server WHERE srvname = 'q1' \gset
SELECT oid AS f1 FROM pg_foreign_server WHERE srvname = 'f1' \gset
SELECT oid AS w1 FROM pg_foreign_server WHERE srvname = 'w1' \gset
\set VERBOSITY terse
-- the notices of CASCADE list objects that other versions may not have
SET client_min_messages = warning;

-- A decision whose participants are q1 through bob's mapping, f1 (a server of
-- postgres_fdw, through its PUBLIC mapping) and w1 (another wrapper).
INSERT INTO dtx.decisions (xid, coordinator_id, servers, userids, created_at)
VALUES ('1', :coord, ARRAY[:q1, :f1, :w1]::oid[], ARRAY[:bob, :me, :me]::oid[], now());
DROP OWNED BY dtx_ddl_bob;
\echo :SQLSTATE
ALTER USER MAPPING FOR dtx_ddl_bob SERVER q1 OPTIONS (SET user 'someone_else');
\echo :SQLSTATE
ALTER USER MAPPING FOR dtx_ddl_bob SERVER q1 OPTIONS (DROP user);
\echo :SQLSTATE
ALTER USER MAPPING FOR PUBLIC SERVER f1 OPTIONS (ADD user 'someone_else');
\echo :SQLSTATE
DROP EXTENSION postgres_fdw CASCADE;
\echo :SQLSTATE
DROP FOREIGN DATA WRAPPER dtx_ddl_wrapper CASCADE;
\echo :SQLSTATE
DROP SCHEMA dtx CASCADE;
\echo :SQLSTATE
-- what does not strand anything is fine: another password, the mapping of a
-- role that no participant of the decision used on that server
ALTER USER MAPPING FOR dtx_ddl_bob SERVER q1 OPTIONS (ADD password 'secret');
ALTER USER MAPPING FOR CURRENT_USER SERVER q1 OPTIONS (ADD user 'someone_else');
DROP USER MAPPING FOR CURRENT_USER SERVER q1;
CREATE USER MAPPING FOR CURRENT_USER SERVER q1;
-- everything is still there
SELECT count(*) AS decisions FROM dtx.decisions;
SELECT srvname FROM pg_foreign_server ORDER BY 1;
SELECT s.srvname, coalesce(r.rolname, 'public') AS rolname, m.umoptions
  FROM pg_user_mapping m JOIN pg_foreign_server s ON s.oid = m.umserver
  LEFT JOIN pg_roles r ON r.oid = m.umuser ORDER BY 1, 2;

-- Only prepared transactions without a decision (dtx.in_doubt 'none yet'):
-- the same, for their server and the mapping of their role.
DELETE FROM dtx.decisions;
INSERT INTO dtx.undecided (server_id, global_id, xid, userid, first_seen, seen_at)
VALUES (:q1, dtx.global_id(:coord, '2', :q1, :bob, 1), '2', :bob, now(), now());
SELECT server, decision FROM dtx.in_doubt;
DROP SERVER q1 CASCADE;
\echo :SQLSTATE
DROP USER MAPPING FOR dtx_ddl_bob SERVER q1;
\echo :SQLSTATE
DROP OWNED BY dtx_ddl_bob;
\echo :SQLSTATE
DROP EXTENSION pg_dtx CASCADE;
\echo :SQLSTATE
DROP SCHEMA dtx CASCADE;
\echo :SQLSTATE
-- the mapping of another role on that server is not needed
DROP USER MAPPING FOR CURRENT_USER SERVER q1;
CREATE USER MAPPING FOR CURRENT_USER SERVER q1;

-- Once nothing is in doubt, every one of them goes through.
DELETE FROM dtx.undecided;
ALTER USER MAPPING FOR dtx_ddl_bob SERVER q1 OPTIONS (SET user 'someone_else');
ALTER USER MAPPING FOR PUBLIC SERVER f1 OPTIONS (ADD user 'someone_else');
DROP OWNED BY dtx_ddl_bob;
DROP EXTENSION postgres_fdw CASCADE;
DROP FOREIGN DATA WRAPPER dtx_ddl_wrapper CASCADE;
DROP SCHEMA dtx CASCADE;
SELECT count(*) AS pg_dtx_installed FROM pg_extension WHERE extname = 'pg_dtx';
SELECT srvname FROM pg_foreign_server ORDER BY 1;
RESET client_min_messages;
\set VERBOSITY default

\c :regress_db
DROP DATABASE dtx_ddl;
DROP ROLE dtx_ddl_bob;
