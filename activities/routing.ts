import { ApplicationFailure } from '@temporalio/common';
import { log } from '@temporalio/activity';
import { AgentRejectedError, type TemporalGateway } from '../client/gateway';
import type { Db } from '../lib/db';
import {
  finishRoute,
  linkRouteAttempt,
  pickRouteAgent,
  routeAgentStatus,
  routedGoal,
  routeOwner,
  taskEnd,
} from '../lib/records/routing';
import type { RoutedTaskEnd, TaskOutcome, TaskRoute } from '../contract/definitions';

/** Why an attempt could not even be submitted (the agent was archived or paused meanwhile). */
export const ROUTE_SUBMIT_REFUSED = 'RouteSubmitRefused';

/**
 * Activities of the RoutedTaskWorkflow: choosing another agent for a failed routed task, submitting an
 * attempt to it through the gateway, reading how an attempt ended and recording where the route ended.
 */
export function createRoutingActivities({ db, gateway }: { db: Db; gateway: TemporalGateway }) {
  return {
    /** The agent a reassignment goes to (the route's strategy, agents already tried left out), or null. */
    async pickRouteAgent(input: { orgId: string; route: TaskRoute; exclude: string[] }): Promise<string | null> {
      return pickRouteAgent(db, input.orgId, input.route, input.exclude);
    },

    /**
     * Submits the next attempt of a routed task (same title, type, input and priority) to an agent and links
     * it to the original. The task id comes from the workflow, so a retried activity submits it once.
     */
    async submitRouteAttempt(input: {
      routedTaskId: string;
      taskId: string;
      agentId: string;
      attempt: number;
    }): Promise<void> {
      const goal = await routedGoal(db, input.routedTaskId);
      const agent = await routeAgentStatus(db, input.agentId);
      if (agent !== 'IDLE' && agent !== 'RUNNING') {
        throw ApplicationFailure.nonRetryable(`agent ${input.agentId} is ${agent ?? 'gone'}`, ROUTE_SUBMIT_REFUSED);
      }
      try {
        await gateway.submitGoal(input.agentId, { taskId: input.taskId, ...goal });
      } catch (err) {
        if (err instanceof AgentRejectedError) throw ApplicationFailure.nonRetryable(err.message, ROUTE_SUBMIT_REFUSED);
        throw err;
      }
      await linkRouteAttempt(db, input.taskId, input.routedTaskId, input.attempt);
    },

    /** How an attempt ended, or null while it runs (read after linking it, so no end goes unnoticed). */
    async routeAttemptEnd(input: { taskId: string }): Promise<RoutedTaskEnd | null> {
      return taskEnd(db, input.taskId);
    },

    async finishRoute(input: {
      taskId: string;
      status: 'completed' | 'failed' | 'cancelled';
      error: string | null;
    }): Promise<void> {
      await finishRoute(db, input.taskId, input.status, input.error);
    },
  };
}

/**
 * Tells the routed task's workflow, if the task belongs to one, that it ended. Best effort: the workflow
 * also reads the task's row after linking an attempt and every few minutes while it waits, so a lost
 * signal only delays it.
 */
export async function noticeRoutedTaskEnd(
  db: Db,
  gateway: TemporalGateway,
  outcome: Pick<TaskOutcome, 'taskId' | 'errorType'>,
): Promise<void> {
  try {
    const owner = await routeOwner(db, outcome.taskId);
    if (!owner) return;
    const end = await taskEnd(db, outcome.taskId);
    if (end) await gateway.routedTaskEnded(owner, { ...end, errorType: outcome.errorType });
  } catch (err) {
    log.warn('could not tell the routed task workflow that a task ended', {
      taskId: outcome.taskId,
      error: String(err),
    });
  }
}
