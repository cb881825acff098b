/**
 * Reference workflows for the benchmark: the least a workflow can cost on this server, so agent numbers
 * have something to be compared with. Run by bench/trivial-worker.ts on its own task queue.
 */
import { condition, defineSignal, proxyActivities, setHandler } from '@temporalio/workflow';

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
