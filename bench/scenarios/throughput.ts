/**
 * Scenarios 1 and 2: completions per second at saturation, for the trivial reference workflow and for
 * agent tasks, each counted over a steady window after a warm-up, with the CPU each component spent in
 * that window (so the cost per completion can be compared too).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { snapshot, startAgents, usageBetween, type Bench, type Snapshot, type Usage } from '../context';
import { every, log, resultOnceStarted, round, summarize, taskOutcome, type Summary } from '../lib';
import { submitShapeGoalUpdate } from '../trivial-workflows';

/** One model turn that calls a read-only tool, then one that answers: an LLM step plus a tool step. */
export const AGENT_SCRIPT = [{ call: 'memory_read', args: { key: 'x' } }, { answer: 'ok' }];

export interface Throughput {
  warmupSeconds: number;
  windowSeconds: number;
  /** Completions inside the window. */
  completed: number;
  perSecond: number;
  failed: number;
  /** Submit → completion, for everything that completed (warm-up and drain included). */
  latencyMs: Summary;
  usage: Usage;
  /** CPU milliseconds each component spent per completion inside the window. */
  cpuMsPerCompletion: Record<string, number>;
}

type Drive = (until: number, done: (ok: boolean, latencyMs: number) => void) => Promise<void>;

async function steadyWindow(
  b: Bench,
  label: string,
  warmupSeconds: number,
  windowSeconds: number,
  drive: Drive,
): Promise<Throughput> {
  const from = Date.now() + warmupSeconds * 1000;
  const until = from + windowSeconds * 1000;
  const completions: number[] = [];
  const latencies: number[] = [];
  let failed = 0;
  const marks: Promise<Snapshot>[] = [
    sleep(from - Date.now()).then(() => snapshot(b)),
    sleep(until - Date.now()).then(() => snapshot(b)),
  ];
  const stopTicker = every(10_000, () => log(`${label}: ${completions.length} completed so far`));
  try {
    await drive(until, (ok, latencyMs) => {
      if (!ok) return void failed++;
      completions.push(Date.now());
      latencies.push(latencyMs);
    });
  } finally {
    stopTicker();
  }
  const [a, z] = await Promise.all(marks);
  const completed = completions.filter((t) => t >= from && t < until).length;
  const perSecond = completed / windowSeconds;
  const usage = usageBetween(a, z);
  const cpuMsPerCompletion = Object.fromEntries(
    Object.entries(usage.cores).map(([k, cores]) => [k, round((cores * 1000) / perSecond)]),
  );
  log(`${label}: ${round(perSecond)}/s over ${windowSeconds} s (${failed} failed)`);
  return {
    warmupSeconds,
    windowSeconds,
    completed,
    perSecond: round(perSecond, 2),
    failed,
    latencyMs: summarize(latencies),
    usage,
    cpuMsPerCompletion,
  };
}

/** Scenario 1: `concurrency` clients each running TrivialWorkflow back to back. */
export function ceiling(
  b: Bench,
  opts: { concurrency: number; warmupSeconds: number; windowSeconds: number },
): Promise<Throughput & { concurrency: number }> {
  const run = randomUUID().slice(0, 8);
  let seq = 0;
  return steadyWindow(b, 'ceiling', opts.warmupSeconds, opts.windowSeconds, async (until, done) => {
    const client = async () => {
      while (Date.now() < until) {
        const started = Date.now();
        try {
          await b.client.workflow.execute('TrivialWorkflow', {
            taskQueue: b.trivialQueue,
            workflowId: `trivial-${run}-${seq++}`,
          });
          done(true, Date.now() - started);
        } catch (err) {
          log(`trivial workflow failed: ${String(err)}`);
          done(false, 0);
        }
      }
    };
    await Promise.all(Array.from({ length: opts.concurrency }, client));
  }).then((r) => ({ ...r, concurrency: opts.concurrency }));
}

export interface AgentThroughput extends Throughput {
  agents: number;
  tasksInFlightPerAgent: number;
  /** gateway.submitGoal round trip (the update returns once the task row is written). */
  submitMs: Summary;
  agentIds: string[];
  taskIds: string[];
}

/**
 * Scenario 2: tasks submitted through the TemporalGateway to `agents` autopilot agents. Each agent always
 * has `depth` tasks submitted and unfinished (one running, the rest queued), so no agent ever idles.
 */
export async function agentTasks(
  b: Bench,
  opts: { agents: number; depth: number; warmupSeconds: number; windowSeconds: number },
): Promise<AgentThroughput> {
  const agents = await startAgents(b, opts.agents, 'throughput');
  const taskIds: string[] = [];
  const submitMs: number[] = [];
  const submit = async (agentId: string) => {
    const taskId = randomUUID();
    const started = Date.now();
    await b.gateway.submitGoal(agentId, { taskId, title: 'read x and answer', input: { script: AGENT_SCRIPT } });
    submitMs.push(Date.now() - started);
    taskIds.push(taskId);
    return { taskId, started };
  };
  const result = await steadyWindow(b, 'agent tasks', opts.warmupSeconds, opts.windowSeconds, async (until, done) => {
    const agentLoop = async (agentId: string) => {
      const outstanding = [];
      for (let i = 0; i < opts.depth; i++) outstanding.push(await submit(agentId));
      while (outstanding.length > 0) {
        const { taskId, started } = outstanding.shift()!;
        const outcome = await taskOutcome(b.db, taskId);
        if (outcome.status !== 'completed') log(`task ${taskId} ${outcome.status}: ${outcome.error}`);
        done(outcome.status === 'completed', Date.now() - started);
        if (Date.now() < until) outstanding.push(await submit(agentId));
      }
    };
    await Promise.all(agents.map((a) => agentLoop(a.id)));
  });
  return {
    ...result,
    agents: opts.agents,
    tasksInFlightPerAgent: opts.depth,
    submitMs: summarize(submitMs),
    agentIds: agents.map((a) => a.id),
    taskIds,
  };
}

/**
 * Scenario 2b, the shape of 2 with nothing inside: `agents` ShapeAgentWorkflows on the trivial queue take
 * goals by update and run each as a child of three no-op activities, `depth` goals in flight per parent,
 * awaited the same way as agent tasks. Agent tasks / this = what the orchestrator adds to Temporal's own
 * cost for the same shape of work. With `inline` (2c), the parents run the activities themselves and the
 * update answers once its goal is done: the same work without a child workflow per goal.
 */
export async function shapeTasks(
  b: Bench,
  opts: { agents: number; depth: number; warmupSeconds: number; windowSeconds: number; inline: boolean },
): Promise<Throughput> {
  const run = randomUUID().slice(0, 8);
  const parents = await Promise.all(
    Array.from({ length: opts.agents }, (_, i) =>
      b.client.workflow.start('ShapeAgentWorkflow', {
        taskQueue: b.trivialQueue,
        workflowId: `shape-${run}-${i}`,
        args: [{ queue: [], inline: opts.inline }],
      }),
    ),
  );
  let seq = 0;
  /** Submits a goal; resolves once it is done (ok) or failed. */
  const goal = async (parent: (typeof parents)[number]): Promise<() => Promise<boolean>> => {
    const goalId = `shape-task-${run}-${seq++}`;
    const submitted = parent.executeUpdate(submitShapeGoalUpdate, { args: [goalId] });
    const failed = (err: unknown) => void log(`shape goal ${goalId} failed: ${String(err)}`);
    if (opts.inline) return () => submitted.then(() => true, failed).then((ok) => ok === true);
    await submitted;
    return () =>
      resultOnceStarted(b.client, goalId)
        .then(() => true, failed)
        .then((ok) => ok === true);
  };
  const label = opts.inline ? 'same shape inline, no-op' : 'same shape, no-op';
  const result = await steadyWindow(b, label, opts.warmupSeconds, opts.windowSeconds, async (until, done) => {
    const parentLoop = async (parent: (typeof parents)[number]) => {
      const outstanding: { finished: () => Promise<boolean>; started: number }[] = [];
      const submit = async () => {
        const started = Date.now();
        outstanding.push({ finished: await goal(parent), started });
      };
      for (let i = 0; i < opts.depth; i++) await submit();
      while (outstanding.length > 0) {
        const { finished, started } = outstanding.shift()!;
        done(await finished(), Date.now() - started);
        if (Date.now() < until) await submit();
      }
    };
    await Promise.all(parents.map(parentLoop));
  });
  await Promise.all(parents.map((p) => p.terminate('benchmark scenario over')));
  return result;
}
