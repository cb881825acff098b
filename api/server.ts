import { Client, Connection } from '@temporalio/client';
import { TemporalGateway } from '../client/gateway';
import { apiKeyVerifier } from '../lib/api-keys';
import { dataConverterFor } from '../lib/codec';
import { config, databaseUrl } from '../lib/config';
import { createPool, migrate } from '../lib/db';
import { createLogger } from '../lib/logger';
import { createApiMetrics } from '../lib/metrics';
import { temporalConnectionOptions } from '../lib/temporal-connection';
import { clientTracingInterceptors, startTracing } from '../lib/tracing';
import { createApp } from './app';
import { ChatEventHub } from './chat-events';
import { createStore } from './store';
import { createApiWrites } from './writes';

/** API process: applies migrations, connects to Temporal and Postgres, listens on PORT. */
async function main(): Promise<void> {
  const cfg = config();
  const logger = createLogger('api', cfg.LOG_LEVEL);
  const url = databaseUrl(cfg);
  await migrate(url);
  const db = createPool(url);
  const connection = await Connection.connect(temporalConnectionOptions(cfg));
  // Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; then each task's trace begins with the request submitting it.
  const tracing = startTracing(cfg, 'api');
  const client = new Client({
    connection,
    namespace: cfg.TEMPORAL_NAMESPACE,
    dataConverter: dataConverterFor(cfg),
    interceptors: clientTracingInterceptors(tracing),
  });
  const chatEvents = new ChatEventHub(url, logger);
  const app = createApp({
    store: createStore(db),
    writes: createApiWrites(db),
    chatEvents,
    gateway: new TemporalGateway(client, cfg.TEMPORAL_TASK_QUEUE),
    config: cfg,
    logger,
    metrics: createApiMetrics(db, {
      tokenBudget: {
        tokensPerWindow: cfg.AGENTS_GLOBAL_TOKEN_BUDGET_PER_MINUTE,
        windowSeconds: cfg.TOKEN_BUDGET_WINDOW_SECONDS,
      },
    }),
    apiKeys: apiKeyVerifier(db, cfg),
  });
  // API_HOST (default loopback) also bounds who can reach /codec and /metrics.
  const server = app.listen(cfg.PORT, cfg.API_HOST, () =>
    logger.info(
      { host: cfg.API_HOST, port: cfg.PORT },
      `API listening on http://${cfg.API_HOST.includes(':') ? `[${cfg.API_HOST}]` : cfg.API_HOST}:${cfg.PORT}`,
    ),
  );
  // Slow clients: headers within 10 s, the whole request within the API's time limit. Responses (SSE
  // chat streams) are not bounded by these; JSON routes have their own limit (api/limits.ts).
  server.headersTimeout = 10_000;
  server.requestTimeout = cfg.API_REQUEST_TIMEOUT_SECONDS * 1000;

  const shutdown = () => {
    logger.info('API shutting down');
    server.close(
      () =>
        void Promise.allSettled([db.end(), connection.close(), chatEvents.close(), tracing?.shutdown()]).then(() =>
          process.exit(0),
        ),
    );
    // Keep-alive connections may hold the server open; do not wait on them forever.
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((err) => {
  createLogger('api').fatal({ err }, 'API failed to start');
  process.exit(1);
});
