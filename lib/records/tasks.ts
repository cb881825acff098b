import type { Db, Queryable } from '../db';
import { orgRowById } from './org-rows';
import type { Goal, TaskOutcome, TaskStatus, TaskValidation } from '../../contract/definitions';
import { activeTraceId } from '../tracing';
import { insertDecision, type Alongside } from './decisions';

/**
 * SQL of `tasks`. Writes are idempotent: inserts use ON CONFLICT and a terminal status (completed, failed,
 * cancelled) is never overwritten, so a retried activity may repeat any of them.
 */

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
  /** The OpenTelemetry trace the task was submitted in; null when tracing was off. */
  traceId: string | null;
  /** The skill named when the task was submitted; null when none was. */
  skillId: string | null;
  /** What the answer must satisfy before the task completes; null when nothing is checked. */
  validation: TaskValidation | null;
}

const TASK_COLUMNS = `id, org_id AS "orgId", agent_id AS "agentId", title, task_type AS "taskType", priority,
  priority_score AS "priorityScore", status, input, output,
  error, parent_task_id AS "parentTaskId", delegation_depth AS "delegationDepth", steps,
  json_build_object('inputTokens', input_tokens, 'outputTokens', output_tokens) AS usage,
  created_at AS "createdAt", started_at AS "startedAt", completed_at AS "completedAt", trace_id AS "traceId",
  skill_id AS "skillId", validation`;

export function taskById(db: Db, orgId: string, id: string): Promise<TaskRecord | undefined> {
  return orgRowById<TaskRecord>(db, 'tasks', TASK_COLUMNS, orgId, id);
}

/** One page of an organisation's tasks, newest first. */
export async function listTasks(
  db: Db,
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
}

/** The inputs of tasks, by id. */
export async function taskInputs(db: Db, taskIds: string[]): Promise<Record<string, Record<string, unknown>>> {
  const { rows } = await db.query<{ id: string; input: Record<string, unknown> }>(
    'SELECT id, input FROM tasks WHERE id = ANY($1)',
    [taskIds],
  );
  return Object.fromEntries(rows.map((r) => [r.id, r.input ?? {}]));
}

/** The output checks of tasks that have one, by id. */
export async function taskValidations(db: Db, taskIds: string[]): Promise<Record<string, TaskValidation>> {
  const { rows } = await db.query<{ id: string; validation: TaskValidation }>(
    'SELECT id, validation FROM tasks WHERE id = ANY($1) AND validation IS NOT NULL',
    [taskIds],
  );
  return Object.fromEntries(rows.map((r) => [r.id, r.validation]));
}

/** Queued and running tasks of an organisation. */
export async function countPendingTasks(db: Db, orgId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*) AS n FROM tasks WHERE org_id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')`,
    [orgId],
  );
  return rows[0]!.n;
}

/** Sub-tasks of a task other than `exceptTaskId`. */
export async function countSubtasks(db: Db, parentTaskId: string, exceptTaskId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    'SELECT count(*) AS n FROM tasks WHERE parent_task_id = $1 AND id <> $2',
    [parentTaskId, exceptTaskId],
  );
  return rows[0]!.n;
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

/** Inserts a goal's task row as queued (tagged with its crew, if any); false when the id was already known. */
async function insertTask(db: Db, input: QueuedTaskInput & { crewId?: string }): Promise<boolean> {
  const { goal } = input;
  const inserted = await db.query(
    `INSERT INTO tasks (id, org_id, agent_id, title, task_type, priority, status, input, parent_task_id, delegation_depth,
       created_at, crew_id, trace_id, skill_id, validation)
     VALUES ($1,$2,$3,$4,$5,$6,'queued',$7,$8,$9,$10,$11,$12,$13,$14) ON CONFLICT (id) DO NOTHING RETURNING id`,
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
      input.crewId ?? null,
      // The activity runs in the submitting request's trace (its context arrives in Temporal headers).
      activeTraceId(),
      goal.skillId ?? null,
      goal.validation ? JSON.stringify(goal.validation) : null,
    ],
  );
  return Boolean(inserted.rowCount);
}

/** Inserts a submitted goal's task row as queued, once per task id. */
export async function insertQueuedTask(db: Db, input: QueuedTaskInput): Promise<QueuedTaskReceipt> {
  if (await insertTask(db, input)) return { created: true, status: 'queued' };
  const existing = await db.query<{ status: TaskStatus }>('SELECT status FROM tasks WHERE id = $1', [
    input.goal.taskId,
  ]);
  return { created: false, status: existing.rows[0]?.status ?? 'queued' };
}

/** Inserts the queued task row of a crew member's sub-task, tagged with the crew, once per task id. */
export async function insertCrewTask(db: Db, input: QueuedTaskInput & { crewId: string }): Promise<void> {
  await insertTask(db, input);
}

/** Moves a task to a non-terminal status (planning, running, awaiting_approval, validating). */
export async function setTaskStatus(db: Db, taskId: string, status: TaskStatus): Promise<void> {
  await db.query(
    `UPDATE tasks SET status = $2, updated_at = now(), started_at = COALESCE(started_at, now())
     WHERE id = $1 AND status NOT IN ('completed','failed','cancelled')`,
    [taskId, status],
  );
}

/** A task waits for a human decision (its approval request was just opened). */
export async function markTaskAwaitingApproval(db: Queryable, taskId: string): Promise<void> {
  await db.query(
    `UPDATE tasks SET status = 'awaiting_approval', updated_at = now()
     WHERE id = $1 AND status NOT IN ('completed','failed','cancelled')`,
    [taskId],
  );
}

/** A decided approval puts its task back to running (only from awaiting_approval). */
export async function resumeTaskAfterApproval(db: Queryable, taskId: string): Promise<void> {
  await db.query(
    `UPDATE tasks SET status = 'running', updated_at = now() WHERE id = $1 AND status = 'awaiting_approval'`,
    [taskId],
  );
}

const START_TASK = `UPDATE tasks SET status = 'planning', started_at = COALESCE(started_at, now()), updated_at = now()
         WHERE id = $1 AND status = 'queued'`;

/** Moves a queued task to planning (its first step starts). */
export async function startTask(db: Db, taskId: string): Promise<void> {
  await db.query(START_TASK, [taskId]);
}

/** `startTask` as a CTE, to run in the same statement as another record's write. */
export function startTaskAlongside(taskId: string): Alongside {
  return { ctes: `started AS (${START_TASK})`, params: [taskId] };
}

/** A tool call ran: a task still planning is now running (a CTE for the tool call's decision). */
export function taskRunningAlongside(taskId: string): Alongside {
  return {
    ctes: `running AS (UPDATE tasks SET status = 'running', updated_at = now() WHERE id = $1 AND status = 'planning')`,
    params: [taskId],
  };
}

/**
 * Writes a task's final state, with an optional closing decision for its reasoning trace (why it failed or
 * was cancelled). A terminal status is never overwritten. One statement: the final state, no pending
 * approval left behind (a task can end while an approval waits: cancelled, archived), and the decision.
 */
export async function finishTask(
  db: Db,
  outcome: TaskOutcome,
  decision?: { type: string; reasoning: string },
): Promise<void> {
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
}

/** Cancels every task of an agent that has not ended (the agent is being archived). */
export async function cancelAgentTasks(db: Queryable, agentId: string): Promise<void> {
  await db.query(
    `UPDATE tasks SET status = 'cancelled', error = 'agent archived', completed_at = now(), updated_at = now()
     WHERE agent_id = $1 AND status NOT IN ('completed','failed','cancelled')`,
    [agentId],
  );
}

/** One page of a crew's task rows, oldest first. */
export async function crewTasks(
  db: Db,
  crewId: string,
  page: { limit: number; offset: number },
): Promise<{ id: string; agentId: string; title: string; status: string; output: unknown; error: string | null }[]> {
  const { rows } = await db.query(
    `SELECT id, agent_id AS "agentId", title, status, output, error FROM tasks WHERE crew_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3`,
    [crewId, page.limit, page.offset],
  );
  return rows;
}

/**
 * Each member's work in a crew, counted in SQL so a long crew costs one small row per member: totals by
 * status and the ids of tasks still open (at most the crew's concurrency, capped at `maxActiveIds` anyway).
 */
export async function crewMemberWork(
  db: Db,
  crewId: string,
  maxActiveIds: number,
): Promise<
  { agentId: string; total: number; completed: number; failed: number; cancelled: number; activeTaskIds: string[] }[]
> {
  const { rows } = await db.query(
    `SELECT agent_id AS "agentId", count(*)::int AS total,
            count(*) FILTER (WHERE status = 'completed')::int AS completed,
            count(*) FILTER (WHERE status = 'failed')::int AS failed,
            count(*) FILTER (WHERE status = 'cancelled')::int AS cancelled,
            COALESCE((array_agg(id::text ORDER BY created_at, id) FILTER (WHERE status NOT IN ('completed', 'failed', 'cancelled')))[1:${Math.trunc(maxActiveIds)}], '{}') AS "activeTaskIds"
     FROM tasks WHERE crew_id = $1 GROUP BY agent_id`,
    [crewId],
  );
  return rows;
}
