/**
 * Test helpers: every test file gets its own task queue on the shared server started by test/run.ts,
 * real workers (in process, or as child processes that can be SIGKILLed) and the real HTTP API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before } from 'node:test';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import pino from 'pino';
import { createApp } from '../../api/app';
import { ChatEventHub } from '../../api/chat-events';
import { createStore } from '../../api/store';
import { createApiWrites } from '../../api/writes';
import { TemporalGateway } from '../../client/gateway';
import { apiKeyVerifier, createApiKey } from '../../lib/api-keys';
import { dataConverterFor } from '../../lib/codec';
import { loadConfig, type Config } from '../../lib/config';
import { createPool, type Db } from '../../lib/db';
import { createApiMetrics } from '../../lib/metrics';
import { clientTracingInterceptors, startTracing } from '../../lib/tracing';
import { createAgentWorker } from '../../workers/agent-worker';
import { startFakeOpenAi, type FakeOpenAiServer } from './fake-openai-server';

const ROOT = path.resolve(__dirname, '../..');

export const silentLogger = pino({ level: 'silent' });

/** Configuration for one test file: the runner's server and database, a task queue of its own. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  if (!process.env.TEMPORAL_ADDRESS || !process.env.DATABASE_URL) {
    throw new Error('run tests through `npm test` (test/run.ts starts Temporal and PostgreSQL)');
  }
  return loadConfig({
    ...process.env,
    TEMPORAL_TASK_QUEUE: `test-${randomUUID().slice(0, 8)}`,
    ACTIVITY_HEARTBEAT_SECONDS: '2',
    // Every file shares the default organisation: its limits would otherwise count the whole suite's
    // agents and tasks. Tests of these limits set their own.
    MAX_AGENTS: '1000000',
    MAX_PENDING_TASKS_PER_ORG: '1000000',
    // Tests poll fast; the rate limit has its own test.
    API_RATE_LIMIT_PER_MINUTE: '1000000',
    ...overrides,
  });
}

export interface TestStack {
  config: Config;
  db: Db;
  client: Client;
  gateway: TemporalGateway;
  /** Authenticated with a fresh key of DEFAULT_ORG_ID. */
  api: ApiClient;
  /** A client authenticated with a new key of another organisation. */
  clientForOrg(orgId: string): Promise<ApiClient>;
  stop(): Promise<void>;
}

/** Starts the API in process (on a free port) with clients for assertions. Workers are started separately. */
export async function startApi(config: Config, opts: { port?: number; logger?: pino.Logger } = {}): Promise<TestStack> {
  const db = createPool(config.DATABASE_URL!);
  const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  const client = new Client({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    dataConverter: dataConverterFor(config),
    // Like api/server.ts: traced only when the test's configuration names an OTLP endpoint.
    interceptors: clientTracingInterceptors(startTracing(config, 'api')),
  });
  const gateway = new TemporalGateway(client, config.TEMPORAL_TASK_QUEUE);
  const chatEvents = new ChatEventHub(config.DATABASE_URL!, silentLogger);
  const app = createApp({
    store: createStore(db),
    writes: createApiWrites(db),
    chatEvents,
    gateway,
    config,
    logger: opts.logger ?? silentLogger,
    metrics: createApiMetrics(db, {
      tokenBudget: {
        tokensPerWindow: config.AGENTS_GLOBAL_TOKEN_BUDGET_PER_MINUTE,
        windowSeconds: config.TOKEN_BUDGET_WINDOW_SECONDS,
      },
    }),
    apiKeys: apiKeyVerifier(db, config),
  });
  const server = app.listen(opts.port ?? 0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  const baseUrl = `http://127.0.0.1:${port}`;
  const clientForOrg = async (orgId: string) => new ApiClient(baseUrl, (await createApiKey(db, orgId, 'test')).key);
  return {
    config,
    db,
    client,
    gateway,
    api: await clientForOrg(config.DEFAULT_ORG_ID),
    clientForOrg,
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await Promise.allSettled([connection.close(), db.end(), chatEvents.close()]);
    },
  };
}

/** The API and one in-process worker on `config`; `stop()` stops both. */
export async function startStack(config: Config): Promise<TestStack> {
  const stack = await startApi(config);
  const worker = await startWorker(config).catch(async (err: unknown) => {
    await stack.stop();
    throw err;
  });
  return {
    ...stack,
    async stop() {
      await worker.stop();
      await stack.stop();
    },
  };
}

/**
 * For crash tests, called inside a describe: an API on its own task queue, and worker processes started
 * on demand (`start`) so a test can SIGKILL them; whatever is left is killed after the describe.
 */
export function withKillableWorkers(overrides: Record<string, string> = {}) {
  const workers: ReturnType<typeof spawnWorker>[] = [];
  const ctx = {
    config: undefined as unknown as Config,
    stack: undefined as unknown as TestStack,
    async start(env: Record<string, string> = {}) {
      const worker = spawnWorker(ctx.config, env);
      workers.push(worker);
      await worker.ready;
      return worker;
    },
    /** SIGKILLs every worker started so far. */
    async killAll() {
      await Promise.all(workers.splice(0).map(killHard));
    },
  };
  before(async () => {
    ctx.config = testConfig(overrides);
    ctx.stack = await startApi(ctx.config);
  });
  after(async () => {
    await Promise.all(workers.map(killHard));
    await ctx.stack?.stop();
  });
  return ctx;
}

/** A worker in this process. */
export async function startWorker(config: Config): Promise<{ worker: Worker; stop(): Promise<void> }> {
  const agentWorker = await createAgentWorker({
    config,
    databaseUrl: config.DATABASE_URL!,
    logger: silentLogger,
    workflowBundlePath: process.env.WORKFLOW_BUNDLE_PATH,
  });
  const running = agentWorker.run();
  return {
    worker: agentWorker.worker,
    async stop() {
      agentWorker.shutdown();
      await running;
    },
  };
}

/** A worker as a separate process (`workers/main.ts`), so a test can SIGKILL it. */
export function spawnWorker(config: Config, env: Record<string, string> = {}): ChildProcess & { ready: Promise<void> } {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'workers/main.ts')], {
    cwd: ROOT,
    env: {
      ...process.env,
      TEMPORAL_TASK_QUEUE: config.TEMPORAL_TASK_QUEUE,
      ACTIVITY_HEARTBEAT_SECONDS: String(config.ACTIVITY_HEARTBEAT_SECONDS),
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  }) as ChildProcess & { ready: Promise<void> };
  let output = '';
  child.ready = new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('worker started')) resolve();
    });
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`worker exited early (${code}):\n${output.slice(-2000)}`)));
  });
  return child;
}

export async function killHard(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** Polls `probe` until it returns a truthy value. */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | null | false>,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** A small HTTP client for the real API; with a key it sends `Authorization: Bearer <key>` on every call. */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    readonly apiKey?: string,
  ) {}

  async request<T = any>(
    method: string,
    path: string,
    body?: unknown,
    init: { raw?: string; headers?: Record<string, string> } = {},
  ): Promise<ApiResponse<T>> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: {
        ...(body !== undefined || init.raw !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}),
        ...init.headers,
      },
      body: init.raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // Leave non-JSON bodies as text so a test can show them.
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  }

  get<T = any>(path: string) {
    return this.request<T>('GET', path);
  }
  post<T = any>(path: string, body?: unknown) {
    return this.request<T>('POST', path, body);
  }
  patch<T = any>(path: string, body?: unknown) {
    return this.request<T>('PATCH', path, body);
  }

  /** Creates an agent and returns its body, failing loudly on anything but 201. */
  async createAgent(body: Record<string, unknown>): Promise<any> {
    const res = await this.post('/api/v1/agents', body);
    if (res.status !== 201) throw new Error(`create agent: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  async createTask(body: Record<string, unknown>): Promise<any> {
    const res = await this.post('/api/v1/tasks', body);
    if (res.status !== 201) throw new Error(`create task: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  /** Waits until the task reaches a terminal status and returns its detail. */
  async waitForTask(taskId: string, timeoutMs = 30_000): Promise<any> {
    return waitFor(
      async () => {
        const res = await this.get(`/api/v1/tasks/${taskId}`);
        return ['completed', 'failed', 'cancelled'].includes(res.body?.status) ? res.body : undefined;
      },
      `task ${taskId} to finish`,
      timeoutMs,
    );
  }
}

/**
 * For one describe block: a fresh fake OpenAI server and a stack whose `openai` provider talks to it, started
 * before its tests and stopped after them. Read `stack` and `openai` inside the tests, once they run.
 */
export function stackWithFakeOpenAi(overrides: Record<string, string> = {}): {
  readonly stack: TestStack;
  readonly openai: FakeOpenAiServer;
} {
  const env = {} as { stack: TestStack; openai: FakeOpenAiServer };
  before(async () => {
    env.openai = await startFakeOpenAi();
    env.stack = await startStack(
      testConfig({ OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: env.openai.url, ...overrides }),
    );
  });
  after(async () => {
    await env.stack?.stop();
    await env.openai?.close();
  });
  return env;
}
