import type { CustomSlotSupplier, SlotPermit, SlotReleaseContext, SlotReserveContext, WorkflowSlotInfo } from '@temporalio/worker';

/** What a workflow task slot was reserved for: the worker's sticky queue, or the shared one. */
interface WorkflowTaskPermit {
  uncached: boolean;
}

/**
 * Workflow task slots, at most `maxSlots` at once, of which at most `maxUncachedSlots` for tasks from the
 * task queue every worker polls. A task comes from there when the workflow is not in this worker's cache:
 * a new run (cheap) or one evicted earlier, which must replay its whole history first (up to seconds for an
 * agent near AGENT_HISTORY_LIMIT). Tasks of cached workflows come from the worker's own sticky queue and
 * take the other slots. A workflow thread runs its tasks in turns, so replays admitted together all finish
 * together: many at once would each take longer than the workflow task timeout, time out and start over,
 * while a few at a time finish one after another and the cached agents keep answering meanwhile.
 */
export class WorkflowTaskSlots implements CustomSlotSupplier<WorkflowSlotInfo> {
  readonly type = 'custom';
  issued = 0;
  uncachedIssued = 0;
  private waiting: (() => void)[] = [];

  constructor(readonly limits: { maxSlots: number; maxUncachedSlots: number }) {}

  private admits(ctx: SlotReserveContext): boolean {
    if (this.issued >= this.limits.maxSlots) return false;
    return ctx.isSticky || this.uncachedIssued < this.limits.maxUncachedSlots;
  }

  private take(ctx: SlotReserveContext): WorkflowTaskPermit {
    this.issued += 1;
    if (!ctx.isSticky) this.uncachedIssued += 1;
    return { uncached: !ctx.isSticky };
  }

  async reserveSlot(ctx: SlotReserveContext, abortSignal: AbortSignal): Promise<SlotPermit> {
    while (!this.admits(ctx)) {
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          abortSignal.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          this.waiting = this.waiting.filter((w) => w !== wake);
          // The SDK expects its own abort reason back when it withdraws a reservation.
          reject(abortSignal.reason);
        };
        if (abortSignal.aborted) return onAbort();
        this.waiting.push(wake);
        abortSignal.addEventListener('abort', onAbort, { once: true });
      });
    }
    return this.take(ctx);
  }

  tryReserveSlot(ctx: SlotReserveContext): SlotPermit | null {
    return this.admits(ctx) ? this.take(ctx) : null;
  }

  markSlotUsed(): void {}

  releaseSlot(ctx: SlotReleaseContext<WorkflowSlotInfo>): void {
    this.issued = Math.max(0, this.issued - 1);
    if ((ctx.permit as WorkflowTaskPermit | undefined)?.uncached) {
      this.uncachedIssued = Math.max(0, this.uncachedIssued - 1);
    }
    // Every waiter checks again: a freed sticky slot may admit an uncached reservation and the other way round.
    const waiting = this.waiting;
    this.waiting = [];
    for (const wake of waiting) wake();
  }
}

/** The workflow task slots a worker with this configuration runs (WORKER_MAX_UNCACHED_WORKFLOW_TASKS unset: two per thread). */
export function workflowTaskSlotLimits(config: {
  WORKFLOW_THREADS: number;
  WORKER_MAX_WORKFLOW_TASKS: number;
  WORKER_MAX_UNCACHED_WORKFLOW_TASKS?: number;
}): { maxSlots: number; maxUncachedSlots: number } {
  const uncached = config.WORKER_MAX_UNCACHED_WORKFLOW_TASKS ?? 2 * config.WORKFLOW_THREADS;
  return {
    maxSlots: config.WORKER_MAX_WORKFLOW_TASKS,
    maxUncachedSlots: Math.min(uncached, config.WORKER_MAX_WORKFLOW_TASKS),
  };
}
