import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cachedWorkflows } from '../workers/workflow-cache';
import { startWorker, testConfig } from './helpers/stack';

/** Settings that shape the worker reach the SDK worker it builds, with the CPU gate on or off. */
describe('agent worker options', () => {
  for (const cpuThreshold of [100, 80]) {
    it(`WORKER_MAX_WORKFLOW_TASKS bounds the workflow task slots (AGENTS_CPU_THRESHOLD ${cpuThreshold})`, async () => {
      const worker = await startWorker({
        ...testConfig(),
        WORKER_MAX_WORKFLOW_TASKS: 3,
        AGENTS_CPU_THRESHOLD: cpuThreshold,
      });
      try {
        const slots = worker.worker.options.tuner.workflowTaskSlotSupplier;
        assert.equal(slots.type, 'fixed-size');
        assert.equal(slots.type === 'fixed-size' && slots.numSlots, 3);
      } finally {
        await worker.stop();
      }
    });
  }

  it('WORKER_MAX_CACHED_WORKFLOWS sizes the workflow cache; unset, it holds two workflows per MiB of heap', async () => {
    const sized = await startWorker({ ...testConfig(), WORKER_MAX_CACHED_WORKFLOWS: 123 });
    try {
      assert.equal(sized.worker.options.maxCachedWorkflows, 123);
    } finally {
      await sized.stop();
    }
    const unset = await startWorker(testConfig());
    try {
      assert.equal(unset.worker.options.maxCachedWorkflows, cachedWorkflows({}));
    } finally {
      await unset.stop();
    }
    // A 4 GiB heap holds 8,192 agents; the SDK's own default held 2,282.
    assert.equal(cachedWorkflows({}, 4 * 2 ** 30), 8192);
    assert.equal(cachedWorkflows({}, 16 * 2 ** 20), 100, 'never fewer than 100');
  });
});
