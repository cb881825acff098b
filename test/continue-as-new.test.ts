import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { agentWorkflowId } from '../contract/definitions';
import { startStack, testConfig, waitFor, type TestStack } from './helpers/stack';

const GOALS = 1000;
const MAX_EVENTS = 10_000;

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

describe('continue-as-new', () => {
  let stack: TestStack;
  before(async () => (stack = await startStack(testConfig())));
  after(() => stack?.stop());

  it(
    `carries ${GOALS} goals through one agent without losing any or growing a large history`,
    { timeout: 30 * 60_000 },
    async () => {
      const agent = await stack.api.createAgent({ name: 'Marathon', objective: 'Finish every goal' });
      const taskIds = Array.from({ length: GOALS }, () => randomUUID());
      // Submitted while the agent works, so continue-as-new happens both while updates arrive and between goals.
      await pool(taskIds, 8, async (taskId) => {
        await stack.gateway.submitGoal(agent.id, {
          taskId,
          title: `goal ${taskId.slice(0, 8)}`,
          priority: 1 + (taskId.charCodeAt(0) % 10),
        });
      });

      await waitFor(
        async () => {
          const { rows } = await stack.db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM tasks WHERE agent_id = $1 AND status = 'completed'`,
            [agent.id],
          );
          return rows[0]!.n === GOALS;
        },
        `all ${GOALS} goals to complete`,
        25 * 60_000,
      );
      const { rows } = await stack.db.query<{ status: string; n: number }>(
        'SELECT status, count(*)::int AS n FROM tasks WHERE agent_id = $1 GROUP BY status',
        [agent.id],
      );
      assert.deepEqual(rows, [{ status: 'completed', n: GOALS }], 'every goal completed exactly once, none lost');

      // The agent counts a goal once its child has reported back, just after the task row is final.
      const state = await waitFor(async () => {
        const live = await stack.gateway.state(agent.id);
        return live && live.current === null ? live : undefined;
      }, 'the agent to settle');
      assert.equal(state.queue.length, 0);
      assert.equal(state.goalsCompleted, GOALS, 'the carried counters add up across runs');
      assert.ok(state.runs > 1, `the agent continued as new (runs: ${state?.runs})`);

      // Every run of the agent workflow stays far below the history limit. Idle now, the agent may still
      // continue as new once more (its idle limit), so runs are counted until the listing and the state agree.
      const { largest } = await waitFor(async () => {
        const live = await stack.gateway.state(agent.id);
        let count = 0;
        let longest = 0;
        for await (const run of stack.client.workflow.list({ query: `WorkflowId = '${agentWorkflowId(agent.id)}'` })) {
          count += 1;
          longest = Math.max(longest, run.historyLength);
        }
        return live && count === live.runs && live.goalsCompleted === GOALS ? { largest: longest } : undefined;
      }, 'every run of the agent to be listed');
      assert.ok(largest > 0 && largest < MAX_EVENTS, `largest agent history ${largest} events`);
    },
  );

  it(
    'an idle agent continues as new past AGENT_IDLE_HISTORY_LIMIT and keeps its state',
    { timeout: 300_000 },
    async () => {
      // The default limits: 100 events when idle, 2,000 between goals; one goal at a time keeps the agent well
      // under 2,000, so any continue-as-new here is the idle one.
      assert.equal(stack.config.AGENT_IDLE_HISTORY_LIMIT, 100);
      const agent = await stack.api.createAgent({ name: 'Idler', objective: 'One goal at a time' });
      const handle = stack.client.workflow.getHandle(agentWorkflowId(agent.id));
      const firstRunId = (await handle.describe()).runId;
      const done: string[] = [];
      while (done.length < 12 && (await handle.describe()).runId === firstRunId) {
        const task = await stack.api.createTask({ agentId: agent.id, title: `goal ${done.length}` });
        assert.equal((await stack.api.waitForTask(task.id)).status, 'completed');
        done.push(task.id);
      }
      const continued = await waitFor(async () => {
        const d = await handle.describe();
        return d.runId !== firstRunId ? d : undefined;
      }, 'the idle agent to continue as new');

      // It left its first run idle, past the idle limit and far below the other one.
      const first = await stack.client.workflow.getHandle(agentWorkflowId(agent.id), firstRunId).describe();
      assert.equal(first.status.name, 'CONTINUED_AS_NEW');
      assert.ok(first.historyLength > 100 && first.historyLength < 200, `first run: ${first.historyLength} events`);
      assert.ok(continued.historyLength < 20, `the new run starts short: ${continued.historyLength} events`);

      // The counters came along, and the next goal runs in the new run.
      const next = await stack.api.createTask({ agentId: agent.id, title: 'after the continue-as-new' });
      assert.equal((await stack.api.waitForTask(next.id)).status, 'completed');
      const state = await waitFor(async () => {
        const live = await stack.gateway.state(agent.id);
        return live && live.current === null && live.goalsCompleted === done.length + 1 ? live : undefined;
      }, 'the agent to count every goal');
      assert.equal(state.status, 'IDLE');
      assert.ok(state.runs >= 2, `runs: ${state.runs}`);
    },
  );
});
