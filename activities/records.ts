import { withTransaction, type Db } from '../lib/db';
import { markAgentArchived, upsertAgent, writeAgentState, type AgentStateRecord } from '../lib/records/agents';
import { insertDecision, type DecisionInput } from '../lib/records/decisions';
import { deleteMemoryScope } from '../lib/records/memory';
import {
  cancelAgentTasks,
  finishTask,
  insertQueuedTask,
  setTaskStatus,
  taskInputs,
  taskValidations,
  type QueuedTaskInput,
  type QueuedTaskReceipt,
} from '../lib/records/tasks';
import type {
  AgentConfig,
  AgentSettings,
  AgentStatus,
  TaskOutcome,
  TaskStatus,
  TaskValidation,
} from '../contract/definitions';

// Workflows name these in their activity signatures (as types only).
export type { AgentStateRecord, DecisionInput, QueuedTaskInput, QueuedTaskReceipt };

export interface RecordDeps {
  db: Db;
}

/**
 * Activities that keep Postgres (the queryable projection) in step with the workflows. Every write is
 * idempotent: inserts use ON CONFLICT, agent rows only move forward in `state_version`, and terminal task
 * states are never overwritten, so Temporal may retry any of them freely. The SQL is in lib/records/.
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
      await upsertAgent(db, input);
    },

    /** Records the agent's live status; ignored if a newer state was already written. */
    async syncAgentState(input: AgentStateRecord): Promise<void> {
      await writeAgentState(db, input);
    },

    /** The inputs of queued tasks, by id: goals carried through continue-as-new leave theirs in the row. */
    async loadGoalInputs(input: { taskIds: string[] }): Promise<Record<string, Record<string, unknown>>> {
      return taskInputs(db, input.taskIds);
    },

    /** The output checks of queued tasks, by id: goals carried through continue-as-new leave theirs in the row. */
    async loadGoalValidations(input: { taskIds: string[] }): Promise<Record<string, TaskValidation>> {
      return taskValidations(db, input.taskIds);
    },

    /** Inserts a queued task. `created: false` means the id was already known (a retried delegation). */
    async recordTaskQueued(input: QueuedTaskInput): Promise<QueuedTaskReceipt> {
      return insertQueuedTask(db, input);
    },

    /** Moves a task to a non-terminal status (planning, running, awaiting_approval, validating). */
    async setTaskStatus(input: { taskId: string; status: TaskStatus }): Promise<void> {
      await setTaskStatus(db, input.taskId, input.status);
    },

    /**
     * Writes a task's final state, with an optional closing decision for its reasoning trace
     * (why it failed or was cancelled). A terminal status is never overwritten.
     */
    async finishTask(input: { outcome: TaskOutcome; decision?: { type: string; reasoning: string } }): Promise<void> {
      await finishTask(db, input.outcome, input.decision);
    },

    /**
     * Archives an agent: its queued tasks are cancelled, its private memory is deleted and its row is
     * marked ARCHIVED, so nothing it owned comes back after a restart.
     */
    async archiveAgentData(input: { agentId: string; stateVersion: number }): Promise<void> {
      await withTransaction(db, async (client) => {
        await cancelAgentTasks(client, input.agentId);
        await deleteMemoryScope(client, input.agentId);
        await markAgentArchived(client, input.agentId, input.stateVersion);
      });
    },
  };
}
