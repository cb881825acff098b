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

export interface EndpointLoad {
  endpoint: string;
  connections: number;
  seconds: number;
  requests: number;
  perSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
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
  const port = await getFreePort();
  // MAX_AGENTS raised: by now thousands of agents exist, and create-agent must not answer 409.
  // A key for the default org, and a rate limit that cannot bind: this measures latency, not the limiter.
  const apiKey = `bench_${randomUUID()}`;
  const api = spawnNode('api', 'api/server.ts', {
    ...b.env,
    PORT: String(port),
    MAX_AGENTS: '1000000',
    MAX_PENDING_TASKS_PER_ORG: '100000000',
    API_KEY: apiKey,
    API_RATE_LIMIT_PER_MINUTE: '100000000',
  });
  b.named.set(api.pid, 'api');
  const base = `http://127.0.0.1:${port}`;
  try {
    await Promise.race([waitForHealth(base), childCrashed]);
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
      const loader = spawnNode('autocannon', 'bench/api-load.ts', { ...process.env }, [JSON.stringify(spec)]);
      const exited = new Promise<void>((resolve) => loader.proc.once('exit', () => resolve()));
      await Promise.race([exited, childCrashed]);
      const summary = JSON.parse(loader.output()) as Omit<EndpointLoad, 'endpoint' | 'connections' | 'seconds'>;
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
