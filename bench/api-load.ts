/**
 * Load generator for scenario 6, run as its own process so it does not share an event loop with the
 * API or the benchmark: `tsx bench/api-load.ts '<json spec>'` prints one JSON summary on stdout.
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
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as Spec;
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
            setupRequest: (req) => ({
              ...req,
              body: JSON.stringify({
                agentId: agentIds[Math.floor(Math.random() * agentIds.length)],
                title: 'api bench',
                input: { script: [{ answer: 'ok' }] },
              }),
            }),
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
