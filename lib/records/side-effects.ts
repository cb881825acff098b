import type { Db, Queryable } from '../db';

/**
 * SQL of `side_effects`, the at-most-once ledger of side-effecting tool calls (built-in and MCP): a call
 * claims its idempotency key before it acts (result `null`), and records its result once done.
 */

/** Claims a key; false when it was claimed before (an earlier attempt of the same call). */
export async function claimSideEffect(
  db: Queryable,
  key: string,
  tool: string,
  taskId: string | null,
): Promise<boolean> {
  const claim = await db.query(
    `INSERT INTO side_effects (idempotency_key, tool, task_id, result) VALUES ($1, $2, $3, 'null')
     ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key`,
    [key, tool, taskId],
  );
  return Boolean(claim.rowCount);
}

/** The result recorded under a claimed key: null while the claiming attempt has not recorded one. */
export async function sideEffectResult<T = unknown>(db: Queryable, key: string): Promise<T | null | undefined> {
  const prior = await db.query<{ result: T | null }>('SELECT result FROM side_effects WHERE idempotency_key = $1', [
    key,
  ]);
  return prior.rows[0]?.result;
}

/** Records the result of the call that claimed the key. */
export async function settleSideEffect(db: Queryable, key: string, result: unknown): Promise<void> {
  await db.query('UPDATE side_effects SET result = $2 WHERE idempotency_key = $1', [
    key,
    JSON.stringify(result ?? null),
  ]);
}

/** Gives a claim back when the call certainly had no effect (no result recorded). */
export async function releaseSideEffect(db: Db, key: string): Promise<void> {
  await db.query(`DELETE FROM side_effects WHERE idempotency_key = $1 AND result = 'null'::jsonb`, [key]);
}
