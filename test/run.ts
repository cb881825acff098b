/**
 * The test runner behind `npm test`: starts its own Temporal dev server and PostgreSQL on free ports
 * with data in a temporary directory, bundles the workflows once, runs every test file with node:test
 * against them, and stops everything it started.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { getFreePort, startLocalStack } from '../scripts/local-stack';
import { ensureChromium } from './helpers/browser';

const ROOT = path.resolve(__dirname, '..');

async function main(): Promise<number> {
  const only = process.argv.slice(2);
  const files = only.length
    ? only
    : fs
        .readdirSync(__dirname)
        .filter((f) => f.endsWith('.test.ts'))
        .sort()
        .map((f) => path.join('test', f));
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agents-test-'));
  // As root, embedded PostgreSQL runs as its own user, which must be able to enter this directory.
  fs.chmodSync(dataDir, 0o755);
  const outputDir = path.join(ROOT, 'test-output');
  fs.mkdirSync(outputDir, { recursive: true });
  const log = (msg: string) => process.env.TEST_VERBOSE && console.error(`[stack] ${msg}`);
  // Browser tests use Debian's Chromium; installs it when missing (or records why it cannot).
  await ensureChromium();

  const [temporalPort, uiPort, postgresPort] = await Promise.all([getFreePort(), getFreePort(), getFreePort()]);
  console.error(`Starting Temporal dev server and PostgreSQL for the tests (data in ${dataDir})…`);
  const stack = await startLocalStack({
    dataDir,
    temporalPort,
    uiPort,
    postgresPort,
    databaseUrl: process.env.TEST_DATABASE_URL,
    log,
  });
  const stopStack = () => stack.stop().finally(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  try {
    const bundlePath = path.join(dataDir, 'workflow-bundle.js');
    const { code } = await bundleWorkflowCode({ workflowsPath: path.join(ROOT, 'workflows'), logger: quietLogger });
    fs.writeFileSync(bundlePath, code);

    const env = {
      ...process.env,
      TEMPORAL_ADDRESS: stack.temporal.address,
      TEMPORAL_UI_URL: stack.temporal.uiUrl ?? '',
      TEMPORAL_CLI_PATH: stack.cliPath,
      DATABASE_URL: stack.databaseUrl,
      WORKFLOW_BUNDLE_PATH: bundlePath,
      TEST_DATA_DIR: dataDir,
      TEST_OUTPUT_DIR: outputDir,
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    };
    console.error(`Running ${files.length} test file(s) against Temporal ${stack.temporal.address}`);
    return await new Promise<number>((resolve) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
        {
          cwd: ROOT,
          env,
          stdio: 'inherit',
        },
      );
      const forward = (sig: NodeJS.Signals) => child.kill(sig);
      process.on('SIGINT', forward);
      process.on('SIGTERM', forward);
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
    });
  } finally {
    await stopStack();
  }
}

const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (msg: string) => console.error(msg),
  error: (msg: string) => console.error(msg),
};

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
