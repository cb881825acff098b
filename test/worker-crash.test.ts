import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { killHard, waitFor, withKillableWorkers } from './helpers/stack';

/**
 * A worker process is SIGKILLed in the middle of a task; a new worker finishes it. Every side effect
 * must be applied exactly once, checked against the memory it wrote and the idempotency ledger.
 */
describe('worker crash', () => {
  const crash = withKillableWorkers();

  const counter = async (agentId: string, key: string) => {
    const { rows } = await crash.stack.db.query('SELECT value, version FROM memory WHERE scope = $1 AND key = $2', [
      agentId,
      key,
    ]);
    return rows[0] as { value: number; version: number } | undefined;
  };

  it('finishes a task after the worker is killed during a model call, applying each side effect once', async () => {
    const first = await crash.start();
    const agent = await crash.stack.api.createAgent({ name: 'Survivor', objective: 'Keep going' });
    const script = [
      { call: 'memory_write', args: { key: 'hits', op: 'increment', value: 1 } },
      { answer: 'survived', delayMs: 3000 },
    ];
    const task = await crash.stack.api.createTask({ agentId: agent.id, title: 'survive a crash', input: { script } });
    // Kill once the side effect is recorded and the slow model call of step 2 is in flight.
    await waitFor(async () => (await counter(agent.id, 'hits'))?.value === 1, 'the side effect', 20_000);
    await new Promise((r) => setTimeout(r, 500));
    await killHard(first);
    assert.notEqual(
      (await crash.stack.api.get(`/api/v1/tasks/${task.id}`)).body.status,
      'completed',
      'killed mid-task',
    );

    await crash.start();
    const done = await crash.stack.api.waitForTask(task.id, 60_000);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.deepEqual(await counter(agent.id, 'hits'), { value: 1, version: 1 });
    assert.equal(done.reasoningTrace.filter((d: { decisionType: string }) => d.decisionType === 'tool_call').length, 1);
  });

  it('does not apply a side effect twice when the worker dies after applying it but before reporting it', async () => {
    await crash.killAll();
    // This worker pauses after each committed side effect: the window in which a crash forces a retry.
    const slow = await crash.start({ FAULT_DELAY_AFTER_SIDE_EFFECT_MS: '60000' });
    const agent = await crash.stack.api.createAgent({ name: 'Exactly once', objective: 'Count once' });
    const script = [{ call: 'memory_write', args: { key: 'applied', op: 'increment', value: 1 } }, { answer: 'ok' }];
    const task = await crash.stack.api.createTask({ agentId: agent.id, title: 'apply once', input: { script } });
    const key = `task-${task.id}:1:0`;
    await waitFor(
      async () =>
        (await crash.stack.db.query('SELECT 1 FROM side_effects WHERE idempotency_key = $1', [key])).rowCount === 1,
      'the side effect to commit',
      20_000,
    );
    await killHard(slow);

    await crash.start();
    const done = await crash.stack.api.waitForTask(task.id, 60_000);
    assert.equal(done.status, 'completed');
    assert.deepEqual(
      await counter(agent.id, 'applied'),
      { value: 1, version: 1 },
      'the retried activity did not apply it again',
    );
    const toolCall = done.reasoningTrace.find((d: { decisionType: string }) => d.decisionType === 'tool_call');
    assert.equal(toolCall.result.replayed, true, 'the retry returned the recorded result');
    const ledger = await crash.stack.db.query('SELECT count(*)::int AS n FROM side_effects WHERE task_id = $1', [
      task.id,
    ]);
    assert.equal(ledger.rows[0].n, 1);
  });
});
