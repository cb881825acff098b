import type { Db, Queryable } from '../db';
import { orgPageByStatus, orgRowById } from './org-rows';
import type { MetaPlanNode, MetaResult, MetaStatus, MetaTeamMember } from '../../contract/definitions';

/**
 * SQL of `meta_runs`. The request is inserted before its workflow starts (so the API can answer with it at
 * once); the workflow records the rest, and a finished run is never changed again.
 */

export interface MetaRunRecord {
  id: string;
  orgId: string;
  name: string;
  objective: string;
  maxAgents: number;
  status: string;
  team: { agentId?: string; name: string; role: string; objective: string; capabilities: string[] }[];
  plan: { id: string; title: string; capabilities: string[]; dependsOn: string[] }[];
  crewId: string | null;
  result: unknown;
  error: string | null;
  /** False: the team is archived when the run ends. */
  keepAgents: boolean;
  /** The agent (and its task) that started the run with meta_orchestrate; null for the API's runs. */
  requestedBy: { agentId: string; taskId: string } | null;
  createdAt: string;
  completedAt: string | null;
}

const META_COLUMNS = `id, org_id AS "orgId", name, objective, max_agents AS "maxAgents", status, team, plan, crew_id AS "crewId",
  result, error, keep_agents AS "keepAgents",
  CASE WHEN requested_by_agent_id IS NULL THEN NULL
       ELSE json_build_object('agentId', requested_by_agent_id, 'taskId', requested_by_task_id) END AS "requestedBy",
  created_at AS "createdAt", completed_at AS "completedAt"`;

export function metaRunById(db: Db, orgId: string, id: string): Promise<MetaRunRecord | undefined> {
  return orgRowById<MetaRunRecord>(db, 'meta_runs', META_COLUMNS, orgId, id);
}

/** One page of an organisation's meta runs, newest first. */
export function listMetaRuns(
  db: Db,
  orgId: string,
  f: { status?: string; limit: number; offset: number },
): Promise<MetaRunRecord[]> {
  return orgPageByStatus<MetaRunRecord>(db, 'meta_runs', META_COLUMNS, orgId, f);
}

/** A run's request under a fresh id. */
export async function insertMetaRun(
  db: Queryable,
  m: {
    id: string;
    orgId: string;
    name: string;
    objective: string;
    maxAgents: number;
    keepAgents: boolean;
    requestedBy?: { agentId: string; taskId: string };
  },
): Promise<void> {
  await db.query(
    `INSERT INTO meta_runs (id, org_id, name, objective, max_agents, keep_agents, requested_by_agent_id, requested_by_task_id)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (id) DO NOTHING`,
    [
      m.id,
      m.orgId,
      m.name,
      m.objective,
      m.maxAgents,
      m.keepAgents,
      m.requestedBy?.agentId ?? null,
      m.requestedBy?.taskId ?? null,
    ],
  );
}

/** Whether a meta run of this organisation was started by this agent (what await_response may wait for). */
export async function metaRunRequestedBy(db: Db, orgId: string, metaId: string, agentId: string): Promise<boolean> {
  const { rows } = await db.query(
    'SELECT 1 FROM meta_runs WHERE id = $1 AND org_id = $2 AND requested_by_agent_id = $3',
    [metaId, orgId, agentId],
  );
  return rows.length > 0;
}

/** A run's progress; fields left out keep their value. */
export interface MetaRunProgress {
  metaId: string;
  status: MetaStatus;
  team?: (MetaTeamMember & { agentId?: string })[];
  plan?: MetaPlanNode[];
  crewId?: string;
  result?: MetaResult;
}

/** Records the run's progress; a finished run is never changed again. */
export async function updateMetaRun(db: Db, input: MetaRunProgress): Promise<void> {
  const terminal = input.result !== undefined;
  await db.query(
    `UPDATE meta_runs SET status = $2, team = COALESCE($3::jsonb, team), plan = COALESCE($4::jsonb, plan),
       crew_id = COALESCE($5, crew_id), result = COALESCE($6::jsonb, result), error = COALESCE($7, error),
       completed_at = CASE WHEN $8 THEN now() ELSE completed_at END, updated_at = now()
     WHERE id = $1 AND status NOT IN ('completed','failed')`,
    [
      input.metaId,
      input.status,
      input.team ? JSON.stringify(input.team) : null,
      input.plan ? JSON.stringify(input.plan) : null,
      input.crewId ?? null,
      terminal ? JSON.stringify(input.result) : null,
      input.result?.error ?? null,
      terminal,
    ],
  );
}
