// node_pg.js - pg_dtx from node-postgres (npm package pg), whose
// parameterized queries send every parameter untyped (server-side binding).
//
//   NODE_PATH=DIR/node_modules node node_pg.js SOCKET_DIR PORT
//
// Prints one line per check, for test/t/045_drivers.pl to judge:
//   transfer <rows on p1> <rows on p2>
//   error <error class> <SQLSTATE>
//   row <column>=<JavaScript type>:<value> ...
'use strict';

const { Client } = require('pg');

function describe(v) {
	if (v === null)
		return 'null:null';
	if (v instanceof Date)
		return 'Date:' + v.getFullYear() + '-' + (v.getMonth() + 1) + '-' + v.getDate();
	return typeof v + ':' + v;
}

async function main() {
	const client = new Client({ host: process.argv[2], port: Number(process.argv[3]),
		database: 'postgres', user: process.env.PGUSER });
	await client.connect();
	try {
		// a transfer between two participants, amounts as JavaScript numbers
		await client.query('BEGIN');
		const out = await client.query(
			"SELECT dtx.exec('p1', 'UPDATE accounts SET balance = balance - $1 WHERE id = $2', $1, $2) AS n", [5, 1]);
		const into = await client.query(
			"SELECT dtx.exec('p2', 'UPDATE accounts SET balance = balance + $1 WHERE id = $2', $1, $2) AS n", [5, 1]);
		await client.query('COMMIT');
		console.log('transfer ' + out.rows[0].n + ' ' + into.rows[0].n);

		// a remote error: a duplicate key on p1
		await client.query('BEGIN');
		try {
			await client.query("SELECT dtx.exec('p1', 'INSERT INTO accounts VALUES ($1, $2)', $1, $2)", [1, 0]);
			console.log('error none');
		} catch (e) {
			console.log('error ' + e.constructor.name + ' ' + e.code);
		}
		await client.query('ROLLBACK');

		// rows with their types
		const res = await client.query(
			"SELECT * FROM dtx.query('p1', 'SELECT $1::int + 1, $2::numeric, $3::date, $4, NULL::int', $1, $2, $3, $4) " +
			"AS t(i int, n numeric, d date, s text, z int)", [41, '2.50', '2024-02-29', 'hello']);
		const row = res.rows[0];
		console.log('row ' + ['i', 'n', 'd', 's', 'z'].map((k) => k + '=' + describe(row[k])).join(' '));
	} finally {
		await client.end();
	}
}

main().catch((e) => {
	console.log('failed ' + (e.code || '') + ' ' + e.message);
	process.exitCode = 1;
});
