/**
 * Load generator for scenario 6, run as its own process so it does not share an event loop with the
 * API or the benchmark: `tsx bench/api-load.ts '<json spec>'` prints one JSON summary on stdout. With
 * `rate`, it sends that many requests per second on a fixed schedule instead (open loop: a slow answer
 * does not delay the next request), for latency below saturation.
 */
import autocannon from 'autocannon';

interface Spec {
  url: string;
  method: 'GET' | 'POST';
  seconds: number;
  connections: number;
  body?: unknown;
  /** POST /tasks: each request targets a random one of these agents. */
  agentIds?: string[];
  /** Sent as the bearer key of every request. */
  apiKey: string;
  /** Open loop at this many requests per second (instead of autocannon's closed loop). */
  rate?: number;
}

function taskBody(agentIds: string[]): string {
  return JSON.stringify({
    agentId: agentIds[Math.floor(Math.random() * agentIds.length)],
    title: 'api bench',
    input: { script: [{ answer: 'ok' }] },
  });
}

/** Requests at fixed instants (i / rate seconds from the start); latencies in ms, nearest-rank percentiles. */
async function fixedRate(spec: Spec & { rate: number }): Promise<void> {
  const latencies: number[] = [];
  const statusCodes: Record<string, number> = {};
  let errors = 0;
  let maxLagMs = 0;
  const total = Math.round(spec.rate * spec.seconds);
  const start = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / spec.rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    // Timed from when the request was due, so a late send counts against the latency, not for it.
    maxLagMs = Math.max(maxLagMs, performance.now() - due);
    inFlight.push(
      fetch(spec.url, {
        method: spec.method,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${spec.apiKey}` },
        body: spec.agentIds ? taskBody(spec.agentIds) : spec.body === undefined ? undefined : JSON.stringify(spec.body),
      }).then(
        async (res) => {
          await res.arrayBuffer();
          latencies.push(performance.now() - due);
          statusCodes[res.status] = (statusCodes[res.status] ?? 0) + 1;
        },
        () => void errors++,
      ),
    );
  }
  await Promise.all(inFlight);
  const elapsed = (performance.now() - start) / 1000;
  const sorted = latencies.sort((a, b) => a - b);
  const at = (q: number) => Math.round(sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] * 10) / 10;
  const cpu = process.cpuUsage();
  process.stdout.write(
    JSON.stringify({
      requests: total,
      perSecond: Math.round((total / elapsed) * 10) / 10,
      latencyMs: {
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: at(1),
        mean: Math.round((sorted.reduce((a, b) => a + b, 0) / sorted.length) * 10) / 10,
      },
      non2xx: Object.entries(statusCodes)
        .filter(([code]) => !code.startsWith('2'))
        .reduce((n, [, c]) => n + c, 0),
      errors,
      timeouts: 0,
      statusCodes,
      maxSendLagMs: Math.round(maxLagMs * 10) / 10,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    }),
  );
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as Spec;
  if (spec.rate !== undefined) return fixedRate({ ...spec, rate: spec.rate });
  const { agentIds } = spec;
  const result = await autocannon({
    url: spec.url,
    method: spec.method,
    duration: spec.seconds,
    connections: spec.connections,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${spec.apiKey}` },
    body: spec.body === undefined ? undefined : JSON.stringify(spec.body),
    requests: agentIds
      ? [
          {
            setupRequest: (req) => ({ ...req, body: taskBody(agentIds) }),
          },
        ]
      : undefined,
  });
  const { latency } = result;
  const cpu = process.cpuUsage();
  const summary = {
    requests: result.requests.total,
    perSecond: result.requests.average,
    latencyMs: { p50: latency.p50, p90: latency.p90, p99: latency.p99, max: latency.max, mean: latency.average },
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes: Object.fromEntries(
      Object.entries(result.statusCodeStats ?? {}).map(([code, s]) => [code, s.count ?? 0]),
    ),
    // Reported here because this process has exited by the time the benchmark reads /proc again.
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
  process.stdout.write(JSON.stringify(summary));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
