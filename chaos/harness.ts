/**
 * The chaos run, shared by `npm run chaos` and test/chaos.test.ts: on a private stack (its own Temporal and
 * PostgreSQL, because both get restarted) it keeps many agent tasks in flight, with approvals,
 * side-effecting tools and reminders, while it breaks what they depend on: the worker is SIGKILLed every
 * few seconds, the model provider fails a share of its requests, and Temporal and PostgreSQL are
 * restarted. On the dev-server profile the dev server is restarted once; on the cluster profile
 * (temporal/cluster.ts, on the same PostgreSQL) the history and matching services are SIGKILLed several
 * times each and the frontend is restarted, and PostgreSQL restarts under all of them. Tasks are submitted,
 * approvals decided and reminders fire during the chaos. Then it checks what must survive all of that and
 * returns a tally with every violation it found.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { loadConfig } from '../lib/config';
import { startPrivateStack, type AnyLocalStack } from '../scripts/local-stack';
import type { ClusterService } from '../temporal/cluster';
import { killHard, spawnWorker, startApi, type TestStack } from '../test/helpers/stack';
import { startWebhookReceiver } from '../test/helpers/webhook-receiver';
import { agentWorkflowId, getAgentStateQuery, TERMINAL_TASK_STATUSES } from '../contract/definitions';
import { FAULT_KINDS, mulberry32, startFlakyProvider, type FaultKind } from './flaky-provider';
import { writeWorkflowBundle } from '../workers/bundle';

const TASK_QUEUE = 'chaos-agents';
const TERMINAL: readonly string[] = TERMINAL_TASK_STATUSES;
type SideEffectTool = 'memory_write' | 'send_message' | 'http_post';

export type ChaosProfile = 'dev' | 'cluster';

export interface ChaosSize {
  agents: number;
  tasks: number;
  /** Agents whose side effects wait for the approver. */
  copilotAgents: number;
  /** Copilot agents with a short approval timeout whose every request the approver leaves to expire. */
  expiringAgents: number;
  /**
   * Copilot agents whose one approval stays pending until every other task has finished. AGENTS_MAX_ACTIVE
   * is set to this number: were waiting agents to keep their active slots, no other agent could work.
   */
  stalledAgents: number;
  /** Autopilot tasks whose model calls after their first tool call all fail: the retry policy runs out. */
  outageTasks: number;
  /** Tasks are submitted over this long, from the start of the chaos. */
  submitSeconds: number;
  /** Interval reminders created at the start of the chaos and deleted when the submissions end. */
  intervalReminders: number;
  /** Their interval. */
  reminderEverySeconds: number;
  /** One-shot reminders created during the chaos, each due a little later. */
  oneShotReminders: number;
  /** Cluster profile: how many times the history service and the matching service are each SIGKILLed. */
  serviceKills: number;
  /** The worker is SIGKILLed this long after each (re)start. */
  killEverySeconds: number;
  /** The chaos stops after this long even if tasks remain. */
  deadlineSeconds: number;
  /** After the chaos, how long a healthy stack may take to finish what remains (unfinished then counts as lost). */
  settleSeconds: number;
}

export const SIZES: Record<'full' | 'short', ChaosSize> = {
  full: {
    agents: 20,
    tasks: 200,
    copilotAgents: 5,
    expiringAgents: 2,
    stalledAgents: 3,
    outageTasks: 3,
    submitSeconds: 240,
    intervalReminders: 3,
    reminderEverySeconds: 20,
    oneShotReminders: 4,
    serviceKills: 3,
    killEverySeconds: 6,
    deadlineSeconds: 900,
    settleSeconds: 300,
  },
  short: {
    agents: 6,
    tasks: 30,
    copilotAgents: 2,
    expiringAgents: 1,
    stalledAgents: 2,
    outageTasks: 1,
    submitSeconds: 40,
    intervalReminders: 1,
    reminderEverySeconds: 10,
    oneShotReminders: 2,
    serviceKills: 2,
    killEverySeconds: 5,
    deadlineSeconds: 150,
    settleSeconds: 120,
  },
};

export interface ChaosOptions {
  size: ChaosSize;
  /** Temporal as the dev server (default) or as the self-hosted cluster. */
  profile?: ChaosProfile;
  /** Share of model requests that fail (429, 500, hang past the timeout, malformed body). */
  faultRate: number;
  faultKinds: readonly FaultKind[];
  seed: number;
  log: (msg: string) => void;
}

/** The failures the run causes on purpose; any other failure is the infrastructure's, and a violation. */
export const INJECTED_CAUSES = {
  /** The approver left the request alone and the agent fails its task on timeout. */
  approval_expired: /^approval \S+ for \S+ expired/,
  /** Every model call of the task after its first tool call fails: more faults than the retry policy allows. */
  provider_outage: /chaos-outage/,
} as const;
export type InjectedCause = keyof typeof INJECTED_CAUSES;

export interface ChaosTally {
  profile: ChaosProfile;
  settings: ChaosSize & {
    faultRate: number;
    faultKinds: readonly FaultKind[];
    seed: number;
    approvalTimeoutSeconds: number;
    llmTimeoutSeconds: number;
  };
  durationSeconds: number;
  tasks: {
    submitted: number;
    /** Tasks the reminders fired. */
    fromReminders: number;
    byStatus: Record<string, number>;
    failureReasons: Record<string, number>;
    /** Failed tasks by the cause the run injected on purpose. */
    injectedFailures: Record<InjectedCause, number>;
    /** Failed tasks with no injected cause: each is also a violation. */
    infrastructureFailures: number;
    agentHolds: Record<string, number>;
  };
  /** When the submissions happened, in seconds from the start of the chaos. */
  timeline: {
    submissionsSeconds: [number, number];
    approvalDecisionsSeconds: [number, number] | null;
    reminderFiresSeconds: [number, number] | null;
  };
  faults: Record<FaultKind, number> & { total: number; outages: number; modelRequestsAnswered: number };
  chaos: {
    workerKills: number;
    workerStarts: number;
    workerExitsUnprompted: number;
    /** The fault schedule as it happened: one line per event, with the share of tasks done then. */
    events: string[];
    eventsPlanned: number;
    temporalRestarts: number;
    postgresRestarts: number;
    historyKills: number;
    matchingKills: number;
    frontendRestarts: number;
    /** Cluster: restarts of each service by its supervisor, including any exit the run did not cause. */
    serviceRestarts: Partial<Record<ClusterService, number>>;
  };
  approvals: {
    total: number;
    approved: number;
    rejected: number;
    expired: number;
    pending: number;
    leftToExpire: number;
    decidedByApprover: number;
    refusedAsLate: number;
  };
  reminders: {
    interval: number;
    oneShot: number;
    fires: number;
    /** Fires of each interval reminder, in creation order. */
    intervalFires: number[];
  };
  sideEffects: Record<SideEffectTool, { ledgerKeys: number; applied: number }> & { httpPostOutcomeUnknown: number };
  /** Every run's history: workflow task failures by cause, and the retries the faults caused. */
  workflows: {
    scanned: number;
    workflowTaskFailures: Record<string, number>;
    nondeterminism: number;
    workflowTaskTimeouts: number;
    activityRetries: number;
  };
  /** Whether every other task finished while the stalled agents' approvals were still pending. */
  stalled: { agents: number; othersFinishedWhileTheyWaited: boolean };
  violations: string[];
  ok: boolean;
}

type Role = 'autopilot' | 'copilot' | 'expiring' | 'stalled';

interface PlannedTask {
  ticket: string;
  agentId: string;
  role: Role;
  /** For copilot, expiring and stalled agents: what the approver does with this task's request ('hold': nothing, until released). */
  approval?: 'approve' | 'reject' | 'leave' | 'hold';
  /** The failure the run causes on purpose; without one the task must complete. */
  injected?: InjectedCause;
  id?: string;
  /** Seconds from the start of the chaos. */
  submittedAt?: number;
}

const APPROVAL_TIMEOUT_SECONDS = 6;
const LLM_TIMEOUT_SECONDS = 3;
const MODEL_LATENCY_MS = 400;
/** In the task input of an outage task; the flaky provider fails the task's later requests. */
const OUTAGE_MARKER = 'chaos-outage';
/** A worker that has not polled after this long is killed and started again. */
const WORKER_START_TIMEOUT_MS = 45_000;

export async function runChaos(opts: ChaosOptions): Promise<ChaosTally> {
  const { size, log } = opts;
  const profile = opts.profile ?? 'dev';
  const started = Date.now();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agents-chaos-'));
  // As root, embedded PostgreSQL runs as its own user, which must be able to enter this directory.
  fs.chmodSync(dataDir, 0o755);
  const cleanups: (() => Promise<unknown>)[] = [
    () => Promise.resolve(fs.rmSync(dataDir, { recursive: true, force: true })),
  ];
  const cleanup = async () => {
    for (const stop of cleanups.reverse()) await stop().catch((err) => log(`cleanup: ${String(err)}`));
    cleanups.length = 0;
  };

  try {
    log(
      `starting a private ${profile === 'cluster' ? 'Temporal cluster' : 'Temporal dev server'} and PostgreSQL (data in ${dataDir})`,
    );
    // A service restarted by its supervisor keeps the ports it was given.
    const stack = await startPrivateStack({
      temporal: profile,
      dataDir,
      log: () => undefined,
      announce: (msg) => log(msg),
    });
    cleanups.push(() => stack.stop());
    const bundlePath = await writeWorkflowBundle(path.join(dataDir, 'workflow-bundle.js'));

    const flaky = await startFlakyProvider({
      faultRate: opts.faultRate,
      kinds: opts.faultKinds,
      seed: opts.seed,
      outageMarker: OUTAGE_MARKER,
    });
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
      // The receiver is on loopback, which the HTTP tools refuse unless a host is explicitly allowed.
      HTTP_ALLOW_PRIVATE_HOSTS: receiver.host,
      // As many active slots as stalled agents: the others can only work if waiting agents give theirs back.
      AGENTS_MAX_ACTIVE: String(size.stalledAgents),
    };
    const config = loadConfig({ ...process.env, ...env, LOG_LEVEL: 'silent' });
    const workers = new WorkerKeeper(config, env, log);
    cleanups.push(() => workers.stop());
    await workers.ensureRunning();
    const api = await startApi(config);
    cleanups.push(() => api.stop());

    const plan = await createAgentsAndPlan(api, size, opts.seed);
    const stalled = plan.filter((t) => t.approval === 'hold');
    const others = plan.filter((t) => t.approval !== 'hold');
    const submitter = new Submitter(api, plan, receiver.url, log);
    // The stalled agents' tasks go first, so they take the slots before anyone else.
    for (const task of stalled) await submitter.submit(task, 0);

    const chaosStarted = Date.now();
    const approver = new Approver(api, submitter.byTaskId, chaosStarted, log);
    const reminders = new ReminderKeeper(api, plan, size, chaosStarted, log);
    const chaos = new ChaosMonkey(stack, workers, size, log);
    log(
      `submitting ${others.length} more tasks across ${size.agents} agents over ${size.submitSeconds} s; ` +
        `fault schedule: ${chaos.plannedEvents().join(', ')}`,
    );
    const submitting = submitter.spread(others, size.submitSeconds, chaosStarted);
    const reminding = reminders.run(size.submitSeconds);

    const progressOf = async (tasks: PlannedTask[]) => {
      const ids = tasks.flatMap((t) => (t.id ? [t.id] : []));
      const { rows } = await api.db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1) AND status = ANY($2)',
        [ids, TERMINAL],
      );
      return rows[0]!.n / tasks.length;
    };
    const stalledPending = async () => {
      const { rows } = await api.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM approvals WHERE task_id = ANY($1) AND status = 'pending'`,
        [stalled.map((t) => t.id!)],
      );
      return rows[0]!.n;
    };
    let othersFinishedWhileTheyWaited = false;
    // Once every other task has finished, the stalled approvals (still pending) are released.
    const progress = async () => {
      if (!approver.released) {
        const othersDone = await progressOf(others);
        if (othersDone < 1) return othersDone * (others.length / plan.length);
        othersFinishedWhileTheyWaited = (await stalledPending()) === stalled.length;
        log(
          `every other task finished while ${stalled.length} stalled approvals waited: ${othersFinishedWhileTheyWaited}; releasing them`,
        );
        approver.released = true;
      }
      return progressOf(plan);
    };
    approver.start();
    const chaosRun = chaos.run(size.deadlineSeconds, progress);

    // From the start of the chaos: building or starting the stack does not count.
    const deadline = chaosStarted + size.deadlineSeconds * 1000;
    let done = 0;
    while (Date.now() < deadline) {
      done = await progress().catch(() => done);
      // The whole fault schedule must have happened during the run, not after it.
      if (done >= 1 && chaos.scheduleDone() && reminders.done) break;
      await sleep(1000);
    }
    log(`tasks finished: ${Math.round(done * 100)}%; stopping the chaos`);
    await chaos.stop();
    await chaosRun;
    await submitting;
    await reminders.stop();
    await reminding;
    await workers.ensureRunning();
    // Whatever the chaos interrupted must now finish on a healthy stack, approvals still being decided.
    const settleBy = Date.now() + size.settleSeconds * 1000;
    const remindersSettled = async () => (await reminders.unfinishedFires()) === 0;
    while (Date.now() < settleBy) {
      done = await progress().catch(() => done);
      if (done >= 1 && (await remindersSettled().catch(() => false))) break;
      await sleep(1000);
    }
    log(`tasks finished: ${Math.round(done * 100)}%; checking`);
    await approver.stop();
    const fired = await reminders.firedTasks();
    // A task's row turns terminal just before its agent moves on; give the last ones a moment to.
    await waitForAgentsDone(api.client, [...plan, ...fired], 60_000);

    const tally = await verify({
      api,
      plan,
      fired,
      approver,
      reminders,
      flaky,
      receiver,
      chaos,
      stack,
      opts: { ...opts, profile },
    });
    tally.durationSeconds = Math.round((Date.now() - started) / 1000);
    tally.timeline = {
      submissionsSeconds: submitter.window(),
      approvalDecisionsSeconds: approver.window(),
      reminderFiresSeconds: await reminders.fireWindow(),
    };
    tally.stalled = { agents: size.stalledAgents, othersFinishedWhileTheyWaited };
    if (!othersFinishedWhileTheyWaited) {
      tally.violations.push(
        `agents waiting for approval kept others from working: not every other task finished while the ${stalled.length} stalled approvals waited`,
      );
    }
    if (!chaos.scheduleDone())
      tally.violations.push(
        `the fault schedule did not finish before the deadline: ${tally.chaos.events.length} of ${tally.chaos.eventsPlanned} events`,
      );
    tally.ok = tally.violations.length === 0;
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
  const stalledRoles: Role[] = Array.from({ length: size.stalledAgents }, () => 'stalled');
  const agents: { id: string; role: Role }[] = [];
  const stalledAgents: { id: string; role: Role }[] = [];
  for (const [i, role] of [...roles, ...stalledRoles].entries()) {
    const agent = await api.api.createAgent({
      name: `chaos ${role} ${i}`,
      objective: 'Keep working through failures',
      autonomy: role === 'autopilot' ? 'autopilot' : 'copilot',
      allowedTools: ['memory_write', 'memory_read', 'send_message', 'http_post'],
      ...(role === 'expiring'
        ? { approvalTimeoutHours: APPROVAL_TIMEOUT_SECONDS / 3600, onApprovalTimeout: 'fail' }
        : {}),
    });
    (role === 'stalled' ? stalledAgents : agents).push({ id: agent.id as string, role });
  }
  const held = stalledAgents.map((agent, k): PlannedTask => ({
    ticket: `s${k}`,
    agentId: agent.id,
    role: 'stalled',
    approval: 'hold',
  }));
  const tasks = Array.from({ length: size.tasks }, (_, k): PlannedTask => {
    const agent = agents[k % agents.length]!;
    // Every request of an expiring agent is left alone: the only expiries are the ones the run intends.
    const approval =
      agent.role === 'autopilot'
        ? undefined
        : agent.role === 'expiring'
          ? 'leave'
          : random() < 0.25
            ? 'reject'
            : 'approve';
    return {
      ticket: `c${k}`,
      agentId: agent.id,
      role: agent.role,
      approval,
      ...(approval === 'leave' ? { injected: 'approval_expired' as const } : {}),
    };
  });
  // The outage tasks: autopilot tasks that write to memory (no approval), spread over the run.
  const writers = tasks.filter((t) => t.role === 'autopilot' && Number(t.ticket.slice(1)) % 3 === 2);
  for (let i = 0; i < size.outageTasks && writers.length > 0; i++) {
    writers[Math.floor(((i + 0.5) * writers.length) / size.outageTasks)]!.injected = 'provider_outage';
  }
  return held.concat(tasks);
}

/**
 * The model's script for a task (played by the offline rules behind the flaky provider). Every side
 * effect carries the task's ticket so its applications can be counted afterwards.
 */
function scriptFor(task: PlannedTask, plan: PlannedTask[], receiverUrl: string): unknown[] {
  const append = (n: number) => ({
    call: 'memory_write',
    args: { key: 'log', op: 'append', value: `${task.ticket}:${n}` },
  });
  // Each tool-calling turn takes a moment, as a real model's would, so kills land on work in flight.
  const turn = (entry: object) => ({ ...entry, delayMs: MODEL_LATENCY_MS });
  const answer = { answer: `${task.ticket} done` };
  if (task.role !== 'autopilot') return [turn(append(1)), answer];
  const peer = plan.find((t) => t.agentId !== task.agentId && t.role === 'autopilot')?.agentId ?? task.agentId;
  switch (Number(task.ticket.slice(1)) % 3) {
    case 0:
      return [
        turn({ calls: [append(1), { call: 'send_message', args: { toAgentId: peer, content: task.ticket } }] }),
        answer,
      ];
    case 1:
      // http_post always waits for an approval, even on autopilot.
      return [turn({ call: 'http_post', args: { url: receiverUrl, body: { ticket: task.ticket } } }), answer];
    default:
      return [turn(append(1)), turn(append(2)), answer];
  }
}

/**
 * Submits tasks through the API while everything restarts. Each ticket is the request's Idempotency-Key, so
 * after a failed or lost answer the submitter simply sends it again: the API answers 200 with the task the
 * first request created, or submits the same task id, which the agent accepts once.
 */
class Submitter {
  readonly byTaskId = new Map<string, PlannedTask>();
  private first: number | undefined;
  private last: number | undefined;
  private chaosStarted = Date.now();

  constructor(
    private readonly api: TestStack,
    private readonly plan: PlannedTask[],
    private readonly receiverUrl: string,
    private readonly log: (msg: string) => void,
  ) {}

  /** Submits `tasks` one by one, evenly over `seconds`. */
  async spread(tasks: PlannedTask[], seconds: number, chaosStarted: number): Promise<void> {
    this.chaosStarted = chaosStarted;
    for (const [i, task] of tasks.entries()) {
      const due = chaosStarted + (i / tasks.length) * seconds * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
      await this.submit(task, chaosStarted);
    }
  }

  async submit(task: PlannedTask, chaosStarted: number): Promise<void> {
    const title = `chaos ${task.ticket}`;
    const input = {
      script: scriptFor(task, this.plan, this.receiverUrl),
      ...(task.injected === 'provider_outage' ? { fault: OUTAGE_MARKER } : {}),
    };
    for (let attempt = 1; !task.id; attempt++) {
      try {
        const res = await this.api.api.request(
          'POST',
          '/api/v1/tasks',
          { agentId: task.agentId, title, input },
          { headers: { 'idempotency-key': `chaos-${task.ticket}` } },
        );
        if (res.status === 201 || res.status === 200) task.id = res.body.id as string;
        else throw new Error(`${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      } catch (err) {
        if (attempt % 5 === 1) this.log(`submitting ${task.ticket} failed (attempt ${attempt}): ${String(err)}`);
        await sleep(2000);
      }
    }
    const at = (Date.now() - chaosStarted) / 1000;
    task.submittedAt = at;
    if (chaosStarted === this.chaosStarted) {
      this.first ??= at;
      this.last = at;
    }
    this.byTaskId.set(task.id, task);
  }

  /** First and last submission during the chaos, in seconds from its start. */
  window(): [number, number] {
    return [Math.round(this.first ?? 0), Math.round(this.last ?? 0)];
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
      const spawnedAt = Date.now();
      let output = '';
      const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000));
      child.stdout!.on('data', keep);
      child.stderr!.on('data', keep);
      try {
        await Promise.race([
          child.ready,
          sleep(WORKER_START_TIMEOUT_MS).then(() => Promise.reject(new Error('no "worker started" in time'))),
        ]);
        this.starts += 1;
        this.current = child;
        this.log(`worker ${child.pid} ready in ${((Date.now() - spawnedAt) / 1000).toFixed(1)} s`);
        child.once('exit', (code, signal) => {
          if (this.killed.has(child) || this.stopping) return;
          this.exitsUnprompted += 1;
          this.log(`worker exited on its own (${signal ?? code}): ${output.slice(-1000)}`);
        });
      } catch (err) {
        this.log(`worker did not start, retrying: ${String(err).split('\n')[0]}\n${output.slice(-1500)}`);
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
    this.log(`worker ${child.pid} SIGKILLed`);
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

/** Kills the worker every few seconds; restarts Temporal at a fifth of the tasks (or of the deadline) and PostgreSQL at half. */
type ChaosEventKind = 'history' | 'matching' | 'frontend' | 'temporal' | 'postgres';

/** When each event of the fault schedule comes: at this share of the tasks done, or of the deadline. */
interface ScheduledEvent {
  kind: ChaosEventKind;
  at: number;
}

const EVENT_NAMES: Record<ChaosEventKind, string> = {
  history: 'SIGKILL the history service',
  matching: 'SIGKILL the matching service',
  frontend: 'restart the frontend',
  temporal: 'restart the Temporal dev server',
  postgres: 'restart PostgreSQL',
};

/**
 * The fault schedule of a profile. Dev server: the server restarts once and PostgreSQL once. Cluster:
 * history and matching are each SIGKILLed `serviceKills` times, alternating, with the frontend restart and
 * the PostgreSQL restart (under every service) among them; spread from 8 % to 70 % of the run.
 */
export function faultSchedule(profile: ChaosProfile, serviceKills: number): ScheduledEvent[] {
  if (profile === 'dev')
    return [
      { kind: 'temporal', at: 0.2 },
      { kind: 'postgres', at: 0.5 },
    ];
  const kinds: ChaosEventKind[] = [];
  for (let i = 0; i < serviceKills; i++) {
    kinds.push('history', 'matching');
    if (i === 0) kinds.push('frontend');
    if (i === Math.floor((serviceKills - 1) / 2)) kinds.push('postgres');
  }
  return kinds.map((kind, i) => ({ kind, at: 0.08 + (0.62 * i) / Math.max(1, kinds.length - 1) }));
}

/**
 * Kills the worker every few seconds and works through the fault schedule in between: each event when its
 * share of the tasks is done or its share of the deadline has passed, whichever comes first, one at a time.
 */
class ChaosMonkey {
  private stopped = false;
  private readonly schedule: ScheduledEvent[];
  readonly events: string[] = [];
  readonly counts: Record<ChaosEventKind, number> = { history: 0, matching: 0, frontend: 0, temporal: 0, postgres: 0 };

  constructor(
    private readonly stack: AnyLocalStack,
    readonly workers: WorkerKeeper,
    private readonly size: ChaosSize,
    private readonly log: (msg: string) => void,
  ) {
    this.schedule = faultSchedule(stack.kind, size.serviceKills);
  }

  plannedEvents(): string[] {
    return this.schedule.map((e) => `${EVENT_NAMES[e.kind]} at ${Math.round(e.at * 100)}%`);
  }

  scheduleDone(): boolean {
    return this.events.length === this.schedule.length;
  }

  async run(deadlineSeconds: number, progress: () => Promise<number>): Promise<void> {
    const started = Date.now();
    const reached = (share: number, done: number) =>
      done >= share || Date.now() - started >= share * deadlineSeconds * 1000;
    while (!this.stopped) {
      await this.workers.ensureRunning();
      await sleep(this.size.killEverySeconds * 1000);
      if (this.stopped) break;
      const done = await progress().catch(() => 0);
      const next = this.schedule[this.events.length];
      if (next && reached(next.at, done)) {
        const t0 = Date.now();
        this.log(`${EVENT_NAMES[next.kind]} (${Math.round(done * 100)}% done)`);
        await this.act(next.kind);
        this.counts[next.kind] += 1;
        const line = `${EVENT_NAMES[next.kind]} at ${Math.round((t0 - started) / 1000)} s, ${Math.round(done * 100)}% done, back in ${((Date.now() - t0) / 1000).toFixed(1)} s`;
        this.events.push(line);
        this.log(line);
      } else {
        await this.workers.kill();
      }
    }
  }

  private async act(kind: ChaosEventKind): Promise<void> {
    const stack = this.stack;
    if (kind === 'temporal') return stack.restartTemporal(2000);
    if (kind === 'postgres') return stack.restartPostgres(2000);
    if (stack.kind !== 'cluster') throw new Error(`${kind} is a cluster event`);
    const service = stack.temporal.services[kind];
    const restarts = service.restarts;
    // SIGKILL: the process dies mid-write, as on a crashed node. The frontend is asked to stop (SIGTERM), as
    // in a rolling restart. Either way its supervisor starts it again.
    service.kill(kind === 'frontend' ? 'SIGTERM' : 'SIGKILL');
    await Promise.race([
      service.restarted(restarts),
      sleep(120_000).then(() => Promise.reject(new Error(`${service.name} was not restarted within 120 s`))),
    ]);
  }

  serviceRestarts(): Partial<Record<ClusterService, number>> {
    if (this.stack.kind !== 'cluster') return {};
    const services = this.stack.temporal.services;
    return Object.fromEntries(Object.entries(services).map(([name, p]) => [name, p.restarts]));
  }

  async stop(): Promise<void> {
    this.stopped = true;
  }
}

// ---------------------------------------------------------------------------------------------
// The approver: decides requests through the API as they appear

export interface ApproverRecord {
  decision: 'approve' | 'reject' | 'leave';
  /** HTTP status of the decision request that settled it (200 applied, 409 too late). */
  status?: number;
  taskId: string;
}

class Approver {
  readonly records = new Map<string, ApproverRecord>();
  private readonly inFlight = new Set<string>();
  /** 409 answers for requests that were still pending, asked again later. */
  earlyRefusals = 0;
  /** Held requests (stalled agents) are decided only once this is set. */
  released = false;
  private running = false;
  private loop: Promise<void> | undefined;
  /** First and last decision the API applied, in seconds from the start of the chaos. */
  private first: number | undefined;
  private last: number | undefined;

  constructor(
    private readonly api: TestStack,
    private readonly tasks: Map<string, PlannedTask>,
    private readonly chaosStarted: number,
    private readonly log: (msg: string) => void,
  ) {}

  window(): [number, number] | null {
    return this.first === undefined ? null : [Math.round(this.first), Math.round(this.last ?? this.first)];
  }

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
    const res = await Promise.race([
      this.api.api.get('/api/v1/approvals?status=pending&limit=500'),
      sleep(10_000).then(() => Promise.reject(new Error('approval list timed out'))),
    ]);
    if (res.status !== 200) return;
    for (const approval of res.body.approvals as { id: string; taskId: string; proposedAction: { tool: string } }[]) {
      if (this.inFlight.has(approval.id) || this.records.get(approval.id)?.status !== undefined) continue;
      const task = this.tasks.get(approval.taskId);
      if (!task) continue;
      // http_post asks even on autopilot agents; those are approved. Held requests wait for the release.
      const decision =
        task.approval === 'hold' ? (this.released ? 'approve' : undefined) : (task.approval ?? 'approve');
      if (!decision) continue;
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
      const res = await this.api.api.post(`/api/v1/approvals/${approvalId}/${decision}`, {
        decidedBy: 'chaos-approver',
        reason: 'chaos run',
      });
      if (
        res.status === 409 &&
        (await this.api.api.get(`/api/v1/approvals/${approvalId}`)).body?.status === 'pending'
      ) {
        // Refused although still pending: the workflow has not registered the request yet (its worker
        // died between writing the row and recording the activity's result). Asked again next poll.
        this.earlyRefusals += 1;
        return;
      }
      // Other answers (5xx while something restarts) leave it for the next poll.
      if (res.status === 200) {
        const at = (Date.now() - this.chaosStarted) / 1000;
        this.first ??= at;
        this.last = at;
      }
      if (res.status === 200 || res.status === 409)
        this.records.set(approvalId, { decision, status: res.status, taskId });
      else this.log(`approval ${approvalId}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
    } catch (err) {
      this.log(`approval ${approvalId}: ${String(err)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reminders: created, firing and deleted during the chaos

interface ChaosReminder {
  label: string;
  agentId: string;
  kind: 'every' | 'at';
  id?: string;
  /** When the API confirmed the deletion (interval reminders). */
  deletedAt?: number;
}

/** What a reminder left behind: its fires by scheduled time. */
export interface ReminderObservation {
  label: string;
  kind: 'every' | 'at';
  /** Created (the API answered 201); a reminder the run never managed to create is a violation. */
  created: boolean;
  deletedAt?: string;
  fires: string[];
}

/**
 * Interval reminders on autopilot agents from the start of the chaos until the submissions end, and
 * one-shot reminders created during it, each due a few seconds later. A fire's task reads memory and
 * answers: it has no side effect of its own, so any count of ticks is consistent.
 */
class ReminderKeeper {
  readonly reminders: ChaosReminder[] = [];
  done = false;
  private stopping = false;

  constructor(
    private readonly api: TestStack,
    plan: PlannedTask[],
    private readonly size: ChaosSize,
    private readonly chaosStarted: number,
    private readonly log: (msg: string) => void,
  ) {
    const agents = [...new Set(plan.filter((t) => t.role === 'autopilot').map((t) => t.agentId))];
    for (let i = 0; i < size.intervalReminders; i++)
      this.reminders.push({ label: `r${i}`, agentId: agents[i % agents.length]!, kind: 'every' });
    for (let i = 0; i < size.oneShotReminders; i++)
      this.reminders.push({
        label: `o${i}`,
        agentId: agents[(size.intervalReminders + i) % agents.length]!,
        kind: 'at',
      });
  }

  async run(seconds: number): Promise<void> {
    const input = {
      script: [{ call: 'memory_read', args: { key: 'log' }, delayMs: MODEL_LATENCY_MS }, { answer: 'tick done' }],
    };
    const interval = this.reminders.filter((r) => r.kind === 'every');
    const oneShot = this.reminders.filter((r) => r.kind === 'at');
    for (const r of interval)
      await this.create(r, { every: `${this.size.reminderEverySeconds}s` }, input).catch((err) =>
        this.log(String(err)),
      );
    for (const [i, r] of oneShot.entries()) {
      const due = this.chaosStarted + ((i + 0.5) / oneShot.length) * seconds * 1000;
      while (!this.stopping && Date.now() < due) await sleep(200);
      if (this.stopping) break;
      // Due a few seconds on, so it fires while the chaos goes on (a slow creation moves it on further).
      await this.create(r, () => ({ at: new Date(Date.now() + 8000).toISOString() }), input).catch((err) =>
        this.log(String(err)),
      );
    }
    while (!this.stopping && Date.now() < this.chaosStarted + seconds * 1000) await sleep(200);
    for (const r of interval) await this.remove(r);
    this.done = true;
  }

  async stop(): Promise<void> {
    this.stopping = true;
  }

  private async create(r: ChaosReminder, schedule: object | (() => object), input: object): Promise<void> {
    const title = `chaos reminder ${r.label}`;
    for (let attempt = 1; !r.id && !this.stopping; attempt++) {
      try {
        const body = { title, schedule: typeof schedule === 'function' ? schedule() : schedule, input };
        const res = await this.api.api.post(`/api/v1/agents/${r.agentId}/reminders`, body);
        if (res.status === 201) r.id = res.body.id as string;
        else throw new Error(`${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      } catch (err) {
        if (attempt % 5 === 1) this.log(`creating reminder ${r.label} failed (attempt ${attempt}): ${String(err)}`);
        await sleep(2000);
        // The API may have created it before its answer was lost.
        const { rows } = await this.api.db
          .query<{ id: string }>('SELECT id FROM reminders WHERE agent_id = $1 AND title = $2', [r.agentId, title])
          .catch(() => ({ rows: [] as { id: string }[] }));
        r.id = rows[0]?.id;
      }
    }
  }

  private async remove(r: ChaosReminder): Promise<void> {
    for (let attempt = 1; r.id && r.deletedAt === undefined; attempt++) {
      try {
        const res = await this.api.api.request('DELETE', `/api/v1/agents/${r.agentId}/reminders/${r.id}`);
        if (res.status === 204) r.deletedAt = Date.now();
        else throw new Error(`${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      } catch (err) {
        if (attempt % 5 === 1) this.log(`deleting reminder ${r.label} failed (attempt ${attempt}): ${String(err)}`);
        await sleep(2000);
      }
    }
  }

  private async fireRows(): Promise<{ id: string; reminderId: string; scheduledFor: string; status: string }[]> {
    const ids = this.reminders.flatMap((r) => (r.id ? [r.id] : []));
    const { rows } = await this.api.db.query<{ id: string; reminderId: string; scheduledFor: string; status: string }>(
      `SELECT id, input->'reminder'->>'id' AS "reminderId", input->'reminder'->>'scheduledFor' AS "scheduledFor", status
         FROM tasks WHERE input->'reminder'->>'id' = ANY($1) ORDER BY input->'reminder'->>'scheduledFor'`,
      [ids],
    );
    return rows;
  }

  /** Fires whose task has not finished, and one-shot reminders that have not fired yet. */
  async unfinishedFires(): Promise<number> {
    const rows = await this.fireRows();
    const fired = new Set(rows.map((r) => r.reminderId));
    const unfired = this.reminders.filter((r) => r.kind === 'at' && r.id && !fired.has(r.id)).length;
    return rows.filter((r) => !TERMINAL.includes(r.status)).length + unfired;
  }

  async firedTasks(): Promise<PlannedTask[]> {
    const byId = new Map(this.reminders.map((r) => [r.id, r]));
    return (await this.fireRows()).map((row) => {
      const r = byId.get(row.reminderId)!;
      return { ticket: `${r.label}@${row.scheduledFor}`, agentId: r.agentId, role: 'autopilot', id: row.id };
    });
  }

  async observations(): Promise<ReminderObservation[]> {
    const rows = await this.fireRows();
    return this.reminders.map((r) => ({
      label: r.label,
      kind: r.kind,
      created: r.id !== undefined,
      ...(r.deletedAt !== undefined ? { deletedAt: new Date(r.deletedAt).toISOString() } : {}),
      fires: rows.filter((row) => row.reminderId === r.id).map((row) => row.scheduledFor),
    }));
  }

  /** First and last scheduled fire, in seconds from the start of the chaos. */
  async fireWindow(): Promise<[number, number] | null> {
    const times = (await this.fireRows()).map((r) => (Date.parse(r.scheduledFor) - this.chaosStarted) / 1000);
    return times.length ? [Math.round(Math.min(...times)), Math.round(Math.max(...times))] : null;
  }
}

// ---------------------------------------------------------------------------------------------
// Checks

/** Whether the task's agent still runs it or has it queued ('running', 'queued'), or is done with it ('done'). */
async function agentHold(client: Client, task: PlannedTask): Promise<string> {
  const state = await client.workflow
    .getHandle(agentWorkflowId(task.agentId))
    .query(getAgentStateQuery)
    .catch(() => null);
  if (!state) return 'UNKNOWN';
  if (state.current?.taskId === task.id) return 'running';
  return state.queue.some((g) => g.taskId === task.id) ? 'queued' : 'done';
}

async function waitForAgentsDone(client: Client, plan: PlannedTask[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const task of plan) {
    while (Date.now() < deadline && (await agentHold(client, task)) !== 'done') await sleep(500);
  }
}

interface VerifyInput {
  api: TestStack;
  plan: PlannedTask[];
  /** The tasks the reminders fired. */
  fired: PlannedTask[];
  approver: Approver;
  reminders: ReminderKeeper;
  flaky: Awaited<ReturnType<typeof startFlakyProvider>>;
  receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
  chaos: ChaosMonkey;
  stack: AnyLocalStack;
  opts: ChaosOptions & { profile: ChaosProfile };
}

/** What the run left behind, read from PostgreSQL, Temporal and the HTTP receiver. */
export interface Observations {
  /** `agentHold` once the run is over: 'done' unless the agent still runs or queues the task. */
  tasks: {
    id: string;
    ticket: string;
    status?: string;
    error: string | null;
    decisions: number;
    agentHold: string;
    /** The failure the run caused on purpose, if any; any other failure is a violation. */
    injected?: InjectedCause;
    fromReminder?: boolean;
  }[];
  /** The idempotency ledger (side_effects) of the run's tasks. */
  ledger: { key: string; tool: string; taskId: string; result: unknown }[];
  /** Values appended to the agents' memory "log" lists: "<ticket>:<n>". */
  memoryMarkers: string[];
  /** idempotency_key of every agent_messages row. */
  messageKeys: string[];
  /** Idempotency-Key header of every request the receiver got. */
  httpReceivedKeys: string[];
  approvals: { id: string; taskId: string; step: number; callIndex: number; status: string }[];
  /** What the approver did with each request it saw (HTTP status 200 applied, 409 refused). */
  approverRecords: Record<string, ApproverRecord>;
  reminders: ReminderObservation[];
  nondeterminism: number;
}

export interface Judgement {
  violations: string[];
  tasks: ChaosTally['tasks'];
  approvals: ChaosTally['approvals'];
  sideEffects: ChaosTally['sideEffects'];
  reminders: ChaosTally['reminders'];
}

async function verify(v: VerifyInput): Promise<ChaosTally> {
  const { api } = v;
  const plan = [...v.plan, ...v.fired];
  const ids = plan.flatMap((t) => (t.id ? [t.id] : []));
  const { rows: taskRows } = await api.db.query<{
    id: string;
    status: string;
    error: string | null;
    decisions: number;
  }>(
    `SELECT t.id, t.status, t.error, (SELECT count(*)::int FROM decisions d WHERE d.task_id = t.id) AS decisions
       FROM tasks t WHERE t.id = ANY($1)`,
    [ids],
  );
  const rowsById = new Map(taskRows.map((r) => [r.id, r]));
  const tasks: Observations['tasks'] = [];
  for (const t of plan) {
    const row = t.id ? rowsById.get(t.id) : undefined;
    const hold = t.id ? await agentHold(api.client, t) : 'never submitted';
    tasks.push({
      id: t.id ?? '-',
      ticket: t.ticket,
      status: row?.status,
      error: row?.error ?? null,
      decisions: row?.decisions ?? 0,
      agentHold: hold,
      ...(t.injected ? { injected: t.injected } : {}),
      ...(v.fired.includes(t) ? { fromReminder: true } : {}),
    });
  }
  const { rows: ledger } = await api.db.query<{ key: string; tool: string; taskId: string; result: unknown }>(
    'SELECT idempotency_key AS key, tool, task_id AS "taskId", result FROM side_effects WHERE task_id = ANY($1)',
    [ids],
  );
  const { rows: logs } = await api.db.query<{ value: unknown }>(`SELECT value FROM memory WHERE key = 'log'`);
  const { rows: messages } = await api.db.query<{ key: string }>(
    'SELECT idempotency_key AS key FROM agent_messages WHERE task_id = ANY($1)',
    [ids],
  );
  const { rows: approvals } = await api.db.query<Observations['approvals'][number]>(
    'SELECT id, task_id AS "taskId", step, call_index AS "callIndex", status FROM approvals WHERE task_id = ANY($1)',
    [ids],
  );
  const workflows = await scanHistories(api.client);
  const judgement = judge({
    tasks,
    ledger,
    memoryMarkers: logs.flatMap((r) => (Array.isArray(r.value) ? r.value : [r.value])).map(String),
    messageKeys: messages.map((m) => m.key),
    httpReceivedKeys: v.receiver.received.map((r) => String(r.headers['idempotency-key'])),
    approvals,
    approverRecords: Object.fromEntries(v.approver.records),
    reminders: await v.reminders.observations(),
    nondeterminism: workflows.nondeterminism,
  });
  const faults = v.flaky.faults();
  return {
    profile: v.opts.profile,
    timeline: { submissionsSeconds: [0, 0], approvalDecisionsSeconds: null, reminderFiresSeconds: null },
    stalled: { agents: v.opts.size.stalledAgents, othersFinishedWhileTheyWaited: false },
    settings: {
      ...v.opts.size,
      faultRate: v.opts.faultRate,
      faultKinds: v.opts.faultKinds,
      seed: v.opts.seed,
      approvalTimeoutSeconds: APPROVAL_TIMEOUT_SECONDS,
      llmTimeoutSeconds: LLM_TIMEOUT_SECONDS,
    },
    durationSeconds: 0,
    tasks: judgement.tasks,
    faults: {
      ...faults,
      total: FAULT_KINDS.reduce((n, k) => n + faults[k], 0),
      outages: v.flaky.outages(),
      modelRequestsAnswered: v.flaky.answered(),
    },
    chaos: {
      workerKills: v.chaos.workers.kills,
      workerStarts: v.chaos.workers.starts,
      workerExitsUnprompted: v.chaos.workers.exitsUnprompted,
      events: v.chaos.events,
      eventsPlanned: v.chaos.plannedEvents().length,
      temporalRestarts: v.chaos.counts.temporal,
      postgresRestarts: v.chaos.counts.postgres,
      historyKills: v.chaos.counts.history,
      matchingKills: v.chaos.counts.matching,
      frontendRestarts: v.chaos.counts.frontend,
      serviceRestarts: v.chaos.serviceRestarts(),
    },
    approvals: judgement.approvals,
    reminders: judgement.reminders,
    sideEffects: judgement.sideEffects,
    workflows,
    violations: judgement.violations,
    ok: judgement.violations.length === 0,
  };
}

/**
 * The guarantees, checked against what the run left behind: every task completed, or failed for a cause
 * the run injected on purpose and names (anything else is the infrastructure's doing: a violation), with
 * a trace and released by its agent; every side effect applied once per ledger key; every approval decided
 * or expired, consistent with its side effect and with the API's answers; every reminder fired as
 * scheduled and never after its deletion; no nondeterminism.
 */
export function judge(o: Observations): Judgement {
  const violations: string[] = [];
  const count = (acc: Record<string, number>, key: string) => ((acc[key] = (acc[key] ?? 0) + 1), acc);
  const tasksById = new Map(o.tasks.map((t) => [t.id, t]));

  const tasks: Judgement['tasks'] = {
    submitted: o.tasks.filter((t) => !t.fromReminder).length,
    fromReminders: o.tasks.filter((t) => t.fromReminder).length,
    byStatus: {},
    failureReasons: {},
    injectedFailures: { approval_expired: 0, provider_outage: 0 },
    infrastructureFailures: 0,
    agentHolds: {},
  };
  for (const t of o.tasks) {
    count(tasks.agentHolds, t.agentHold);
    if (t.agentHold !== 'done')
      violations.push(`task ${t.id} (${t.ticket}) is still ${t.agentHold} in its agent's workflow`);
    if (!t.status) {
      violations.push(`task ${t.id} (${t.ticket}) has no row: lost`);
      continue;
    }
    count(tasks.byStatus, t.status);
    if (t.status !== 'completed' && t.status !== 'failed')
      violations.push(`task ${t.id} (${t.ticket}) ended ${t.status}, not completed or failed`);
    if (t.status === 'failed') {
      if (!t.error) violations.push(`task ${t.id} (${t.ticket}) failed without a recorded reason`);
      else count(tasks.failureReasons, reasonKind(t.error));
      if (t.injected && INJECTED_CAUSES[t.injected].test(t.error ?? '')) tasks.injectedFailures[t.injected] += 1;
      else {
        tasks.infrastructureFailures += 1;
        violations.push(
          `task ${t.id} (${t.ticket}) failed by the infrastructure${t.injected ? ` (its injected cause was ${t.injected})` : ''}: ${t.error ?? 'no reason'}`,
        );
      }
    }
    if (t.status === 'completed' && t.injected)
      violations.push(
        `task ${t.id} (${t.ticket}) completed although the run injected ${t.injected}: the fault did not take`,
      );
    if (t.decisions === 0) violations.push(`task ${t.id} (${t.ticket}) has no reasoning trace`);
  }

  const ledgerOf = (tool: string) => o.ledger.filter((l) => l.tool === tool);
  const sideEffects: Judgement['sideEffects'] = {
    memory_write: { ledgerKeys: ledgerOf('memory_write').length, applied: o.memoryMarkers.length },
    send_message: { ledgerKeys: ledgerOf('send_message').length, applied: o.messageKeys.length },
    http_post: { ledgerKeys: ledgerOf('http_post').length, applied: o.httpReceivedKeys.length },
    httpPostOutcomeUnknown: 0,
  };
  // memory_write: the markers "<ticket>:<n>" carry no key, so each must appear once and each task must
  // have as many markers as ledger keys.
  const markerCounts = o.memoryMarkers.reduce(count, {});
  for (const [marker, n] of Object.entries(markerCounts))
    if (n > 1) violations.push(`memory_write ${marker} applied ${n} times`);
  for (const t of o.tasks) {
    const applied = o.memoryMarkers.filter((m) => m.startsWith(`${t.ticket}:`)).length;
    const keys = o.ledger.filter((l) => l.taskId === t.id && l.tool === 'memory_write').length;
    if (applied !== keys)
      violations.push(`task ${t.id} (${t.ticket}): ${applied} memory writes applied, ${keys} ledger keys`);
  }
  // send_message: each message row names its key; the two sets must be equal.
  compareKeys(
    'send_message',
    o.messageKeys,
    ledgerOf('send_message').map((l) => l.key),
    violations,
  );
  // http_post claims its key before sending (at most once). A crash between the request and recording its
  // result leaves the outcome unknown: the receiver may have it, but never twice.
  const receivedCounts = o.httpReceivedKeys.reduce(count, {});
  const httpLedger = new Map(ledgerOf('http_post').map((l) => [l.key, l.result]));
  for (const [key, n] of Object.entries(receivedCounts)) {
    if (n > 1) violations.push(`http_post ${key} received ${n} times`);
    if (!httpLedger.has(key)) violations.push(`http_post ${key} received without a ledger key`);
  }
  for (const [key, result] of httpLedger) {
    if (result === null) sideEffects.httpPostOutcomeUnknown += 1;
    else if (!receivedCounts[key]) violations.push(`http_post ${key} recorded a result but never reached the receiver`);
  }

  const ledgerKeys = new Set(o.ledger.map((l) => l.key));
  const approvals: Judgement['approvals'] = {
    total: o.approvals.length,
    approved: 0,
    rejected: 0,
    expired: 0,
    pending: 0,
    leftToExpire: 0,
    decidedByApprover: 0,
    refusedAsLate: 0,
  };
  for (const a of o.approvals) {
    if (a.status === 'approved' || a.status === 'rejected' || a.status === 'expired' || a.status === 'pending')
      approvals[a.status] += 1;
    const key = `task-${a.taskId}:${a.step}:${a.callIndex}`;
    const task = tasksById.get(a.taskId);
    const record = o.approverRecords[a.id];
    if (a.status === 'pending') violations.push(`approval ${a.id} is still pending`);
    if (a.status === 'approved' && !ledgerKeys.has(key) && task?.status !== 'failed')
      violations.push(`approval ${a.id} approved but ${key} never ran`);
    if ((a.status === 'rejected' || a.status === 'expired') && ledgerKeys.has(key))
      violations.push(`approval ${a.id} ${a.status} but ${key} ran`);
    if (a.status === 'expired' && task?.status !== 'failed')
      violations.push(`approval ${a.id} expired but its task is ${task?.status}`);
    if (record?.decision === 'leave') {
      approvals.leftToExpire += 1;
      if (a.status !== 'expired') violations.push(`approval ${a.id} was left alone but is ${a.status}`);
    }
    if (record?.status === 200) {
      approvals.decidedByApprover += 1;
      const expected = record.decision === 'approve' ? 'approved' : 'rejected';
      if (a.status !== expected)
        violations.push(`approval ${a.id}: the API answered ${record.decision} with 200 but it is ${a.status}`);
    }
    if (record?.status === 409) {
      approvals.refusedAsLate += 1;
      if (a.status !== 'expired') violations.push(`approval ${a.id}: refused with 409 but it is ${a.status}`);
    }
  }

  const reminders: Judgement['reminders'] = {
    interval: o.reminders.filter((r) => r.kind === 'every').length,
    oneShot: o.reminders.filter((r) => r.kind === 'at').length,
    fires: o.reminders.reduce((n, r) => n + r.fires.length, 0),
    intervalFires: o.reminders.filter((r) => r.kind === 'every').map((r) => r.fires.length),
  };
  for (const r of o.reminders) {
    if (!r.created) {
      violations.push(`reminder ${r.label} was never created`);
      continue;
    }
    if (r.kind === 'at' && r.fires.length !== 1)
      violations.push(`one-shot reminder ${r.label} fired ${r.fires.length} times, not once`);
    if (r.kind === 'every' && r.fires.length === 0) violations.push(`interval reminder ${r.label} never fired`);
    // A tick scheduled before the deletion may still be on its way; one scheduled after it must not come.
    const late = r.deletedAt ? r.fires.filter((f) => Date.parse(f) > Date.parse(r.deletedAt!) + 1000) : [];
    if (late.length)
      violations.push(`reminder ${r.label} fired after its deletion (${r.deletedAt}): ${late.join(', ')}`);
  }

  if (o.nondeterminism > 0) violations.push(`${o.nondeterminism} workflow task(s) failed for nondeterminism`);
  return { violations, tasks, approvals, sideEffects, reminders };
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
  let workflowTaskTimeouts = 0;
  let activityRetries = 0;
  const Cause = temporal.api.enums.v1.WorkflowTaskFailedCause;
  for (let i = 0; i < runs.length; i += 8) {
    await Promise.all(
      runs.slice(i, i + 8).map(async ({ workflowId, runId }) => {
        const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
        for (const event of history.events ?? []) {
          if (event.workflowTaskTimedOutEventAttributes) workflowTaskTimeouts += 1;
          // A started event records the attempt that finally ran; earlier attempts are not in history.
          activityRetries += Math.max(0, (event.activityTaskStartedEventAttributes?.attempt ?? 1) - 1);
          const failed = event.workflowTaskFailedEventAttributes;
          if (!failed) continue;
          const cause = Cause[failed.cause ?? 0] ?? String(failed.cause);
          failures[cause] = (failures[cause] ?? 0) + 1;
          if (
            failed.cause === Cause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR ||
            /nondetermin/i.test(failed.failure?.message ?? '')
          ) {
            nondeterminism += 1;
          }
        }
      }),
    );
  }
  return {
    scanned: runs.length,
    workflowTaskFailures: failures,
    nondeterminism,
    workflowTaskTimeouts,
    activityRetries,
  };
}
