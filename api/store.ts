import type { Db } from '../lib/db';
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
}

const AGENT_COLUMNS = `id, org_id AS "orgId", name, objective, type, capabilities, autonomy, priority, status,
  allowed_tools AS "allowedTools", system_prompt AS "systemPrompt", provider, model, current_task_id AS "currentTaskId",
  queue_length AS "queueLength", created_at AS "createdAt", updated_at AS "updatedAt", last_active AS "lastActive",
  archived_at AS "archivedAt", approval_required_tools AS "approvalRequiredTools",
  approval_timeout_hours AS "approvalTimeoutHours", on_approval_timeout AS "onApprovalTimeout", notify`;

export interface TaskRecord {
  id: string;
  orgId: string;
  agentId: string;
  title: string;
  taskType: string;
  priority: number;
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

const TASK_COLUMNS = `id, org_id AS "orgId", agent_id AS "agentId", title, task_type AS "taskType", priority, status, input, output,
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
}

const APPROVAL_COLUMNS = `id, task_id AS "taskId", agent_id AS "agentId", org_id AS "orgId", title, proposed_action AS "proposedAction",
  status, decided_by AS "decidedBy", decision_reason AS "reason", edited_action AS "editedAction", created_at AS "createdAt",
  decided_at AS "decidedAt", expires_at AS "expiresAt"`;

const REMINDER_COLUMNS = `id, org_id AS "orgId", agent_id AS "agentId", title, schedule, task_template AS "taskTemplate", status,
  created_at AS "createdAt"`;

export function createStore(db: Db) {
  return {
    async agent(orgId: string, id: string): Promise<AgentRecord | undefined> {
      const { rows } = await db.query<AgentRecord>(`SELECT ${AGENT_COLUMNS} FROM agents WHERE org_id = $1 AND id = $2`, [orgId, id]);
      return rows[0];
    },

    async agents(orgId: string, f: { status?: string; type?: string; limit: number; offset: number }): Promise<AgentRecord[]> {
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
      const { rows } = await db.query<TaskRecord>(`SELECT ${TASK_COLUMNS} FROM tasks WHERE org_id = $1 AND id = $2`, [orgId, id]);
      return rows[0];
    },

    async tasks(orgId: string, f: { agentId?: string; status?: string; limit: number; offset: number }): Promise<TaskRecord[]> {
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
      const { rows } = await db.query<ApprovalRecord>(`SELECT ${APPROVAL_COLUMNS} FROM approvals WHERE org_id = $1 AND id = $2`, [orgId, id]);
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
    async openCircuits(): Promise<{ worker: string; provider: string; state: string; lastError: string | null; changedAt: string }[]> {
      const { rows } = await db.query(
        `SELECT worker, provider, state, last_error AS "lastError", changed_at AS "changedAt" FROM provider_circuits
         WHERE state <> 'closed' ORDER BY changed_at DESC LIMIT 100`,
      );
      return rows;
    },

    async chatHistory(orgId: string, sessionId: string) {
      const { rows } = await db.query(
        `SELECT id, turn_id AS "turnId", role, content, agent_id AS "agentId", agent_type AS "agentType", metadata, created_at AS "createdAt"
         FROM chat_messages WHERE org_id = $1 AND session_id = $2 ORDER BY created_at, seq`,
        [orgId, sessionId],
      );
      return rows;
    },

    /** A session id may be continued by its own organisation, or chosen fresh by a client. */
    async chatSessionAllowed(orgId: string, sessionId: string): Promise<boolean> {
      const { rows } = await db.query('SELECT org_id FROM chat_messages WHERE session_id = $1 LIMIT 1', [sessionId]);
      return rows.length === 0 || rows[0].org_id === orgId;
    },

    /** An agent's active reminders, oldest first. */
    async reminders(orgId: string, agentId: string): Promise<ReminderRow[]> {
      const { rows } = await db.query<ReminderRow>(
        `SELECT ${REMINDER_COLUMNS} FROM reminders WHERE org_id = $1 AND agent_id = $2 AND status = 'active' ORDER BY created_at, id`,
        [orgId, agentId],
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

    async ping(): Promise<void> {
      await db.query('SELECT 1');
    },
  };
}

export type Store = ReturnType<typeof createStore>;
