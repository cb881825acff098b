/**
 * Worker process for bench/trivial-workflows.ts. It keeps the SDK's default worker options, like the
 * agent worker (workers/agent-worker.ts), so both are measured with the same worker settings.
 */
import path from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { TrivialActivities } from './trivial-workflows';

async function main(): Promise<void> {
  const address = process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  const taskQueue = process.env.BENCH_TRIVIAL_QUEUE ?? 'bench-trivial';
  const connection = await NativeConnection.connect({ address });
  const activities: TrivialActivities = { noop: async () => undefined };
  const worker = await Worker.create({
    connection,
    taskQueue,
    activities,
    workflowsPath: path.join(__dirname, 'trivial-workflows.ts'),
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => worker.shutdown());
  try {
    await worker.run();
  } finally {
    await connection.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
