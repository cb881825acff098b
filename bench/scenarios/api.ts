/**
 * Scenario 6: latency of the real API server process (api/server.ts) under concurrent load from a
 * second process (autocannon, bench/api-load.ts), one endpoint at a time. Creates go last because they
 * leave work behind (new agents, queued tasks) that would disturb the reads.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { snapshot, usageBetween, type Bench, type Usage } from '../context';
import { childCrashed, log, round, spawnNode } from '../lib';
import { getFreePort } from '../../scripts/local-stack';

/** What every run of the load generator (bench/api-load.ts) reports, closed loop or at a fixed rate. */
interface LoadSummary {
  requests: number;
  perSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  non2xx: number;
  errors: number;
  statusCodes: Record<string, number>;
}

export interface EndpointLoad extends LoadSummary {
  endpoint: string;
  connections: number;
  seconds: number;
  timeouts: number;
  /** CPU time of the load generator process itself. */
  cpuSeconds: number;
}

export interface ApiLatency {
  endpoints: EndpointLoad[];
  /** CPU per component while the load ran (read before the API stops, so its own CPU time is included). */
  usage: Usage;
}

export async function apiLatency(
  b: Bench,
  opts: { seconds: number; connections: number; taskAgentIds: string[] },
): Promise<ApiLatency> {
  const api = await startApi(b);
  const { base, apiKey } = api;
  try {
    const endpoints: { endpoint: string; method: 'GET' | 'POST'; path: string; body?: unknown; agentIds?: string[] }[] =
      [
        { endpoint: 'GET /api/v1/agents?limit=50', method: 'GET', path: '/api/v1/agents?limit=50' },
        { endpoint: 'GET /api/v1/tasks?limit=50', method: 'GET', path: '/api/v1/tasks?limit=50' },
        {
          endpoint: 'POST /api/v1/agents',
          method: 'POST',
          path: '/api/v1/agents',
          body: { name: 'api-bench', objective: 'benchmark agent' },
        },
        { endpoint: 'POST /api/v1/tasks', method: 'POST', path: '/api/v1/tasks', agentIds: opts.taskAgentIds },
      ];
    const before = await snapshot(b);
    const results: EndpointLoad[] = [];
    for (const e of endpoints) {
      log(`api: ${e.endpoint} for ${opts.seconds} s with ${opts.connections} connections`);
      const spec = {
        url: base + e.path,
        method: e.method,
        seconds: opts.seconds,
        connections: opts.connections,
        body: e.body,
        agentIds: e.agentIds,
        apiKey,
      };
      const summary = await runLoad<Omit<EndpointLoad, 'endpoint' | 'connections' | 'seconds'>>('autocannon', spec);
      log(
        `api: ${e.endpoint}: ${summary.perSecond} req/s, p50 ${summary.latencyMs.p50} ms, p99 ${summary.latencyMs.p99} ms, ${summary.non2xx} non-2xx`,
      );
      results.push({ endpoint: e.endpoint, connections: opts.connections, seconds: opts.seconds, ...summary });
    }
    const usage = usageBetween(before, await snapshot(b));
    // The load generators have exited: move their CPU time out of `other`, under their own name.
    const loadCores = results.reduce((sum, r) => sum + r.cpuSeconds, 0) / usage.seconds;
    usage.cores.autocannon = round(loadCores, 2);
    usage.cores.other = round(usage.cores.other - loadCores, 2);
    return { endpoints: results, usage };
  } finally {
    await api.stop();
  }
}

/**
 * Runs the load generator (bench/api-load.ts) as a process of its own, so its CPU does not count as the
 * API's, and returns the summary it prints. A crashed stack child ends the wait early.
 */
async function runLoad<T>(name: string, spec: Record<string, unknown>): Promise<T> {
  const loader = spawnNode(name, 'bench/api-load.ts', { ...process.env }, [JSON.stringify(spec)]);
  const exited = new Promise<void>((resolve) => loader.proc.once('exit', () => resolve()));
  await Promise.race([exited, childCrashed]);
  return JSON.parse(loader.output()) as T;
}

export interface ApiProcess {
  base: string;
  apiKey: string;
  /** Sends a JSON request with the API's key; resolves with the status and the parsed body. */
  request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  stop(): Promise<void>;
}

/**
 * The real API server (api/server.ts) as a process of its own, named `api` in the CPU report. MAX_AGENTS
 * raised: by now thousands of agents may exist, and create-agent must not answer 409. A key for the
 * default org, and a rate limit that cannot bind: the scenarios measure latency, not the limiter.
 */
export async function startApi(b: Bench, env: NodeJS.ProcessEnv = {}, name = 'api'): Promise<ApiProcess> {
  const port = await getFreePort();
  const apiKey = `bench_${randomUUID()}`;
  const api = spawnNode(name, 'api/server.ts', {
    ...b.env,
    PORT: String(port),
    MAX_AGENTS: '1000000',
    MAX_PENDING_TASKS_PER_ORG: '100000000',
    API_KEY: apiKey,
    API_RATE_LIMIT_PER_MINUTE: '100000000',
    ...env,
  });
  b.named.set(api.pid, name);
  const base = `http://127.0.0.1:${port}`;
  try {
    await Promise.race([waitForHealth(base), childCrashed]);
  } catch (err) {
    await api.stop();
    throw err;
  }
  return {
    base,
    apiKey,
    async request(method, path, body) {
      const res = await fetch(base + path, {
        method,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? (JSON.parse(text) as unknown) : undefined };
    },
    stop: () => api.stop(),
  };
}

async function waitForHealth(base: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const ok = await fetch(`${base}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await sleep(200);
  }
  throw new Error('the API did not answer /health within 60 s');
}

export interface SubmitAtRate extends LoadSummary {
  rate: number;
  seconds: number;
  /** From when each request was due to its answer (open loop). */
  latencyMs: LoadSummary['latencyMs'];
  /** The latest any request left after it was due: the load generator kept its schedule if small. */
  maxSendLagMs: number;
}

/**
 * Scenario 9: `POST /api/v1/tasks` at a fixed rate well below saturation, on a schedule (open loop), from
 * a process of its own: the latency a client sees when the system is not overloaded.
 */
export async function submitAtRate(
  b: Bench,
  opts: { rate: number; seconds: number; taskAgentIds: string[] },
): Promise<SubmitAtRate> {
  const api = await startApi(b);
  try {
    const spec = {
      url: `${api.base}/api/v1/tasks`,
      method: 'POST',
      seconds: opts.seconds,
      connections: 0,
      rate: opts.rate,
      agentIds: opts.taskAgentIds,
      apiKey: api.apiKey,
    };
    log(`submission: POST /api/v1/tasks at ${opts.rate}/s for ${opts.seconds} s`);
    const {
      cpuSeconds: _cpu,
      timeouts: _t,
      ...r
    } = await runLoad<Omit<SubmitAtRate, 'rate' | 'seconds'> & { cpuSeconds: number; timeouts: number }>(
      'load generator',
      spec,
    );
    log(`submission: p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, ${r.non2xx} non-2xx, ${r.errors} errors`);
    return { rate: opts.rate, seconds: opts.seconds, ...r };
  } finally {
    await api.stop();
  }
}
