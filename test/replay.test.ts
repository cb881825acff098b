import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import {
  bundleWorkflowCode,
  DefaultLogger,
  makeTelemetryFilterString,
  Runtime,
  Worker,
  type ReplayWorkerOptions,
} from '@temporalio/worker';
import { silentLogger } from './helpers/stack';

const HISTORIES = path.join(__dirname, 'histories');

// The incompatible-change test makes the SDK log every nondeterminism it finds; those are expected here.
Runtime.install({
  logger: new DefaultLogger('ERROR'),
  telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }), forward: {} } },
});

/** Every recorded history (test/histories/*.json and legacy/*.json), by file name. */
function loadHistories() {
  const files = [HISTORIES, path.join(HISTORIES, 'legacy')]
    .filter((dir) => fs.existsSync(dir))
    .flatMap((dir) =>
      fs
        .readdirSync(dir)
        .filter((f) => f.endsWith('.json'))
        .map((f) => path.join(dir, f)),
    );
  return files.map((file) => ({
    workflowId: path.relative(HISTORIES, file),
    history: historyFromJSON(JSON.parse(fs.readFileSync(file, 'utf8'))),
  }));
}

/** Replays every history; collects failures instead of stopping at the first (runReplayHistories does not throw). */
async function replayAll(options: ReplayWorkerOptions) {
  const failures: { workflowId: string; error: string }[] = [];
  let replayed = 0;
  for await (const result of Worker.runReplayHistories(options, loadHistories())) {
    replayed += 1;
    if (result.error)
      failures.push({
        workflowId: result.workflowId,
        error: `${result.error.name}: ${result.error.message.split('\n')[0]}`,
      });
  }
  return { replayed, failures };
}

describe('replay of recorded histories', () => {
  it(
    'replays every recorded history with the current workflow code, deterministically',
    { timeout: 120_000 },
    async () => {
      const { replayed, failures } = await replayAll({
        workflowBundle: { codePath: process.env.WORKFLOW_BUNDLE_PATH! },
      });
      assert.ok(replayed >= 12, `at least 12 histories (found ${replayed}); record them with npm run histories:record`);
      assert.deepEqual(failures, []);
    },
  );

  it('catches an incompatible workflow change', { timeout: 120_000 }, async () => {
    const { code } = await bundleWorkflowCode({
      workflowsPath: path.join(__dirname, 'replay-fixtures/incompatible-workflows.ts'),
      logger: { ...silentLogger, log: () => undefined } as never,
    });
    const { failures } = await replayAll({ workflowBundle: { code } });
    const taskHistories = loadHistories().filter((h) => path.basename(h.workflowId).includes('task-'));
    assert.equal(failures.length, taskHistories.length, 'every TaskWorkflow history fails to replay');
    for (const failure of failures)
      assert.match(failure.error, /DeterminismViolation|Nondeterminism|nondetermin/i, failure.error);
  });
});
