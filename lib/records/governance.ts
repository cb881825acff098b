import type { Db, Queryable } from '../db';

/**
 * SQL of the admission tables: `token_ledger` (token reservations per sliding window), `slot_leases` and
 * `slot_waiters` (slots and their queue, per `<kind>:<task queue>` pool) and `resource_buckets`. The checks
 * that must not race are SQL functions run under advisory locks (migrations/1733600000000_admission_functions.sql).
 */

/** Reserves `estimate` tokens if every budget has room in the window (`reserve_tokens`); true when granted. */
export async function reserveTokens(
  db: Db,
  r: {
    id: string;
    orgId: string;
    agentId: string;
    taskId: string | null;
    purpose: string;
    estimate: number;
    windowSeconds: number;
    globalLimit: number;
    orgLimit: number | null;
    agentLimit: number | null;
  },
): Promise<boolean> {
  const { rows } = await db.query<{ granted: boolean }>(
    'SELECT reserve_tokens($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) AS granted',
    [
      r.id,
      r.orgId,
      r.agentId,
      r.taskId,
      r.purpose,
      r.estimate,
      r.windowSeconds,
      r.globalLimit,
      r.orgLimit,
      r.agentLimit,
    ],
  );
  return rows[0]!.granted;
}

/** Which reservations a budget counts: all of them, or one organisation's or agent's. */
export type LedgerScope = { column: 'org_id' | 'agent_id'; value: string } | null;

/** The window's reservations within a scope, oldest first, with when each leaves the window. */
export async function ledgerWindow(
  db: Db,
  windowSeconds: number,
  scope: LedgerScope,
): Promise<{ tokens: number; expires_ms: number; settled: boolean }[]> {
  const { rows } = await db.query<{ tokens: number; expires_ms: number; settled: boolean }>(
    `SELECT tokens, settled_at IS NOT NULL AS settled,
            ceil(extract(epoch FROM (reserved_at + make_interval(secs => $1) - clock_timestamp())) * 1000)::int AS expires_ms
       FROM token_ledger WHERE reserved_at > clock_timestamp() - make_interval(secs => $1) AND ${scope ? `${scope.column} = $2` : 'TRUE'}
      ORDER BY reserved_at`,
    [windowSeconds, ...(scope ? [scope.value] : [])],
  );
  return rows;
}

/**
 * Replaces a reservation's estimate with the real usage. When that frees budget (the call used less than
 * its estimate), the workflow waiting longest for budget leaves the line in the same statement: its id
 * is returned for the caller to wake.
 */
export async function settleReservation(db: Db, id: string, tokens: number): Promise<string | null> {
  const { rows } = await db.query<{ workflow_id: string }>(
    `WITH settled AS (
       UPDATE token_ledger SET tokens = $2, settled_at = clock_timestamp() WHERE id = $1 RETURNING estimate
     ), next AS (
       SELECT workflow_id FROM admission_waiters
        WHERE kind = 'budget' AND EXISTS (SELECT 1 FROM settled WHERE estimate > $2)
        ORDER BY priority DESC, since LIMIT 1 FOR UPDATE SKIP LOCKED
     )
     DELETE FROM admission_waiters w USING next WHERE w.kind = 'budget' AND w.workflow_id = next.workflow_id
     RETURNING w.workflow_id`,
    [id, tokens],
  );
  return rows[0]?.workflow_id ?? null;
}

/** Puts a workflow in the line of those sleeping until a step slot or budget frees (keeping its place). */
export async function addAdmissionWaiter(
  db: Db,
  workflowId: string,
  kind: AdmissionWaitKind,
  priority: number,
): Promise<void> {
  await db.query(
    `INSERT INTO admission_waiters (workflow_id, kind, priority) VALUES ($1, $2, $3)
     ON CONFLICT (workflow_id, kind) DO UPDATE SET priority = GREATEST(admission_waiters.priority, EXCLUDED.priority)`,
    [workflowId, kind, priority],
  );
}

/** Takes the next workflow out of a line (highest priority, then longest waiting), for the caller to wake. */
export async function takeAdmissionWaiter(db: Db, kind: AdmissionWaitKind): Promise<string | null> {
  const { rows } = await db.query<{ workflow_id: string }>(
    `WITH next AS (
       SELECT workflow_id FROM admission_waiters WHERE kind = $1 ORDER BY priority DESC, since LIMIT 1 FOR UPDATE SKIP LOCKED
     )
     DELETE FROM admission_waiters w USING next WHERE w.kind = $1 AND w.workflow_id = next.workflow_id
     RETURNING w.workflow_id`,
    [kind],
  );
  return rows[0]?.workflow_id ?? null;
}

/** What a workflow sleeping in admission_waiters waits for: `budget`, or a step slot pool. */
export type AdmissionWaitKind = string;

/** Tokens used in the current window: in all, and by one organisation. */
export async function tokensInWindow(
  db: Db,
  orgId: string,
  windowSeconds: number,
): Promise<{ global: number; org: number }> {
  const { rows } = await db.query<{ global: number; org: number }>(
    `SELECT COALESCE(sum(tokens), 0) AS global, COALESCE(sum(tokens) FILTER (WHERE org_id = $1), 0) AS org
       FROM token_ledger WHERE reserved_at > clock_timestamp() - make_interval(secs => $2)`,
    [orgId, windowSeconds],
  );
  return rows[0]!;
}

/** Takes a slot of `pool` or queues for it (`acquire_slot`, one statement under the pool's advisory lock). */
export async function acquireSlot(
  db: Db,
  s: { pool: string; holder: string; priority: number; limit: number; leaseMs: number; waiterStaleSeconds: number },
): Promise<{ granted: boolean; ahead: number }> {
  const { rows } = await db.query<{ granted: boolean; ahead: number }>(
    'SELECT granted, ahead FROM acquire_slot($1, $2, $3, $4, $5, $6)',
    [s.pool, s.holder, s.priority, s.limit, s.leaseMs, s.waiterStaleSeconds],
  );
  return rows[0]!;
}

/** Gives a holder's slot back and takes it out of the queue. */
export async function releaseSlot(db: Db, pool: string, holder: string): Promise<void> {
  await db.query(
    `WITH released AS (
       UPDATE slot_leases SET released_at = clock_timestamp() WHERE kind = $1 AND holder = $2 AND released_at IS NULL
     )
     DELETE FROM slot_waiters WHERE kind = $1 AND holder = $2`,
    [pool, holder],
  );
}

/**
 * Gives a step slot back, like releaseSlot, and takes the workflow sleeping next for a step slot out of
 * its line in the same statement: its id is returned for the caller to wake.
 */
export async function releaseStepSlot(db: Db, pool: string, holder: string): Promise<string | null> {
  const { rows } = await db.query<{ workflow_id: string }>(
    `WITH released AS (
       UPDATE slot_leases SET released_at = clock_timestamp() WHERE kind = $1 AND holder = $2 AND released_at IS NULL
     ), left_line AS (
       DELETE FROM slot_waiters WHERE kind = $1 AND holder = $2
     ), next AS (
       SELECT workflow_id FROM admission_waiters WHERE kind = $1 ORDER BY priority DESC, since LIMIT 1 FOR UPDATE SKIP LOCKED
     )
     DELETE FROM admission_waiters w USING next WHERE w.kind = $1 AND w.workflow_id = next.workflow_id
     RETURNING w.workflow_id`,
    [pool, holder],
  );
  return rows[0]?.workflow_id ?? null;
}

/** The waiter next in line (highest priority, then longest waiting) that asked within `staleSeconds`. */
export async function nextWaiter(db: Db, pool: string, staleSeconds: number): Promise<string | null> {
  const next = await db.query<{ holder: string }>(
    `SELECT holder FROM slot_waiters WHERE kind = $1 AND seen_at > clock_timestamp() - make_interval(secs => $2)
      ORDER BY priority DESC, since LIMIT 1`,
    [pool, staleSeconds],
  );
  return next.rows[0]?.holder ?? null;
}

export async function dropWaiter(db: Db, pool: string, holder: string): Promise<void> {
  await db.query('DELETE FROM slot_waiters WHERE kind = $1 AND holder = $2', [pool, holder]);
}

/** Holders of a pool's slots taken more than a minute ago and not released. */
export async function longHeldSlots(db: Db, pool: string): Promise<string[]> {
  const { rows } = await db.query<{ holder: string }>(
    `SELECT holder FROM slot_leases WHERE kind = $1 AND released_at IS NULL AND acquired_at < clock_timestamp() - interval '60 seconds'`,
    [pool],
  );
  return rows.map((r) => r.holder);
}

/** Slots held and waiters still asking, for the agent and step pools of a task queue. */
export async function slotUse(db: Db, taskQueue: string): Promise<{ kind: string; held: number; waiting: number }[]> {
  const { rows } = await db.query<{ kind: string; held: number; waiting: number }>(
    `SELECT k.kind,
            (SELECT count(*) FROM slot_leases l WHERE l.kind = k.kind AND l.released_at IS NULL AND l.expires_at > clock_timestamp()) AS held,
            (SELECT count(*) FROM slot_waiters w WHERE w.kind = k.kind AND w.seen_at > clock_timestamp() - interval '30 seconds') AS waiting
       FROM (VALUES ('agent:' || $1), ('step:' || $1)) AS k(kind)`,
    [taskQueue],
  );
  return rows;
}

/** The named buckets with their level now (refill computed from the time since their last change), locked. */
export async function lockBuckets(
  tx: Queryable,
  names: string[],
): Promise<{ name: string; capacity: number; refill_per_second: number; tokens: number }[]> {
  const { rows } = await tx.query<{ name: string; capacity: number; refill_per_second: number; tokens: number }>(
    `SELECT name, capacity, refill_per_second,
            least(capacity, tokens + extract(epoch FROM clock_timestamp() - updated_at) * refill_per_second) AS tokens
       FROM resource_buckets WHERE name = ANY($1) ORDER BY name FOR UPDATE`,
    [names],
  );
  return rows;
}

/** Counts a refusal on each bucket. */
export async function countBucketWaits(tx: Queryable, names: string[]): Promise<void> {
  await tx.query('UPDATE resource_buckets SET waits_total = waits_total + 1 WHERE name = ANY($1)', [names]);
}

/** Sets a bucket's level after a grant. */
export async function takeFromBucket(tx: Queryable, name: string, tokensLeft: number): Promise<void> {
  await tx.query(
    `UPDATE resource_buckets SET tokens = $2, updated_at = clock_timestamp(), granted_total = granted_total + 1 WHERE name = $1`,
    [name, tokensLeft],
  );
}

/** Creates a bucket full, or resizes it keeping its level. */
export async function upsertBucket(db: Db, name: string, capacity: number, refillPerSecond: number): Promise<void> {
  await db.query(
    `INSERT INTO resource_buckets (name, capacity, refill_per_second, tokens) VALUES ($1, $2, $3, $2)
     ON CONFLICT (name) DO UPDATE SET capacity = EXCLUDED.capacity, refill_per_second = EXCLUDED.refill_per_second,
       tokens = least(resource_buckets.tokens, EXCLUDED.capacity)`,
    [name, capacity, refillPerSecond],
  );
}

/** Every bucket with its level now and its counters. */
export async function bucketLevels(db: Db) {
  const { rows } = await db.query<{
    name: string;
    capacity: number;
    refillPerSecond: number;
    tokens: number;
    grantedTotal: number;
    waitsTotal: number;
  }>(
    `SELECT name, capacity, refill_per_second AS "refillPerSecond",
            least(capacity, tokens + extract(epoch FROM clock_timestamp() - updated_at) * refill_per_second) AS tokens,
            granted_total AS "grantedTotal", waits_total AS "waitsTotal"
       FROM resource_buckets ORDER BY name`,
  );
  return rows;
}
