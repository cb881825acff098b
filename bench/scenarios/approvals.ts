/**
 * Scenario 3: how fast a task waiting for approval resumes, through the HTTP API and by a direct update,
 * next to a raw signal round trip.
 *
 * Method: every sample is timed from the client's clock just before the call (`POST
 * /api/v1/approvals/:id/approve` to the API process, the approve update through the gateway, or the
 * signal) to the server's ActivityTaskStarted time of the next activity the workflow schedules (runTool
 * for the approved memory_write; the no-op activity for the raw signal), read from the workflow's
 * history afterwards. Client and server share this machine's clock, and the server records the real
 * start time of an activity (checked: Started lies between Scheduled and Completed, not at completion).
 * Samples rotate HTTP approval / direct approval / raw signal, and each waits for its workflow to finish
 * before the next one starts, so all three see the same otherwise idle system.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { startAgents, type Bench } from '../context';
import { activityTimes, every, history, log, pool, round, summarize, taskOutcome, type Summary } from '../lib';
import { goSignal } from '../trivial-workflows';
import { startApi } from './api';

/** A side-effecting tool call, which a copilot agent must have approved, then an answer. */
const APPROVAL_SCRIPT = [{ call: 'memory_write', args: { key: 'approved', value: 1 } }, { answer: 'ok' }];

export interface ApprovalResume {
  samples: number;
  /** POST /api/v1/approvals/:id/approve sent → runTool started: the API, auth and Express included. */
  httpApproveToNextActivityMs: Summary;
  httpApproveToScheduledMs: Summary;
  /** The HTTP approve call's own round trip (it answers once the decision is applied). */
  httpApproveCallMs: Summary;
  /** Approve call → runTool started (the resumed task's next activity). */
  approveToNextActivityMs: Summary;
  /** Approve call → runTool scheduled (the workflow has reacted). */
  approveToScheduledMs: Summary;
  /** The decideApproval update's own round trip (it returns after the decision is recorded in Postgres). */
  approveCallMs: Summary;
  /** Signal → no-op activity started, on SignalWaiterWorkflow. */
  rawSignalToNextActivityMs: Summary;
  rawSignalToScheduledMs: Summary;
  ratioP50: number;
  ratioP99: number;
  approvalAgentIds: string[];
}

interface Sample {
  workflowId: string;
  sentAt: number;
  activity: string;
}

export async function approvalResume(b: Bench, samples: number): Promise<ApprovalResume> {
  // Two copilot agents per sample (one approved over HTTP, one by a direct update), each with one task
  // parked on its approval request.
  const agents = await startAgents(b, samples * 2, 'copilot', { body: { autonomy: 'copilot' } });
  const taskIds = agents.map(() => randomUUID());
  await pool(agents, 20, async (agent, i) => {
    await b.gateway.submitGoal(agent.id, {
      taskId: taskIds[i],
      title: 'write after approval',
      input: { script: APPROVAL_SCRIPT },
    });
  });
  const approvalOf = await waitForPendingApprovals(b, taskIds);

  const run = randomUUID().slice(0, 8);
  const rawIds = Array.from({ length: samples }, (_, i) => `signal-waiter-${run}-${i}`);
  await pool(
    rawIds,
    20,
    async (workflowId) =>
      void (await b.client.workflow.start('SignalWaiterWorkflow', { taskQueue: b.trivialQueue, workflowId })),
  );
  await pool(rawIds, 20, async (workflowId) => {
    // Parked means its first workflow task has completed (history: started, scheduled, started, completed).
    while ((await b.client.workflow.getHandle(workflowId).describe()).historyLength < 4) await sleep(50);
  });

  const api = await startApi(b);
  log(`approvals: ${samples * 2} pending approvals and ${samples} parked signal waiters; measuring one at a time`);
  const httpApprovals: Sample[] = [];
  const httpCallMs: number[] = [];
  const approvals: Sample[] = [];
  const raw: Sample[] = [];
  const callMs: number[] = [];
  const stopTicker = every(10_000, () => log(`approvals: ${approvals.length}/${samples}`));
  try {
    for (let i = 0; i < samples; i++) {
      const viaHttp = approvalOf.get(taskIds[samples + i])!;
      let sentAt = Date.now();
      const answer = await api.request('POST', `/api/v1/approvals/${viaHttp.id}/approve`, { decidedBy: 'bench' });
      httpCallMs.push(Date.now() - sentAt);
      if (answer.status !== 200)
        throw new Error(
          `POST /approvals/${viaHttp.id}/approve answered ${answer.status}: ${JSON.stringify(answer.body)}`,
        );
      httpApprovals.push({ workflowId: viaHttp.workflowId, sentAt, activity: 'runTool' });
      const httpOutcome = await taskOutcome(b.db, taskIds[samples + i]);
      if (httpOutcome.status !== 'completed')
        throw new Error(`approved task ${taskIds[samples + i]} ended ${httpOutcome.status}: ${httpOutcome.error}`);

      sentAt = Date.now();
      const approval = approvalOf.get(taskIds[i])!;
      await b.gateway.decideApproval(
        { taskId: taskIds[i], workflowId: approval.workflowId },
        { approvalId: approval.id, decision: 'approve', decidedBy: 'bench' },
      );
      callMs.push(Date.now() - sentAt);
      approvals.push({ workflowId: approval.workflowId, sentAt, activity: 'runTool' });
      const outcome = await taskOutcome(b.db, taskIds[i]);
      if (outcome.status !== 'completed')
        throw new Error(`approved task ${taskIds[i]} ended ${outcome.status}: ${outcome.error}`);

      const handle = b.client.workflow.getHandle(rawIds[i]);
      sentAt = Date.now();
      await handle.signal(goSignal);
      raw.push({ workflowId: rawIds[i], sentAt, activity: 'noop' });
      await handle.result();
    }
  } finally {
    stopTicker();
    await api.stop();
  }

  const [http, approve, signal] = [await delays(b, httpApprovals), await delays(b, approvals), await delays(b, raw)];
  const approveToNextActivityMs = summarize(approve.started);
  const rawSignalToNextActivityMs = summarize(signal.started);
  return {
    samples,
    httpApproveToNextActivityMs: summarize(http.started),
    httpApproveToScheduledMs: summarize(http.scheduled),
    httpApproveCallMs: summarize(httpCallMs),
    approveToNextActivityMs,
    approveToScheduledMs: summarize(approve.scheduled),
    approveCallMs: summarize(callMs),
    rawSignalToNextActivityMs,
    rawSignalToScheduledMs: summarize(signal.scheduled),
    ratioP50: round(approveToNextActivityMs.p50 / rawSignalToNextActivityMs.p50, 2),
    ratioP99: round(approveToNextActivityMs.p99 / rawSignalToNextActivityMs.p99, 2),
    approvalAgentIds: agents.map((a) => a.id),
  };
}

/** Waits until every task has its approval request open; returns task id → the request and the workflow waiting for it. */
async function waitForPendingApprovals(
  b: Bench,
  taskIds: string[],
): Promise<Map<string, { id: string; workflowId: string }>> {
  const deadline = Date.now() + 900_000;
  for (;;) {
    const { rows } = await b.db.query<{ task_id: string; id: string; workflow_id: string }>(
      `SELECT task_id, id, workflow_id FROM approvals WHERE status = 'pending' AND task_id = ANY($1::uuid[])`,
      [taskIds],
    );
    if (rows.length === taskIds.length)
      return new Map(rows.map((r) => [r.task_id, { id: r.id, workflowId: r.workflow_id }]));
    if (Date.now() > deadline)
      throw new Error(`only ${rows.length} of ${taskIds.length} approval requests opened in 15 minutes`);
    await sleep(250);
  }
}

/** Call → next activity scheduled / started, per sample, from each workflow's history. */
async function delays(b: Bench, samples: Sample[]): Promise<{ scheduled: number[]; started: number[] }> {
  const scheduled: number[] = [];
  const started: number[] = [];
  await pool(samples, 10, async (s) => {
    const times = activityTimes(await history(b.client, s.workflowId), s.activity, s.sentAt - 1000);
    if (!times) throw new Error(`${s.workflowId}: no ${s.activity} activity after the call`);
    scheduled.push(times.scheduled - s.sentAt);
    started.push(times.started - s.sentAt);
  });
  return { scheduled, started };
}
