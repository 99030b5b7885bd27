"""psycopg3.py - pg_dtx from psycopg 3 with server-side binding.

    python3 psycopg3.py SOCKET_DIR PORT

Statements are prepared on the server (prepare=True).  psycopg 3 sends
Python str parameters untyped and int parameters typed (int2/int4/int8).
Prints one line per check, for test/t/045_drivers.pl to judge:
    transfer <rows on p1> <rows on p2>
    error <error class> <SQLSTATE>
    row <column>=<Python type>:<value> ...
"""
import sys

import psycopg


def describe(v):
    return "%s:%s" % (type(v).__name__, v)


def main():
    conninfo = psycopg.conninfo.make_conninfo(host=sys.argv[1], port=sys.argv[2], dbname="postgres")
    with psycopg.connect(conninfo) as conn:
        # a transfer between two participants: str amounts travel untyped
        with conn.transaction():
            out = conn.execute(
                "SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance - $1 WHERE id = $2', %s, %s)",
                ["5", "1"], prepare=True).fetchone()[0]
            into = conn.execute(
                "SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance + $1 WHERE id = $2', %s, %s)",
                ["5", "1"], prepare=True).fetchone()[0]
        print("transfer %d %d" % (out, into))

        # int parameters are typed: the "any" form, as before
        with conn.transaction():
            typed = conn.execute(
                "SELECT * FROM dtx.query('p1', 'SELECT pg_typeof($1)::text', %s) AS t(t text)",
                [7], prepare=True).fetchone()[0]
        print("typed %s" % typed)

        # a remote error: a duplicate key on p1
        try:
            with conn.transaction():
                conn.execute("SELECT dtx.exec('p1', 'INSERT INTO accounts VALUES ($1, $2)', %s, %s)",
                             ["1", "0"], prepare=True)
            print("error none")
        except psycopg.Error as e:
            print("error %s %s" % (type(e).__name__, e.sqlstate))

        # rows with their types, through a server-side cursor
        with conn.transaction():
            with conn.cursor(name="dtx_rows") as cur:
                cur.execute(
                    "SELECT * FROM dtx.query('p1', 'SELECT $1::int + 1, $2::numeric, $3::date, $4, NULL::int',"
                    " %s, %s, %s, %s) AS t(i int, n numeric, d date, s text, z int)",
                    ["41", "2.50", "2024-02-29", "hello"])
                row = cur.fetchone()
        print("row " + " ".join("%s=%s" % (k, describe(v)) for k, v in zip("indsz", row)))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the test reads the line
        print("failed %s %s" % (getattr(e, "sqlstate", ""), e))
        sys.exit(1)
