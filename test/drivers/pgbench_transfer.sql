-- pgbench -M prepared: :amount is bound as an untyped parameter.
\set amount 3
BEGIN;
SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance - $1 WHERE id = 2', :amount);
SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance + $1 WHERE id = 2', :amount);
END;
