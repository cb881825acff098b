import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import pg from 'pg';
import {
  AGENT_STATUSES,
  APPROVAL_STATUSES,
  AUTONOMY_LEVELS,
  CREW_ASSIGNMENTS,
  CREW_PROCESSES,
  CREW_STATUSES,
  META_STATUSES,
  TASK_STATUSES,
} from '../contract/definitions';
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

  it("limits each status and enum column to the contract's list, no more and no less", async () => {
    await migrate(process.env.DATABASE_URL!);
    const expected: Record<string, readonly string[]> = {
      agents_status_check: AGENT_STATUSES,
      agents_autonomy_check: AUTONOMY_LEVELS,
      tasks_status_check: TASK_STATUSES,
      approvals_status_check: APPROVAL_STATUSES,
      crews_status_check: CREW_STATUSES,
      crews_process_check: CREW_PROCESSES,
      crews_assignment_check: CREW_ASSIGNMENTS,
      meta_runs_status_check: META_STATUSES,
    };
    const db = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await db.connect();
    try {
      const { rows } = await db.query<{ name: string; def: string }>(
        `SELECT conname AS name, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conname = ANY($1)`,
        [Object.keys(expected)],
      );
      const actual = Object.fromEntries(
        rows.map((r) => [r.name, [...r.def.matchAll(/'([^']*)'::text/g)].map((m) => m[1])]),
      );
      assert.deepEqual(
        actual,
        Object.fromEntries(Object.entries(expected).map(([name, values]) => [name, [...values]])),
      );
    } finally {
      await db.end();
    }
  });
});
