import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Config } from '../lib/config';
import { agentEvents } from './helpers/history';
import { killHard, spawnWorker, startApi, testConfig, type TestStack } from './helpers/stack';

const AGENTS = 8;
const TASKS_PER_AGENT = 4;

/**
 * Horizontal scale: two worker processes poll one task queue. Tasks of many agents spread across both
 * (the event history records which worker started each activity), and every side effect is applied once.
 */
describe('two workers on one task queue', () => {
  let config: Config;
  let stack: TestStack;
  const workers: ReturnType<typeof spawnWorker>[] = [];

  before(async () => {
    config = testConfig();
    stack = await startApi(config);
    for (const identity of ['worker-a', 'worker-b']) workers.push(spawnWorker(config, { WORKER_IDENTITY: identity }));
    await Promise.all(workers.map((w) => w.ready));
  });
  after(async () => {
    await Promise.all(workers.map(killHard));
    await stack?.stop();
  });

  it(`runs ${AGENTS * TASKS_PER_AGENT} tasks of ${AGENTS} agents across both workers, each side effect once`, async () => {
    const agents = await Promise.all(
      Array.from({ length: AGENTS }, (_, i) =>
        stack.api.createAgent({ name: `Scaler ${i}`, objective: 'Count', type: 'scale' }),
      ),
    );
    const script = [
      { call: 'memory_write', args: { key: 'hits', op: 'increment', value: 1 } },
      { answer: 'counted', delayMs: 50 },
    ];
    const submitted = await Promise.all(
      agents.flatMap((agent) =>
        Array.from({ length: TASKS_PER_AGENT }, (_, i) =>
          stack.api.createTask({ agentId: agent.id, title: `count ${i}`, input: { script } }),
        ),
      ),
    );
    const done = await Promise.all(submitted.map((t) => stack.api.waitForTask(t.id, 180_000)));
    assert.deepEqual(new Set(done.map((t) => t.status)), new Set(['completed']));

    // Which worker ran each agent's workflow tasks and activities (its goals' steps among them), from its history.
    const workersOfAgent = await Promise.all(
      agents.map(async (agent) => {
        const events = await agentEvents(stack, agent.id);
        const identities = events.flatMap((e) => [
          e.activityTaskStartedEventAttributes?.identity,
          e.workflowTaskStartedEventAttributes?.identity,
        ]);
        return new Set(identities.filter((id): id is string => Boolean(id)));
      }),
    );
    const all = new Set(workersOfAgent.flatMap((s) => [...s]));
    assert.deepEqual([...all].sort(), ['worker-a', 'worker-b'], 'only our two workers ran anything, and both did');
    const ranOn = (identity: string) => workersOfAgent.filter((s) => s.has(identity)).length;
    assert.ok(
      ranOn('worker-a') > 0 && ranOn('worker-b') > 0,
      `agents on worker-a: ${ranOn('worker-a')}, on worker-b: ${ranOn('worker-b')}`,
    );

    // No double execution: each agent's counter went up once per task, and the ledger holds one entry per call.
    const { rows: counters } = await stack.db.query<{ scope: string; value: number; version: number }>(
      `SELECT scope, value, version FROM memory WHERE key = 'hits' AND scope = ANY($1)`,
      [agents.map((a) => a.id)],
    );
    assert.equal(counters.length, AGENTS);
    for (const c of counters)
      assert.deepEqual(
        { value: c.value, version: c.version },
        { value: TASKS_PER_AGENT, version: TASKS_PER_AGENT },
        c.scope,
      );
    const { rows: ledger } = await stack.db.query<{ n: number; keys: number }>(
      `SELECT count(*)::int AS n, count(DISTINCT idempotency_key)::int AS keys FROM side_effects WHERE task_id = ANY($1)`,
      [submitted.map((t) => t.id)],
    );
    assert.deepEqual(ledger[0], { n: AGENTS * TASKS_PER_AGENT, keys: AGENTS * TASKS_PER_AGENT });
    for (const t of done)
      assert.equal(t.reasoningTrace.filter((d: { decisionType: string }) => d.decisionType === 'tool_call').length, 1);
  });
});
