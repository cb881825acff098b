import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import pg from 'pg';
import { migrate } from '../lib/db';

/** API and worker processes start together and both migrate; neither may fail on the other's lock. */
describe('migrations', () => {
  it('apply exactly once when several processes migrate a fresh database at the same time', async () => {
    const name = `migrate_race_${process.pid}_${Date.now()}`;
    const admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    const url = new URL(process.env.DATABASE_URL!);
    url.pathname = `/${name}`;
    try {
      const results = await Promise.all([migrate(url.href), migrate(url.href), migrate(url.href)]);
      const files = fs.readdirSync(path.join(__dirname, '../migrations')).filter((f) => f.endsWith('.sql'));
      assert.equal(results.flat().length, files.length, 'each migration applied by exactly one caller');
      const check = new pg.Client({ connectionString: url.href });
      await check.connect();
      const { rows } = await check.query('SELECT count(*)::int AS n FROM pgmigrations');
      await check.end();
      assert.equal(rows[0].n, files.length);
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    }
  });
});
