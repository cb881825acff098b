/**
 * The test runner behind `npm test`: starts its own Temporal and PostgreSQL on free ports with data in a
 * temporary directory, bundles the workflows once, runs the test files with node:test against them, and
 * stops everything it started.
 *
 * Temporal is the dev server, or with TEST_TEMPORAL=cluster the self-hosted cluster of `npm start --
 * --cluster` (four services on the same PostgreSQL, temporal/cluster.ts):
 *
 *   npx tsx test/run.ts                                    # every file on the dev server, then CLUSTER_FILES on a cluster
 *   npx tsx test/run.ts test/agents.test.ts                # that file on the dev server
 *   TEST_TEMPORAL=cluster npx tsx test/run.ts test/agents.test.ts   # that file on a cluster
 *   TEST_TEMPORAL=cluster npx tsx test/run.ts              # CLUSTER_FILES on a cluster
 *   TEST_TEMPORAL=dev npx tsx test/run.ts                  # every file on the dev server only
 *
 * Files in CLUSTER_ONLY always run on a cluster.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPrivateStack } from '../scripts/local-stack';
import { findTemporalCli } from '../temporal/dev-server';
import { ensureChromium } from './helpers/browser';
import { writeWorkflowBundle } from '../workers/bundle';

const ROOT = path.resolve(__dirname, '..');

/** Files that test the cluster itself. */
const CLUSTER_ONLY = ['test/cluster.test.ts'];

/**
 * What `npm test` runs a second time on a cluster: the cluster's own tests and the files whose paths
 * differ most from the dev server's (durable timers and schedules on the worker service, updates and
 * signals across history and matching, child workflows, visibility queries on PostgreSQL).
 */
const CLUSTER_FILES = [
  'test/cluster.test.ts',
  'test/agents.test.ts',
  'test/approvals.test.ts',
  'test/reminders.test.ts',
  'test/crews.test.ts',
  'test/governance.test.ts',
  // The short chaos run on a cluster of its own: history and matching SIGKILLed, frontend and PostgreSQL restarted.
  'test/chaos.test.ts',
];

type Profile = 'dev' | 'cluster';

async function main(): Promise<number> {
  const wanted = process.env.TEST_TEMPORAL;
  if (wanted !== undefined && wanted !== 'dev' && wanted !== 'cluster') {
    throw new Error(`TEST_TEMPORAL must be "dev" or "cluster", got "${wanted}"`);
  }
  const only = process.argv.slice(2).map((f) => path.relative(ROOT, path.resolve(f)));
  const everyFile = fs
    .readdirSync(__dirname)
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => path.join('test', f));
  const isClusterOnly = (f: string) => CLUSTER_ONLY.includes(f);

  const passes: { profile: Profile; files: string[] }[] = [];
  if (only.length) {
    const dev = wanted === 'cluster' ? [] : only.filter((f) => !isClusterOnly(f));
    const cluster = wanted === 'cluster' ? only : only.filter(isClusterOnly);
    if (dev.length) passes.push({ profile: 'dev', files: dev });
    if (cluster.length) passes.push({ profile: 'cluster', files: cluster });
  } else {
    if (wanted !== 'cluster') passes.push({ profile: 'dev', files: everyFile.filter((f) => !isClusterOnly(f)) });
    if (wanted !== 'dev') passes.push({ profile: 'cluster', files: CLUSTER_FILES });
  }

  // Browser tests use Debian's Chromium; installs it when missing (or records why it cannot).
  await ensureChromium();
  let code = 0;
  for (const pass of passes) {
    const started = Date.now();
    const passCode = await runPass(pass.profile, pass.files);
    if (passes.length > 1) {
      console.error(
        `${pass.profile === 'cluster' ? 'Cluster' : 'Dev server'} pass: ${pass.files.length} file(s), ` +
          `${passCode === 0 ? 'passed' : 'FAILED'} in ${Math.round((Date.now() - started) / 1000)} s`,
      );
    }
    code ||= passCode;
  }
  return code;
}

async function runPass(profile: Profile, files: string[]): Promise<number> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agents-test-'));
  // As root, embedded PostgreSQL runs as its own user, which must be able to enter this directory.
  fs.chmodSync(dataDir, 0o755);
  const outputDir = path.join(ROOT, 'test-output');
  fs.mkdirSync(outputDir, { recursive: true });
  const log = (msg: string) => process.env.TEST_VERBOSE && console.error(`[stack] ${msg}`);
  // Builds of pinned binaries and restarts of cluster services are worth seeing in any run.
  const announce = (msg: string) => console.error(`[stack] ${msg}`);

  console.error(
    `Starting ${profile === 'cluster' ? 'a Temporal cluster' : 'Temporal dev server'} and PostgreSQL for the tests ` +
      `(data in ${dataDir})…`,
  );
  const stack = await startPrivateStack({
    temporal: profile,
    dataDir,
    databaseUrl: process.env.TEST_DATABASE_URL,
    log,
    announce,
  });
  const stopStack = () => stack.stop().finally(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  try {
    const bundlePath = await writeWorkflowBundle(path.join(dataDir, 'workflow-bundle.js'));

    const env = {
      ...process.env,
      TEST_TEMPORAL: profile,
      TEMPORAL_ADDRESS: stack.temporal.address,
      TEMPORAL_UI_URL: stack.temporal.uiUrl ?? '',
      // Tests run `temporal …` commands against whichever server runs.
      TEMPORAL_CLI_PATH: stack.cliPath ?? (await findTemporalCli({ log, announce })),
      DATABASE_URL: stack.databaseUrl,
      WORKFLOW_BUNDLE_PATH: bundlePath,
      TEST_DATA_DIR: dataDir,
      TEST_OUTPUT_DIR: outputDir,
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    };
    console.error(`Running ${files.length} test file(s) against Temporal ${stack.temporal.address} (${profile})`);
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
      child.on('exit', (code, signal) => {
        process.off('SIGINT', forward);
        process.off('SIGTERM', forward);
        resolve(code ?? (signal ? 1 : 0));
      });
    });
  } finally {
    await stopStack();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
