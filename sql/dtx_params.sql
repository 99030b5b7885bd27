-- Parameters travel out of band, in text form, NULL included.
SELECT * FROM dtx.query('p1', 'SELECT $1::int, $2::text, $3', 1, NULL, 'untyped') AS t(a int, b text, c text);
SELECT * FROM dtx.query('p1', 'SELECT $1, $2, $3, $4', 42::bigint, 1.5::numeric, true, 'x'::text) AS t(a bigint, b numeric, c bool, d text);
-- never spliced into the text: quotes and semicolons are data
SELECT * FROM dtx.query('p1', 'SELECT $1', 'a''b; DROP TABLE accounts') AS t(a text);
-- data formats survive the round trip whatever the local settings
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'sql_standard';
SET extra_float_digits = -3;
SELECT * FROM dtx.query('p1', 'SELECT $1, $2, $3', '2024-02-03 04:05:06+00'::timestamptz, '1 day 2 hours'::interval, 0.1::float8)
  AS t(a timestamptz, b interval, c float8);
SELECT a = '2024-02-03 04:05:06+00'::timestamptz AS ts_ok, b = '1 day 2 hours'::interval AS iv_ok, c = 0.1::float8 AS f_ok
  FROM dtx.query('p1', 'SELECT $1, $2, $3', '2024-02-03 04:05:06+00'::timestamptz, '1 day 2 hours'::interval, 0.1::float8)
  AS t(a timestamptz, b interval, c float8);
RESET DateStyle;
RESET IntervalStyle;
RESET extra_float_digits;
-- arrays, json, user types travel as text
SELECT * FROM dtx.query('p1', 'SELECT $1::int[], $2::jsonb', ARRAY[1,2,3], '{"a": [1, 2]}'::jsonb) AS t(a int[], b jsonb);
CREATE TYPE mood AS ENUM ('sad', 'happy');
SELECT * FROM dtx.query('p1', 'SELECT $1::text', 'happy'::mood) AS t(a text);
-- VARIADIC array form
SELECT * FROM dtx.query('p1', 'SELECT $1 + $2', VARIADIC ARRAY[1, 2]) AS t(a int);
SELECT * FROM dtx.query('p1', 'SELECT 1', VARIADIC NULL::int[]) AS t(a int);
-- too few parameters: the remote says so
SELECT * FROM dtx.query('p1', 'SELECT $1, $2', 1) AS t(a int, b int);
-- rows affected
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id <= $1', 4);
SELECT dtx.exec('p1', 'CREATE TEMP TABLE tt (x int)');
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1', NULL::int);
-- rows returned by a writing statement through dtx.query
BEGIN;
SELECT * FROM dtx.query('p2', 'INSERT INTO ledger VALUES ($1, $2) RETURNING transfer_id, amount', 100, 5) AS t(id int, amount bigint);
ROLLBACK;
SELECT * FROM dtx.query('p2', 'SELECT count(*) FROM ledger WHERE transfer_id = 100') AS t(n bigint);
-- the remote role's search_path applies to users' SQL
SELECT * FROM dtx.query('p1', 'SELECT current_setting(''search_path'')') AS t(p text);
-- a large result
SELECT count(*), sum(g) FROM dtx.query('p1', 'SELECT g FROM generate_series(1, 100000) g') AS t(g int);
