import path from 'node:path';
import pg from 'pg';
import { ROOT_DIR } from './config';

export type Db = pg.Pool;
/** The pool, or one client inside a transaction (`withTransaction`): what a record function runs on. */
export type Queryable = pg.Pool | pg.PoolClient;

// Return BIGINT counts as numbers; our counters stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export function createPool(databaseUrl: string, max = 10): Db {
  const pool = new pg.Pool({ connectionString: databaseUrl, max, connectionTimeoutMillis: 5000 });
  // An idle client losing its connection (e.g. Postgres restarting) must not crash the process.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * Applies pending migrations from `migrations/`. node-pg-migrate takes an advisory lock (waiting for it),
 * so several processes starting at once (API and workers) apply each migration exactly once.
 */
export async function migrate(databaseUrl: string, log?: (msg: string) => void): Promise<string[]> {
  const { runner } = await import('node-pg-migrate');
  const applied = await runner({
    databaseUrl,
    dir: path.join(ROOT_DIR, 'migrations'),
    direction: 'up',
    migrationsTable: 'pgmigrations',
    count: Infinity,
    singleTransaction: true,
    // Processes starting together (API, workers) queue on the lock instead of failing.
    advisoryLockMode: 'wait',
    log: (msg: string) => log?.(msg),
  });
  return applied.map((m) => m.name);
}

/** One round trip to the database (health checks). */
export async function ping(db: Db): Promise<void> {
  await db.query('SELECT 1');
}

/** Runs `fn` in a transaction on one client. */
export async function withTransaction<T>(db: Db, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
