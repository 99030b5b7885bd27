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
