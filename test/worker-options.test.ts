import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SlotReserveContext } from '@temporalio/worker';
import { WorkflowTaskSlots } from '../workers/workflow-slots';
import { startWorker, testConfig } from './helpers/stack';

/** Settings that shape the worker reach the SDK worker it builds, with the CPU gate on or off. */
describe('agent worker options', () => {
  for (const cpuThreshold of [100, 80]) {
    it(`WORKER_MAX_WORKFLOW_TASKS and WORKER_MAX_UNCACHED_WORKFLOW_TASKS bound the workflow task slots (AGENTS_CPU_THRESHOLD ${cpuThreshold})`, async () => {
      const worker = await startWorker({
        ...testConfig(),
        WORKER_MAX_WORKFLOW_TASKS: 3,
        WORKER_MAX_UNCACHED_WORKFLOW_TASKS: 2,
        AGENTS_CPU_THRESHOLD: cpuThreshold,
      });
      try {
        // The SDK wraps a custom supplier; the wrapper keeps the original as `supplier`.
        const native = worker.worker.options.tuner.workflowTaskSlotSupplier as { supplier?: unknown };
        assert.ok(native.supplier instanceof WorkflowTaskSlots, 'the worker uses WorkflowTaskSlots');
        assert.deepEqual(native.supplier.limits, { maxSlots: 3, maxUncachedSlots: 2 });
      } finally {
        await worker.stop();
      }
    });
  }
});

describe('workflow task slots', () => {
  const uncached = reservation(false);
  const sticky = reservation(true);

  it('admit at most maxUncachedSlots tasks from the shared queue, and maxSlots in all', () => {
    const slots = new WorkflowTaskSlots({ maxSlots: 3, maxUncachedSlots: 2 });
    const permits = [slots.tryReserveSlot(uncached), slots.tryReserveSlot(uncached)];
    assert.ok(permits.every((p) => p !== null));
    assert.equal(slots.tryReserveSlot(uncached), null, 'a third uncached task waits');
    const stickyPermit = slots.tryReserveSlot(sticky);
    assert.notEqual(stickyPermit, null, 'a cached workflow takes the third slot');
    assert.equal(slots.tryReserveSlot(sticky), null, 'no fourth slot');
    slots.releaseSlot({ permit: stickyPermit! });
    assert.equal(slots.tryReserveSlot(uncached), null, 'a freed sticky slot is still no third uncached one');
    slots.releaseSlot({ permit: permits[0]! });
    assert.notEqual(slots.tryReserveSlot(uncached), null, 'a freed uncached slot is');
  });

  it('a waiting reservation gets the slot its kind needs when one is freed, and gives up when aborted', async () => {
    const slots = new WorkflowTaskSlots({ maxSlots: 4, maxUncachedSlots: 1 });
    const first = await slots.reserveSlot(uncached, new AbortController().signal);
    let granted = false;
    const waiting = slots.reserveSlot(uncached, new AbortController().signal).then((p) => {
      granted = true;
      return p;
    });
    const stickyPermit = await slots.reserveSlot(sticky, new AbortController().signal);
    slots.releaseSlot({ permit: stickyPermit });
    await new Promise((r) => setImmediate(r));
    assert.equal(granted, false, 'a freed sticky slot does not admit the uncached one');
    slots.releaseSlot({ permit: first });
    assert.deepEqual(await waiting, { uncached: true });
    assert.deepEqual([slots.issued, slots.uncachedIssued], [1, 1]);

    const abort = new AbortController();
    const withdrawn = slots.reserveSlot(uncached, abort.signal);
    abort.abort(new Error('poll no longer needed'));
    await assert.rejects(withdrawn, /poll no longer needed/);
    assert.deepEqual([slots.issued, slots.uncachedIssued], [1, 1], 'a withdrawn reservation takes nothing');
  });
});

function reservation(isSticky: boolean): SlotReserveContext {
  return { slotType: 'workflow', taskQueue: 'agents', workerIdentity: 'test', workerBuildId: '', isSticky };
}
