import type { Db } from '../db';

/** SQL of `notifications`: every notification, once per idempotency key, with its delivery state. */

export interface NewNotification {
  key: string;
  orgId: string;
  agentId: string;
  taskId: string | null;
  event: string;
  payload: Record<string, unknown>;
  target: unknown;
}

/** Records the notification (once per key) and answers its row: `deliveredAt` is set once it went out. */
export async function claimNotification(
  db: Db,
  n: NewNotification,
): Promise<{ id: string; deliveredAt: string | null }> {
  const { rows } = await db.query<{ id: string; delivered_at: string | null }>(
    `INSERT INTO notifications (idempotency_key, org_id, agent_id, task_id, event, payload, target)
     VALUES ($1,$2,$3,$4,$5,$6,$7)
     ON CONFLICT (idempotency_key) DO UPDATE SET attempts = notifications.attempts
     RETURNING id, delivered_at`,
    [n.key, n.orgId, n.agentId, n.taskId, n.event, JSON.stringify(n.payload), JSON.stringify(n.target)],
  );
  return { id: rows[0]!.id, deliveredAt: rows[0]!.delivered_at };
}

/** Counts a failed delivery attempt and keeps its error. */
export async function noteDeliveryFailed(db: Db, id: string, error: string): Promise<void> {
  await db.query('UPDATE notifications SET attempts = attempts + 1, last_error = $2 WHERE id = $1', [id, error]);
}

/** Counts the attempt that delivered the notification. */
export async function noteDelivered(db: Db, id: string): Promise<void> {
  await db.query(
    'UPDATE notifications SET attempts = attempts + 1, delivered_at = now(), last_error = NULL WHERE id = $1',
    [id],
  );
}
