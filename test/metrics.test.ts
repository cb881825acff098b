import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Config } from '../lib/config';
import { getFreePort } from '../scripts/local-stack';
import { openAiErrorBody, startFakeOpenAi, type FakeOpenAiServer } from './helpers/fake-openai-server';
import { killHard, spawnWorker, startApi, testConfig, waitFor, type TestStack } from './helpers/stack';

/** One sample of Prometheus text format: `name{a="1",b="2"} value`. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || line.startsWith('#')) continue;
    const labels = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, k, v]) => [k!, v!]),
    );
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with this name and (at least) these labels; undefined when absent. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `several samples of ${name} ${JSON.stringify(labels)}: ${JSON.stringify(found)}`);
  return found[0]?.value;
}

describe('Prometheus metrics after real tasks', () => {
  let config: Config;
  let stack: TestStack;
  let worker: ReturnType<typeof spawnWorker>;
  let openai: FakeOpenAiServer;
  let workerMetricsUrl: string;
  // Agents of this test carry their own type, so counts by agent type are exact even on a shared database.
  const agentType = `metrics-${randomUUID().slice(0, 8)}`;

  before(async () => {
    openai = await startFakeOpenAi();
    // Every scrape reads Postgres here: the test watches values change (the cache has its own test).
    config = testConfig({ MAX_STEPS: '3', METRICS_CACHE_SECONDS: '0' });
    stack = await startApi(config);
    const [metricsPort, sdkPort] = await Promise.all([getFreePort(), getFreePort()]);
    workerMetricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    worker = spawnWorker(config, {
      MAX_STEPS: '3',
      WORKER_METRICS_PORT: String(metricsPort),
      TEMPORAL_SDK_METRICS_ADDRESS: `127.0.0.1:${sdkPort}`,
      // A key alone would make OpenAI the default provider; only the agent that asks for it uses it.
      AI_PROVIDER: 'offline',
      OPENAI_API_KEY: 'sk-test',
      OPENAI_BASE_URL: openai.url,
      CIRCUIT_FAILURE_THRESHOLD: '1',
      CIRCUIT_RECOVERY_SECONDS: '600',
    });
    await worker.ready;
  });
  after(async () => {
    if (worker) await killHard(worker);
    await stack?.stop();
    await openai?.close();
  });

  const apiMetrics = async () => {
    const res = await fetch(`${stack.api.baseUrl}/metrics`, {
      headers: { authorization: `Bearer ${stack.api.apiKey}` },
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    return parsePrometheus(await res.text());
  };
  const workerMetrics = async () => parsePrometheus(await (await fetch(workerMetricsUrl)).text());
  const run = async (agentId: string, title: string, input: Record<string, unknown> = {}) =>
    stack.api.waitForTask((await stack.api.createTask({ agentId, title, input })).id, 60_000);

  it('reflects the tasks, tokens, queue and approvals of a real run', async () => {
    const counter = await stack.api.createAgent({ name: 'Counter', objective: 'Count', type: agentType });
    const write = {
      script: [{ call: 'memory_write', args: { key: 'n', op: 'increment', value: 1 } }, { answer: 'counted' }],
    };
    const done = [await run(counter.id, 'count once', write), await run(counter.id, 'count twice', write)];
    const loop = { script: Array.from({ length: 5 }, () => ({ call: 'memory_read', args: { key: 'n' } })) };
    const failed = await run(counter.id, 'loop past the step limit', loop);
    assert.deepEqual(
      [...done.map((t) => t.status), failed.status],
      ['completed', 'completed', 'failed'],
      JSON.stringify([...done, failed].map((t) => t.error)),
    );

    // A copilot agent waits for a decision; the wait is measured once it is approved.
    const careful = await stack.api.createAgent({
      name: 'Careful',
      objective: 'Ask first',
      type: agentType,
      autonomy: 'copilot',
    });
    const pending = await stack.api.createTask({ agentId: careful.id, title: 'write with approval', input: write });
    const approval = await waitFor(
      async () => (await stack.api.get(`/api/v1/approvals?taskId=${pending.id}&status=pending`)).body.approvals[0],
      'the approval request',
    );
    let samples = await apiMetrics();
    assert.ok(value(samples, 'agents_approvals', { status: 'pending' })! >= 1);
    assert.ok(value(samples, 'agents_approval_oldest_pending_seconds')! >= 0);
    const approvedBefore = value(samples, 'agents_approval_wait_seconds_count', { status: 'approved' }) ?? 0;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await stack.api.post(`/api/v1/approvals/${approval.id}/approve`, {})).status, 200);
    done.push(await stack.api.waitForTask(pending.id));

    // Paused, an agent queues what it receives: the queue depth shows it.
    await stack.api.post(`/api/v1/agents/${counter.id}/pause`);
    const queued = [
      await stack.api.createTask({ agentId: counter.id, title: 'queued one' }),
      await stack.api.createTask({ agentId: counter.id, title: 'queued two' }),
    ];
    samples = await waitFor(async () => {
      const s = await apiMetrics();
      return value(s, 'agents_queue_depth', { agent_type: agentType }) === 2 ? s : undefined;
    }, 'queue depth 2');

    assert.equal(value(samples, 'agents_tasks', { agent_type: agentType, status: 'completed' }), 3);
    assert.equal(value(samples, 'agents_tasks', { agent_type: agentType, status: 'failed' }), 1);
    assert.equal(value(samples, 'agents_tasks', { agent_type: agentType, status: 'queued' }), 2);
    assert.equal(value(samples, 'agents_tasks_started', { agent_type: agentType }), 4);
    assert.equal(value(samples, 'agents_agents', { agent_type: agentType, status: 'PAUSED' }), 1);
    assert.equal(value(samples, 'agents_agents', { agent_type: agentType, status: 'IDLE' }), 1);
    const tasks = [...done, failed];
    const tokens = (direction: 'inputTokens' | 'outputTokens') => tasks.reduce((sum, t) => sum + t.usage[direction], 0);
    assert.ok(tokens('inputTokens') > 0);
    assert.equal(
      value(samples, 'agents_tokens_used', { agent_type: agentType, direction: 'input' }),
      tokens('inputTokens'),
    );
    assert.equal(
      value(samples, 'agents_tokens_used', { agent_type: agentType, direction: 'output' }),
      tokens('outputTokens'),
    );
    // The budget window (60 s) still holds these tasks' model calls.
    assert.equal(value(samples, 'agents_token_budget_tokens'), stack.config.AGENTS_GLOBAL_TOKEN_BUDGET_PER_MINUTE);
    assert.ok(value(samples, 'agents_token_budget_used_tokens')! >= tokens('inputTokens') + tokens('outputTokens'));
    assert.equal(value(samples, 'agents_approval_wait_seconds_count', { status: 'approved' }), approvedBefore + 1);
    assert.ok(value(samples, 'agents_approval_wait_seconds_sum', { status: 'approved' })! >= 0.3);
    assert.ok(value(samples, 'agents_api_process_resident_memory_bytes')! > 0, 'process metrics of the API');

    await stack.api.post(`/api/v1/agents/${counter.id}/resume`);
    for (const task of queued) assert.equal((await stack.api.waitForTask(task.id)).status, 'completed');
    assert.equal(value(await apiMetrics(), 'agents_queue_depth', { agent_type: agentType }), 0);
  });

  it("serves the worker's step durations, provider errors and circuit state, and the SDK's worker metrics", async () => {
    const before = await workerMetrics();
    const modelCalls =
      value(before, 'agents_step_duration_seconds_count', { kind: 'model', target: 'offline', outcome: 'ok' }) ?? 0;
    // Each tool call of the first test was timed: three tasks called memory_write once each.
    assert.equal(
      value(before, 'agents_step_duration_seconds_count', { kind: 'tool', target: 'memory_write', outcome: 'ok' }),
      3,
    );
    assert.ok(modelCalls >= 7, `model calls timed: ${modelCalls}`);

    // OpenAI fails with a 500: counted by kind; the circuit (threshold 1) opens; the offline fallback answers.
    openai.enqueue({ kind: 'error', status: 500, body: openAiErrorBody('boom', 'server_error') });
    const agent = await stack.api.createAgent({
      name: 'Fallback',
      objective: 'Answer',
      type: agentType,
      provider: 'openai',
      fallbackProviders: ['offline'],
    });
    const done = await run(agent.id, 'answer somehow');
    assert.equal(done.status, 'completed', JSON.stringify(done));

    const after = await workerMetrics();
    assert.equal(value(after, 'agents_provider_errors_total', { provider: 'openai', kind: 'unavailable' }), 1);
    assert.equal(value(after, 'agents_provider_circuit_state', { provider: 'openai' }), 2, 'open');
    assert.equal(value(after, 'agents_provider_circuit_state', { provider: 'offline' }), 0, 'closed');
    assert.equal(
      value(after, 'agents_step_duration_seconds_count', { kind: 'model', target: 'offline', outcome: 'ok' }),
      modelCalls + 1,
    );
    const buckets = after.filter(
      (s) => s.name === 'agents_step_duration_seconds_bucket' && s.labels.target === 'memory_write',
    );
    assert.equal(buckets.find((b) => b.labels.le === '+Inf')?.value, 3);

    // The Temporal SDK's own metrics, from its Prometheus exporter, in the same scrape.
    const sdk = after.filter((s) => s.name.startsWith('temporal_'));
    assert.ok(sdk.length > 0, 'SDK metrics present');
    const activityTasks = sdk.filter(
      (s) => /^temporal_activity_execution_latency.*_count$/.test(s.name) && s.labels.activity_type === 'callModel',
    );
    assert.ok(
      activityTasks.length > 0 && activityTasks[0]!.value >= modelCalls,
      JSON.stringify(sdk.map((s) => s.name).slice(0, 40)),
    );
    assert.ok(
      sdk.some((s) => s.labels.task_queue === config.TEMPORAL_TASK_QUEUE),
      'labelled with the task queue',
    );

    const health = await fetch(workerMetricsUrl.replace('/metrics', '/health'));
    assert.equal(health.status, 200);
  });
});

describe('/metrics and /health cost and access (security)', () => {
  const token = `metrics-token-${randomUUID()}`;
  let stack: TestStack;

  before(async () => {
    stack = await startApi(testConfig({ METRICS_TOKEN: token, METRICS_CACHE_SECONDS: '60' }));
  });
  after(async () => {
    await stack?.stop();
  });

  const scrape = (authorization?: string) =>
    fetch(`${stack.api.baseUrl}/metrics`, { headers: authorization ? { authorization } : {} });

  it("needs METRICS_TOKEN or a key of the operators' organisation", async () => {
    assert.equal((await scrape()).status, 401);
    assert.equal((await scrape('Bearer not-the-token-not-the-token')).status, 401);
    const tenant = await stack.clientForOrg(`metrics-tenant-${randomUUID().slice(0, 8)}`);
    assert.equal(
      (await scrape(`Bearer ${tenant.apiKey}`)).status,
      401,
      "a tenant key does not see every organisation's counts",
    );
    assert.equal((await scrape(`Bearer ${token}`)).status, 200);
    assert.equal((await scrape(`Bearer ${stack.api.apiKey}`)).status, 200);
  });

  it('computes its gauges at most once per METRICS_CACHE_SECONDS, not per scrape', async () => {
    const agentType = `cached-${randomUUID().slice(0, 8)}`;
    const before = parsePrometheus(await (await scrape(`Bearer ${token}`)).text());
    assert.equal(value(before, 'agents_agents', { agent_type: agentType }), undefined);
    // A row that an uncached scrape would count at once.
    await stack.db.query(
      `INSERT INTO agents (id, org_id, name, objective, type, autonomy, priority, status, created_at)
       VALUES (gen_random_uuid(), 'metrics-cache-test', 'cached', 'x', $1, 'autopilot', 5, 'ARCHIVED', now())`,
      [agentType],
    );
    const counted = await stack.db.query(`SELECT count(*)::int AS n FROM agents WHERE type = $1`, [agentType]);
    assert.equal(counted.rows[0].n, 1);
    const texts = await Promise.all(Array.from({ length: 5 }, async () => (await scrape(`Bearer ${token}`)).text()));
    for (const text of texts)
      assert.equal(
        value(parsePrometheus(text), 'agents_agents', { agent_type: agentType }),
        undefined,
        'served from the cache',
      );
    await stack.db.query(`DELETE FROM agents WHERE type = $1`, [agentType]);
  });

  it('keeps /health open and cheap: no provider internals without an operator key', async () => {
    const anonymous = await fetch(`${stack.api.baseUrl}/health`);
    assert.equal(anonymous.status, 200);
    const body = (await anonymous.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body).sort(), ['checks', 'status']);
    const operator = await stack.api.get('/health');
    assert.ok(Array.isArray(operator.body.providers.openCircuits), 'an operator key still sees open circuits');
  });
});
