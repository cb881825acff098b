import type { Db } from '../lib/db';
import { MAX_PAGE_LIMIT, type Page } from './paging';
import { pendingTasksRefusal } from '../lib/fuses';
import type { ReminderRow } from '../lib/reminders';

/** Read-only queries of the API. Writes happen in activities, driven by the workflows. */

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

export interface TaskRecord {
  id: string;
  orgId: string;
  agentId: string;
  title: string;
  taskType: string;
  priority: number;
  /** The AI-scored priority 0-1000, once scored. */
  priorityScore: number | null;
  status: string;
  input: unknown;
  output: unknown;
  error: string | null;
  parentTaskId: string | null;
  delegationDepth: number;
  steps: number;
  usage: { inputTokens: number; outputTokens: number };
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
}

const TASK_COLUMNS = `id, org_id AS "orgId", agent_id AS "agentId", title, task_type AS "taskType", priority,
  priority_score AS "priorityScore", status, input, output,
  error, parent_task_id AS "parentTaskId", delegation_depth AS "delegationDepth", steps,
  json_build_object('inputTokens', input_tokens, 'outputTokens', output_tokens) AS usage,
  created_at AS "createdAt", started_at AS "startedAt", completed_at AS "completedAt"`;

export interface DecisionRecord {
  step: number;
  decisionType: string;
  reasoning: string;
  action: unknown;
  result: unknown;
  confidence: number | null;
  createdAt: string;
}

export interface ApprovalRecord {
  id: string;
  taskId: string;
  agentId: string;
  orgId: string;
  title: string;
  proposedAction: { tool: string; arguments: unknown };
  status: string;
  decidedBy: string | null;
  reason: string | null;
  editedAction: unknown;
  createdAt: string;
  decidedAt: string | null;
  expiresAt: string;
  /** The workflow waiting for the decision; null for requests opened before it was recorded. */
  workflowId: string | null;
}

const APPROVAL_COLUMNS = `id, task_id AS "taskId", agent_id AS "agentId", org_id AS "orgId", title, proposed_action AS "proposedAction",
  status, decided_by AS "decidedBy", decision_reason AS "reason", edited_action AS "editedAction", created_at AS "createdAt",
  decided_at AS "decidedAt", expires_at AS "expiresAt", workflow_id AS "workflowId"`;

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
const REMINDER_COLUMNS = `id, org_id AS "orgId", agent_id AS "agentId", title, schedule, task_template AS "taskTemplate", status,
  created_at AS "createdAt"`;

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
  createdAt: string;
  completedAt: string | null;
}

const META_COLUMNS = `id, org_id AS "orgId", name, objective, max_agents AS "maxAgents", status, team, plan, crew_id AS "crewId",
  result, error, created_at AS "createdAt", completed_at AS "completedAt"`;

export function createStore(db: Db) {
  return {
    async agent(orgId: string, id: string): Promise<AgentRecord | undefined> {
      const { rows } = await db.query<AgentRecord>(
        `SELECT ${AGENT_COLUMNS} FROM agents WHERE org_id = $1 AND id = $2`,
        [orgId, id],
      );
      return rows[0];
    },

    async agents(
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
    },

    async activeAgentCount(orgId: string): Promise<number> {
      const { rows } = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM agents WHERE org_id = $1 AND status <> 'ARCHIVED'`,
        [orgId],
      );
      return rows[0]!.n;
    },

    async task(orgId: string, id: string): Promise<TaskRecord | undefined> {
      const { rows } = await db.query<TaskRecord>(`SELECT ${TASK_COLUMNS} FROM tasks WHERE org_id = $1 AND id = $2`, [
        orgId,
        id,
      ]);
      return rows[0];
    },

    async tasks(
      orgId: string,
      f: { agentId?: string; status?: string; limit: number; offset: number },
    ): Promise<TaskRecord[]> {
      const { rows } = await db.query<TaskRecord>(
        `SELECT ${TASK_COLUMNS} FROM tasks
         WHERE org_id = $1 AND ($2::uuid IS NULL OR agent_id = $2) AND ($3::text IS NULL OR status = $3)
         ORDER BY created_at DESC, id LIMIT $4 OFFSET $5`,
        [orgId, f.agentId ?? null, f.status ?? null, f.limit, f.offset],
      );
      return rows;
    },

    async reasoningTrace(taskId: string): Promise<DecisionRecord[]> {
      const { rows } = await db.query<DecisionRecord>(
        `SELECT step, decision_type AS "decisionType", reasoning, action, result, confidence, created_at AS "createdAt"
         FROM decisions WHERE task_id = $1 ORDER BY step, seq`,
        [taskId],
      );
      return rows;
    },

    async approval(orgId: string, id: string): Promise<ApprovalRecord | undefined> {
      const { rows } = await db.query<ApprovalRecord>(
        `SELECT ${APPROVAL_COLUMNS} FROM approvals WHERE org_id = $1 AND id = $2`,
        [orgId, id],
      );
      return rows[0];
    },

    async approvals(
      orgId: string,
      f: { status?: string; agentId?: string; taskId?: string; limit: number; offset: number },
    ): Promise<ApprovalRecord[]> {
      const { rows } = await db.query<ApprovalRecord>(
        `SELECT ${APPROVAL_COLUMNS} FROM approvals
         WHERE org_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::uuid IS NULL OR agent_id = $3) AND ($4::uuid IS NULL OR task_id = $4)
         ORDER BY created_at DESC, id LIMIT $5 OFFSET $6`,
        [orgId, f.status ?? null, f.agentId ?? null, f.taskId ?? null, f.limit, f.offset],
      );
      return rows;
    },

    /** Provider circuits that are not closed, as each worker last reported them. */
    async openCircuits(): Promise<
      { worker: string; provider: string; state: string; lastError: string | null; changedAt: string }[]
    > {
      const { rows } = await db.query(
        `SELECT worker, provider, state, last_error AS "lastError", changed_at AS "changedAt" FROM provider_circuits
         WHERE state <> 'closed' ORDER BY changed_at DESC LIMIT 100`,
      );
      return rows;
    },

    /** One page of a session's messages, oldest first. */
    async chatHistory(orgId: string, sessionId: string, page: Page) {
      const { rows } = await db.query(
        `SELECT id, turn_id AS "turnId", role, content, agent_id AS "agentId", agent_type AS "agentType", metadata, created_at AS "createdAt"
         FROM chat_messages WHERE org_id = $1 AND session_id = $2 ORDER BY created_at, seq LIMIT $3 OFFSET $4`,
        [orgId, sessionId, page.limit, page.offset],
      );
      return rows;
    },

    /** True when the organisation has a session with this id (a page past its end is still the session). */
    async chatSessionExists(orgId: string, sessionId: string): Promise<boolean> {
      const { rows } = await db.query('SELECT 1 FROM chat_messages WHERE org_id = $1 AND session_id = $2 LIMIT 1', [
        orgId,
        sessionId,
      ]);
      return rows.length > 0;
    },

    /** A session id may be continued by its own organisation, or chosen fresh by a client. */
    async chatSessionAllowed(orgId: string, sessionId: string): Promise<boolean> {
      const { rows } = await db.query('SELECT org_id FROM chat_messages WHERE session_id = $1 LIMIT 1', [sessionId]);
      return rows.length === 0 || rows[0].org_id === orgId;
    },

    /** Refusal text when the org is at MAX_PENDING_TASKS_PER_ORG, else null. */
    pendingTasksRefusal: (orgId: string, limit: number) => pendingTasksRefusal(db, orgId, limit),

    /** What governance sees now: budget use in the current window, slots, resource buckets, scoring stats. */
    async governance(orgId: string, windowSeconds: number, taskQueue: string) {
      const [tokens, slots, buckets, scores] = await Promise.all([
        db.query<{ global: number; org: number }>(
          `SELECT COALESCE(sum(tokens), 0) AS global, COALESCE(sum(tokens) FILTER (WHERE org_id = $1), 0) AS org
             FROM token_ledger WHERE reserved_at > clock_timestamp() - make_interval(secs => $2)`,
          [orgId, windowSeconds],
        ),
        db.query<{ kind: string; held: number; waiting: number }>(
          `SELECT k.kind,
                  (SELECT count(*) FROM slot_leases l WHERE l.kind = k.kind AND l.released_at IS NULL AND l.expires_at > clock_timestamp()) AS held,
                  (SELECT count(*) FROM slot_waiters w WHERE w.kind = k.kind AND w.seen_at > clock_timestamp() - interval '30 seconds') AS waiting
             FROM (VALUES ('agent:' || $1), ('step:' || $1)) AS k(kind)`,
          [taskQueue],
        ),
        db.query<{
          name: string;
          capacity: number;
          refillPerSecond: number;
          tokens: number;
          grantedTotal: number;
          waitsTotal: number;
        }>(
          `SELECT name, capacity, refill_per_second AS "refillPerSecond",
                  least(capacity, tokens + extract(epoch FROM clock_timestamp() - updated_at) * refill_per_second) AS tokens,
                  granted_total AS "grantedTotal", waits_total AS "waitsTotal"
             FROM resource_buckets ORDER BY name`,
        ),
        db.query<{
          scored: number;
          cache: number;
          model: number;
          fallback: number;
          p50: number | null;
          p50Cached: number | null;
        }>(
          `SELECT count(*) AS scored, count(*) FILTER (WHERE s.source = 'cache') AS cache,
                  count(*) FILTER (WHERE s.source = 'model') AS model, count(*) FILTER (WHERE s.source = 'fallback') AS fallback,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY s.duration_ms) AS p50,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY s.duration_ms) FILTER (WHERE s.source = 'cache') AS "p50Cached"
             FROM priority_scores s JOIN tasks t ON t.id::text = s.task_id WHERE t.org_id = $1`,
          [orgId],
        ),
      ]);
      const s = scores.rows[0];
      return {
        tokens: { windowSeconds, usedGlobal: tokens.rows[0].global, usedByOrg: tokens.rows[0].org },
        slots: Object.fromEntries(slots.rows.map((r) => [r.kind.split(':')[0], { held: r.held, waiting: r.waiting }])),
        resources: buckets.rows,
        priority: { ...s, hitRatio: s.scored ? s.cache / s.scored : null },
      };
    },

    // ---- Crews ----
    async crew(orgId: string, id: string): Promise<CrewRecord | undefined> {
      const { rows } = await db.query<CrewRecord>(`SELECT ${CREW_COLUMNS} FROM crews WHERE org_id = $1 AND id = $2`, [
        orgId,
        id,
      ]);
      return rows[0];
    },

    async crews(orgId: string, f: { status?: string; limit: number; offset: number }): Promise<CrewRecord[]> {
      const { rows } = await db.query<CrewRecord>(
        `SELECT ${CREW_COLUMNS} FROM crews WHERE org_id = $1 AND ($2::text IS NULL OR status = $2)
         ORDER BY created_at DESC, id LIMIT $3 OFFSET $4`,
        [orgId, f.status ?? null, f.limit, f.offset],
      );
      return rows;
    },

    /** A crew's definition is written here, at creation, before any workflow exists; its workflow owns the rest. */
    async createCrew(
      c: Omit<CrewRecord, 'status' | 'result' | 'error' | 'createdAt' | 'startedAt' | 'completedAt'>,
    ): Promise<void> {
      await db.query(
        `INSERT INTO crews (id, org_id, name, goal, process, assignment, members, input) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
        [c.id, c.orgId, c.name, c.goal, c.process, c.assignment, JSON.stringify(c.members), JSON.stringify(c.input)],
      );
    },

    /** One page of a crew's message log, in order. */
    async crewMessages(crewId: string, page: Page) {
      const { rows } = await db.query(
        `SELECT seq, message_id AS "messageId", from_agent_id AS "fromAgentId", to_agent_id AS "toAgentId", type, content, sent_at AS "sentAt"
         FROM crew_messages WHERE crew_id = $1 ORDER BY seq LIMIT $2 OFFSET $3`,
        [crewId, page.limit, page.offset],
      );
      return rows;
    },

    /** One page of the crew's task rows, oldest first. */
    async crewTasks(
      crewId: string,
      page: Page,
    ): Promise<
      { id: string; agentId: string; title: string; status: string; output: unknown; error: string | null }[]
    > {
      const { rows } = await db.query(
        `SELECT id, agent_id AS "agentId", title, status, output, error FROM tasks WHERE crew_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3`,
        [crewId, page.limit, page.offset],
      );
      return rows;
    },

    /**
     * Each member's work in the crew, counted in SQL so a long crew costs one small row per member: totals by
     * status and the ids of tasks still open (at most the crew's concurrency, capped here anyway).
     */
    async crewMemberWork(crewId: string): Promise<
      {
        agentId: string;
        total: number;
        completed: number;
        failed: number;
        cancelled: number;
        activeTaskIds: string[];
      }[]
    > {
      const { rows } = await db.query(
        `SELECT agent_id AS "agentId", count(*)::int AS total,
                count(*) FILTER (WHERE status = 'completed')::int AS completed,
                count(*) FILTER (WHERE status = 'failed')::int AS failed,
                count(*) FILTER (WHERE status = 'cancelled')::int AS cancelled,
                COALESCE((array_agg(id::text ORDER BY created_at, id) FILTER (WHERE status NOT IN ('completed', 'failed', 'cancelled')))[1:${MAX_PAGE_LIMIT}], '{}') AS "activeTaskIds"
         FROM tasks WHERE crew_id = $1 GROUP BY agent_id`,
        [crewId],
      );
      return rows;
    },

    /** An agent's active reminders, oldest first. */
    async reminders(orgId: string, agentId: string): Promise<ReminderRow[]> {
      const { rows } = await db.query<ReminderRow>(
        `SELECT ${REMINDER_COLUMNS} FROM reminders WHERE org_id = $1 AND agent_id = $2 AND status = 'active' ORDER BY created_at, id`,
        [orgId, agentId],
      );
      return rows;
    },

    // ---- Meta supervisor ----
    async metaRun(orgId: string, id: string): Promise<MetaRunRecord | undefined> {
      const { rows } = await db.query<MetaRunRecord>(
        `SELECT ${META_COLUMNS} FROM meta_runs WHERE org_id = $1 AND id = $2`,
        [orgId, id],
      );
      return rows[0];
    },

    async metaRuns(orgId: string, f: { status?: string; limit: number; offset: number }): Promise<MetaRunRecord[]> {
      const { rows } = await db.query<MetaRunRecord>(
        `SELECT ${META_COLUMNS} FROM meta_runs WHERE org_id = $1 AND ($2::text IS NULL OR status = $2)
         ORDER BY created_at DESC, id LIMIT $3 OFFSET $4`,
        [orgId, f.status ?? null, f.limit, f.offset],
      );
      return rows;
    },

    async reminder(orgId: string, agentId: string, id: string): Promise<ReminderRow | undefined> {
      const { rows } = await db.query<ReminderRow>(
        `SELECT ${REMINDER_COLUMNS} FROM reminders WHERE org_id = $1 AND agent_id = $2 AND id = $3`,
        [orgId, agentId, id],
      );
      return rows[0];
    },

    /** A meta run's request is written here, before its workflow starts; the workflow owns the rest. */
    async createMetaRun(m: {
      id: string;
      orgId: string;
      name: string;
      objective: string;
      maxAgents: number;
    }): Promise<void> {
      await db.query(`INSERT INTO meta_runs (id, org_id, name, objective, max_agents) VALUES ($1,$2,$3,$4,$5)`, [
        m.id,
        m.orgId,
        m.name,
        m.objective,
        m.maxAgents,
      ]);
    },

    async ping(): Promise<void> {
      await db.query('SELECT 1');
    },
  };
}

export type Store = ReturnType<typeof createStore>;
