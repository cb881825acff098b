import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Config } from '../lib/config';
import { killHard, spawnWorker, startApi, testConfig, waitFor, type TestStack } from './helpers/stack';

/**
 * A worker process is SIGKILLed in the middle of a task; a new worker finishes it. Every side effect
 * must be applied exactly once, checked against the memory it wrote and the idempotency ledger.
 */
describe('worker crash', () => {
  let config: Config;
  let stack: TestStack;
  const workers: ReturnType<typeof spawnWorker>[] = [];

  before(async () => {
    config = testConfig();
    stack = await startApi(config);
  });
  after(async () => {
    await Promise.all(workers.map(killHard));
    await stack?.stop();
  });

  const start = async (env: Record<string, string> = {}) => {
    const worker = spawnWorker(config, env);
    workers.push(worker);
    await worker.ready;
    return worker;
  };

  const counter = async (agentId: string, key: string) => {
    const { rows } = await stack.db.query('SELECT value, version FROM memory WHERE scope = $1 AND key = $2', [agentId, key]);
    return rows[0] as { value: number; version: number } | undefined;
  };

  it('finishes a task after the worker is killed during a model call, applying each side effect once', async () => {
    const first = await start();
    const agent = await stack.api.createAgent({ name: 'Survivor', objective: 'Keep going' });
    const script = [
      { call: 'memory_write', args: { key: 'hits', op: 'increment', value: 1 } },
      { answer: 'survived', delayMs: 3000 },
    ];
    const task = await stack.api.createTask({ agentId: agent.id, title: 'survive a crash', input: { script } });
    // Kill once the side effect is recorded and the slow model call of step 2 is in flight.
    await waitFor(async () => (await counter(agent.id, 'hits'))?.value === 1, 'the side effect', 20_000);
    await new Promise((r) => setTimeout(r, 500));
    await killHard(first);
    assert.notEqual((await stack.api.get(`/api/v1/tasks/${task.id}`)).body.status, 'completed', 'killed mid-task');

    await start();
    const done = await stack.api.waitForTask(task.id, 60_000);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.deepEqual(await counter(agent.id, 'hits'), { value: 1, version: 1 });
    assert.equal(done.reasoningTrace.filter((d: { decisionType: string }) => d.decisionType === 'tool_call').length, 1);
  });

  it('does not apply a side effect twice when the worker dies after applying it but before reporting it', async () => {
    await Promise.all(workers.splice(0).map(killHard));
    // This worker pauses after each committed side effect: the window in which a crash forces a retry.
    const slow = await start({ FAULT_DELAY_AFTER_SIDE_EFFECT_MS: '60000' });
    const agent = await stack.api.createAgent({ name: 'Exactly once', objective: 'Count once' });
    const script = [{ call: 'memory_write', args: { key: 'applied', op: 'increment', value: 1 } }, { answer: 'ok' }];
    const task = await stack.api.createTask({ agentId: agent.id, title: 'apply once', input: { script } });
    const key = `task-${task.id}:1:0`;
    await waitFor(
      async () => (await stack.db.query('SELECT 1 FROM side_effects WHERE idempotency_key = $1', [key])).rowCount === 1,
      'the side effect to commit',
      20_000,
    );
    await killHard(slow);

    await start();
    const done = await stack.api.waitForTask(task.id, 60_000);
    assert.equal(done.status, 'completed');
    assert.deepEqual(await counter(agent.id, 'applied'), { value: 1, version: 1 }, 'the retried activity did not apply it again');
    const toolCall = done.reasoningTrace.find((d: { decisionType: string }) => d.decisionType === 'tool_call');
    assert.equal(toolCall.result.replayed, true, 'the retry returned the recorded result');
    const ledger = await stack.db.query('SELECT count(*)::int AS n FROM side_effects WHERE task_id = $1', [task.id]);
    assert.equal(ledger.rows[0].n, 1);
  });
});
