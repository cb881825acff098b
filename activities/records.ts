import { withTransaction, type Db } from '../lib/db';
import type { AgentConfig, AgentSettings, AgentStatus, Goal, TaskOutcome, TaskStatus } from '../contract/definitions';

export interface RecordDeps {
  db: Db;
}

export interface DecisionInput {
  taskId: string;
  step: number;
  seq: number;
  type: string;
  reasoning: string;
  action: unknown;
  result: unknown;
  confidence: number | null;
}

/**
 * Data-modifying CTEs (`name AS (UPDATE …)`) with parameters $1…$n that run in the same statement as a
 * record's own write: a step's writes land together, atomically and in one round trip.
 */
export interface Alongside {
  ctes: string;
  params: unknown[];
}

/** Runs `write` (placeholders from `p`, numbered after the CTEs') with the CTEs in front of it. */
async function queryAlongside(
  db: Db,
  alongside: Alongside | undefined,
  write: (p: (i: number) => string) => string,
  own: unknown[],
): Promise<void> {
  const params = alongside?.params ?? [];
  const sql = write((i) => `$${params.length + i}`);
  await db.query(alongside ? `WITH ${alongside.ctes}\n${sql}` : sql, [...params, ...own]);
}

/** Appends one decision to a task's reasoning trace; unique per (task, step, seq), so retries write it once. */
export async function insertDecision(db: Db, d: DecisionInput, alongside?: Alongside): Promise<void> {
  await queryAlongside(
    db,
    alongside,
    (p) => `INSERT INTO decisions (task_id, step, seq, decision_type, reasoning, action, result, confidence)
     VALUES (${[1, 2, 3, 4, 5, 6, 7, 8].map(p).join(',')}) ON CONFLICT (task_id, step, seq) DO NOTHING`,
    [
      d.taskId,
      d.step,
      d.seq,
      d.type,
      d.reasoning,
      JSON.stringify(d.action ?? {}),
      JSON.stringify(d.result ?? null),
      d.confidence,
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

export interface QueuedTaskInput {
  agentId: string;
  orgId: string;
  goal: Goal;
}

export interface QueuedTaskReceipt {
  /** False when the id was already known (a retried submission or delegation). */
  created: boolean;
  status: TaskStatus;
}

/** Inserts a submitted goal's task row as queued, once per task id. */
export async function insertQueuedTask(db: Db, input: QueuedTaskInput): Promise<QueuedTaskReceipt> {
  const { goal } = input;
  const inserted = await db.query(
    `INSERT INTO tasks (id, org_id, agent_id, title, task_type, priority, status, input, parent_task_id, delegation_depth, created_at)
     VALUES ($1,$2,$3,$4,$5,$6,'queued',$7,$8,$9,$10) ON CONFLICT (id) DO NOTHING RETURNING id`,
    [
      goal.taskId,
      input.orgId,
      input.agentId,
      goal.title,
      goal.taskType,
      goal.priority,
      JSON.stringify(goal.input),
      goal.parentTaskId,
      goal.delegationDepth,
      goal.submittedAt,
    ],
  );
  if (inserted.rowCount) return { created: true, status: 'queued' };
  const existing = await db.query<{ status: TaskStatus }>('SELECT status FROM tasks WHERE id = $1', [goal.taskId]);
  return { created: false, status: existing.rows[0]?.status ?? 'queued' };
}

/**
 * Activities that keep Postgres (the queryable projection) in step with the workflows. Every write is
 * idempotent: inserts use ON CONFLICT, agent rows only move forward in `state_version`, and terminal task
 * states are never overwritten, so Temporal may retry any of them freely.
 */
export function createRecordActivities({ db }: RecordDeps) {
  return {
    /** Records a decision the workflow itself made (a proposal, a rejection, an expiry). */
    async recordDecision(input: DecisionInput): Promise<void> {
      await insertDecision(db, input);
    },

    /** Upserts the agent's configuration and status. */
    async recordAgent(input: {
      agent: AgentConfig;
      settings: AgentSettings;
      status: AgentStatus;
      stateVersion: number;
    }): Promise<void> {
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
    },

    /** Records the agent's live status; ignored if a newer state was already written. */
    async syncAgentState(input: AgentStateRecord): Promise<void> {
      await writeAgentState(db, input);
    },

    /** The inputs of queued tasks, by id: goals carried through continue-as-new leave theirs in the row. */
    async loadGoalInputs(input: { taskIds: string[] }): Promise<Record<string, Record<string, unknown>>> {
      const { rows } = await db.query<{ id: string; input: Record<string, unknown> }>(
        'SELECT id, input FROM tasks WHERE id = ANY($1)',
        [input.taskIds],
      );
      return Object.fromEntries(rows.map((r) => [r.id, r.input ?? {}]));
    },

    /** Inserts a queued task. `created: false` means the id was already known (a retried delegation). */
    async recordTaskQueued(input: QueuedTaskInput): Promise<QueuedTaskReceipt> {
      return insertQueuedTask(db, input);
    },

    /** Moves a task to a non-terminal status (planning, running, awaiting_approval). */
    async setTaskStatus(input: { taskId: string; status: TaskStatus }): Promise<void> {
      await db.query(
        `UPDATE tasks SET status = $2, updated_at = now(), started_at = COALESCE(started_at, now())
         WHERE id = $1 AND status NOT IN ('completed','failed','cancelled')`,
        [input.taskId, input.status],
      );
    },

    /**
     * Writes a task's final state, with an optional closing decision for its reasoning trace
     * (why it failed or was cancelled). A terminal status is never overwritten.
     */
    async finishTask(input: { outcome: TaskOutcome; decision?: { type: string; reasoning: string } }): Promise<void> {
      const { outcome, decision } = input;
      // One statement: the final state, no pending request left behind (a task can end while an approval
      // waits: cancelled, archived), and the closing decision when there is one.
      const ends = `ended AS (
          UPDATE tasks SET status = $2, output = $3, error = $4, steps = GREATEST(steps, $5), completed_at = now(), updated_at = now()
           WHERE id = $1 AND status NOT IN ('completed','failed','cancelled')
        ), expired AS (
          UPDATE approvals SET status = 'expired', decision_reason = $6, decided_at = now() WHERE task_id = $1 AND status = 'pending'
        )`;
      const params = [
        outcome.taskId,
        outcome.status,
        JSON.stringify(outcome.output ?? null),
        outcome.error,
        outcome.steps,
        `task ${outcome.status}`,
      ];
      if (!decision) {
        await db.query(`WITH ${ends} SELECT 1`, params);
        return;
      }
      await insertDecision(
        db,
        {
          taskId: outcome.taskId,
          step: outcome.steps,
          seq: 999,
          type: decision.type,
          reasoning: decision.reasoning,
          action: { status: outcome.status },
          result: outcome.error ?? outcome.output ?? null,
          confidence: null,
        },
        { ctes: ends, params },
      );
    },

    /**
     * Archives an agent: its queued tasks are cancelled, its private memory is deleted and its row is
     * marked ARCHIVED, so nothing it owned comes back after a restart.
     */
    async archiveAgentData(input: { agentId: string; stateVersion: number }): Promise<void> {
      await withTransaction(db, async (client) => {
        await client.query(
          `UPDATE tasks SET status = 'cancelled', error = 'agent archived', completed_at = now(), updated_at = now()
           WHERE agent_id = $1 AND status NOT IN ('completed','failed','cancelled')`,
          [input.agentId],
        );
        await client.query('DELETE FROM memory WHERE scope = $1', [input.agentId]);
        await client.query(
          `UPDATE agents SET status = 'ARCHIVED', current_task_id = NULL, queue_length = 0, archived_at = COALESCE(archived_at, now()),
             state_version = GREATEST(state_version, $2), updated_at = now() WHERE id = $1`,
          [input.agentId, input.stateVersion],
        );
      });
    },
  };
}
