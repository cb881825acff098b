import type { Queryable } from '../db';
import type { MessageType } from '../../contract/definitions';

/**
 * SQL of `agent_messages` (messages between agents of an organisation: send_message, publish, the answers
 * to requests) and of `agent_topic_subscriptions` (who receives what is published to a topic).
 */

export interface NewAgentMessage {
  orgId: string;
  /** Null for the orchestrator's own messages (a meta run's result). */
  fromAgentId: string | null;
  toAgentId: string;
  taskId: string | null;
  content: string;
  idempotencyKey: string;
  type?: MessageType;
  replyTo?: string | null;
  topic?: string | null;
}

/** Writes a message once per idempotency key; a second write with the same key returns the first row's id. */
export async function insertAgentMessage(db: Queryable, m: NewAgentMessage): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `WITH inserted AS (
       INSERT INTO agent_messages (org_id, from_agent_id, to_agent_id, task_id, content, idempotency_key, type, reply_to, topic)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       ON CONFLICT (idempotency_key) DO NOTHING RETURNING id)
     SELECT id FROM inserted UNION ALL SELECT id FROM agent_messages WHERE idempotency_key = $6 LIMIT 1`,
    [
      m.orgId,
      m.fromAgentId,
      m.toAgentId,
      m.taskId,
      m.content,
      m.idempotencyKey,
      m.type ?? 'status',
      m.replyTo ?? null,
      m.topic ?? null,
    ],
  );
  return rows[0]!.id;
}

export interface AgentMessageRecord {
  id: string;
  fromAgentId: string | null;
  toAgentId: string;
  topic: string | null;
  type: MessageType;
  content: string;
  replyTo: string | null;
  status: 'delivered' | 'read';
  taskId: string | null;
  createdAt: string;
  readAt: string | null;
}

const COLUMNS = `id, from_agent_id AS "fromAgentId", to_agent_id AS "toAgentId", topic, type, content,
  reply_to AS "replyTo", status, task_id AS "taskId", created_at AS "createdAt", read_at AS "readAt"`;

/** One message of the organisation, or undefined. */
export async function agentMessageById(
  db: Queryable,
  orgId: string,
  id: string,
): Promise<AgentMessageRecord | undefined> {
  const { rows } = await db.query<AgentMessageRecord>(
    `SELECT ${COLUMNS} FROM agent_messages WHERE id = $1 AND org_id = $2`,
    [id, orgId],
  );
  return rows[0];
}

/** A page of the messages an agent received (`in`) or sent (`out`), newest first. */
export async function listAgentMessages(
  db: Queryable,
  orgId: string,
  agentId: string,
  f: { direction: 'in' | 'out'; limit: number; offset: number },
): Promise<AgentMessageRecord[]> {
  const column = f.direction === 'in' ? 'to_agent_id' : 'from_agent_id';
  const { rows } = await db.query<AgentMessageRecord>(
    `SELECT ${COLUMNS} FROM agent_messages WHERE ${column} = $1 AND org_id = $2
     ORDER BY created_at DESC, id LIMIT $3 OFFSET $4`,
    [agentId, orgId, f.limit, f.offset],
  );
  return rows;
}

/** Marks messages of this recipient read (once: the first read time stays). */
export async function markAgentMessagesRead(db: Queryable, agentId: string, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.query(
    `UPDATE agent_messages SET status = 'read', read_at = now()
     WHERE to_agent_id = $1 AND id = ANY($2::uuid[]) AND status <> 'read'`,
    [agentId, ids],
  );
}

/** The response to a request, if one was sent. */
export async function responseTo(
  db: Queryable,
  orgId: string,
  requestId: string,
): Promise<AgentMessageRecord | undefined> {
  const { rows } = await db.query<AgentMessageRecord>(
    `SELECT ${COLUMNS} FROM agent_messages WHERE org_id = $1 AND reply_to = $2 AND type = 'response'
     ORDER BY created_at LIMIT 1`,
    [orgId, requestId],
  );
  return rows[0];
}

// ---- Topics ----

export async function subscribeToTopic(db: Queryable, orgId: string, topic: string, agentId: string): Promise<void> {
  await db.query(
    `INSERT INTO agent_topic_subscriptions (org_id, topic, agent_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
    [orgId, topic, agentId],
  );
}

/** False when the agent was not subscribed. */
export async function unsubscribeFromTopic(
  db: Queryable,
  orgId: string,
  topic: string,
  agentId: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    'DELETE FROM agent_topic_subscriptions WHERE org_id = $1 AND topic = $2 AND agent_id = $3',
    [orgId, topic, agentId],
  );
  return Boolean(rowCount);
}

/** The topic's subscribers that are not archived, oldest subscription first. */
export async function topicSubscribers(db: Queryable, orgId: string, topic: string): Promise<string[]> {
  const { rows } = await db.query<{ agentId: string }>(
    `SELECT s.agent_id AS "agentId" FROM agent_topic_subscriptions s
     JOIN agents a ON a.id = s.agent_id AND a.org_id = s.org_id AND a.status <> 'ARCHIVED'
     WHERE s.org_id = $1 AND s.topic = $2 ORDER BY s.created_at, s.agent_id`,
    [orgId, topic],
  );
  return rows.map((r) => r.agentId);
}
