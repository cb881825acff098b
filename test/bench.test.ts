import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';

const ROOT = path.resolve(__dirname, '..');

/**
 * The benchmark harness itself, in its --quick size: it starts its own stack, runs every scenario small and
 * writes results.json with the headline numbers. Timings are not asserted here (that is what the full
 * benchmark reports); only that every scenario ran and produced numbers.
 */
it('npm run bench -- --quick runs every scenario and writes its results', { timeout: 20 * 60_000 }, async () => {
  const out = path.join(ROOT, 'bench', 'tmp', 'results.json');
  fs.rmSync(out, { force: true });
  // The benchmark starts its own server and database: none of the test runner's addresses leak into it.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) =>
        ![
          'TEMPORAL_ADDRESS',
          'TEMPORAL_UI_URL',
          'DATABASE_URL',
          'WORKFLOW_BUNDLE_PATH',
          'TEMPORAL_TASK_QUEUE',
        ].includes(k),
    ),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench/run.ts'), '--quick'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-6000)));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, stderr);

  const r = JSON.parse(fs.readFileSync(out, 'utf8'));
  assert.equal(r.mode, 'quick');
  assert.equal(r.error, undefined);
  const positive = (v: unknown, what: string) => assert.ok(typeof v === 'number' && v > 0, `${what}: ${String(v)}`);
  positive(r.ceilingPerSec, 'ceilingPerSec');
  positive(r.tasksPerSec, 'tasksPerSec');
  positive(r.ratio, 'ratio');
  positive(r.shapePerSec, 'shapePerSec');
  positive(r.ratioToShape, 'ratioToShape');
  positive(r.inlineShapePerSec, 'inlineShapePerSec');
  for (const key of ['approvalResumeMs', 'rawSignalMs'] as const) {
    positive(r[key].p50, `${key}.p50`);
    assert.ok(r[key].p99 >= r[key].p50, `${key}: p99 >= p50`);
  }
  assert.equal(r.parkedAgents.count, 300);
  positive(r.parkedAgents.startPerSec, 'parkedAgents.startPerSec');
  positive(r.parkedAgents.workerRssMb, 'parkedAgents.workerRssMb');
  positive(r.parkedAgents.wakeFirstStepMs.p50, 'parkedAgents.wakeFirstStepMs.p50');
  positive(r.eventsPerTask, 'eventsPerTask');
  assert.equal(Object.keys(r.api).length, 4);
  for (const [route, v] of Object.entries(r.api) as [string, { p50: number; rps: number }][])
    positive(v.rps, `api ${route} rps`);
  // The budget scenario ran with demand above the budget: tokens were used, and reservations were recorded.
  positive(r.budget.utilisation, 'budget.utilisation');
  positive(r.budget.reservationTokens, 'budget.reservationTokens');
  assert.ok(r.budget.overshootTokens >= 0);
  assert.ok(fs.readFileSync(path.join(ROOT, 'bench', 'tmp', 'RESULTS.md'), 'utf8').includes('| 7 | token budget'));
});
