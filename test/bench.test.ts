import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';

import { historyLines, runBenchmark } from './helpers/bench-run';

const ROOT = path.resolve(__dirname, '..');

/**
 * The benchmark harness itself, in its --quick size: it starts its own stack, runs every scenario small and
 * writes results.json with the headline numbers. Timings are not asserted here (that is what the full
 * benchmark reports); only that every scenario ran and produced numbers.
 */
it('npm run bench -- --quick runs every scenario and writes its results', { timeout: 20 * 60_000 }, async () => {
  const out = path.join(ROOT, 'bench', 'tmp', 'results.json');
  fs.rmSync(out, { force: true });
  const historyFile = path.join(ROOT, 'bench', 'tmp', 'history.jsonl');
  const lines = () => historyLines(historyFile);
  const runsBefore = lines().length;
  const { code, stderr } = await runBenchmark('bench/run.ts', ['--quick'], 6000);
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
  positive(r.floorRatio, 'floorRatio');
  positive(r.ceilingRatioMin, 'ceilingRatioMin');
  assert.ok(
    r.ceilingRatioMin <= r.ratio,
    'against the higher ceiling run the ratio is at most the one against the mean',
  );
  for (const key of [
    'approvalResumeHttpMs',
    'approvalResumeMs',
    'rawSignalMs',
    'chatFirstTokenOverheadMs',
    'submitAt20rpsMs',
  ] as const) {
    positive(r[key].p50, `${key}.p50`);
    assert.ok(r[key].p99 >= r[key].p50, `${key}: p99 >= p50`);
  }
  assert.equal(r.scenarios.submitAtRate.non2xx, 0);
  assert.deepEqual(
    r.scenarios.chatFirstToken.levels.map((l: { concurrency: number; failed: number }) => [l.concurrency, l.failed]),
    [
      [1, 0],
      [10, 0],
    ],
  );
  // 2t ran scenario 2 again with the worker traced, and Jaeger received the worker's spans.
  positive(r.tracingOverhead.tracedPerSec, 'tracingOverhead.tracedPerSec');
  assert.equal(r.tracingOverhead.untracedPerSec, r.tasksPerSec);
  assert.equal(typeof r.tracingOverhead.lower, 'number');
  assert.ok(r.tracingOverhead.exportedServices.length > 0, 'Jaeger received spans');
  assert.equal(r.scenarios.agentTasksTraced.failed, 0);
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
  const markdown = fs.readFileSync(path.join(ROOT, 'bench', 'tmp', 'RESULTS.md'), 'utf8');
  assert.ok(markdown.includes('| 7 | token budget'));
  // The run was kept: one more line in the history, with this run's numbers, shown in RESULTS.md.
  const kept = lines();
  assert.equal(kept.length, runsBefore + 1);
  const entry = JSON.parse(kept.at(-1)!);
  assert.equal(entry.startedAt, r.startedAt);
  assert.equal(entry.headline.floorRatio, r.floorRatio);
  assert.ok(markdown.includes('## Runs of commit'));
});
