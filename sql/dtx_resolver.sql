-- dtx.resolve(): one resolver pass, run by hand (the background passes are
-- off in this suite).  In-doubt transactions are made by hand on dtx_p1:
-- prepared transactions named as pg_dtx names them.
SELECT current_database() AS regress_db \gset
SELECT dtx.coordinator_id() AS coord, oid AS db FROM pg_database WHERE datname = current_database() \gset
SELECT oid AS p1 FROM pg_foreign_server WHERE srvname = 'p1' \gset
SELECT oid AS me FROM pg_roles WHERE rolname = current_user \gset
-- a local transaction that committed, one that rolled back
BEGIN; CREATE TEMP TABLE x (); SELECT pg_current_xact_id() AS committed_xid \gset
COMMIT;
BEGIN; CREATE TEMP TABLE y (); SELECT pg_current_xact_id() AS aborted_xid \gset
ROLLBACK;
SELECT format('dtx_%s_%s_%s_%s_%s_1', CASE WHEN :coord < 0 THEN :coord::numeric + 18446744073709551616 ELSE :coord END,
              :db, :'committed_xid', :p1, :me) AS gid_commit,
       format('dtx_%s_%s_%s_%s_%s_1', CASE WHEN :coord < 0 THEN :coord::numeric + 18446744073709551616 ELSE :coord END,
              :db, :'aborted_xid', :p1, :me) AS gid_abort \gset
-- the decision of the committed one, as pg_dtx records it
INSERT INTO dtx.decisions VALUES (:'committed_xid', :coord, ARRAY[:p1]::oid[], ARRAY[:me]::oid[], now());
SELECT global_id = :'gid_commit' AS gid_ok, server, decision FROM dtx.in_doubt WHERE xid = :'committed_xid';
\c dtx_p1
BEGIN; INSERT INTO ledger VALUES (900, 1); PREPARE TRANSACTION :'gid_commit';
BEGIN; INSERT INTO ledger VALUES (901, 1); PREPARE TRANSACTION :'gid_abort';
-- somebody else's: another coordinator, and not pg_dtx's at all
BEGIN; INSERT INTO ledger VALUES (902, 1); PREPARE TRANSACTION 'dtx_1_1_1_1_1_1';
BEGIN; INSERT INTO ledger VALUES (903, 1); PREPARE TRANSACTION 'not_ours';
\c :regress_db
-- the pass: committed where decided, rolled back where not; the server
-- "down" cannot be listed and says so
SELECT server, global_id = :'gid_commit' AS is_commit, global_id = :'gid_abort' AS is_abort, action,
       regexp_replace(outcome, '^[0-9]+ finished decisions? deleted', 'N finished decision(s) deleted') AS outcome
  FROM dtx.resolve() ORDER BY action, server;
SELECT * FROM dtx.query('p1', 'SELECT transfer_id FROM ledger WHERE transfer_id >= 900 ORDER BY 1') AS t(id int);
SELECT gid FROM pg_prepared_xacts ORDER BY gid;
-- the decision is gone with its prepared transaction
SELECT count(*) AS decisions FROM dtx.decisions WHERE xid = :'committed_xid';
SELECT count(*) AS in_doubt FROM dtx.in_doubt;
-- the unreachable server is in backoff
SELECT s.srvname, r.failures, r.last_error LIKE 'could not connect to server "down"%' AS error_ok,
       r.next_attempt > r.last_attempt AS backoff
  FROM dtx.resolver_status r JOIN pg_foreign_server s ON s.oid = r.server_id;
-- a second pass has nothing more to do than report the down server again
SELECT server, action, outcome LIKE 'failed: could not connect%' AS failed FROM dtx.resolve();
SELECT failures FROM dtx.resolver_status;
-- without the server "down", nothing is left to report
DROP SERVER down CASCADE;
SELECT * FROM dtx.resolve();
SELECT count(*) AS status_rows FROM dtx.resolver_status;
-- clean up the prepared transactions that are not pg_dtx's to finish
\c dtx_p1
ROLLBACK PREPARED 'dtx_1_1_1_1_1_1';
ROLLBACK PREPARED 'not_ours';
\c :regress_db
-- only the extension's owner and those it lets in may resolve
SET ROLE dtx_alice;
SELECT * FROM dtx.resolve();
SELECT * FROM dtx.in_doubt;
RESET ROLE;

-- DDL that would strand an in-doubt transaction is refused
SELECT oid AS p2 FROM pg_foreign_server WHERE srvname = 'p2' \gset
INSERT INTO dtx.decisions VALUES ('1', :coord, ARRAY[:p2]::oid[], ARRAY[:me]::oid[], now());
DROP SERVER p2 CASCADE;
ALTER SERVER p2 OPTIONS (SET dbname 'dtx_p1');
DROP USER MAPPING FOR CURRENT_USER SERVER p2;
DROP EXTENSION pg_dtx CASCADE;
-- changing what does not re-point it is fine
ALTER SERVER p2 OPTIONS (ADD connect_timeout '10');
-- once resolved (nothing is prepared there, so it is finished), all is allowed
SELECT action, regexp_replace(outcome, '^[0-9]+ finished decisions? deleted', 'N finished decision(s) deleted') AS outcome FROM dtx.resolve();
ALTER SERVER p2 OPTIONS (DROP connect_timeout);
SELECT count(*) AS decisions FROM dtx.decisions;

-- the coordinator id is the cluster's; it changes only while the server is
-- held (a copy of another coordinator, at its first start), and this one is not
SELECT dtx.coordinator_hold() IS NULL AS not_held;
SELECT dtx.set_coordinator_id(42);
SELECT dtx.confirm_successor();
SELECT dtx.coordinator_id() = :coord AS id_unchanged;
SET ROLE dtx_alice;
SELECT dtx.set_coordinator_id(1);
SELECT dtx.confirm_successor();
RESET ROLE;
-- a decision of another coordinator id (a copy inherits its origin's) is
-- neither acted on nor deleted as finished, and is not in dtx.in_doubt
INSERT INTO dtx.decisions VALUES ('3', 4242, ARRAY[:p1]::oid[], ARRAY[:me]::oid[], now(), 7);
SELECT action, outcome FROM dtx.resolve();
SELECT count(*) AS other_id_decisions FROM dtx.decisions WHERE coordinator_id = 4242;
SELECT count(*) AS other_id_in_doubt FROM dtx.in_doubt WHERE xid = '3';
DELETE FROM dtx.decisions WHERE coordinator_id = 4242;
-- global ids: with a nonce (version 1.1) and without (1.0); a NULL nonce gives NULL
SELECT dtx.global_id(7, '42', 3, 10, 2, 99) = 'dtx_7_' || :db || '_42_3_10_2_99' AS with_nonce,
       dtx.global_id(7, '42', 3, 10, 2) = 'dtx_7_' || :db || '_42_3_10_2' AS without_nonce,
       dtx.global_id(7, '42', 3, 10, 2, NULL) IS NULL AS null_nonce;
-- the longest numbers: every digit written
SELECT dtx.global_id(9223372036854775807, '18446744073709551615', 4294967295, 4294967295,
                     2147483647, 9223372036854775807)
       = 'dtx_9223372036854775807_' || :db || '_18446744073709551615_4294967295_4294967295_2147483647_9223372036854775807'
       AS longest,
       dtx.global_id(0, '0', 0, 0, 0, 1) = 'dtx_0_' || :db || '_0_0_0_0_1' AS zeros;
-- a global id with a malformed nonce is not one of pg_dtx's
SELECT dtx.resolve_manually('dtx_7_1_42_3_10_2_x', true);
-- the resolver's listing on a participant cannot be fooled by the remote
-- role's search_path: an operator "=" on name that is never true would hide
-- every prepared transaction, and the decision would be deleted as finished
\c dtx_p1
CREATE SCHEMA evil;
CREATE FUNCTION evil.never(name, name) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT false';
CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = name, FUNCTION = evil.never);
ALTER DATABASE dtx_p1 SET search_path = evil, pg_catalog;
\c :regress_db
BEGIN; CREATE TEMP TABLE z (); SELECT pg_current_xact_id() AS sp_xid \gset
COMMIT;
SELECT format('dtx_%s_%s_%s_%s_%s_1_5', CASE WHEN :coord < 0 THEN :coord::numeric + 18446744073709551616 ELSE :coord END,
              :db, :'sp_xid', :p1, :me) AS gid_sp \gset
INSERT INTO dtx.decisions VALUES (:'sp_xid', :coord, ARRAY[:p1]::oid[], ARRAY[:me]::oid[], now(), 5);
\c dtx_p1
BEGIN; INSERT INTO public.ledger VALUES (904, 1); PREPARE TRANSACTION :'gid_sp';
\c :regress_db
SELECT action, global_id = :'gid_sp' AS ours, outcome FROM dtx.resolve();
SELECT count(*) AS decisions_left FROM dtx.decisions WHERE xid = :'sp_xid';
\c dtx_p1
SELECT count(*) AS still_prepared FROM pg_prepared_xacts WHERE gid = :'gid_sp';
ALTER DATABASE dtx_p1 RESET search_path;
DROP SCHEMA evil CASCADE;
\c :regress_db
