import fs from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { WORKFLOW_TRACING_MODULE } from './tracing';

const WORKFLOWS_DIR = path.resolve(__dirname, '../workflows');

/**
 * The project's workflows as one bundle: for workers started with `WORKFLOW_BUNDLE_PATH` and for replays.
 * `traced` builds the tracing interceptors in. The bundler's progress lines are dropped; its warnings and
 * errors go to `report`.
 */
export async function bundleWorkflows(
  opts: { traced?: boolean; report?: (msg: string) => void } = {},
): Promise<string> {
  const report = opts.report ?? ((msg: string) => console.error(msg));
  const drop = () => undefined;
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_DIR,
    workflowInterceptorModules: opts.traced ? [WORKFLOW_TRACING_MODULE] : [],
    logger: { log: drop, trace: drop, debug: drop, info: drop, warn: report, error: report },
  });
  return code;
}

/** Writes the bundle (see bundleWorkflows) to `file` and returns the file's path. */
export async function writeWorkflowBundle(
  file: string,
  opts: { traced?: boolean; report?: (msg: string) => void } = {},
): Promise<string> {
  fs.writeFileSync(file, await bundleWorkflows(opts));
  return file;
}
