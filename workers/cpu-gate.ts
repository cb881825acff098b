import os from 'node:os';
import type { ActivitySlotInfo, CustomSlotSupplier, SlotPermit, SlotReserveContext } from '@temporalio/worker';

/** Host CPU use in percent over the last sampling interval, from the kernel's per-core counters. */
export class CpuSampler {
  percent = 0;
  private last = totals();
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs = 1000) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  sample(): number {
    const now = totals();
    const busy = now.busy - this.last.busy;
    const all = busy + (now.idle - this.last.idle);
    this.last = now;
    if (all > 0) this.percent = (busy / all) * 100;
    return this.percent;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

function totals(): { busy: number; idle: number } {
  let busy = 0;
  let idle = 0;
  for (const cpu of os.cpus()) {
    const { user, nice, sys, irq, idle: i } = cpu.times;
    busy += user + nice + sys + irq;
    idle += i;
  }
  return { busy, idle };
}

/**
 * Activity slots for a worker that takes no new step while the host is above AGENTS_CPU_THRESHOLD.
 * Up to `maxSlots` activities run when the CPU is below the threshold; above it, no slot is handed out
 * beyond `minimumSlots` (so the worker still makes progress when something else keeps the CPU busy)
 * until the load drops. Slots already reserved by pollers are the SDK's and are not taken back.
 */
export class CpuGatedActivitySlots implements CustomSlotSupplier<ActivitySlotInfo> {
  readonly type = 'custom';
  issued = 0;

  constructor(
    private readonly cpu: { percent: number },
    private readonly opts: { thresholdPercent: number; maxSlots: number; minimumSlots: number; recheckMs?: number },
  ) {}

  private admits(): boolean {
    if (this.issued >= this.opts.maxSlots) return false;
    return this.issued < this.opts.minimumSlots || this.cpu.percent <= this.opts.thresholdPercent;
  }

  async reserveSlot(_ctx: SlotReserveContext, abortSignal: AbortSignal): Promise<SlotPermit> {
    while (!this.admits()) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          clearTimeout(timer);
          // The SDK expects its own abort reason back when it withdraws a reservation.
          reject(abortSignal.reason);
        };
        const timer = setTimeout(() => {
          abortSignal.removeEventListener('abort', onAbort);
          resolve();
        }, this.opts.recheckMs ?? 100);
        abortSignal.addEventListener('abort', onAbort, { once: true });
      });
    }
    this.issued += 1;
    return {};
  }

  tryReserveSlot(): SlotPermit | null {
    if (!this.admits()) return null;
    this.issued += 1;
    return {};
  }

  markSlotUsed(): void {}

  releaseSlot(): void {
    this.issued = Math.max(0, this.issued - 1);
  }
}
