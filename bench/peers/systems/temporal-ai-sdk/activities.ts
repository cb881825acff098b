import { Context } from '@temporalio/activity';
import type pg from 'pg';
import { writeTool } from '../common';

/** The tool: keyed by workflow id and activity id, Temporal's idempotency key for an activity. */
export function createActivities(pool: pg.Pool) {
  return {
    async memoryWrite(taskId: string): Promise<string> {
      const startedAtMs = Date.now();
      const { workflowExecution, activityId } = Context.current().info;
      const workflowId = workflowExecution?.workflowId ?? taskId;
      const idemKey = `temporal-ai-sdk:${workflowId}:${activityId}`;
      await writeTool(pool, { system: 'temporal-ai-sdk', taskId, idemKey, startedAtMs });
      return 'written';
    },
  };
}
