/**
 * The Temporal AI SDK peer's worker (Node.js 22, which `ai` 7 needs): `AiSdkPlugin` with an OpenAI
 * provider pointed at the loopback model (chat completions), the tool activity, the SDK's default worker
 * options. `--bundle <file>` writes the workflow bundle (built through the plugin, which adds the Web API
 * polyfills `ai` needs) and exits, so restarts after a crash do not rebuild it.
 */
import { createOpenAI } from '@ai-sdk/openai';
import type { ProviderV4 } from '@ai-sdk/provider';
import { AiSdkPlugin } from '@temporalio/ai-sdk';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import fs from 'node:fs';
import pg from 'pg';
import { env, TOOL_TABLE } from '../common';
import { createActivities } from './activities';

function plugin(): AiSdkPlugin {
  const openai = createOpenAI({ apiKey: 'bench-loopback', baseURL: env('MODEL_BASE_URL') });
  // The loopback model speaks chat completions; the provider's default model is the Responses API.
  const modelProvider = {
    specificationVersion: 'v4',
    languageModel: (id: string) => openai.chat(id),
    embeddingModel: (id: string) => openai.embedding(id),
    imageModel: (id: string) => openai.image(id),
  } as unknown as ProviderV4;
  return new AiSdkPlugin({ modelProvider });
}

async function main(): Promise<void> {
  const bundleAt = process.argv.indexOf('--bundle');
  if (bundleAt > 0) {
    const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('./workflows'), plugins: [plugin()] });
    fs.writeFileSync(process.argv[bundleAt + 1], code);
    return;
  }
  const pool = new pg.Pool({ connectionString: env('DATABASE_URL'), max: 20 });
  await pool.query(TOOL_TABLE);
  const connection = await NativeConnection.connect({ address: env('TEMPORAL_ADDRESS') });
  const worker = await Worker.create({
    connection,
    taskQueue: env('TASK_QUEUE'),
    workflowBundle: { codePath: env('WORKFLOW_BUNDLE_PATH') },
    activities: createActivities(pool),
    plugins: [plugin()],
  });
  const stop = () => worker.shutdown();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  try {
    await worker.run();
  } finally {
    await connection.close();
    await pool.end();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
