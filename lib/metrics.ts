/**
 * Prometheus metrics (prom-client), all defined here and all named `agents_*`.
 *
 * Two registries, because two kinds of process serve them:
 * - the API's (`createApiMetrics`) reads Postgres at scrape time: agents by status, tasks by agent type
 *   and status, queue depth, tokens used, approvals. Postgres is shared by every process, so any API
 *   replica answers the same numbers and nothing is lost when a process restarts.
 * - the worker's (`workerMetrics`) observes what happens inside this process where it happens: step
 *   durations, provider errors, circuit state. Prometheus sums them across workers.
 * The Temporal SDK's own worker metrics come from the SDK's Prometheus exporter (see workers/agent-worker.ts)
 * and are appended to the worker's /metrics.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Db } from './db';

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

// ---------------------------------------------------------------------------------------------
// Worker side: observed in activities (activities/steps.ts, activities/llm/circuits.ts).

const workerRegistry = new Registry();
collectDefaultMetrics({ register: workerRegistry, prefix: 'agents_worker_' });

const stepDuration = new Histogram({
  name: 'agents_step_duration_seconds',
  help: 'Duration of one task or chat step in this worker: a model call (target = provider) or a tool call (target = tool)',
  labelNames: ['kind', 'target', 'outcome'] as const,
  // Model calls take seconds; tools from milliseconds to a minute.
  buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
  registers: [workerRegistry],
});

const providerErrors = new Counter({
  name: 'agents_provider_errors_total',
  help: 'Failed model calls by provider and kind (rate_limited, unavailable, timeout, network, auth, invalid_request, context_length, refusal, circuit_open)',
  labelNames: ['provider', 'kind'] as const,
  registers: [workerRegistry],
});

/** A provider circuit breaker's state; defined here so lib/ needs nothing from activities/llm/circuits.ts. */
export type CircuitStateName = 'closed' | 'open' | 'half_open';

const CIRCUIT_VALUES: Record<CircuitStateName, number> = { closed: 0, half_open: 1, open: 2 };
const circuitState = new Gauge({
  name: 'agents_provider_circuit_state',
  help: "State of this worker's circuit breaker per provider: 0 closed, 1 half-open, 2 open",
  labelNames: ['provider'] as const,
  registers: [workerRegistry],
});

/** What activities record; each call is one line where the thing happens. */
export const workerMetrics = {
  registry: workerRegistry,

  /** Starts timing a step; call the returned function with its outcome when it ends. */
  startStep(kind: 'model' | 'tool') {
    const end = stepDuration.startTimer({ kind });
    return (target: string, outcome: 'ok' | 'error') => end({ target, outcome });
  },

  providerError(provider: string, kind: string): void {
    providerErrors.inc({ provider, kind });
  },

  circuitState(provider: string, state: CircuitStateName): void {
    circuitState.set({ provider }, CIRCUIT_VALUES[state]);
  },
};

// ---------------------------------------------------------------------------------------------
// API side: read from Postgres when Prometheus scrapes.

/** The global token budget, so `agents_token_budget_used_tokens` can be read against it. */
export interface TokenBudgetSettings {
  tokensPerWindow: number;
  windowSeconds: number;
}

export function createApiMetrics(db: Db, opts: { tokenBudget?: TokenBudgetSettings } = {}): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'agents_api_' });

  /** A gauge whose every value is recomputed from one query at scrape time. */
  const fromQuery = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    sql: string,
    valueColumn = 'value',
  ) =>
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        const { rows } = await db.query<Record<string, string | number>>(sql);
        // Label sets that no longer occur (an agent type whose last agent was archived) disappear.
        this.reset();
        for (const row of rows) {
          const labels = Object.fromEntries(labelNames.map((l) => [l, String(row[l])])) as Record<L, string>;
          this.set(labels, Number(row[valueColumn]));
        }
      },
    });

  fromQuery(
    'agents_agents',
    'Agents by status and type',
    ['status', 'agent_type'],
    `SELECT status, type AS agent_type, count(*) AS value FROM agents GROUP BY 1, 2`,
  );
  fromQuery(
    'agents_tasks',
    'Tasks by agent type and status (queued, planning, awaiting_approval, running, waiting_for_budget, validating, completed, failed, cancelled)',
    ['agent_type', 'status'],
    `SELECT a.type AS agent_type, t.status, count(*) AS value FROM tasks t JOIN agents a ON a.id = t.agent_id GROUP BY 1, 2`,
  );
  fromQuery(
    'agents_tasks_started',
    'Tasks that started running (their first model call), by agent type; completed and failed are in agents_tasks',
    ['agent_type'],
    `SELECT a.type AS agent_type, count(*) AS value FROM tasks t JOIN agents a ON a.id = t.agent_id WHERE t.started_at IS NOT NULL GROUP BY 1`,
  );
  // From the task rows (written when a goal is accepted), not agents.queue_length, which the agent
  // workflow publishes only with its next transition to keep bursts of submissions out of its history.
  fromQuery(
    'agents_queue_depth',
    "Goals waiting in agents' queues (accepted, not yet started), by agent type",
    ['agent_type'],
    `SELECT a.type AS agent_type, count(t.id) AS value FROM agents a LEFT JOIN tasks t ON t.agent_id = a.id AND t.status = 'queued'
     WHERE a.status <> 'ARCHIVED' GROUP BY 1`,
  );
  fromQuery(
    'agents_tokens_used',
    'Tokens used by model calls, by agent type and direction (input, output)',
    ['agent_type', 'direction'],
    `SELECT a.type AS agent_type, d.direction, sum(CASE d.direction WHEN 'input' THEN t.input_tokens ELSE t.output_tokens END) AS value
     FROM tasks t JOIN agents a ON a.id = t.agent_id CROSS JOIN (VALUES ('input'), ('output')) AS d(direction) GROUP BY 1, 2`,
  );
  fromQuery(
    'agents_approvals',
    'Approval requests by status (pending, approved, rejected, expired)',
    ['status'],
    `SELECT status, count(*) AS value FROM approvals GROUP BY 1`,
  );
  fromQuery(
    'agents_approval_oldest_pending_seconds',
    'Age of the oldest pending approval request (0 when none waits)',
    [],
    `SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) AS value FROM approvals WHERE status = 'pending'`,
  );
  // Sum and count of decided requests' wait, so `rate(sum) / rate(count)` is the mean wait over a window.
  fromQuery(
    'agents_approval_wait_seconds_sum',
    'Total time decided approval requests waited for their decision, by outcome',
    ['status'],
    `SELECT status, sum(EXTRACT(EPOCH FROM decided_at - created_at)) AS value FROM approvals WHERE decided_at IS NOT NULL GROUP BY 1`,
  );
  fromQuery(
    'agents_approval_wait_seconds_count',
    'Decided approval requests, by outcome',
    ['status'],
    `SELECT status, count(*) AS value FROM approvals WHERE decided_at IS NOT NULL GROUP BY 1`,
  );
  fromQuery(
    'agents_provider_circuits_open',
    'Provider circuits not closed, as each worker last reported them',
    ['provider', 'state'],
    `SELECT provider, state, count(*) AS value FROM provider_circuits WHERE state <> 'closed' GROUP BY 1, 2`,
  );

  const budget = opts.tokenBudget;
  if (budget) {
    new Gauge({
      name: 'agents_token_budget_tokens',
      help: 'The global token budget per budget window (AGENTS_GLOBAL_TOKEN_BUDGET_PER_MINUTE)',
      registers: [registry],
      collect() {
        this.set(budget.tokensPerWindow);
      },
    });
    new Gauge({
      name: 'agents_token_budget_used_tokens',
      help: 'Tokens reserved or used in the current budget window, all agents',
      registers: [registry],
      async collect() {
        const { rows } = await db.query<{ used: number }>(
          'SELECT COALESCE(sum(tokens), 0)::bigint AS used FROM token_ledger WHERE reserved_at > clock_timestamp() - make_interval(secs => $1)',
          [budget.windowSeconds],
        );
        this.set(rows[0].used);
      },
    });
  }
  fromQuery(
    'agents_slots_held',
    'Active-agent and step slots held now, by kind and task queue',
    ['kind', 'task_queue'],
    `SELECT split_part(kind, ':', 1) AS kind, substr(kind, strpos(kind, ':') + 1) AS task_queue, count(*) AS value
       FROM slot_leases WHERE released_at IS NULL AND expires_at > clock_timestamp() GROUP BY kind`,
  );
  fromQuery(
    'agents_slots_waiting',
    'Agents or steps waiting for a slot, by kind and task queue',
    ['kind', 'task_queue'],
    `SELECT split_part(kind, ':', 1) AS kind, substr(kind, strpos(kind, ':') + 1) AS task_queue, count(*) AS value
       FROM slot_waiters WHERE seen_at > clock_timestamp() - interval '30 seconds' GROUP BY kind`,
  );
  return registry;
}
