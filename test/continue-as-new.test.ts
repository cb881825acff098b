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

      // Every run of the agent workflow stays far below the history limit.
      const runs = stack.client.workflow.list({ query: `WorkflowId = '${agentWorkflowId(agent.id)}'` });
      let largest = 0;
      let count = 0;
      for await (const run of runs) {
        count += 1;
        largest = Math.max(largest, run.historyLength);
      }
      assert.equal(count, state.runs);
      assert.ok(largest > 0 && largest < MAX_EVENTS, `largest agent history ${largest} events`);
    },
  );
});
