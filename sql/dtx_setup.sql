-- Set-up shared by the regression tests: two participant databases of this
-- instance, reached through servers of the wrapper dtx.
SELECT current_database() AS regress_db \gset
CREATE EXTENSION pg_dtx;
-- (not \dx: its columns differ between psql versions)
SELECT e.extname, e.extversion, n.nspname AS schema, obj_description(e.oid, 'pg_extension') AS description
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'pg_dtx';

CREATE DATABASE dtx_p1;
CREATE DATABASE dtx_p2;
\c dtx_p1
CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 10) g;
CREATE TABLE ledger (transfer_id int PRIMARY KEY, amount bigint);
CREATE TABLE uniq (id int UNIQUE DEFERRABLE INITIALLY DEFERRED);
\c dtx_p2
CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 10) g;
CREATE TABLE ledger (transfer_id int PRIMARY KEY, amount bigint);
CREATE TABLE uniq (id int UNIQUE DEFERRABLE INITIALLY DEFERRED);
\c :regress_db

-- The servers point back at this instance (host from the environment).
DO $$
BEGIN
  EXECUTE format('CREATE SERVER p1 FOREIGN DATA WRAPPER dtx OPTIONS (port %L, dbname %L)',
                 current_setting('port'), 'dtx_p1');
  EXECUTE format('CREATE SERVER p2 FOREIGN DATA WRAPPER dtx OPTIONS (port %L, dbname %L)',
                 current_setting('port'), 'dtx_p2');
END $$;
CREATE USER MAPPING FOR CURRENT_USER SERVER p1;
CREATE USER MAPPING FOR CURRENT_USER SERVER p2;
CREATE TABLE audit (t timestamptz DEFAULT now(), msg text);
