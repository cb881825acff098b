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

/**
 * Queues a goal on a ShapeAgentWorkflow (its id: the child's workflow id). With children it answers at
 * once (the caller then awaits the child's result); inline, once the goal is done (nothing else to await).
 */
export const submitShapeGoalUpdate = defineUpdate<void, [string]>('submitShapeGoal');

/**
 * The shape of an agent task with nothing inside it: a long-lived parent takes goals by update and runs
 * them one at a time, each as a child of three no-op activities (model call, tool call, model call).
 * What an agent task costs beyond this is the orchestrator's own work (records, scores, slots, budgets).
 * With `inline`, the parent runs the three activities itself: what the same work costs without a child
 * workflow per goal.
 */
export async function ShapeAgentWorkflow(input: { queue: string[]; inline: boolean }): Promise<void> {
  const { queue, inline } = input;
  const done = new Set<string>();
  setHandler(submitShapeGoalUpdate, async (goalId) => {
    queue.push(goalId);
    if (!inline) return;
    await condition(() => done.has(goalId));
    done.delete(goalId);
  });
  for (;;) {
    await condition(
      () => queue.length > 0 || workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > 2000,
    );
    if (queue.length === 0) {
      await condition(allHandlersFinished);
      return await continueAsNew<typeof ShapeAgentWorkflow>({ queue, inline });
    }
    const goalId = queue.shift()!;
    if (inline) {
      await ShapeTaskWorkflow();
      done.add(goalId);
    } else {
      await executeChild(ShapeTaskWorkflow, { workflowId: goalId });
    }
  }
}

export async function ShapeTaskWorkflow(): Promise<void> {
  await noop();
  await noop();
  await noop();
}
