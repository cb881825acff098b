import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { agentWorkflowId } from '../contract/definitions';
import { agentEvents, idleAgentHistory, localActivities } from './helpers/history';
import { startStack, testConfig, waitFor, type TestStack } from './helpers/stack';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** The activity types a history scheduled on a task queue (worker hand-offs), in order. */
function scheduledActivities(events: HistoryEvent[]): string[] {
  return events.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
}

const { EventType } = temporal.api.enums.v1;

/** A history cut into what each workflow task completion decided: the events after one WORKFLOW_TASK_COMPLETED. */
function workflowTaskGroups(events: HistoryEvent[]): HistoryEvent[][] {
  const groups: HistoryEvent[][] = [];
  for (const e of events) {
    if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) groups.push([]);
    else if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED) groups.push([]);
    else groups.at(-1)?.push(e);
  }
  return groups;
}

/**
 * What one agent task costs the server: a goal runs inside its agent's workflow (no child workflow), the
 * Postgres projection writes and quick read-only tools run as local activities, so a task hands only its
 * model calls and other tools to workers, and a goal its agent starts at once is not scored (there is nothing
 * to rank it against; governance.test.ts checks that a cached score needs no activity either). The rows those
 * local activities write are checked too.
 */
describe('history of an agent task', () => {
  let stack: TestStack;

  before(async () => {
    stack = await startStack(testConfig());
  });
  after(async () => {
    await stack?.stop();
  });

  const settledHistory = (agentId: string): Promise<HistoryEvent[]> =>
    idleAgentHistory(stack, agentId, () => agentEvents(stack, agentId));

  it(
    'hands off only model calls; records and a read-only tool run as local activities; a goal started at once is not scored',
    { timeout: 120_000 },
    async () => {
      const agent = await stack.api.createAgent({ name: 'Lean', objective: 'Answer questions', autonomy: 'autopilot' });
      const script = [{ call: 'memory_read', args: { key: 'x' } }, { answer: 'ok' }];
      const first = await stack.api.createTask({ agentId: agent.id, title: 'read x and answer', input: { script } });
      assert.equal((await stack.api.waitForTask(first.id)).status, 'completed');
      const second = await stack.api.createTask({ agentId: agent.id, title: 'read x and answer', input: { script } });
      const done = await stack.api.waitForTask(second.id);
      assert.equal(done.status, 'completed');
      assert.deepEqual(done.output, { answer: '[offline] ok' });

      // Both goals are in the agent's current run (it continues as new only past AGENT_HISTORY_LIMIT events).
      const agentEvents = await settledHistory(agent.id);
      const steps = ['callModel', 'callModel'];
      assert.deepEqual(
        scheduledActivities(agentEvents),
        [...steps, ...steps],
        'each task schedules its model calls only (memory_read is a local tool); neither goal waited, so neither was scored',
      );
      assert.ok(
        !agentEvents.some((e) => e.eventType === EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED),
        'the goals ran in the agent workflow, not as children',
      );
      const local = localActivities(agentEvents);
      for (const type of ['recordAgent', 'recordTaskQueuedWithCachedScore', 'syncAgentState']) {
        assert.ok(local.includes(type), `${type} ran as a local activity (local: ${local.join(', ')})`);
      }
      assert.equal(
        local.filter((t) => t === 'recordTaskQueuedWithCachedScore').length,
        2,
        'one task row write, with its cache lookup, per goal',
      );
      assert.equal(
        local.filter((t) => t === 'runTool').length,
        2,
        'the read-only memory tool ran as a local activity in each goal',
      );
      assert.ok(
        !local.includes('cachedGoalScore') && !local.includes('finishTask'),
        `no separate cache lookup or end record (local: ${local.join(', ')})`,
      );
      assert.equal(
        local.filter((t) => t === 'syncAgentState').length,
        2,
        'the agent state is recorded as each goal ends; its start rides on the first model call',
      );

      // The projection those local activities wrote.
      const { rows: scores } = await stack.db.query<{ task_id: string; source: string }>(
        'SELECT task_id, source FROM priority_scores WHERE task_id = ANY($1)',
        [[first.id, second.id]],
      );
      assert.deepEqual(scores, [], 'no score was asked for or cached');
      const tasks = (await stack.api.get(`/api/v1/tasks?agentId=${agent.id}`)).body.tasks as {
        id: string;
        status: string;
        priorityScore: number | null;
      }[];
      assert.deepEqual(
        tasks.map((t) => t.status),
        ['completed', 'completed'],
      );
      assert.deepEqual(
        tasks.map((t) => t.priorityScore),
        [null, null],
        'neither task carries a score',
      );
      const state = (await stack.api.get(`/api/v1/agents/${agent.id}`)).body;
      assert.equal(state.status, 'IDLE');
      assert.equal(state.queueLength, 0);
    },
  );

  it("records the agent's running state with its goal's first model call", { timeout: 60_000 }, async () => {
    const agent = await stack.api.createAgent({ name: 'Visible', objective: 'Be seen working' });
    const slow = await stack.api.createTask({
      agentId: agent.id,
      title: 'take a while',
      input: { script: [{ answer: 'done', delayMs: 3000 }] },
    });
    // The Postgres row itself (the API's agent view takes its status from the workflow's query).
    const row = async () =>
      (
        await stack.db.query<{ status: string; current_task_id: string | null }>(
          'SELECT status, current_task_id FROM agents WHERE id = $1',
          [agent.id],
        )
      ).rows[0];
    const running = await waitFor(async () => {
      const r = await row();
      return r.status === 'RUNNING' && r;
    }, 'the agent row to say RUNNING');
    assert.equal(running.current_task_id, slow.id);
    assert.equal(
      (await stack.api.get(`/api/v1/tasks/${slow.id}`)).body.status,
      'planning',
      'written while the first model call runs',
    );
    assert.equal((await stack.api.waitForTask(slow.id)).status, 'completed');
    const idle = await waitFor(async () => {
      const r = await row();
      return r.status === 'IDLE' && r;
    }, 'the agent row to say IDLE');
    assert.equal(idle.current_task_id, null);
    const local = localActivities(await settledHistory(agent.id));
    assert.equal(
      local.filter((t) => t === 'syncAgentState').length,
      1,
      `only the goal's end is a record of its own (local: ${local.join(', ')})`,
    );
  });

  it(
    'records an approval decision and schedules the approved tool call in the same workflow task',
    { timeout: 120_000 },
    async () => {
      const agent = await stack.api.createAgent({ name: 'Careful', objective: 'Write carefully', autonomy: 'copilot' });
      const script = [{ call: 'memory_write', args: { key: 'k', op: 'set', value: 1 } }, { answer: 'written' }];
      const task = await stack.api.createTask({ agentId: agent.id, title: 'write k', input: { script } });
      const approval = await waitFor(
        async () => (await stack.api.get(`/api/v1/approvals?status=pending&agentId=${agent.id}`)).body.approvals[0],
        'the approval request',
      );
      assert.equal(
        (await stack.api.post(`/api/v1/approvals/${approval.id}/approve`, { decidedBy: 'alice' })).status,
        200,
      );
      assert.equal((await stack.api.waitForTask(task.id)).status, 'completed');

      const events = await settledHistory(agent.id);
      const decided = workflowTaskGroups(events).find((g) => localActivities(g).includes('recordApprovalDecision'));
      assert.ok(decided, 'the decision was recorded in a workflow task');
      assert.ok(
        decided.some((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED),
        'which completed the decision update',
      );
      // The agent gave its active slot back while it waited; it takes one again before the approved call.
      assert.deepEqual(
        localActivities(decided),
        ['recordApprovalDecision', 'acquireAgentSlot'],
        'the decision row is written and a slot taken inside it',
      );
      assert.ok(
        scheduledActivities(decided).includes('runTool'),
        `and the approved call is scheduled by it (${scheduledActivities(decided).join(', ')})`,
      );
      const { rows } = await stack.db.query<{ status: string; decided_by: string }>(
        'SELECT status, decided_by FROM approvals WHERE id = $1',
        [approval.id],
      );
      assert.deepEqual(rows, [{ status: 'approved', decided_by: 'alice' }]);
    },
  );

  it(
    'replays agents whose handlers and main loop ran local activities at the same time',
    { timeout: 180_000 },
    async () => {
      // Bursts of concurrent submissions while goals start and finish, a pause and a resume in between:
      // update handlers and the main loop each wait on records, and every history must replay as it ran.
      const agents = await Promise.all(
        Array.from({ length: 6 }, (_, i) => stack.api.createAgent({ name: `Busy ${i}`, objective: 'Keep busy' })),
      );
      const script = [{ call: 'memory_read', args: { key: 'x' } }, { answer: 'ok' }];
      const burst = (agentId: string, n: number) =>
        Promise.all(
          Array.from({ length: n }, (_, i) =>
            stack.api.createTask({ agentId, title: `burst ${i} ${n}`, priority: 1 + (i % 9), input: { script } }),
          ),
        );
      const tasks = (await Promise.all(agents.map((a) => burst(a.id, 4)))).flat();
      await Promise.all(agents.map((a) => stack.api.post(`/api/v1/agents/${a.id}/pause`)));
      tasks.push(...(await Promise.all(agents.map((a) => burst(a.id, 3)))).flat());
      await Promise.all(agents.map((a) => stack.api.post(`/api/v1/agents/${a.id}/resume`)));
      tasks.push(...(await Promise.all(agents.map((a) => burst(a.id, 3)))).flat());
      const done = await Promise.all(tasks.map((t) => stack.api.waitForTask(t.id, 120_000)));
      assert.deepEqual(new Set(done.map((t) => t.status)), new Set(['completed']));

      const histories = await Promise.all(
        agents
          .map((a) => agentWorkflowId(a.id))
          .map(async (workflowId) => ({
            workflowId,
            history: await stack.client.workflow.getHandle(workflowId).fetchHistory(),
          })),
      );
      const failures: string[] = [];
      for await (const result of Worker.runReplayHistories(
        { workflowBundle: { codePath: process.env.WORKFLOW_BUNDLE_PATH! } },
        histories,
      )) {
        if (result.error) failures.push(`${result.workflowId}: ${result.error.message.split('\n')[0]}`);
      }
      assert.deepEqual(failures, []);
    },
  );

  it('queues a goal whose row an earlier, lost run of the submission already wrote', { timeout: 60_000 }, async () => {
    // A local activity writes before its workflow task completes; if that task is lost (an update's
    // speculative task leaves no trace), the retried submission finds its own row still queued.
    const agent = await stack.api.createAgent({ name: 'Resubmitted', objective: 'Run what was asked' });
    const taskId = randomUUID();
    await stack.db.query(
      `INSERT INTO tasks (id, org_id, agent_id, title, task_type, priority, status, input, delegation_depth, created_at)
       VALUES ($1, $2, $3, 'written by a lost attempt', 'general', 5, 'queued', '{}', 0, now())`,
      [taskId, stack.config.DEFAULT_ORG_ID, agent.id],
    );
    const receipt = await stack.gateway.submitGoal(agent.id, { taskId, title: 'written by a lost attempt' });
    assert.equal(receipt.status, 'queued');
    assert.equal((await stack.api.waitForTask(taskId)).status, 'completed', 'the agent ran it');
    // A finished task submitted again is answered, not run twice.
    const again = await stack.gateway.submitGoal(agent.id, { taskId, title: 'written by a lost attempt' });
    assert.equal(again.status, 'completed');
    const live = (await stack.api.get(`/api/v1/agents/${agent.id}`)).body.live;
    assert.equal(live.goalsCompleted, 1);
  });
});
