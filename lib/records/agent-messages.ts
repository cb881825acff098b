import type { Queryable } from '../db';

/** SQL of `agent_messages`: messages between agents of an organisation (the send_message tool). */

export async function insertAgentMessage(
  db: Queryable,
  m: { orgId: string; fromAgentId: string; toAgentId: string; taskId: string; content: string; idempotencyKey: string },
): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO agent_messages (org_id, from_agent_id, to_agent_id, task_id, content, idempotency_key)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
    [m.orgId, m.fromAgentId, m.toAgentId, m.taskId, m.content, m.idempotencyKey],
  );
  return rows[0]!.id;
}
