import { config, databaseUrl } from '../lib/config';
import { migrate } from '../lib/db';
import { createLogger } from '../lib/logger';
import { createAgentWorker } from './agent-worker';
import { serveWorkerMetrics } from './metrics-server';

/** Worker process: applies migrations, then polls the agents task queue until SIGINT/SIGTERM. */
async function main(): Promise<void> {
  const cfg = config();
  const logger = createLogger('worker', cfg.LOG_LEVEL);
  const url = databaseUrl(cfg);
  await migrate(url);
  const agentWorker = await createAgentWorker({
    config: cfg,
    databaseUrl: url,
    logger,
    workflowBundlePath: process.env.WORKFLOW_BUNDLE_PATH,
    identity: process.env.WORKER_IDENTITY,
  });
  const metrics = cfg.WORKER_METRICS_PORT
    ? await serveWorkerMetrics({
        port: cfg.WORKER_METRICS_PORT,
        sdkMetricsAddress: cfg.TEMPORAL_SDK_METRICS_ADDRESS,
        logger,
      })
    : undefined;
  // The SDK shuts the worker down on SIGINT/SIGTERM by itself. A second signal while it drains (the
  // terminal's Ctrl-C, then the launcher's SIGTERM) must not ask again: shutdown() throws unless RUNNING.
  const stop = () => {
    if (agentWorker.worker.getState() === 'RUNNING') agentWorker.shutdown();
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, stop);
  logger.info(
    { taskQueue: cfg.TEMPORAL_TASK_QUEUE, temporal: cfg.TEMPORAL_ADDRESS, metricsPort: metrics?.port },
    'worker started',
  );
  await agentWorker.run().finally(() => metrics?.close());
  logger.info('worker stopped');
}

main().catch((err) => {
  createLogger('worker').fatal({ err }, 'worker failed');
  process.exit(1);
});
