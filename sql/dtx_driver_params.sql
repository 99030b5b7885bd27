-- Parameters without a type, as drivers send them (node-postgres, asyncpg,
-- JDBC, psycopg 3 with server-side binding): they travel as text and the
-- participant's statement types them.
PREPARE upd AS SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance + $1 WHERE id = $2', $1, $2);
EXECUTE upd(5, 3);
SELECT * FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 3') AS t(b bigint);
EXECUTE upd('-5', '3');
SELECT * FROM dtx.query('p1', 'SELECT balance FROM accounts WHERE id = 3') AS t(b bigint);
-- what a driver is told the parameters are
SELECT parameter_types FROM pg_prepared_statements WHERE name = 'upd';
-- the participant types them from its statement: a date, a numeric, NULL
PREPARE q AS SELECT * FROM dtx.query('p1',
  'SELECT $1 - date ''2024-01-01'', pg_typeof($2 * 1.0)::text, $2 * 2, $3::int IS NULL AS missing', $1, $2, $3)
  AS t(days int, typ text, twice numeric, missing bool);
EXECUTE q('2024-03-01', '2.5', NULL);
-- a statement that gives the participant no type for it fails there
PREPARE notype AS SELECT * FROM dtx.query('p1', 'SELECT pg_typeof($1)::text', $1) AS t(a text);
EXECUTE notype('x');
-- a remote error keeps its SQLSTATE
\set VERBOSITY sqlstate
EXECUTE upd('five', '3');
\set VERBOSITY default
-- VARIADIC text[] goes the same way
SELECT * FROM dtx.query('p1', 'SELECT $1::int + $2', VARIADIC ARRAY['1', '2']) AS t(a int);
SELECT * FROM dtx.query('p1', 'SELECT 1', VARIADIC NULL::text[]) AS t(a int);
-- typed calls keep their types on the participant
PREPARE typed(int, date, numeric) AS SELECT * FROM dtx.query('p1',
  'SELECT pg_typeof($1)::text, pg_typeof($2)::text, pg_typeof($3)::text', $1, $2, $3) AS t(a text, b text, c text);
EXECUTE typed(1, '2024-01-01', 1.5);
SELECT * FROM dtx.query('p1', 'SELECT pg_typeof($1)::text, pg_typeof($2)::text, pg_typeof($3)::text',
  7::bigint, now()::date, 'x'::text) AS t(a text, b text, c text);
-- untyped literals as before, alone or among typed parameters
SELECT * FROM dtx.query('p1', 'SELECT $1 + 1', '41') AS t(a int);
SELECT * FROM dtx.query('p1', 'SELECT $1 + $2', 1, '41') AS t(a int);
-- an untyped driver parameter among typed ones still needs a cast
PREPARE mixed AS SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1', $1::int, $2);
PREPARE mixed AS SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance WHERE id = $1', $1::int, $2::text);
EXECUTE mixed(3, 'unused');
DEALLOCATE ALL;
