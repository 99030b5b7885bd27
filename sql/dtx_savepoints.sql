-- Savepoints reach the remote transactions.
BEGIN;
SELECT dtx.exec('p1', 'INSERT INTO ledger VALUES (200, 1)');
SAVEPOINT a;
SELECT dtx.exec('p1', 'INSERT INTO ledger VALUES (201, 1)');
SELECT dtx.exec('p2', 'INSERT INTO ledger VALUES (201, 1)');
ROLLBACK TO a;
SAVEPOINT b;
SELECT dtx.exec('p2', 'INSERT INTO ledger VALUES (202, 1)');
SAVEPOINT c;
SELECT dtx.exec('p2', 'INSERT INTO ledger VALUES (203, 1)');
RELEASE b;
SELECT dtx.exec('p1', 'INSERT INTO ledger VALUES (204, 1)');
COMMIT;
SELECT * FROM dtx.query('p1', 'SELECT transfer_id FROM ledger WHERE transfer_id >= 200 ORDER BY 1') AS t(id int);
SELECT * FROM dtx.query('p2', 'SELECT transfer_id FROM ledger WHERE transfer_id >= 200 ORDER BY 1') AS t(id int);

-- A remote error inside a savepoint is rolled back with it.
BEGIN;
SELECT dtx.exec('p1', 'INSERT INTO ledger VALUES (210, 1)');
SAVEPOINT s;
SELECT dtx.exec('p1', 'INSERT INTO ledger VALUES (210, 1)');
ROLLBACK TO s;
SELECT dtx.exec('p2', 'INSERT INTO ledger VALUES (210, 1)');
COMMIT;
SELECT * FROM dtx.query('p1', 'SELECT count(*) FROM ledger WHERE transfer_id = 210') AS t(n bigint);
SELECT * FROM dtx.query('p2', 'SELECT count(*) FROM ledger WHERE transfer_id = 210') AS t(n bigint);

-- PL/pgSQL exception blocks are subtransactions too.
DO $$
BEGIN
  PERFORM dtx.exec('p1', 'INSERT INTO ledger VALUES (220, 1)');
  BEGIN
    PERFORM dtx.exec('p2', 'INSERT INTO ledger VALUES (220, 1)');
    PERFORM dtx.exec('p1', 'INSERT INTO ledger VALUES (220, 1)');  -- duplicate
  EXCEPTION WHEN unique_violation THEN
    RAISE NOTICE 'caught %', SQLERRM;
  END;
  PERFORM dtx.exec('p2', 'INSERT INTO ledger VALUES (221, 1)');
END $$;
SELECT * FROM dtx.query('p1', 'SELECT transfer_id FROM ledger WHERE transfer_id >= 220 ORDER BY 1') AS t(id int);
SELECT * FROM dtx.query('p2', 'SELECT transfer_id FROM ledger WHERE transfer_id >= 220 ORDER BY 1') AS t(id int);

-- A participant first used inside a savepoint that is rolled back.
BEGIN;
SAVEPOINT x;
SELECT dtx.exec('p1', 'INSERT INTO ledger VALUES (230, 1)');
ROLLBACK TO x;
SELECT dtx.exec('p2', 'INSERT INTO ledger VALUES (230, 1)');
COMMIT;
SELECT * FROM dtx.query('p1', 'SELECT count(*) FROM ledger WHERE transfer_id = 230') AS t(n bigint);
SELECT * FROM dtx.query('p2', 'SELECT count(*) FROM ledger WHERE transfer_id = 230') AS t(n bigint);
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;
