/**
 * Scenario 4: many idle agents. Starts `count` AgentWorkflows through the gateway, reports the start rate
 * and the agent worker's resident memory (VmRSS of its own process), then wakes `wakes` random ones
 * with a task at a steady rate and times task submitted (client clock, before submitGoal) → first
 * callModel started (server clock, from the task's history).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { startAgents, type Bench } from '../context';
import { activityTimes, every, history, log, pool, round, rssMiB, summarize, taskOutcome, type Summary } from '../lib';
import { agentWorkflowId } from '../../contract/definitions';
import { AGENT_SCRIPT } from './throughput';

export interface ParkedAgents {
  agents: number;
  startSeconds: number;
  startsPerSecond: number;
  /** Agent worker VmRSS (MiB): before, right after the starts, after 10 s of rest, peak, after the wakes. */
  workerRssMiB: { before: number; afterStart: number; settled: number; peak: number; afterWakes: number };
  /** (settled − before) / agents. */
  workerRssKiBPerAgent: number;
  serverRssMiB: { before: number; settled: number };
  wakes: number;
  wakesPerSecond: number;
  /** Task submitted → its first callModel started. */
  wakeToFirstStepMs: Summary;
  /** Task submitted → first callModel scheduled. */
  wakeToScheduledMs: Summary;
  /** Task submitted → the agent started the task's workflow (its first history event). */
  submitMs: Summary;
  idleAgentId: string;
}

export async function parkedAgents(
  b: Bench,
  opts: { count: number; wakes: number; wakesPerSecond: number; concurrency: number },
): Promise<ParkedAgents> {
  const before = rssMiB(b.workerPid);
  const serverBefore = rssMiB(b.serverPid);
  let peak = before;
  const stopSampling = every(1000, () => (peak = Math.max(peak, rssMiB(b.workerPid))));
  try {
    const started = Date.now();
    let startedCount = 0;
    const ticker = every(10_000, () =>
      log(`parked agents: ${startedCount}/${opts.count} started; worker RSS ${rssMiB(b.workerPid)} MiB`),
    );
    const agents = await startAgents(b, opts.count, 'parked', {
      concurrency: opts.concurrency,
      onStarted: () => startedCount++,
    }).finally(ticker);
    const startSeconds = (Date.now() - started) / 1000;
    const afterStart = rssMiB(b.workerPid);
    log(
      `parked agents: ${opts.count} started in ${round(startSeconds)} s (${round(opts.count / startSeconds)}/s); worker RSS ${afterStart} MiB`,
    );
    await sleep(10_000);
    const settled = rssMiB(b.workerPid);
    const serverSettled = rssMiB(b.serverPid);

    // Wake random agents at a steady rate below capacity, so the delay measured is the wake-up, not a queue.
    const chosen = [...agents].sort(() => Math.random() - 0.5).slice(0, opts.wakes);
    const wakes: { agentId: string; taskId: string; sentAt: number }[] = [];
    const submitMs: number[] = [];
    const wakeStart = Date.now();
    const submissions = chosen.map(async (agent, i) => {
      await sleep(wakeStart + (i * 1000) / opts.wakesPerSecond - Date.now());
      const taskId = randomUUID();
      const sentAt = Date.now();
      await b.gateway.submitGoal(agent.id, { taskId, title: 'wake up', input: { script: AGENT_SCRIPT } });
      submitMs.push(Date.now() - sentAt);
      wakes.push({ agentId: agent.id, taskId, sentAt });
    });
    const wakeTicker = every(10_000, () => log(`parked agents: ${wakes.length}/${opts.wakes} woken`));
    await Promise.all(submissions).finally(wakeTicker);
    await pool(wakes, 50, async (w) => {
      const outcome = await taskOutcome(b.db, w.taskId);
      if (outcome.status !== 'completed')
        throw new Error(`woken task ${w.taskId} ended ${outcome.status}: ${outcome.error}`);
    });
    const afterWakes = rssMiB(b.workerPid);

    const scheduled: number[] = [];
    const firstStep: number[] = [];
    await pool(wakes, 10, async (w) => {
      // The goal runs in the agent's workflow: its first model call after the submission.
      const events = await history(b.client, agentWorkflowId(w.agentId));
      const times = activityTimes(events, 'callModel', w.sentAt - 1000);
      if (!times) throw new Error(`task ${w.taskId}: no callModel in its agent's history`);
      scheduled.push(times.scheduled - w.sentAt);
      firstStep.push(times.started - w.sentAt);
    });
    const wokenIds = new Set(chosen.map((a) => a.id));
    return {
      agents: opts.count,
      startSeconds: round(startSeconds),
      startsPerSecond: round(opts.count / startSeconds),
      workerRssMiB: { before, afterStart, settled, peak: Math.max(peak, afterWakes), afterWakes },
      workerRssKiBPerAgent: round(((settled - before) * 1024) / opts.count),
      serverRssMiB: { before: serverBefore, settled: serverSettled },
      wakes: opts.wakes,
      wakesPerSecond: opts.wakesPerSecond,
      wakeToFirstStepMs: summarize(firstStep),
      wakeToScheduledMs: summarize(scheduled),
      submitMs: summarize(submitMs),
      idleAgentId: agents.find((a) => !wokenIds.has(a.id))?.id ?? agents[0].id,
    };
  } finally {
    stopSampling();
  }
}
