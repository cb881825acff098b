import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

/** The test runner's addresses: the benchmark starts its own server and database, so none of them leak into it. */
const RUNNER_ADDRESSES = [
  'TEMPORAL_ADDRESS',
  'TEMPORAL_UI_URL',
  'DATABASE_URL',
  'WORKFLOW_BUNDLE_PATH',
  'TEMPORAL_TASK_QUEUE',
];

/** The lines of a benchmark's history.jsonl (none when it does not exist yet), to count the runs it kept. */
export function historyLines(historyFile: string): string[] {
  return fs.existsSync(historyFile) ? fs.readFileSync(historyFile, 'utf8').trim().split('\n').filter(Boolean) : [];
}

/**
 * Runs a benchmark script (relative to the repository root) with `args` and waits for it to exit. Only the tail
 * of stderr is kept (`stderrTail` characters): it is what explains a failed run.
 */
export async function runBenchmark(
  script: string,
  args: string[],
  stderrTail: number,
): Promise<{ code: number | null; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !RUNNER_ADDRESSES.includes(k)));
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, script), ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-stderrTail)));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, stderr };
}
