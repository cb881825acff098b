import type { Db } from '../db';
import { orgPageByStatus, orgRowById } from './org-rows';
import type { CrewMessage, CrewResult, CrewStatus } from '../../contract/definitions';

/**
 * SQL of `crews` and `crew_messages`. A crew's row is inserted before any workflow exists (by the API, or by
 * the meta supervisor's activity); its workflow owns the rest. A finished crew is never changed again.
 */

export interface CrewRecord {
  id: string;
  orgId: string;
  name: string;
  goal: string;
  process: string;
  assignment: string;
  members: { agentId: string; role: string | null; input: Record<string, unknown> }[];
  input: Record<string, unknown>;
  status: string;
  result: unknown;
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
}

const CREW_COLUMNS = `id, org_id AS "orgId", name, goal, process, assignment, members, input, status, result, error,
  created_at AS "createdAt", started_at AS "startedAt", completed_at AS "completedAt"`;

export type NewCrew = Omit<CrewRecord, 'status' | 'result' | 'error' | 'createdAt' | 'startedAt' | 'completedAt'>;

export function crewById(db: Db, orgId: string, id: string): Promise<CrewRecord | undefined> {
  return orgRowById<CrewRecord>(db, 'crews', CREW_COLUMNS, orgId, id);
}

/** One page of an organisation's crews, newest first. */
export function listCrews(
  db: Db,
  orgId: string,
  f: { status?: string; limit: number; offset: number },
): Promise<CrewRecord[]> {
  return orgPageByStatus<CrewRecord>(db, 'crews', CREW_COLUMNS, orgId, f);
}

/** A crew's definition, written at creation (status idle) under a fresh id. */
export async function insertCrew(db: Db, c: NewCrew): Promise<void> {
  await db.query(
    `INSERT INTO crews (id, org_id, name, goal, process, assignment, members, input) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
    [c.id, c.orgId, c.name, c.goal, c.process, c.assignment, JSON.stringify(c.members), JSON.stringify(c.input)],
  );
}

/** A meta run's crew (hierarchical, by capability), once per id: its id derives from the run. */
export async function insertMetaCrew(
  db: Db,
  c: { id: string; orgId: string; name: string; goal: string; members: NewCrew['members'] },
): Promise<void> {
  await db.query(
    `INSERT INTO crews (id, org_id, name, goal, process, assignment, members, input)
     VALUES ($1,$2,$3,$4,'hierarchical','capability',$5,'{}') ON CONFLICT (id) DO NOTHING`,
    [c.id, c.orgId, c.name, c.goal, JSON.stringify(c.members)],
  );
}

/** Moves a crew to planning/running, or records its end (with `result`). */
export async function updateCrewStatus(
  db: Db,
  input: { crewId: string; status: CrewStatus; result?: CrewResult; error?: string | null },
): Promise<void> {
  const terminal = input.result !== undefined;
  await db.query(
    `UPDATE crews SET status = $2, result = COALESCE($3::jsonb, result), error = COALESCE($4, error),
       started_at = COALESCE(started_at, now()), completed_at = CASE WHEN $5 THEN now() ELSE completed_at END,
       updated_at = now()
     WHERE id = $1 AND status NOT IN ('completed','failed','stopped')`,
    [input.crewId, input.status, terminal ? JSON.stringify(input.result) : null, input.error ?? null, terminal],
  );
}

/** Stores one message at its place in the crew's log; a retry finds the seq taken and writes nothing. */
export async function insertCrewMessage(db: Db, crewId: string, m: CrewMessage): Promise<void> {
  await db.query(
    `INSERT INTO crew_messages (crew_id, seq, message_id, from_agent_id, to_agent_id, type, content, sent_at)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (crew_id, seq) DO NOTHING`,
    [crewId, m.seq, m.messageId, m.fromAgentId, m.toAgentId, m.type, m.content, m.sentAt],
  );
}

/** One page of a crew's message log, in order. */
export async function crewMessages(db: Db, crewId: string, page: { limit: number; offset: number }) {
  const { rows } = await db.query(
    `SELECT seq, message_id AS "messageId", from_agent_id AS "fromAgentId", to_agent_id AS "toAgentId", type, content, sent_at AS "sentAt"
     FROM crew_messages WHERE crew_id = $1 ORDER BY seq LIMIT $2 OFFSET $3`,
    [crewId, page.limit, page.offset],
  );
  return rows;
}
