import type { Db } from './db';

/**
 * Runaway fuses (seed 003): limits that stop agents from flooding the system with work. Each check
 * answers a refusal a person (or a model) can act on, or null when the work may go ahead.
 */

/** Queued and running tasks of an organisation, against MAX_PENDING_TASKS_PER_ORG. */
export async function pendingTasksRefusal(db: Db, orgId: string, limit: number): Promise<string | null> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*) AS n FROM tasks WHERE org_id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')`,
    [orgId],
  );
  const pending = rows[0].n;
  return pending >= limit
    ? `organisation ${orgId} already has ${pending} pending tasks (MAX_PENDING_TASKS_PER_ORG=${limit}); wait for some to finish`
    : null;
}

/** Sub-tasks a task has created, against MAX_SUBTASKS_PER_TASK (the task being created again on a retry does not count). */
export async function subtasksRefusal(
  db: Db,
  parentTaskId: string,
  childTaskId: string,
  limit: number,
): Promise<string | null> {
  const { rows } = await db.query<{ n: number }>(
    'SELECT count(*) AS n FROM tasks WHERE parent_task_id = $1 AND id <> $2',
    [parentTaskId, childTaskId],
  );
  return rows[0].n >= limit
    ? `this task already created ${rows[0].n} sub-tasks (MAX_SUBTASKS_PER_TASK=${limit})`
    : null;
}
