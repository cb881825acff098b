import http from 'node:http';
import type { Logger } from 'pino';
import { METRICS_CONTENT_TYPE, workerMetrics } from '../lib/metrics';

/**
 * The worker's own HTTP endpoint: `GET /metrics` (this process's `agents_*` metrics followed by the
 * Temporal SDK's, fetched from its exporter on `sdkMetricsAddress`) and `GET /health` (200 while the
 * worker runs), for Prometheus and container health checks.
 */
export async function serveWorkerMetrics(opts: {
  port: number;
  sdkMetricsAddress?: string;
  logger: Logger;
}): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      void metricsText(opts.sdkMetricsAddress, opts.logger).then(
        (text) => res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE }).end(text),
        (err: unknown) => {
          opts.logger.error({ err }, 'could not collect metrics');
          res.writeHead(500).end();
        },
      );
      return;
    }
    if (req.method === 'GET' && path === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, resolve);
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function metricsText(sdkMetricsAddress: string | undefined, logger: Logger): Promise<string> {
  const own = await workerMetrics.registry.metrics();
  if (!sdkMetricsAddress) return own;
  // The SDK's exporter answers on its own port; a scrape still succeeds without it, and the log says why.
  const sdk = await fetch(`http://${sdkMetricsAddress.replace(/^0\.0\.0\.0:/, '127.0.0.1:')}/metrics`, {
    signal: AbortSignal.timeout(3000),
  })
    .then((r) => (r.ok ? r.text() : Promise.reject(new Error(`status ${r.status}`))))
    .catch((err: unknown) => {
      logger.warn({ err: String(err), sdkMetricsAddress }, 'Temporal SDK metrics unavailable');
      return '';
    });
  return `${own}\n${sdk}`;
}
