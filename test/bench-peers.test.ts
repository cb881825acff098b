import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';

import { historyLines, runBenchmark } from './helpers/bench-run';

const ROOT = path.resolve(__dirname, '..');

/**
 * The peers benchmark in its --quick size: it installs the peers on first use, starts its own stack and runs
 * the same agent task on every system. Timings are not asserted (the full run reports them); only that every
 * system ran its tasks without failures, that the crash test killed the worker and counted every task, and
 * that the run was kept.
 */
it(
  'npm run bench:peers -- --quick runs the task on every system and counts the crash test',
  { timeout: 40 * 60_000 },
  async () => {
    const dir = path.join(ROOT, 'bench', 'peers', 'tmp');
    const out = path.join(dir, 'results.json');
    fs.rmSync(out, { force: true });
    const historyFile = path.join(dir, 'history.jsonl');
    const lines = () => historyLines(historyFile);
    const runsBefore = lines().length;
    const { code, stderr } = await runBenchmark('bench/peers/run.ts', ['--quick'], 8000);
    assert.equal(code, 0, stderr);

    const r = JSON.parse(fs.readFileSync(out, 'utf8'));
    assert.equal(r.mode, 'quick');
    assert.equal(r.error, undefined);
    assert.deepEqual(
      r.systems.map((s: { name: string }) => s.name),
      ['orchestrator (gateway)', 'orchestrator (API)', 'Temporal AI SDK', 'LangGraph.js', 'DBOS'],
    );
    for (const s of r.systems) {
      assert.equal(s.error, undefined, `${s.name}: ${s.error}`);
      for (const key of ['throughput0ms', 'throughput200ms'] as const) {
        assert.ok(s[key].completed > 0, `${s.name} ${key}: no task completed`);
        assert.equal(s[key].failed, 0, `${s.name} ${key}: failed tasks`);
      }
      assert.equal(s.latencyAtRate.failed, 0, `${s.name}: failed tasks at a fixed rate`);
      assert.equal(s.latencyAtRate.latencyMs.n, r.settings.rate * r.settings.rateSeconds);
      assert.ok(s.cpuMsPerTask.total > 0, `${s.name}: CPU per task`);
      // The crash test killed the worker as often as asked and accounted for every task.
      assert.equal(s.crash.kills, r.settings.kills, `${s.name}: kills`);
      assert.equal(s.crash.tasks, r.settings.crashTasks);
      for (const k of ['lost', 'failed', 'finishedTwice', 'toolWritesDuplicated', 'modelCallsRepeated'])
        assert.ok(Number.isInteger(s.crash[k]) && s.crash[k] >= 0, `${s.name}: crash.${k} = ${s.crash[k]}`);
      assert.equal(s.humanWait.decisionToNextStepMs.n, r.settings.hitl, `${s.name}: human wait samples`);
    }
    // The orchestrator loses nothing and applies no write twice.
    for (const s of r.systems.slice(0, 2)) {
      assert.equal(s.crash.lost, 0, `${s.name}: lost tasks`);
      assert.equal(s.crash.toolWritesDuplicated, 0, `${s.name}: duplicated writes`);
    }
    for (const s of r.systems.slice(0, 3)) assert.ok(s.historyEventsPerTask > 0, `${s.name}: history events`);
    const markdown = fs.readFileSync(path.join(dir, 'RESULTS.md'), 'utf8');
    assert.ok(markdown.includes('| crash test: lost / failed |'));
    assert.equal(lines().length, runsBefore + 1);
  },
);
