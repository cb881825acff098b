import { condition, proxyActivities, proxyLocalActivities, setHandler, uuid4 } from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  routedTaskEndedSignal,
  type RoutedTaskEnd,
  type RoutedTaskInput,
  type RoutedTaskResult,
} from '../contract/definitions';
import { ErrorType } from '../contract/errors';
import { applicationFailure } from './activities';

/** Failures that leave the agent stopped on an error (it takes no more goals until resumed). */
const AGENT_STOPPING_ERRORS: readonly string[] = [ErrorType.ProviderAuth, ErrorType.Configuration];

/** How long to wait for an attempt's end signal before reading its row again (a lost signal only delays). */
const RECHECK_INTERVAL = '5 minutes';

/**
 * A task submitted with a route. Its first attempt is the task itself, on the agent the route picked. When
 * an attempt fails the task runs again on the same agent once (unless the failure stopped that agent, or
 * it is paused or archived now), then on another capable agent the route
 * picks (agents already tried left out); when that fails too, or no agent is left, the original task
 * records every attempt's reason. A cancelled attempt ends the route. Between attempts the workflow only
 * waits for a signal (no worker slot is held): the activity that records a task's end sends it.
 */
export async function RoutedTaskWorkflow(input: RoutedTaskInput): Promise<RoutedTaskResult> {
  const records = proxyLocalActivities<Activities>({
    startToCloseTimeout: '30s',
    retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '30s' },
  });
  const submit = proxyActivities<Activities>({
    startToCloseTimeout: '1m',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
  });
  const ends = new Map<string, RoutedTaskEnd>();
  setHandler(routedTaskEndedSignal, (end) => void ends.set(end.taskId, end));

  const waitForEnd = async (taskId: string): Promise<RoutedTaskEnd> => {
    for (;;) {
      const known = ends.get(taskId) ?? (await records.routeAttemptEnd({ taskId }));
      if (known) return known;
      await condition(() => ends.has(taskId), RECHECK_INTERVAL);
    }
  };

  const attempts: RoutedTaskResult['attempts'] = [];
  const tried: string[] = [];
  const run = async (taskId: string, agentId: string): Promise<RoutedTaskEnd> => {
    tried.push(agentId);
    const end = await waitForEnd(taskId);
    attempts.push({ taskId, agentId, status: end.status, error: end.error });
    return end;
  };
  /** Submits the next attempt to an agent; a refusal (archived, paused, stopped) counts as a failed attempt. */
  const resubmit = async (agentId: string): Promise<RoutedTaskEnd> => {
    const taskId = uuid4();
    const attempt = attempts.length + 1;
    try {
      await submit.submitRouteAttempt({ routedTaskId: input.taskId, taskId, agentId, attempt });
    } catch (err) {
      const reason = applicationFailure(err)?.message ?? String(err);
      tried.push(agentId);
      attempts.push({ taskId, agentId, status: 'failed', error: `not submitted: ${reason}` });
      return { taskId, status: 'failed', error: `not submitted: ${reason}` };
    }
    return run(taskId, agentId);
  };

  let end = await run(input.taskId, input.agentId);
  // The same agent again, unless the failure stopped it (a provider's credentials or configuration).
  if (end.status === 'failed' && !AGENT_STOPPING_ERRORS.includes(end.errorType ?? '')) {
    end = await resubmit(input.agentId);
  }
  let noneLeft = false;
  if (end.status === 'failed') {
    const next = await records.pickRouteAgent({ orgId: input.orgId, route: input.route, exclude: tried });
    if (next) end = await resubmit(next);
    else noneLeft = true;
  }
  const status = end.status === 'completed' || end.status === 'cancelled' ? end.status : 'failed';
  const reasons = attempts
    .map((a, i) => (a.error === null ? null : `attempt ${i + 1} on agent ${a.agentId}: ${a.error}`))
    .filter((r): r is string => r !== null);
  if (noneLeft) reasons.push(`no other agent has the capabilities [${input.route.capabilities.join(', ')}]`);
  const error = status === 'failed' ? reasons.join('; ') : null;
  await records.finishRoute({ taskId: input.taskId, status, error });
  return { status, attempts, error };
}
