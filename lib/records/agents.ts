import type { Db, Queryable } from '../db';
import { orgRowById } from './org-rows';
import type { AgentConfig, AgentSettings, AgentStatus } from '../../contract/definitions';
import { queryAlongside, type Alongside } from './decisions';

/** SQL of `agents`: the queryable projection of each agent workflow's configuration and state. */

export interface AgentRecord {
  id: string;
  orgId: string;
  name: string;
  objective: string;
  type: string;
  capabilities: string[];
  autonomy: string;
  priority: number;
  status: string;
  allowedTools: string[];
  systemPrompt: string | null;
  provider: string | null;
  model: string | null;
  currentTaskId: string | null;
  queueLength: number;
  createdAt: string;
  updatedAt: string;
  lastActive: string | null;
  archivedAt: string | null;
  approvalRequiredTools: string[];
  approvalTimeoutHours: number | null;
  onApprovalTimeout: string;
  notify: unknown;
  tokenBudgetPerMinute: number | null;
}

const AGENT_COLUMNS = `id, org_id AS "orgId", name, objective, type, capabilities, autonomy, priority, status,
  allowed_tools AS "allowedTools", system_prompt AS "systemPrompt", provider, model, current_task_id AS "currentTaskId",
  queue_length AS "queueLength", created_at AS "createdAt", updated_at AS "updatedAt", last_active AS "lastActive",
  archived_at AS "archivedAt", approval_required_tools AS "approvalRequiredTools",
  approval_timeout_hours AS "approvalTimeoutHours", on_approval_timeout AS "onApprovalTimeout", notify,
  token_budget_per_minute AS "tokenBudgetPerMinute"`;

export function agentById(db: Db, orgId: string, id: string): Promise<AgentRecord | undefined> {
  return orgRowById<AgentRecord>(db, 'agents', AGENT_COLUMNS, orgId, id);
}

/** One page of an organisation's agents; archived ones only when asked for by status. */
export async function listAgents(
  db: Db,
  orgId: string,
  f: { status?: string; type?: string; limit: number; offset: number },
): Promise<AgentRecord[]> {
  const { rows } = await db.query<AgentRecord>(
    `SELECT ${AGENT_COLUMNS} FROM agents
     WHERE org_id = $1 AND ($2::text IS NULL AND status <> 'ARCHIVED' OR status = $2) AND ($3::text IS NULL OR type = $3)
     ORDER BY created_at, id LIMIT $4 OFFSET $5`,
    [orgId, f.status ?? null, f.type ?? null, f.limit, f.offset],
  );
  return rows;
}

/** Agents of the organisation that are not archived (against MAX_AGENTS). */
export async function activeAgentCount(db: Db, orgId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM agents WHERE org_id = $1 AND status <> 'ARCHIVED'`,
    [orgId],
  );
  return rows[0]!.n;
}

/** The same count without the given agents (a team being created, whose agents may exist from a retry). */
export async function countActiveAgentsExcept(db: Db, orgId: string, ids: string[]): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM agents WHERE org_id = $1 AND status <> 'ARCHIVED' AND NOT (id = ANY($2::uuid[]))`,
    [orgId, ids],
  );
  return rows[0]!.n;
}

/** The count and whether `id` is among them (an agent created by an earlier attempt counts already). */
export async function countActiveAgentsWith(
  db: Queryable,
  orgId: string,
  id: string,
): Promise<{ n: number; mine: boolean }> {
  const { rows } = await db.query<{ n: number; mine: boolean }>(
    `SELECT count(*)::int AS n, bool_or(id = $2) AS mine FROM agents WHERE org_id = $1 AND status <> 'ARCHIVED'`,
    [orgId, id],
  );
  return rows[0]!;
}

/** The agent's status; with `orgId`, only an agent of that organisation. Undefined when there is none. */
export async function agentStatus(db: Db, id: string, orgId?: string): Promise<string | undefined> {
  const { rows } = orgId
    ? await db.query<{ status: string }>('SELECT status FROM agents WHERE id = $1 AND org_id = $2', [id, orgId])
    : await db.query<{ status: string }>('SELECT status FROM agents WHERE id = $1', [id]);
  return rows[0]?.status;
}

/** True when the organisation has this agent and it is not archived. */
export async function isActiveAgent(db: Db, id: string, orgId: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM agents WHERE id = $1 AND org_id = $2 AND status <> $3', [
    id,
    orgId,
    'ARCHIVED',
  ]);
  return Boolean(rowCount);
}

/** The organisation's live agents in brief (at most 100), oldest first. */
export async function activeAgentSummaries(db: Db, orgId: string) {
  const { rows } = await db.query<{
    id: string;
    name: string;
    type: string;
    objective: string;
    status: string;
    priority: number;
  }>(
    `SELECT id, name, type, objective, status, priority FROM agents WHERE org_id = $1 AND status <> 'ARCHIVED' ORDER BY created_at, id LIMIT 100`,
    [orgId],
  );
  return rows;
}

/** Upserts the agent's configuration and status, unless a later `stateVersion` is already recorded. */
export async function upsertAgent(
  db: Db,
  input: { agent: AgentConfig; settings: AgentSettings; status: AgentStatus; stateVersion: number },
): Promise<void> {
  const { agent: a, settings, status, stateVersion } = input;
  await db.query(
    `INSERT INTO agents (id, org_id, name, objective, type, capabilities, autonomy, priority, status, allowed_tools,
       system_prompt, provider, model, settings, state_version, created_at, approval_required_tools,
       approval_timeout_hours, on_approval_timeout, notify, token_budget_per_minute)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21)
     ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, objective = EXCLUDED.objective, type = EXCLUDED.type,
       capabilities = EXCLUDED.capabilities, autonomy = EXCLUDED.autonomy, priority = EXCLUDED.priority,
       status = EXCLUDED.status, allowed_tools = EXCLUDED.allowed_tools, system_prompt = EXCLUDED.system_prompt,
       provider = EXCLUDED.provider, model = EXCLUDED.model, settings = EXCLUDED.settings,
       state_version = EXCLUDED.state_version, approval_required_tools = EXCLUDED.approval_required_tools,
       approval_timeout_hours = EXCLUDED.approval_timeout_hours, on_approval_timeout = EXCLUDED.on_approval_timeout,
       notify = EXCLUDED.notify, token_budget_per_minute = EXCLUDED.token_budget_per_minute, updated_at = now()
     WHERE agents.state_version < EXCLUDED.state_version`,
    [
      a.id,
      a.orgId,
      a.name,
      a.objective,
      a.type,
      a.capabilities,
      a.autonomy,
      a.priority,
      status,
      a.allowedTools,
      a.systemPrompt,
      a.provider,
      a.model,
      JSON.stringify(settings),
      stateVersion,
      a.createdAt,
      a.approvalRequiredTools ?? [],
      a.approvalTimeoutHours ?? null,
      a.onApprovalTimeout ?? 'fail',
      JSON.stringify(a.notify ?? { type: 'log' }),
      a.tokenBudgetPerMinute ?? null,
    ],
  );
}

/** The agent's row as its workflow last published it; `stateVersion` orders the writes. */
export interface AgentStateRecord {
  agentId: string;
  status: AgentStatus;
  currentTaskId: string | null;
  queueLength: number;
  stateVersion: number;
  lastActive: string | null;
}

/** Writes the agent's state unless a later version is already there (a retried write, or one overtaken). */
export async function writeAgentState(db: Db, s: AgentStateRecord, alongside?: Alongside): Promise<void> {
  await queryAlongside(
    db,
    alongside,
    (p) => `UPDATE agents SET status = ${p(2)}, current_task_id = ${p(3)}, queue_length = ${p(4)},
       state_version = ${p(5)}, last_active = COALESCE(${p(6)}::timestamptz, last_active), updated_at = now()
     WHERE id = ${p(1)} AND state_version < ${p(5)}`,
    [s.agentId, s.status, s.currentTaskId, s.queueLength, s.stateVersion, s.lastActive],
  );
}

/** Marks the agent ARCHIVED with nothing running or queued; the version only moves forward. */
export async function markAgentArchived(db: Queryable, agentId: string, stateVersion: number): Promise<void> {
  await db.query(
    `UPDATE agents SET status = 'ARCHIVED', current_task_id = NULL, queue_length = 0, archived_at = COALESCE(archived_at, now()),
       state_version = GREATEST(state_version, $2), updated_at = now() WHERE id = $1`,
    [agentId, stateVersion],
  );
}
