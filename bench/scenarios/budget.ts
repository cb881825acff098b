/**
 * Scenario 7: the token budget while demand exceeds it, and how long prioritisation takes with and
 * without cache hits. Runs its own worker on its own task queue with a small budget and a short window,
 * keeps every agent busy, then reads the token ledger and the recorded scores.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { TemporalGateway } from '../../client/gateway';
import { startAgents, type Bench } from '../context';
import { log, round, spawnNode, summarize, taskOutcome, type Summary } from '../lib';

export interface BudgetResult {
  budgetTokens: number;
  windowSeconds: number;
  measuredSeconds: number;
  /** Tokens settled in the measured windows / what the budget allowed in them. */
  utilisation: number;
  /** The most any window (starting at a reservation) held beyond the budget; 0 when never. */
  overshootTokens: number;
  /** The largest single reservation: the allowed overshoot. */
  reservationTokens: number;
  tasksCompleted: number;
  prioritisationMs: { withCacheHit: Summary; withoutCacheHit: Summary; hitRatio: number };
}

/** Ten kinds of work, each phrased five ways: the cache should answer most scorings. */
const TOPICS = [
  'blog post about AI',
  'quarterly sales report',
  'login bug',
  'customer email',
  'market research',
  'release notes',
  'invoice review',
  'onboarding guide',
  'security audit',
  'product launch',
];
const PHRASINGS = ['Write {t}', 'Create the {t}', 'Prepare a {t}', 'Draft {t} please', 'Compose our {t}'];

export async function budgetAndPriorities(
  b: Bench,
  opts: { budgetTokens: number; windowSeconds: number; windows: number; agents: number; queue: string },
  waitForPollers: (queue: string) => Promise<void>,
): Promise<BudgetResult> {
  const worker = spawnNode('budget worker', 'workers/main.ts', {
    ...b.env,
    TEMPORAL_TASK_QUEUE: opts.queue,
    AGENTS_GLOBAL_TOKEN_BUDGET_PER_MINUTE: String(opts.budgetTokens),
    TOKEN_BUDGET_WINDOW_SECONDS: String(opts.windowSeconds),
  });
  try {
    await waitForPollers(opts.queue);
    const gateway = new TemporalGateway(b.client, opts.queue);
    const scoped: Bench = { ...b, gateway };
    const agents = await startAgents(scoped, opts.agents, 'budget');
    const started = Date.now();
    const until = started + (opts.windows + 1) * opts.windowSeconds * 1000;
    let completed = 0;
    // Two tasks in flight per agent, for the whole run: demand far above the budget. Each agent works on
    // one topic in ever new phrasings, so after its first scoring the cache can answer (the cache is per agent).
    await Promise.all(
      agents.flatMap((agent, a) => {
        let n = 0;
        return [0, 1].map(async () => {
          while (Date.now() < until) {
            const i = n++;
            const title = PHRASINGS[i % PHRASINGS.length].replace('{t}', TOPICS[a % TOPICS.length]);
            const taskId = randomUUID();
            await gateway.submitGoal(agent.id, {
              taskId,
              title,
              input: { script: [{ call: 'memory_read', args: { key: 'x' } }, { answer: 'ok' }] },
            });
            if ((await taskOutcome(b.db, taskId)).status === 'completed') completed++;
          }
        });
      }),
    );
    log(`budget: ${completed} tasks completed in ${Math.round((Date.now() - started) / 1000)} s`);

    const ids = agents.map((a) => a.id);
    const { rows } = await b.db.query<{ at: number; tokens: number; estimate: number }>(
      `SELECT extract(epoch FROM reserved_at) * 1000 AS at, tokens, estimate FROM token_ledger WHERE agent_id = ANY($1) ORDER BY reserved_at`,
      [ids],
    );
    const windowMs = opts.windowSeconds * 1000;
    // Skip the first window (the run filling up) and the tail (the last tasks draining).
    const from = started + windowMs;
    const to = from + (opts.windows - 1) * windowMs;
    const measured = rows.filter((r) => r.at >= from && r.at < to);
    const allowed = opts.budgetTokens * (opts.windows - 1);
    let worst = 0;
    for (const start of rows) {
      const sum = rows.filter((r) => r.at >= start.at && r.at < start.at + windowMs).reduce((s, r) => s + r.tokens, 0);
      worst = Math.max(worst, sum);
    }
    const scores = await b.db.query<{ source: string; duration_ms: number }>(
      'SELECT source, duration_ms FROM priority_scores WHERE agent_id = ANY($1)',
      [ids],
    );
    const hits = scores.rows.filter((r) => r.source === 'cache').map((r) => r.duration_ms);
    const misses = scores.rows.filter((r) => r.source !== 'cache').map((r) => r.duration_ms);
    return {
      budgetTokens: opts.budgetTokens,
      windowSeconds: opts.windowSeconds,
      measuredSeconds: ((opts.windows - 1) * windowMs) / 1000,
      utilisation: round(measured.reduce((s, r) => s + r.tokens, 0) / allowed, 3),
      overshootTokens: Math.max(0, worst - opts.budgetTokens),
      reservationTokens: Math.max(0, ...rows.map((r) => r.estimate)),
      tasksCompleted: completed,
      prioritisationMs: {
        withCacheHit: summarize(hits),
        withoutCacheHit: summarize(misses),
        hitRatio: round(hits.length / (scores.rows.length || NaN), 3),
      },
    };
  } finally {
    await worker.stop();
    await sleep(100);
  }
}
