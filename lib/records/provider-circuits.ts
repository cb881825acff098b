import type { Db } from '../db';

/** SQL of `provider_circuits`: each worker's circuit state per LLM provider, as it last reported it. */

/** Records a circuit's new state for this worker (one row per worker and provider). */
export async function saveCircuitState(
  db: Db,
  c: { worker: string; provider: string; state: string; lastError: string | null },
): Promise<void> {
  await db.query(
    `INSERT INTO provider_circuits (worker, provider, state, last_error, changed_at) VALUES ($1, $2, $3, $4, now())
     ON CONFLICT (worker, provider) DO UPDATE SET state = EXCLUDED.state, last_error = EXCLUDED.last_error, changed_at = now()`,
    [c.worker, c.provider, c.state, c.lastError],
  );
}

/** Circuits that are not closed, most recent change first. */
export async function openCircuits(
  db: Db,
): Promise<{ worker: string; provider: string; state: string; lastError: string | null; changedAt: string }[]> {
  const { rows } = await db.query(
    `SELECT worker, provider, state, last_error AS "lastError", changed_at AS "changedAt" FROM provider_circuits
     WHERE state <> 'closed' ORDER BY changed_at DESC LIMIT 100`,
  );
  return rows;
}
