import type { Db } from './db';
import { countPendingTasks, countSubtasks } from './records/tasks';

/**
 * Runaway fuses (seed 003): limits that stop agents from flooding the system with work. Each check
 * answers a refusal a person (or a model) can act on, or null when the work may go ahead.
 */

/** Queued and running tasks of an organisation, against MAX_PENDING_TASKS_PER_ORG. */
export async function pendingTasksRefusal(db: Db, orgId: string, limit: number): Promise<string | null> {
  const pending = await countPendingTasks(db, orgId);
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
  const created = await countSubtasks(db, parentTaskId, childTaskId);
  return created >= limit ? `this task already created ${created} sub-tasks (MAX_SUBTASKS_PER_TASK=${limit})` : null;
}
