import type {
  CustomSlotSupplier,
  SlotMarkUsedContext,
  SlotPermit,
  SlotReleaseContext,
  SlotReserveContext,
  WorkflowSlotInfo,
} from '@temporalio/worker';

/** What a workflow task slot was reserved for (the shared queue or the worker's sticky one) and since when it works. */
interface WorkflowTaskPermit {
  uncached: boolean;
  usedSince?: number;
}

/**
 * Workflow task slots, at most `maxSlots` at once, that stop taking tasks from the task queue every worker
 * polls while `maxReplaying` of those are still running after `replayingAfterMs`.
 *
 * A task comes from the shared queue when its workflow is not in this worker's cache: a new run (done in
 * milliseconds) or one evicted earlier, which replays its whole history first (seconds for an agent near
 * AGENT_HISTORY_LIMIT). Tasks of cached workflows come from the worker's sticky queue and are never held
 * back. A workflow thread runs its tasks in turns, so replays admitted together all finish together: many
 * at once each outlast the workflow task timeout, time out and start over, while a few at a time finish
 * one after another and the cached agents keep answering meanwhile.
 */
export class WorkflowTaskSlots implements CustomSlotSupplier<WorkflowSlotInfo> {
  readonly type = 'custom';
  issued = 0;
  /** Shared-queue tasks being worked on. */
  private readonly uncachedInUse = new Set<WorkflowTaskPermit>();
  private waiting: (() => void)[] = [];

  constructor(
    readonly limits: { maxSlots: number; maxReplaying: number; replayingAfterMs: number },
    private readonly now: () => number = Date.now,
  ) {}

  /** Shared-queue tasks that have run long enough to be replays. */
  replaying(): number {
    const since = this.now() - this.limits.replayingAfterMs;
    let n = 0;
    for (const permit of this.uncachedInUse) if ((permit.usedSince ?? Infinity) <= since) n += 1;
    return n;
  }

  private admits(ctx: SlotReserveContext): boolean {
    if (this.issued >= this.limits.maxSlots) return false;
    return ctx.isSticky || this.replaying() < this.limits.maxReplaying;
  }

  private take(ctx: SlotReserveContext): WorkflowTaskPermit {
    this.issued += 1;
    return { uncached: !ctx.isSticky };
  }

  async reserveSlot(ctx: SlotReserveContext, abortSignal: AbortSignal): Promise<SlotPermit> {
    // Only a released slot makes room: a running task only ever becomes a replay, never stops being one.
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

  markSlotUsed(ctx: SlotMarkUsedContext<WorkflowSlotInfo>): void {
    const permit = ctx.permit as WorkflowTaskPermit;
    if (!permit.uncached) return;
    permit.usedSince = this.now();
    this.uncachedInUse.add(permit);
  }

  releaseSlot(ctx: SlotReleaseContext<WorkflowSlotInfo>): void {
    this.issued = Math.max(0, this.issued - 1);
    this.uncachedInUse.delete(ctx.permit as WorkflowTaskPermit);
    const waiting = this.waiting;
    this.waiting = [];
    for (const wake of waiting) wake();
  }
}

/** The workflow task slots of a worker with this configuration (WORKER_MAX_REPLAYS unset: two per workflow thread). */
export function workflowTaskSlotLimits(config: {
  WORKFLOW_THREADS: number;
  WORKER_MAX_WORKFLOW_TASKS: number;
  WORKER_MAX_REPLAYS?: number;
}): WorkflowTaskSlots['limits'] {
  return {
    maxSlots: config.WORKER_MAX_WORKFLOW_TASKS,
    maxReplaying: config.WORKER_MAX_REPLAYS ?? 2 * config.WORKFLOW_THREADS,
    replayingAfterMs: REPLAYING_AFTER_MS,
  };
}

/**
 * A shared-queue task still running after this long counts as a replay: a new agent's first task takes a
 * few milliseconds, an evicted agent's replay about 1 ms per history event.
 */
const REPLAYING_AFTER_MS = 250;
