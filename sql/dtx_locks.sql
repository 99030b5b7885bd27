-- Distributed locks: an advisory lock on every listed server, held until the
-- distributed transaction ends everywhere.
-- "p1_again" reaches dtx_p1 through another connection: it plays a second
-- transaction competing for the same locks.
DO $$
BEGIN
  EXECUTE format('CREATE SERVER p1_again FOREIGN DATA WRAPPER dtx OPTIONS (port %L, dbname %L)',
                 current_setting('port'), 'dtx_p1');
END $$;
CREATE USER MAPPING FOR CURRENT_USER SERVER p1_again;

SELECT dtx.stats_reset();
BEGIN;
SELECT dtx.lock(ARRAY['p2', 'p1'], 42);
-- held on p1 by this transaction's session: another session cannot take it
SELECT * FROM dtx.query('p1_again', 'SELECT pg_try_advisory_xact_lock(42)') AS t(got bool);
SELECT * FROM dtx.query('p1_again', 'SELECT count(*) FROM pg_locks WHERE locktype = ''advisory'' AND objid = 42 AND granted') AS t(n bigint);
-- the lock-only participants must be prepared, not committed as read-only
SELECT server, state FROM dtx.participants WHERE server IN ('p1', 'p2') ORDER BY server;
SELECT dtx.try_lock(ARRAY['p1'], 42);        -- this transaction holds it already
COMMIT;
SELECT two_phase_commits, read_only_commits FROM dtx.stats;
-- released everywhere with the commit
SELECT * FROM dtx.query('p1', 'SELECT count(*) FROM pg_locks WHERE locktype = ''advisory'' AND objid = 42') AS t(n bigint);
SELECT * FROM dtx.query('p2', 'SELECT count(*) FROM pg_locks WHERE locktype = ''advisory'' AND objid = 42') AS t(n bigint);

-- try_lock returns false when another transaction holds the lock
BEGIN;
SELECT * FROM dtx.query('p1_again', 'SELECT pg_advisory_xact_lock(7, 8)::text') AS t(x text);
SELECT dtx.try_lock(ARRAY['p1'], 7, 8);
SELECT dtx.try_lock(ARRAY['p1'], 9, 10);
ROLLBACK;
SELECT * FROM dtx.query('p1', 'SELECT count(*) FROM pg_locks WHERE locktype = ''advisory''') AS t(n bigint);

-- the local lock comes too, first
BEGIN;
SELECT dtx.lock(ARRAY['p1'], 43, lock_local_too => true);
SELECT count(*) AS local_locks FROM pg_locks WHERE locktype = 'advisory' AND objid = 43 AND pid = pg_backend_pid();
ROLLBACK;

-- bad input
SELECT dtx.lock(NULL, 1);
SELECT dtx.lock(ARRAY['p1', NULL], 1);
SELECT dtx.lock(ARRAY['p1'], NULL::bigint);
SELECT dtx.lock(ARRAY['nosuch'], 1);
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;
DROP SERVER p1_again CASCADE;
