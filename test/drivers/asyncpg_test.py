"""asyncpg_test.py - pg_dtx from asyncpg, which prepares every statement
and binds its parameters with the types the server describes.

    python3 asyncpg_test.py SOCKET_DIR PORT

Parameters without a cast are described as text: asyncpg then takes Python
str values for them.  Prints one line per check, for test/t/045_drivers.pl
to judge:
    transfer <rows on p1> <rows on p2>
    error <error class> <SQLSTATE>
    row <column>=<Python type>:<value> ...
"""
import asyncio
import sys

import asyncpg


def describe(v):
    return "%s:%s" % (type(v).__name__, v)


async def main():
    conn = await asyncpg.connect(host=sys.argv[1], port=int(sys.argv[2]), database="postgres")
    try:
        # a transfer between two participants: one parameter untyped (str),
        # the other cast on the coordinator (an int)
        async with conn.transaction():
            out = await conn.fetchval(
                "SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance - $1 WHERE id = $2', $1, $2)",
                "5", "1")
            into = await conn.fetchval(
                "SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance + $1 WHERE id = $2', $1::int, $2::int)",
                5, 1)
        print("transfer %d %d" % (out, into))

        # a remote error: a duplicate key on p1
        try:
            async with conn.transaction():
                await conn.execute("SELECT dtx.exec('p1', 'INSERT INTO accounts VALUES ($1, $2)', $1, $2)", "1", "0")
            print("error none")
        except asyncpg.PostgresError as e:
            print("error %s %s" % (type(e).__name__, e.sqlstate))

        # rows with their types
        async with conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM dtx.query('p1', 'SELECT $1::int + 1, $2::numeric, $3::date, $4, NULL::int',"
                " $1, $2, $3, $4) AS t(i int, n numeric, d date, s text, z int)",
                "41", "2.50", "2024-02-29", "hello")
        print("row " + " ".join("%s=%s" % (k, describe(row[k])) for k in "indsz"))
    finally:
        await conn.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # the test reads the line
        print("failed %s %s" % (getattr(e, "sqlstate", ""), e))
        sys.exit(1)
