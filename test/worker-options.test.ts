import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
});
