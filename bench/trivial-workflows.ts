/**
 * Reference workflows for the benchmark: the least a workflow can cost on this server, so agent numbers
 * have something to be compared with. Run by bench/trivial-worker.ts on its own task queue.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  defineSignal,
  defineUpdate,
  executeChild,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';

export interface TrivialActivities {
  noop(): Promise<void>;
}

const { noop } = proxyActivities<TrivialActivities>({ startToCloseTimeout: '30s' });

/** The throughput ceiling: a workflow that runs two no-op activities one after the other. */
export async function TrivialWorkflow(): Promise<void> {
  await noop();
  await noop();
}

export const goSignal = defineSignal('go');

/** The raw signal round trip: parks until signalled, then schedules one no-op activity. */
export async function SignalWaiterWorkflow(): Promise<void> {
  let go = false;
  setHandler(goSignal, () => void (go = true));
  await condition(() => go);
  await noop();
}

/** Queues a goal (its child's workflow id) on a ShapeAgentWorkflow; answers the queue position. */
export const submitShapeGoalUpdate = defineUpdate<number, [string]>('submitShapeGoal');

/**
 * The shape of an agent task with nothing inside it: a long-lived parent takes goals by update and runs
 * them one at a time, each as a child of three no-op activities (model call, tool call, model call).
 * What an agent task costs beyond this is the orchestrator's own work (records, scores, slots, budgets).
 */
export async function ShapeAgentWorkflow(queue: string[] = []): Promise<void> {
  setHandler(submitShapeGoalUpdate, (childId) => queue.push(childId));
  for (;;) {
    await condition(() => queue.length > 0 || workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > 2000);
    if (queue.length === 0) {
      await condition(allHandlersFinished);
      return await continueAsNew<typeof ShapeAgentWorkflow>(queue);
    }
    await executeChild(ShapeTaskWorkflow, { workflowId: queue.shift()! });
  }
}

export async function ShapeTaskWorkflow(): Promise<void> {
  await noop();
  await noop();
  await noop();
}
