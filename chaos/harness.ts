/**
 * The chaos run, shared by `npm run chaos` and test/chaos.test.ts: on a private stack (its own Temporal
 * dev server and PostgreSQL, because both get restarted) it keeps many agent tasks in flight, with
 * approvals and side-effecting tools, while the worker is SIGKILLed every few seconds, the Temporal server
 * and PostgreSQL are each restarted once and the model provider fails a share of its requests. Then it
 * checks what must survive all of that and returns a tally with every violation it found.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode } from '@temporalio/worker';
import { loadConfig } from '../lib/config';
import { getFreePort, startLocalStack, type LocalStack } from '../scripts/local-stack';
import { killHard, spawnWorker, startApi, type TestStack } from '../test/helpers/stack';
import { startWebhookReceiver } from '../test/helpers/webhook-receiver';
import { taskWorkflowId } from '../workflows/definitions';
import { FAULT_KINDS, mulberry32, startFlakyProvider, type FaultKind } from './flaky-provider';

const ROOT = path.resolve(__dirname, '..');
const TASK_QUEUE = 'chaos-agents';
const TERMINAL = ['completed', 'failed', 'cancelled'];
type SideEffectTool = 'memory_write' | 'send_message' | 'http_post';

export interface ChaosSize {
  agents: number;
  tasks: number;
  /** Agents whose side effects wait for the approver. */
  copilotAgents: number;
  /** Copilot agents with a short approval timeout; the approver leaves every other request of theirs to expire. */
  expiringAgents: number;
  /** The worker is SIGKILLed this long after each (re)start. */
  killEverySeconds: number;
  /** Give up waiting for the tasks after this long (what is unfinished then counts as lost). */
  deadlineSeconds: number;
}

export const SIZES: Record<'full' | 'short', ChaosSize> = {
  full: { agents: 20, tasks: 200, copilotAgents: 5, expiringAgents: 3, killEverySeconds: 6, deadlineSeconds: 1500 },
  short: { agents: 6, tasks: 30, copilotAgents: 2, expiringAgents: 1, killEverySeconds: 5, deadlineSeconds: 150 },
};

export interface ChaosOptions {
  size: ChaosSize;
  /** Share of model requests that fail (429, 500, hang past the timeout, malformed body). */
  faultRate: number;
  faultKinds: readonly FaultKind[];
  seed: number;
  log: (msg: string) => void;
}

export interface ChaosTally {
  settings: ChaosSize & { faultRate: number; faultKinds: readonly FaultKind[]; seed: number; approvalTimeoutSeconds: number; llmTimeoutSeconds: number };
  durationSeconds: number;
  tasks: { submitted: number; byStatus: Record<string, number>; failureReasons: Record<string, number>; workflowStatuses: Record<string, number> };
  faults: Record<FaultKind, number> & { total: number; modelRequestsAnswered: number };
  chaos: { workerKills: number; workerStarts: number; workerExitsUnprompted: number; temporalRestarts: number; postgresRestarts: number };
  approvals: { total: number; approved: number; rejected: number; expired: number; pending: number; leftToExpire: number; decidedByApprover: number; refusedAsLate: number };
  sideEffects: Record<SideEffectTool, { ledgerKeys: number; applied: number }> & { httpPostOutcomeUnknown: number };
  workflows: { scanned: number; workflowTaskFailures: Record<string, number>; nondeterminism: number };
  violations: string[];
  ok: boolean;
}

type Role = 'autopilot' | 'copilot' | 'expiring';

interface PlannedTask {
  ticket: string;
  agentId: string;
  role: Role;
  /** For copilot and expiring agents: what the approver does with this task's request. */
  approval?: 'approve' | 'reject' | 'leave';
  id?: string;
}

const APPROVAL_TIMEOUT_SECONDS = 6;
const LLM_TIMEOUT_SECONDS = 3;

export async function runChaos(opts: ChaosOptions): Promise<ChaosTally> {
  const { size, log } = opts;
  const started = Date.now();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agents-chaos-'));
  // As root, embedded PostgreSQL runs as its own user, which must be able to enter this directory.
  fs.chmodSync(dataDir, 0o755);
  const cleanups: (() => Promise<unknown>)[] = [() => Promise.resolve(fs.rmSync(dataDir, { recursive: true, force: true }))];
  const cleanup = async () => {
    for (const stop of cleanups.reverse()) await stop().catch((err) => log(`cleanup: ${String(err)}`));
    cleanups.length = 0;
  };

  try {
    const [temporalPort, uiPort, postgresPort] = await Promise.all([getFreePort(), getFreePort(), getFreePort()]);
    log(`starting a private Temporal dev server and PostgreSQL (data in ${dataDir})`);
    const stack = await startLocalStack({ dataDir, temporalPort, uiPort, postgresPort, log: () => undefined });
    cleanups.push(() => stack.stop());
    const bundlePath = path.join(dataDir, 'workflow-bundle.js');
    fs.writeFileSync(bundlePath, (await bundleWorkflowCode({ workflowsPath: path.join(ROOT, 'workflows'), logger: quietLogger })).code);

    const flaky = await startFlakyProvider({ faultRate: opts.faultRate, kinds: opts.faultKinds, seed: opts.seed });
    cleanups.push(() => flaky.close());
    const receiver = await startWebhookReceiver();
    cleanups.push(() => receiver.close());

    const env: Record<string, string> = {
      TEMPORAL_ADDRESS: stack.temporal.address,
      TEMPORAL_UI_URL: stack.temporal.uiUrl ?? '',
      TEMPORAL_TASK_QUEUE: TASK_QUEUE,
      DATABASE_URL: stack.databaseUrl,
      WORKFLOW_BUNDLE_PATH: bundlePath,
      AI_PROVIDER: 'openai',
      OPENAI_API_KEY: 'sk-chaos',
      OPENAI_BASE_URL: flaky.url,
      LLM_TIMEOUT_SECONDS: String(LLM_TIMEOUT_SECONDS),
      ACTIVITY_HEARTBEAT_SECONDS: '2',
      // Kills, restarts and model faults all spend attempts of the same step.
      MAX_RETRIES: '6',
      CIRCUIT_RECOVERY_SECONDS: '3',
      HTTP_ALLOWED_HOSTS: receiver.host,
    };
    const config = loadConfig({ ...process.env, ...env, LOG_LEVEL: 'silent' });
    const workers = new WorkerKeeper(config, env, log);
    cleanups.push(() => workers.stop());
    await workers.ensureRunning();
    const api = await startApi(config);
    cleanups.push(() => api.stop());

    const plan = await createAgentsAndPlan(api, size, opts.seed);
    log(`submitting ${plan.length} tasks across ${size.agents} agents`);
    for (const task of plan) {
      task.id = (await api.api.createTask({ agentId: task.agentId, title: `chaos ${task.ticket}`, input: { script: scriptFor(task, plan, receiver.url) } })).id;
    }
    const byTaskId = new Map(plan.map((t) => [t.id!, t]));

    const approver = new Approver(api, byTaskId, log);
    const chaos = new ChaosMonkey(stack, workers, log);
    const progress = async () => {
      const { rows } = await api.db.query<{ n: number }>('SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1) AND status = ANY($2)', [
        [...byTaskId.keys()],
        TERMINAL,
      ]);
      return rows[0]!.n / plan.length;
    };
    approver.start();
    const chaosRun = chaos.run(size.killEverySeconds, progress);

    const deadline = started + size.deadlineSeconds * 1000;
    let done = 0;
    while (Date.now() < deadline) {
      done = await progress().catch(() => done);
      // Both restarts must have happened during the run, not after it.
      if (done >= 1 && chaos.restartsDone()) break;
      await sleep(1000);
    }
    log(`tasks finished: ${Math.round(done * 100)}%; stopping the chaos`);
    await chaos.stop();
    await chaosRun;
    await workers.ensureRunning();
    await approver.stop();
    // A task's row turns terminal just before its workflow returns; give the last ones a moment to close.
    await waitForWorkflowsClosed(api.client, [...byTaskId.keys()], 60_000);

    const tally = await verify({ api, plan, approver, flaky: flaky.faults(), answered: flaky.answered(), receiver, chaos, opts });
    tally.durationSeconds = Math.round((Date.now() - started) / 1000);
    return tally;
  } finally {
    await cleanup();
  }
}

// ---------------------------------------------------------------------------------------------
// Agents and their tasks

async function createAgentsAndPlan(api: TestStack, size: ChaosSize, seed: number): Promise<PlannedTask[]> {
  const random = mulberry32(seed + 1);
  const roles: Role[] = Array.from({ length: size.agents }, (_, i) =>
    i < size.expiringAgents ? 'expiring' : i < size.expiringAgents + size.copilotAgents ? 'copilot' : 'autopilot',
  );
  const agents: { id: string; role: Role }[] = [];
  for (const [i, role] of roles.entries()) {
    const agent = await api.api.createAgent({
      name: `chaos ${role} ${i}`,
      objective: 'Keep working through failures',
      autonomy: role === 'autopilot' ? 'autopilot' : 'copilot',
      allowedTools: ['memory_write', 'memory_read', 'send_message', 'http_post'],
      ...(role === 'expiring' ? { approvalTimeoutHours: APPROVAL_TIMEOUT_SECONDS / 3600, onApprovalTimeout: 'fail' } : {}),
    });
    agents.push({ id: agent.id as string, role });
  }
  return Array.from({ length: size.tasks }, (_, k) => {
    const agent = agents[k % agents.length]!;
    const approval = agent.role === 'autopilot' ? undefined : agent.role === 'expiring' && random() < 0.5 ? 'leave' : random() < 0.25 ? 'reject' : 'approve';
    return { ticket: `c${k}`, agentId: agent.id, role: agent.role, approval };
  });
}

/**
 * The model's script for a task (played by the offline rules behind the flaky provider). Every side
 * effect carries the task's ticket so its applications can be counted afterwards.
 */
function scriptFor(task: PlannedTask, plan: PlannedTask[], receiverUrl: string): unknown[] {
  const append = (n: number) => ({ call: 'memory_write', args: { key: 'log', op: 'append', value: `${task.ticket}:${n}` } });
  if (task.role !== 'autopilot') return [append(1), { answer: `${task.ticket} done` }];
  const peer = plan.find((t) => t.agentId !== task.agentId && t.role === 'autopilot')?.agentId ?? task.agentId;
  switch (Number(task.ticket.slice(1)) % 3) {
    case 0:
      return [{ calls: [append(1), { call: 'send_message', args: { toAgentId: peer, content: task.ticket } }] }, { answer: `${task.ticket} done` }];
    case 1:
      // http_post always waits for an approval, even on autopilot.
      return [{ call: 'http_post', args: { url: receiverUrl, body: { ticket: task.ticket } } }, { answer: `${task.ticket} posted` }];
    default:
      return [append(1), append(2), { answer: `${task.ticket} done` }];
  }
}

// ---------------------------------------------------------------------------------------------
// The worker, killed and restarted

type WorkerProcess = ReturnType<typeof spawnWorker>;

class WorkerKeeper {
  private current: WorkerProcess | undefined;
  /** Workers this run SIGKILLed on purpose, to tell its kills from crashes. */
  private readonly killed = new WeakSet<WorkerProcess>();
  private stopping = false;
  starts = 0;
  kills = 0;
  exitsUnprompted = 0;

  constructor(
    private readonly config: ReturnType<typeof loadConfig>,
    private readonly env: Record<string, string>,
    private readonly log: (msg: string) => void,
  ) {}

  /** Starts a worker unless one runs; retries while the server or the database is still coming back. */
  async ensureRunning(): Promise<void> {
    while (!this.stopping && !this.alive()) {
      const child = spawnWorker(this.config, this.env);
      try {
        await child.ready;
        this.starts += 1;
        this.current = child;
        child.once('exit', () => {
          if (!this.killed.has(child) && !this.stopping) this.exitsUnprompted += 1;
        });
      } catch (err) {
        this.log(`worker did not start, retrying: ${String(err).split('\n')[0]}`);
        await killHard(child);
        await sleep(1000);
      }
    }
  }

  async kill(): Promise<void> {
    const child = this.current;
    if (!child || !this.alive()) return;
    this.killed.add(child);
    await killHard(child);
    this.kills += 1;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.current) await killHard(this.current);
  }

  private alive(): boolean {
    const child = this.current;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }
}

/** Kills the worker every few seconds; restarts Temporal at a quarter of the tasks done and PostgreSQL at 60 %. */
class ChaosMonkey {
  private stopped = false;
  temporalRestarts = 0;
  postgresRestarts = 0;

  constructor(
    private readonly stack: LocalStack,
    readonly workers: WorkerKeeper,
    private readonly log: (msg: string) => void,
  ) {}

  restartsDone(): boolean {
    return this.temporalRestarts > 0 && this.postgresRestarts > 0;
  }

  async run(killEverySeconds: number, progress: () => Promise<number>): Promise<void> {
    while (!this.stopped) {
      await this.workers.ensureRunning();
      await sleep(killEverySeconds * 1000);
      if (this.stopped) break;
      const done = await progress().catch(() => 0);
      if (this.temporalRestarts === 0 && done >= 0.25) {
        this.log(`restarting the Temporal dev server (${Math.round(done * 100)}% done)`);
        await this.stack.restartTemporal(2000);
        this.temporalRestarts += 1;
      } else if (this.postgresRestarts === 0 && this.temporalRestarts > 0 && done >= 0.6) {
        this.log(`restarting PostgreSQL (${Math.round(done * 100)}% done)`);
        await this.stack.restartPostgres(2000);
        this.postgresRestarts += 1;
      } else {
        await this.workers.kill();
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
  }
}

// ---------------------------------------------------------------------------------------------
// The approver: decides requests through the API as they appear

interface ApproverRecord {
  decision: 'approve' | 'reject' | 'leave';
  /** HTTP status of the decision request that settled it (200 applied, 409 too late). */
  status?: number;
  taskId: string;
}

class Approver {
  readonly records = new Map<string, ApproverRecord>();
  private readonly inFlight = new Set<string>();
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly api: TestStack,
    private readonly tasks: Map<string, PlannedTask>,
    private readonly log: (msg: string) => void,
  ) {}

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        await this.poll().catch(() => undefined); // the API is unavailable while a dependency restarts
        await sleep(500);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    while (this.inFlight.size > 0) await sleep(100);
  }

  private async poll(): Promise<void> {
    const res = await this.api.api.get('/api/v1/approvals?status=pending&limit=500');
    if (res.status !== 200) return;
    for (const approval of res.body.approvals as { id: string; taskId: string; proposedAction: { tool: string } }[]) {
      if (this.inFlight.has(approval.id) || this.records.get(approval.id)?.status !== undefined) continue;
      const task = this.tasks.get(approval.taskId);
      if (!task) continue;
      // http_post asks even on autopilot agents; those are approved.
      const decision = task.approval ?? 'approve';
      if (decision === 'leave') {
        this.records.set(approval.id, { decision, taskId: approval.taskId });
        continue;
      }
      this.inFlight.add(approval.id);
      void this.decide(approval.id, approval.taskId, decision).finally(() => this.inFlight.delete(approval.id));
    }
  }

  private async decide(approvalId: string, taskId: string, decision: 'approve' | 'reject'): Promise<void> {
    try {
      const res = await this.api.api.post(`/api/v1/approvals/${approvalId}/${decision}`, { decidedBy: 'chaos-approver', reason: 'chaos run' });
      // Other answers (5xx while something restarts) leave it for the next poll.
      if (res.status === 200 || res.status === 409) this.records.set(approvalId, { decision, status: res.status, taskId });
    } catch (err) {
      this.log(`approval ${approvalId}: ${String(err)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Checks

async function waitForWorkflowsClosed(client: Client, taskIds: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const id of taskIds) {
    while (Date.now() < deadline) {
      const status = await client.workflow.getHandle(taskWorkflowId(id)).describe().then((d) => d.status.name, () => 'UNKNOWN');
      if (status !== 'RUNNING' && status !== 'UNKNOWN') break;
      await sleep(500);
    }
  }
}

interface VerifyInput {
  api: TestStack;
  plan: PlannedTask[];
  approver: Approver;
  flaky: Record<FaultKind, number>;
  answered: number;
  receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
  chaos: ChaosMonkey;
  opts: ChaosOptions;
}

async function verify(v: VerifyInput): Promise<ChaosTally> {
  const { api, plan, approver } = v;
  const violations: string[] = [];
  const ids = plan.map((t) => t.id!);
  const tickets = new Map(plan.map((t) => [t.id!, t.ticket]));
  const count = <K extends string>(acc: Record<K, number>, key: K) => ((acc[key] = (acc[key] ?? 0) + 1), acc);

  // Tasks: a terminal row with its reason, a reasoning trace, and a closed workflow.
  const { rows: taskRows } = await api.db.query<{ id: string; status: string; error: string | null; decisions: number }>(
    `SELECT t.id, t.status, t.error, (SELECT count(*)::int FROM decisions d WHERE d.task_id = t.id) AS decisions
       FROM tasks t WHERE t.id = ANY($1)`,
    [ids],
  );
  const rowsById = new Map(taskRows.map((r) => [r.id, r]));
  const byStatus: Record<string, number> = {};
  const failureReasons: Record<string, number> = {};
  const workflowStatuses: Record<string, number> = {};
  for (const id of ids) {
    const row = rowsById.get(id);
    if (!row) {
      violations.push(`task ${id} (${tickets.get(id)}) has no row: lost`);
      continue;
    }
    count(byStatus, row.status);
    if (row.status !== 'completed' && row.status !== 'failed') violations.push(`task ${id} ended ${row.status}, not completed or failed`);
    if (row.status === 'failed') {
      if (!row.error) violations.push(`task ${id} failed without a recorded reason`);
      else count(failureReasons, reasonKind(row.error));
    }
    if (row.decisions === 0) violations.push(`task ${id} has no reasoning trace`);
    const status = await api.client.workflow.getHandle(taskWorkflowId(id)).describe().then((d) => d.status.name ?? 'UNKNOWN', () => 'NOT_FOUND');
    count(workflowStatuses, status);
    if (status !== 'COMPLETED') violations.push(`workflow of task ${id} is ${status}, not COMPLETED`);
  }

  // Side effects: every application observed in the world matches exactly one ledger key.
  const { rows: ledger } = await api.db.query<{ idempotency_key: string; tool: string; task_id: string; result: unknown }>(
    'SELECT idempotency_key, tool, task_id, result FROM side_effects WHERE task_id = ANY($1)',
    [ids],
  );
  const ledgerOf = (tool: string) => ledger.filter((l) => l.tool === tool);
  const sideEffects = {
    memory_write: { ledgerKeys: ledgerOf('memory_write').length, applied: 0 },
    send_message: { ledgerKeys: ledgerOf('send_message').length, applied: 0 },
    http_post: { ledgerKeys: ledgerOf('http_post').length, applied: 0 },
    httpPostOutcomeUnknown: 0,
  };
  // memory_write: the appended markers "<ticket>:<n>", one per ledger key of that task.
  const { rows: logs } = await api.db.query<{ value: unknown }>(`SELECT value FROM memory WHERE key = 'log'`);
  const markers = logs.flatMap((r) => (Array.isArray(r.value) ? r.value : [r.value])).map(String);
  sideEffects.memory_write.applied = markers.length;
  const markerCounts = markers.reduce((acc, m) => count(acc, m), {} as Record<string, number>);
  for (const [marker, n] of Object.entries(markerCounts)) if (n > 1) violations.push(`memory_write ${marker} applied ${n} times`);
  for (const id of ids) {
    const ticket = tickets.get(id)!;
    const applied = markers.filter((m) => m.startsWith(`${ticket}:`)).length;
    const keys = ledger.filter((l) => l.task_id === id && l.tool === 'memory_write').length;
    if (applied !== keys) violations.push(`task ${id} (${ticket}): ${applied} memory writes applied, ${keys} ledger keys`);
  }
  // send_message: each message row names its key; the set must equal the ledger's.
  const { rows: messages } = await api.db.query<{ idempotency_key: string }>('SELECT idempotency_key FROM agent_messages WHERE task_id = ANY($1)', [ids]);
  sideEffects.send_message.applied = messages.length;
  compareKeys('send_message', messages.map((m) => m.idempotency_key), ledgerOf('send_message').map((l) => l.idempotency_key), violations);
  // http_post: claimed before sending (at most once). A crash between the claim and the recorded result
  // leaves the outcome unknown; the receiver may or may not have it, but never twice.
  const received = v.receiver.received.map((r) => String(r.headers['idempotency-key']));
  sideEffects.http_post.applied = received.length;
  const receivedCounts = received.reduce((acc, k) => count(acc, k), {} as Record<string, number>);
  const httpLedger = new Map(ledgerOf('http_post').map((l) => [l.idempotency_key, l.result]));
  for (const [key, n] of Object.entries(receivedCounts)) {
    if (n > 1) violations.push(`http_post ${key} received ${n} times`);
    if (!httpLedger.has(key)) violations.push(`http_post ${key} received without a ledger key`);
  }
  for (const [key, result] of httpLedger) {
    if (result === null) sideEffects.httpPostOutcomeUnknown += 1;
    else if (!receivedCounts[key]) violations.push(`http_post ${key} recorded a result but never reached the receiver`);
  }

  // Approvals: none left pending, each consistent with the side effect and with what the approver was told.
  const { rows: approvalRows } = await api.db.query<{ id: string; task_id: string; step: number; call_index: number; status: string }>(
    'SELECT id, task_id, step, call_index, status FROM approvals WHERE task_id = ANY($1)',
    [ids],
  );
  const ledgerKeys = new Set(ledger.map((l) => l.idempotency_key));
  const approvals = { total: approvalRows.length, approved: 0, rejected: 0, expired: 0, pending: 0, leftToExpire: 0, decidedByApprover: 0, refusedAsLate: 0 };
  for (const a of approvalRows) {
    if (a.status in approvals) approvals[a.status as 'approved' | 'rejected' | 'expired' | 'pending'] += 1;
    const key = `task-${a.task_id}:${a.step}:${a.call_index}`;
    const taskRow = rowsById.get(a.task_id);
    const record = approver.records.get(a.id);
    if (a.status === 'pending') violations.push(`approval ${a.id} is still pending`);
    if (a.status === 'approved' && !ledgerKeys.has(key) && taskRow?.status !== 'failed') violations.push(`approval ${a.id} approved but ${key} never ran`);
    if ((a.status === 'rejected' || a.status === 'expired') && ledgerKeys.has(key)) violations.push(`approval ${a.id} ${a.status} but ${key} ran`);
    if (a.status === 'expired' && taskRow?.status !== 'failed') violations.push(`approval ${a.id} expired but task ${a.task_id} is ${taskRow?.status}`);
    if (record?.decision === 'leave') {
      approvals.leftToExpire += 1;
      if (a.status !== 'expired') violations.push(`approval ${a.id} was left alone but is ${a.status}`);
    }
    if (record?.status === 200) {
      approvals.decidedByApprover += 1;
      const expected = record.decision === 'approve' ? 'approved' : 'rejected';
      if (a.status !== expected) violations.push(`approval ${a.id}: the API answered ${record.decision} with 200 but it is ${a.status}`);
    }
    if (record?.status === 409) {
      approvals.refusedAsLate += 1;
      if (a.status !== 'expired') violations.push(`approval ${a.id}: refused with 409 but it is ${a.status}`);
    }
  }

  const workflows = await scanHistories(api.client);
  if (workflows.nondeterminism > 0) violations.push(`${workflows.nondeterminism} workflow task(s) failed for nondeterminism`);

  const faultTotal = FAULT_KINDS.reduce((n, k) => n + v.flaky[k], 0);
  return {
    settings: {
      ...v.opts.size,
      faultRate: v.opts.faultRate,
      faultKinds: v.opts.faultKinds,
      seed: v.opts.seed,
      approvalTimeoutSeconds: APPROVAL_TIMEOUT_SECONDS,
      llmTimeoutSeconds: LLM_TIMEOUT_SECONDS,
    },
    durationSeconds: 0,
    tasks: { submitted: ids.length, byStatus, failureReasons, workflowStatuses },
    faults: { ...v.flaky, total: faultTotal, modelRequestsAnswered: v.answered },
    chaos: {
      workerKills: v.chaos.workers.kills,
      workerStarts: v.chaos.workers.starts,
      workerExitsUnprompted: v.chaos.workers.exitsUnprompted,
      temporalRestarts: v.chaos.temporalRestarts,
      postgresRestarts: v.chaos.postgresRestarts,
    },
    approvals,
    sideEffects,
    workflows,
    violations,
    ok: violations.length === 0,
  };
}

function compareKeys(tool: string, observed: string[], ledgerKeys: string[], violations: string[]): void {
  const ledger = new Set(ledgerKeys);
  const seen = new Set<string>();
  for (const key of observed) {
    if (seen.has(key)) violations.push(`${tool} ${key} applied twice`);
    if (!ledger.has(key)) violations.push(`${tool} ${key} applied without a ledger key`);
    seen.add(key);
  }
  for (const key of ledger) if (!seen.has(key)) violations.push(`${tool} ${key} in the ledger but never applied`);
}

/** A failure reason without its ids, to group them in the tally. */
function reasonKind(error: string): string {
  return error
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<id>')
    .split(':')
    .slice(0, 2)
    .join(':')
    .slice(0, 80);
}

/** Every run of every workflow on the server: workflow task failures by cause, nondeterminism among them. */
async function scanHistories(client: Client): Promise<ChaosTally['workflows']> {
  const runs: { workflowId: string; runId: string }[] = [];
  for await (const wf of client.workflow.list()) runs.push({ workflowId: wf.workflowId, runId: wf.runId });
  const failures: Record<string, number> = {};
  let nondeterminism = 0;
  const Cause = temporal.api.enums.v1.WorkflowTaskFailedCause;
  for (let i = 0; i < runs.length; i += 8) {
    await Promise.all(
      runs.slice(i, i + 8).map(async ({ workflowId, runId }) => {
        const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
        for (const event of history.events ?? []) {
          const failed = event.workflowTaskFailedEventAttributes;
          if (!failed) continue;
          const cause = Cause[failed.cause ?? 0] ?? String(failed.cause);
          failures[cause] = (failures[cause] ?? 0) + 1;
          if (failed.cause === Cause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR || /nondetermin/i.test(failed.failure?.message ?? '')) {
            nondeterminism += 1;
          }
        }
      }),
    );
  }
  return { scanned: runs.length, workflowTaskFailures: failures, nondeterminism };
}

const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (msg: string) => console.error(msg),
  error: (msg: string) => console.error(msg),
};

