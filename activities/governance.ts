import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Config } from '../lib/config';
import { withTransaction, type Db } from '../lib/db';
import * as ledger from '../lib/records/governance';
import { ErrorType } from '../contract/errors';
import type { TemporalGateway } from '../client/gateway';
import type { AdmissionWait } from '../contract/definitions';

/**
 * Admission control shared by every worker process, kept in Postgres: token budgets (sliding windows),
 * slots (agents running, steps in flight) and resource token buckets. Each check is one transaction
 * under an advisory lock, so two workers can never both take the last token or the last slot. Slots and
 * reservations, taken several times per task, are SQL functions: one round trip each.
 * A refusal says how long to wait; the workflow waits on a durable timer, holding no worker slot.
 */

export type SlotKind = 'agent' | 'step';

/**
 * Slots are counted per task queue: the workers of one queue are one deployment, whose limits they
 * share. Stored as `<kind>:<task queue>`.
 */
function slotPool(kind: SlotKind): string {
  return `${kind}:${Context.current().info.taskQueue}`;
}

/** Step slots are per task queue (like their slots); the token budget is one for all. */
function admissionLine(line: 'step' | 'budget'): string {
  return line === 'step' ? slotPool('step') : 'budget';
}

/** How soon a refused reservation asks again while other calls of the window have not settled yet. */
const IN_FLIGHT_RECHECK_MS = 1000;

/**
 * A waiter that has not asked again for this long has gone away (its task was cancelled or finished).
 * Step waiters ask every few seconds; agents sleep until woken, asking again after AGENT_SLOT_RECHECK_SECONDS
 * (up to four times that), so their place in line is kept longer.
 */
function waiterStaleSeconds(slotKind: SlotKind, config: Config): number {
  return slotKind === 'agent' ? Math.max(30, 5 * config.AGENT_SLOT_RECHECK_SECONDS) : 30;
}

export interface TokenReservation {
  id: string;
  orgId: string;
  agentId: string;
  taskId: string | null;
  purpose: 'step' | 'review' | 'chat' | 'priority' | 'meta';
  estimate: number;
  /** The agent's own budget per window, if it has one. */
  agentBudget?: number | null;
}

interface BudgetScope {
  name: string;
  limit: number;
  /** The reservations the budget counts. */
  scope: ledger.LedgerScope;
}

export type Admission = { granted: true } | { granted: false; wait: AdmissionWait };

/** The failure an activity throws when a step must wait; the workflow sleeps `retryAfterMs` and retries. */
export function admissionFailure(wait: AdmissionWait): ApplicationFailure {
  return ApplicationFailure.create({
    message: `waiting: ${wait.detail}`,
    type: ErrorType.AdmissionWait,
    nonRetryable: true,
    details: [wait],
  });
}

/** Why an AdmissionWait failure waits (undefined for any other error). */
export function admissionReason(err: unknown): AdmissionWait['reason'] | undefined {
  if (!isAdmissionWait(err)) return undefined;
  return ((err as ApplicationFailure).details?.[0] as AdmissionWait | undefined)?.reason;
}

export function isAdmissionWait(err: unknown): boolean {
  return err instanceof ApplicationFailure && err.type === ErrorType.AdmissionWait;
}

/** Estimated tokens of a call: the prompt at four characters a token, plus the output allowance. */
export function estimateTokens(promptChars: number, config: Config): number {
  return Math.ceil(promptChars / 4) + config.TOKEN_RESERVATION_OUTPUT_TOKENS;
}

export function createGovernance(db: Db, config: Config) {
  const windowSeconds = config.TOKEN_BUDGET_WINDOW_SECONDS;

  /** The budgets a reservation counts against: global always, the org's and the agent's when set. */
  function budgetScopes(r: TokenReservation): BudgetScope[] {
    const scopes: BudgetScope[] = [
      { name: 'global', limit: config.AGENTS_GLOBAL_TOKEN_BUDGET_PER_MINUTE, scope: null },
    ];
    if (config.ORG_TOKEN_BUDGET_PER_MINUTE > 0) {
      scopes.push({
        name: `org ${r.orgId}`,
        limit: config.ORG_TOKEN_BUDGET_PER_MINUTE,
        scope: { column: 'org_id', value: r.orgId },
      });
    }
    if (r.agentBudget)
      scopes.push({
        name: `agent ${r.agentId}`,
        limit: r.agentBudget,
        scope: { column: 'agent_id', value: r.agentId },
      });
    return scopes;
  }

  /**
   * Reserves the estimate against every budget that applies (global, org, agent) if all have room in the
   * current window; otherwise says when enough of the window will have expired. Reserving the same id
   * twice (a retried activity) is answered from the first reservation. The check and the reservation are
   * one statement (`reserve_tokens`, under the budget lock); only a refusal reads the window's rows.
   */
  async function reserveTokens(r: TokenReservation): Promise<Admission> {
    const granted = await ledger.reserveTokens(db, {
      id: r.id,
      orgId: r.orgId,
      agentId: r.agentId,
      taskId: r.taskId,
      purpose: r.purpose,
      estimate: r.estimate,
      windowSeconds,
      globalLimit: config.AGENTS_GLOBAL_TOKEN_BUDGET_PER_MINUTE,
      orgLimit: config.ORG_TOKEN_BUDGET_PER_MINUTE > 0 ? config.ORG_TOKEN_BUDGET_PER_MINUTE : null,
      agentLimit: r.agentBudget || null,
    });
    if (granted) return { granted: true };
    return { granted: false, wait: await budgetWait(r) };
  }

  /** How long a refused reservation waits: until enough of the blocking window has expired. */
  async function budgetWait(r: TokenReservation): Promise<AdmissionWait> {
    let waitMs = 0;
    let blocking = '';
    // The wait ends when a call in flight settles below its estimate (settleTokens wakes a waiter then).
    let untilSettled = false;
    for (const scope of budgetScopes(r)) {
      const need = Math.min(r.estimate, scope.limit);
      const reservations = await ledger.ledgerWindow(db, windowSeconds, scope.scope);
      const used = reservations.reduce((n, row) => n + row.tokens, 0);
      if (used + need <= scope.limit) continue;
      // Walk the window from its oldest reservation until enough will have expired.
      let freed = 0;
      let until = windowSeconds * 1000;
      for (const row of reservations) {
        freed += row.tokens;
        if (used - freed + need <= scope.limit) {
          until = row.expires_ms;
          break;
        }
      }
      // Calls in flight hold their whole estimate, and most settle well below it within seconds: ask again
      // soon rather than waiting for the window to expire, or the budget goes underused.
      const settling = reservations.some((row) => !row.settled) && until > IN_FLIGHT_RECHECK_MS;
      if (settling) until = IN_FLIGHT_RECHECK_MS;
      if (until > waitMs) {
        waitMs = until;
        untilSettled = settling;
        blocking = `${scope.name} token budget (${used}/${scope.limit} tokens in the last ${windowSeconds}s, this call needs ~${r.estimate})`;
      }
    }
    // Room came back between the refusal and this read: ask again at once.
    if (!blocking) return { reason: 'token_budget', retryAfterMs: 100, detail: 'token budget (room freed just now)' };
    return {
      reason: 'token_budget',
      retryAfterMs: Math.max(100, waitMs + 50),
      detail: blocking,
      ...(untilSettled ? { wake: true } : {}),
    };
  }

  /**
   * Replaces a reservation's estimate with the real usage (0 when the call failed before using any);
   * answers the workflow waiting next for budget when that freed some, for the caller to wake.
   */
  async function settleTokens(id: string, tokens: number): Promise<string | null> {
    return ledger.settleReservation(db, id, tokens);
  }

  /**
   * Takes one of `limit` slots of a kind for `holder`, or queues it: a free slot goes to the waiting
   * holders in priority order (then the longest waiting). Idempotent per holder (renews its lease).
   * Leases expire, so a slot held by a process that died comes back on its own.
   */
  async function acquireSlot(
    slotKind: SlotKind,
    holder: string,
    priority: number,
    limit: number,
    leaseMs: number,
  ): Promise<{ granted: boolean; ahead: number }> {
    // One statement under the pool's advisory lock (migrations/1733600000000_admission_functions.sql).
    return ledger.acquireSlot(db, {
      pool: slotPool(slotKind),
      holder,
      priority: Math.round(priority),
      limit,
      leaseMs: Math.round(leaseMs),
      waiterStaleSeconds: waiterStaleSeconds(slotKind, config),
    });
  }

  /** Gives a slot back (a waiter row of the same holder goes too). */
  async function releaseSlot(slotKind: SlotKind, holder: string): Promise<void> {
    await ledger.releaseSlot(db, slotPool(slotKind), holder);
  }

  /** Gives a step slot back; answers the workflow sleeping next for one, for the caller to wake. */
  async function releaseStepSlot(holder: string): Promise<string | null> {
    return ledger.releaseStepSlot(db, slotPool('step'), holder);
  }

  /** Who waits for a slot next: highest priority, then longest waiting. */
  async function nextWaiter(slotKind: SlotKind): Promise<string | null> {
    return ledger.nextWaiter(db, slotPool(slotKind), waiterStaleSeconds(slotKind, config));
  }

  /** Removes a waiter that will never ask again (its workflow is gone). */
  async function dropWaiter(slotKind: SlotKind, holder: string): Promise<void> {
    await ledger.dropWaiter(db, slotPool(slotKind), holder);
  }

  /**
   * Takes `tokens` from each named bucket that exists, all or nothing; unknown names are not limited.
   * Refill is computed on the fly from the time since the bucket's last change.
   */
  async function takeResources(needs: { name: string; tokens: number }[]): Promise<Admission> {
    if (needs.length === 0) return { granted: true };
    return withTransaction(db, async (tx) => {
      const names = [...new Set(needs.map((n) => n.name))].sort();
      const rows = await ledger.lockBuckets(tx, names);
      let waitMs = 0;
      let blocking = '';
      for (const bucket of rows) {
        const need = Math.min(
          bucket.capacity,
          needs.filter((n) => n.name === bucket.name).reduce((s, n) => s + n.tokens, 0),
        );
        if (bucket.tokens >= need) continue;
        const ms = Math.ceil(((need - bucket.tokens) / bucket.refill_per_second) * 1000);
        if (ms > waitMs) {
          waitMs = ms;
          blocking = `resource "${bucket.name}" (${bucket.tokens.toFixed(1)}/${bucket.capacity} tokens, refills ${bucket.refill_per_second}/s)`;
        }
      }
      if (blocking) {
        await ledger.countBucketWaits(
          tx,
          rows.map((r) => r.name),
        );
        return {
          granted: false,
          wait: { reason: 'resource', retryAfterMs: Math.max(50, waitMs + 20), detail: blocking },
        };
      }
      for (const bucket of rows) {
        const need = Math.min(
          bucket.capacity,
          needs.filter((n) => n.name === bucket.name).reduce((s, n) => s + n.tokens, 0),
        );
        await ledger.takeFromBucket(tx, bucket.name, bucket.tokens - need);
      }
      return { granted: true };
    });
  }

  /** Creates or resizes the configured buckets (a new bucket starts full; a resized one keeps its level). */
  async function syncBuckets(buckets: Config['RESOURCE_BUCKETS']): Promise<void> {
    for (const [name, b] of Object.entries(buckets)) {
      await ledger.upsertBucket(db, name, b.capacity, b.refillPerSecond);
    }
  }

  return {
    reserveTokens,
    settleTokens,
    acquireSlot,
    releaseSlot,
    releaseStepSlot,
    nextWaiter,
    dropWaiter,
    /** Puts a workflow in the line of those sleeping until a step slot (or budget) frees. */
    addAdmissionWaiter: (workflowId: string, line: 'step' | 'budget', priority: number) =>
      ledger.addAdmissionWaiter(db, workflowId, admissionLine(line), Math.round(priority)),
    /** Takes the next sleeping workflow out of a line, for the caller to wake. */
    takeAdmissionWaiter: (line: 'step' | 'budget') => ledger.takeAdmissionWaiter(db, admissionLine(line)),
    takeResources,
    syncBuckets,
  };
}

export type Governance = ReturnType<typeof createGovernance>;

/**
 * A slot of AGENTS_MAX_ACTIVE is held while a goal works (its waits give it back), renewed whenever it is
 * taken again. The lease bounds how long a slot can outlive a holder that stopped without releasing it.
 */
function agentSlotLeaseMs(config: Config): number {
  return Math.max(3_600_000, 2 * config.AGENT_TIMEOUT_SECONDS * 1000);
}

/** How many gone waiters one release skips before giving up on waking anyone (they expire anyway). */
const MAX_WAKE_ATTEMPTS = 10;

/**
 * The activities agent workflows use to take and give back one of AGENTS_MAX_ACTIVE slots. A refused
 * request also looks for slots whose agent workflow is no longer running (terminated by an operator)
 * and frees them, so a slot can never be lost for good.
 */
export function createGovernanceActivities(
  governance: Governance,
  db: Db,
  config: Config,
  agents: Pick<TemporalGateway, 'isAgentRunning' | 'wakeAgent'>,
) {
  async function freeOrphanedAgentSlots(): Promise<number> {
    let freed = 0;
    for (const holder of await ledger.longHeldSlots(db, slotPool('agent'))) {
      if (!(await agents.isAgentRunning(holder))) {
        await governance.releaseSlot('agent', holder);
        freed += 1;
      }
    }
    return freed;
  }

  /** Signals the agent waiting next; a waiter whose workflow is gone leaves the line and the next is tried. */
  async function wakeNextWaiter(): Promise<string | null> {
    for (let attempt = 0; attempt < MAX_WAKE_ATTEMPTS; attempt++) {
      const next = await governance.nextWaiter('agent');
      if (!next) return null;
      if (await agents.wakeAgent(next)) return next;
      await governance.dropWaiter('agent', next);
    }
    return null;
  }

  const acquire = (input: { agentId: string; priority: number }) =>
    governance.acquireSlot('agent', input.agentId, input.priority, config.AGENTS_MAX_ACTIVE, agentSlotLeaseMs(config));

  return {
    async acquireAgentSlot(input: { agentId: string; priority: number }): Promise<{ granted: boolean; ahead: number }> {
      const first = await acquire(input);
      if (first.granted || (await freeOrphanedAgentSlots()) === 0) return first;
      return acquire(input);
    },
    /**
     * Gives the slot back (and leaves the line). With `wakeNext`, signals the agent waiting next itself and
     * answers null; otherwise answers who that is, for the caller to wake (runs from before that existed).
     */
    async releaseAgentSlot(input: { agentId: string; wakeNext?: boolean }): Promise<{ nextAgentId: string | null }> {
      await governance.releaseSlot('agent', input.agentId);
      if (input.wakeNext) {
        await wakeNextWaiter();
        return { nextAgentId: null };
      }
      return { nextAgentId: await governance.nextWaiter('agent') };
    },
  };
}
