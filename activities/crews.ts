import type { Db } from '../lib/db';
import type { CrewMessage, CrewResult, CrewStatus, Goal } from '../contract/definitions';

/**
 * Activities of the crew workflow: its Postgres projection (status, result, message log) and the task
 * rows of member work. Every write is idempotent (ON CONFLICT, terminal statuses never overwritten), so
 * the records retry policy may repeat any of them.
 */
export function createCrewActivities({ db }: { db: Db }) {
  return {
    /** Moves a crew to planning/running, or records its end; a finished crew is never changed again. */
    async recordCrewStatus(input: {
      crewId: string;
      status: CrewStatus;
      result?: CrewResult;
      error?: string | null;
    }): Promise<void> {
      const terminal = input.result !== undefined;
      await db.query(
        `UPDATE crews SET status = $2, result = COALESCE($3::jsonb, result), error = COALESCE($4, error),
           started_at = COALESCE(started_at, now()), completed_at = CASE WHEN $5 THEN now() ELSE completed_at END,
           updated_at = now()
         WHERE id = $1 AND status NOT IN ('completed','failed','stopped')`,
        [input.crewId, input.status, terminal ? JSON.stringify(input.result) : null, input.error ?? null, terminal],
      );
    },

    /** Stores one message at its place in the crew's log; a retry finds the seq taken and writes nothing. */
    async recordCrewMessage(input: { crewId: string; message: CrewMessage }): Promise<void> {
      const m = input.message;
      await db.query(
        `INSERT INTO crew_messages (crew_id, seq, message_id, from_agent_id, to_agent_id, type, content, sent_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (crew_id, seq) DO NOTHING`,
        [input.crewId, m.seq, m.messageId, m.fromAgentId, m.toAgentId, m.type, m.content, m.sentAt],
      );
    },

    /**
     * Inserts the task row of a member's sub-task (queued, tagged with the crew), so it shows in the
     * member's task list; the TaskWorkflow child then records its progress and end like any task.
     */
    async recordCrewTask(input: { crewId: string; orgId: string; agentId: string; goal: Goal }): Promise<void> {
      const { goal } = input;
      await db.query(
        `INSERT INTO tasks (id, org_id, agent_id, title, task_type, priority, status, input, parent_task_id, delegation_depth,
           created_at, crew_id)
         VALUES ($1,$2,$3,$4,$5,$6,'queued',$7,$8,$9,$10,$11) ON CONFLICT (id) DO NOTHING`,
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
          input.crewId,
        ],
      );
    },
  };
}
