import type { Db } from '../lib/db';
import { insertCrewMessage, updateCrewStatus } from '../lib/records/crews';
import { insertCrewTask } from '../lib/records/tasks';
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
      await updateCrewStatus(db, input);
    },

    /** Stores one message at its place in the crew's log; a retry finds the seq taken and writes nothing. */
    async recordCrewMessage(input: { crewId: string; message: CrewMessage }): Promise<void> {
      await insertCrewMessage(db, input.crewId, input.message);
    },

    /**
     * Inserts the task row of a member's sub-task (queued, tagged with the crew), so it shows in the
     * member's task list; the TaskWorkflow child then records its progress and end like any task.
     */
    async recordCrewTask(input: { crewId: string; orgId: string; agentId: string; goal: Goal }): Promise<void> {
      await insertCrewTask(db, input);
    },
  };
}
