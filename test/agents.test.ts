import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Client, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import { TemporalGateway } from '../client/gateway';
import { startStack, testConfig, waitFor, type TestStack } from './helpers/stack';

describe('agents and tasks through the HTTP API', () => {
  let stack: TestStack;
  before(async () => (stack = await startStack(testConfig())));
  after(() => stack?.stop());

  it('creates an agent that is immediately readable and listed', async () => {
    const agent = await stack.api.createAgent({
      name: 'Researcher',
      objective: 'Find facts',
      type: 'research',
      capabilities: ['web'],
    });
    assert.match(agent.id, /^[0-9a-f-]{36}$/);
    assert.equal(agent.status, 'IDLE');
    assert.equal(agent.priority, 6);
    assert.equal(agent.autonomy, 'autopilot');

    const read = await stack.api.get(`/api/v1/agents/${agent.id}`);
    assert.equal(read.status, 200);
    assert.equal(read.body.name, 'Researcher');
    assert.equal(read.body.live.status, 'IDLE');

    const listed = await stack.api.get('/api/v1/agents?type=research');
    assert.equal(listed.status, 200);
    assert.ok(listed.body.agents.some((a: { id: string }) => a.id === agent.id));
    const otherType = await stack.api.get('/api/v1/agents?type=nothing-like-this');
    assert.equal(otherType.body.agents.length, 0);
  });

  it('runs three tasks in priority order, each with a reasoning trace', async () => {
    const agent = await stack.api.createAgent({ name: 'Prioritiser', objective: 'Do things in order' });
    // Paused, the agent queues everything it receives; on resume it must take the highest priority first.
    assert.equal((await stack.api.post(`/api/v1/agents/${agent.id}/pause`)).body.status, 'PAUSED');
    const low = await stack.api.createTask({ agentId: agent.id, title: 'low priority work', priority: 2 });
    const high = await stack.api.createTask({ agentId: agent.id, title: 'urgent work', priority: 9 });
    const mid = await stack.api.createTask({ agentId: agent.id, title: 'normal work', priority: 5 });
    assert.deepEqual([low.status, high.status, mid.status], ['queued', 'queued', 'queued']);
    assert.equal(high.position, 1, 'the urgent task jumps to the front of the queue');
    // The model scores each task in the background; the queue settles once every score is in.
    await waitFor(async () => {
      const details = await Promise.all([low, high, mid].map((t) => stack.api.get(`/api/v1/tasks/${t.id}`)));
      return details.every((d) => d.body.priorityScore !== null);
    }, 'the three tasks to be scored');

    const queued = await stack.api.get(`/api/v1/agents/${agent.id}`);
    assert.deepEqual(
      queued.body.live.queue.map((g: { title: string }) => g.title),
      ['urgent work', 'normal work', 'low priority work'],
    );

    assert.equal((await stack.api.post(`/api/v1/agents/${agent.id}/resume`)).body.status !== 'PAUSED', true);
    const done = await Promise.all([low, high, mid].map((t) => stack.api.waitForTask(t.id)));
    for (const task of done) {
      assert.equal(task.status, 'completed', JSON.stringify(task));
      assert.ok(task.reasoningTrace.length > 0, 'every task has a reasoning trace');
      assert.equal(task.reasoningTrace.at(-1).decisionType, 'complete');
      assert.match(task.output.answer, /offline/);
    }
    const [doneLow, doneHigh, doneMid] = done;
    assert.ok(doneHigh.completedAt <= doneMid.startedAt, 'urgent finished before normal started');
    assert.ok(doneMid.completedAt <= doneLow.startedAt, 'normal finished before low started');

    const list = await stack.api.get(`/api/v1/tasks?agentId=${agent.id}&status=completed`);
    assert.equal(list.body.tasks.length, 3);
  });

  it('runs tool calls and records them in the trace with their results', async () => {
    const agent = await stack.api.createAgent({ name: 'Counter', objective: 'Count' });
    const script = [
      { call: 'memory_write', args: { key: 'count', op: 'increment', value: 2 } },
      { call: 'memory_write', args: { key: 'count', op: 'increment', value: 3 } },
      { call: 'memory_read', args: { key: 'count' } },
      { answer: 'counted' },
    ];
    const task = await stack.api.createTask({ agentId: agent.id, title: 'count things', input: { script } });
    const done = await stack.api.waitForTask(task.id);
    assert.equal(done.status, 'completed');
    const toolCalls = done.reasoningTrace.filter((d: { decisionType: string }) => d.decisionType === 'tool_call');
    assert.equal(toolCalls.length, 3);
    assert.deepEqual(toolCalls[2].result, { key: 'count', value: 5, version: 2 });
    assert.ok(done.usage.inputTokens > 0 && done.usage.outputTokens > 0, 'token usage is recorded');
  });

  it('returns invalid tool arguments and unknown tools to the model instead of failing', async () => {
    const agent = await stack.api.createAgent({
      name: 'Clumsy',
      objective: 'Make mistakes',
      allowedTools: ['memory_write'],
    });
    const script = [
      { call: 'memory_write', args: { op: 'set' } },
      { call: 'http_get', args: { url: 'http://127.0.0.1:1/' } },
      { answer: 'recovered' },
    ];
    const done = await stack.api.waitForTask(
      (await stack.api.createTask({ agentId: agent.id, title: 'try', input: { script } })).id,
    );
    assert.equal(done.status, 'completed');
    const results = done.reasoningTrace
      .filter((d: { decisionType: string }) => d.decisionType === 'tool_call')
      .map((d: any) => d.result.error);
    assert.match(results[0], /invalid arguments: key/);
    assert.match(results[1], /not allowed/);
  });

  it('fails a task that reaches the step limit, with the reason in its trace', async () => {
    const agent = await stack.api.createAgent({ name: 'Looper', objective: 'Loop' });
    const script = Array.from({ length: 20 }, () => ({ call: 'memory_read', args: { key: 'x' } }));
    const done = await stack.api.waitForTask(
      (await stack.api.createTask({ agentId: agent.id, title: 'loop', input: { script } })).id,
    );
    assert.equal(done.status, 'failed');
    assert.match(done.error, /after 10 steps/);
    assert.equal(done.reasoningTrace.at(-1).decisionType, 'escalate');
  });

  it('pauses a running task between steps and resumes exactly where it was', async () => {
    const agent = await stack.api.createAgent({ name: 'Slow', objective: 'Take time' });
    const script = [
      { call: 'memory_write', args: { key: 'progress', op: 'append', value: 'one' }, delayMs: 800 },
      { call: 'memory_write', args: { key: 'progress', op: 'append', value: 'two' } },
      { answer: 'done' },
    ];
    const task = await stack.api.createTask({ agentId: agent.id, title: 'slow work', input: { script } });
    await waitFor(
      async () => (await stack.api.get(`/api/v1/tasks/${task.id}`)).body.status === 'planning',
      'task to start',
    );
    const paused = await stack.api.post(`/api/v1/agents/${agent.id}/pause`);
    assert.equal(paused.status, 200);
    assert.equal(paused.body.status, 'PAUSED');
    // The step in flight finishes; no further step starts while paused.
    await waitFor(
      async () => (await stack.api.get(`/api/v1/tasks/${task.id}`)).body.reasoningTrace.length >= 2,
      'first step to finish',
    );
    await new Promise((r) => setTimeout(r, 1500));
    const whilePaused = (await stack.api.get(`/api/v1/tasks/${task.id}`)).body;
    assert.notEqual(whilePaused.status, 'completed');
    assert.equal(whilePaused.reasoningTrace.filter((d: any) => d.decisionType === 'tool_call').length, 1);

    assert.equal((await stack.api.post(`/api/v1/agents/${agent.id}/resume`)).status, 200);
    const done = await stack.api.waitForTask(task.id);
    assert.equal(done.status, 'completed');
    const progress = done.reasoningTrace
      .filter((d: any) => d.decisionType === 'tool_call')
      .map((d: any) => d.result.value);
    assert.deepEqual(progress.at(-1), ['one', 'two'], 'each step ran once, in order');
  });

  it('an Idempotency-Key makes a repeated submission name the same task, which runs once', async () => {
    const agent = await stack.api.createAgent({ name: 'Idempotent', objective: 'Take each task once' });
    assert.equal((await stack.api.post(`/api/v1/agents/${agent.id}/pause`)).body.status, 'PAUSED');
    const key = `retry-${randomUUID()}`;
    const body = { agentId: agent.id, title: 'submitted twice' };
    const first = await stack.api.request('POST', '/api/v1/tasks', body, { headers: { 'idempotency-key': key } });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    // Both at once, as a client retrying a request it thinks was lost: no new task either way.
    const again = await Promise.all(
      [1, 2].map(() => stack.api.request('POST', '/api/v1/tasks', body, { headers: { 'idempotency-key': key } })),
    );
    for (const res of again) {
      assert.ok([200, 201].includes(res.status), JSON.stringify(res.body));
      assert.equal(res.body.id, first.body.id);
    }
    const other = await stack.api.request('POST', '/api/v1/tasks', body, {
      headers: { 'idempotency-key': `${key}-b` },
    });
    assert.equal(other.status, 201);
    assert.notEqual(other.body.id, first.body.id);

    const bad = await stack.api.request('POST', '/api/v1/tasks', body, { headers: { 'idempotency-key': 'has space' } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /Idempotency-Key/);

    const live = await stack.api.get(`/api/v1/agents/${agent.id}`);
    assert.deepEqual(
      live.body.live.queue.map((g: { taskId: string }) => g.taskId).sort(),
      [first.body.id, other.body.id].sort(),
    );
    await stack.api.post(`/api/v1/agents/${agent.id}/resume`);
    assert.equal((await stack.api.waitForTask(first.body.id)).status, 'completed');
    const listed = await stack.api.get(`/api/v1/tasks?agentId=${agent.id}`);
    assert.equal(listed.body.tasks.length, 2);
  });

  it('cancels a queued task and a running task', async () => {
    const agent = await stack.api.createAgent({ name: 'Cancelled', objective: 'Be interrupted' });
    const running = await stack.api.createTask({
      agentId: agent.id,
      title: 'long',
      input: { script: [{ answer: 'never', delayMs: 20_000 }] },
    });
    const queued = await stack.api.createTask({ agentId: agent.id, title: 'waiting' });
    await waitFor(
      async () => (await stack.api.get(`/api/v1/tasks/${running.id}`)).body.status === 'planning',
      'long task to start',
    );

    const cancelQueued = await stack.api.post(`/api/v1/tasks/${queued.id}/cancel`, { reason: 'not needed' });
    assert.equal(cancelQueued.status, 200, JSON.stringify(cancelQueued.body));
    assert.equal(cancelQueued.body.status, 'cancelled');

    const cancelRunning = await stack.api.post(`/api/v1/tasks/${running.id}/cancel`);
    assert.equal(cancelRunning.status, 200);
    assert.equal(cancelRunning.body.status, 'cancelled');
    const detail = (await stack.api.get(`/api/v1/tasks/${running.id}`)).body;
    assert.equal(detail.status, 'cancelled');

    const again = await stack.api.post(`/api/v1/tasks/${running.id}/cancel`);
    assert.equal(again.status, 409, 'a cancelled task cannot be cancelled again');
    assert.match(again.body.error.message, /already cancelled/);

    // The agent carries on with new work afterwards.
    const next = await stack.api.createTask({ agentId: agent.id, title: 'after cancel' });
    assert.equal((await stack.api.waitForTask(next.id)).status, 'completed');
  });

  it('updates an agent with PATCH through its workflow', async () => {
    const agent = await stack.api.createAgent({ name: 'Old name', objective: 'Change' });
    const res = await stack.api.patch(`/api/v1/agents/${agent.id}`, { name: 'New name', priority: 8 });
    assert.equal(res.status, 200);
    assert.equal(res.body.name, 'New name');
    assert.equal(res.body.priority, 8);
    assert.equal(res.body.live.agent.name, 'New name');
  });

  it('archives an agent: workflow finished, queued work cancelled, memory removed, no further changes', async () => {
    const agent = await stack.api.createAgent({ name: 'Temporary', objective: 'Leave nothing behind' });
    const remember = await stack.api.createTask({ agentId: agent.id, title: 'remember the secret plan' });
    assert.equal((await stack.api.waitForTask(remember.id)).status, 'completed');
    const memory = await stack.db.query('SELECT count(*)::int AS n FROM memory WHERE scope = $1', [agent.id]);
    assert.equal(memory.rows[0].n, 1);

    await stack.api.post(`/api/v1/agents/${agent.id}/pause`);
    const queued = await stack.api.createTask({ agentId: agent.id, title: 'never runs' });
    const archived = await stack.api.post(`/api/v1/agents/${agent.id}/archive`);
    assert.equal(archived.status, 200);
    assert.equal(archived.body.status, 'ARCHIVED');

    assert.equal((await stack.api.get(`/api/v1/tasks/${queued.id}`)).body.status, 'cancelled');
    const left = await stack.db.query('SELECT count(*)::int AS n FROM memory WHERE scope = $1', [agent.id]);
    assert.equal(left.rows[0].n, 0);
    const description = await stack.client.workflow.getHandle(`agent-${agent.id}`).describe();
    assert.equal(description.status.name, 'COMPLETED');

    const listed = await stack.api.get('/api/v1/agents');
    assert.ok(
      !listed.body.agents.some((a: { id: string }) => a.id === agent.id),
      'archived agents are not listed by default',
    );
    const archivedList = await stack.api.get('/api/v1/agents?status=ARCHIVED');
    assert.ok(archivedList.body.agents.some((a: { id: string }) => a.id === agent.id));

    for (const action of ['resume', 'pause', 'archive']) {
      const res = await stack.api.post(`/api/v1/agents/${agent.id}/${action}`);
      assert.equal(res.status, 409, `${action} of an archived agent is a conflict`);
      assert.match(res.body.error.message, /archived/);
    }
    assert.equal((await stack.api.post('/api/v1/tasks', { agentId: agent.id, title: 'x' })).status, 409);
    assert.equal((await stack.api.patch(`/api/v1/agents/${agent.id}`, { name: 'x' })).status, 409);
  });

  it('sends a goal again when the call ran out of time, and the agent takes it once', async () => {
    const agent = await stack.api.createAgent({ name: 'Patient', objective: 'Wait for slow calls' });
    // The first `lostAnswers` calls reach the server, which takes the update; then their answers are lost
    // to a deadline, as when a busy worker replays an evicted agent for longer than the call may wait.
    let lostAnswers = 1;
    const updateIds: string[] = [];
    const client = new Client({
      connection: stack.client.connection,
      interceptors: {
        workflow: [
          {
            async startUpdate(input, next) {
              updateIds.push(input.options.updateId ?? '');
              const output = await next(input);
              if (lostAnswers-- > 0) {
                const timeout = Object.assign(new Error('4 DEADLINE_EXCEEDED: context deadline exceeded'), {
                  code: 4,
                  details: 'context deadline exceeded',
                  metadata: {},
                });
                throw new WorkflowUpdateRPCTimeoutOrCancelledError('Workflow update call timeout or cancelled', {
                  cause: timeout,
                });
              }
              return output;
            },
          },
        ],
      },
    });
    const gateway = new TemporalGateway(client, stack.gateway.taskQueue);

    const taskId = randomUUID();
    const receipt = await gateway.submitGoal(agent.id, { taskId, title: 'answer after a lost reply' });
    assert.equal(receipt.taskId, taskId);
    assert.equal(updateIds.length, 2, 'sent twice');
    assert.ok(
      updateIds[0].startsWith(`goal:${taskId}:`) && updateIds[1] === updateIds[0],
      `under one update id (${updateIds.join(', ')})`,
    );
    assert.equal((await stack.api.waitForTask(taskId)).status, 'completed');
    const rows = await stack.db.query('SELECT count(*)::int AS n FROM tasks WHERE agent_id = $1', [agent.id]);
    assert.equal(rows.rows[0].n, 1);
    const live = await stack.api.get(`/api/v1/agents/${agent.id}`);
    assert.equal(live.body.live.queue.length, 0, 'nothing left over in the queue');

    // A call that keeps running out of time is given up after three attempts, with the timeout as the error.
    lostAnswers = 3;
    updateIds.length = 0;
    await assert.rejects(
      gateway.submitGoal(agent.id, { taskId: randomUUID(), title: 'never answered' }),
      WorkflowUpdateRPCTimeoutOrCancelledError,
    );
    assert.equal(updateIds.length, 3);
  });

  it("refuses a goal that names another organisation than the agent's, and queues nothing", async () => {
    const agent = await stack.api.createAgent({ name: 'Own org only', objective: 'answer' });
    const taskId = randomUUID();
    await assert.rejects(
      stack.gateway.submitGoal(agent.id, { taskId, title: 'from elsewhere', orgId: 'some-other-org' }),
      (err: Error) => err.name === 'AgentRejectedError' && /organisation some-other-org/.test(err.message),
    );
    const rows = await stack.db.query('SELECT count(*)::int AS n FROM tasks WHERE id = $1', [taskId]);
    assert.equal(rows.rows[0].n, 0, 'no task row');
    const live = await stack.api.get(`/api/v1/agents/${agent.id}`);
    assert.equal(live.body.live.queue.length, 0);
  });
});
