import { CHAT_EVENTS_CHANNEL, type ChatEvent } from '../../contract/definitions';
import { withTransaction, type Db } from '../db';

/**
 * SQL of `chat_messages` (each chat turn as two rows, the user's message and the answer, unique per
 * (turn, seq)) and of the chat's live channel.
 */

/** Sends one event on the Postgres channel chat events travel on, from the worker running a turn to the API. */
export async function publishChatEvent(db: Db, event: ChatEvent): Promise<void> {
  await db.query('SELECT pg_notify($1, $2)', [CHAT_EVENTS_CHANNEL, JSON.stringify(event)]);
}

/** A finished turn, as its workflow hands it over to be stored. */
export interface SaveChatTurnInput {
  orgId: string;
  sessionId: string;
  turnId: string;
  agentId: string;
  agentType: string;
  user: string;
  assistant: string;
  toolCalls: { name: string; arguments: string; result: string; isError: boolean }[];
  usage: { inputTokens: number; outputTokens: number };
  provider: string;
  model: string;
}

/** Stores a finished turn: the user message and the answer (its calls and usage as metadata), together or not at all. */
export async function insertChatTurn(db: Db, t: SaveChatTurnInput): Promise<void> {
  await withTransaction(db, async (client) => {
    const insert = `INSERT INTO chat_messages (org_id, session_id, turn_id, seq, role, content, agent_id, agent_type, metadata)
                    VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (turn_id, seq) DO NOTHING`;
    await client.query(insert, [t.orgId, t.sessionId, t.turnId, 0, 'user', t.user, null, null, '{}']);
    await client.query(insert, [
      t.orgId,
      t.sessionId,
      t.turnId,
      1,
      'assistant',
      t.assistant,
      t.agentId,
      t.agentType,
      JSON.stringify({ toolCalls: t.toolCalls, usage: t.usage, provider: t.provider, model: t.model }),
    ]);
  });
}

/** The last `limit` messages of a session, oldest first. */
export async function recentChatMessages(
  db: Db,
  orgId: string,
  sessionId: string,
  limit: number,
): Promise<{ role: 'user' | 'assistant'; content: string }[]> {
  const { rows } = await db.query<{ role: 'user' | 'assistant'; content: string }>(
    `SELECT role, content FROM (
       SELECT role, content, created_at, seq FROM chat_messages WHERE org_id = $1 AND session_id = $2
       ORDER BY created_at DESC, seq DESC LIMIT $3) recent
     ORDER BY created_at, seq`,
    [orgId, sessionId, limit],
  );
  return rows;
}

/** One page of a session's messages, oldest first. */
export async function chatHistory(db: Db, orgId: string, sessionId: string, page: { limit: number; offset: number }) {
  const { rows } = await db.query(
    `SELECT id, turn_id AS "turnId", role, content, agent_id AS "agentId", agent_type AS "agentType", metadata, created_at AS "createdAt"
     FROM chat_messages WHERE org_id = $1 AND session_id = $2 ORDER BY created_at, seq LIMIT $3 OFFSET $4`,
    [orgId, sessionId, page.limit, page.offset],
  );
  return rows;
}

/** True when the organisation has a session with this id. */
export async function chatSessionExists(db: Db, orgId: string, sessionId: string): Promise<boolean> {
  const { rows } = await db.query('SELECT 1 FROM chat_messages WHERE org_id = $1 AND session_id = $2 LIMIT 1', [
    orgId,
    sessionId,
  ]);
  return rows.length > 0;
}

/** The organisation a session belongs to; undefined for an id no message uses yet. */
export async function chatSessionOrg(db: Db, sessionId: string): Promise<string | undefined> {
  const { rows } = await db.query<{ org_id: string }>(
    'SELECT org_id FROM chat_messages WHERE session_id = $1 LIMIT 1',
    [sessionId],
  );
  return rows[0]?.org_id;
}
