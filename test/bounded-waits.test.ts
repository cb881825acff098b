import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { agentWorkflowId, getAgentStateQuery } from '../contract/definitions';
import { SCORING_SYSTEM_PROMPT } from '../activities/priority';
import { type RecordedRequest } from './helpers/fake-openai-server';
import { agentEvents } from './helpers/history';
import { stackWithFakeOpenAi, startStack, testConfig, waitFor, type TestStack } from './helpers/stack';

/**
 * Nothing freezes an agent or the system: waiting agents give their active slot back, a long slot wait
 * stays small in history, unstorable input is refused at the door (and a value the database refuses later
 * fails its task instead of blocking the agent), admission waits do not count as running time, and the
 * queue of one agent is bounded.
 */

const writeThenAnswer = (value: string) => [
  { call: 'memory_write', args: { key: 'k', value } },
  { answer: `stored ${value}` },
];

async function taskStatus(stack: TestStack, taskId: string): Promise<string> {
  return (await stack.api.get(`/api/v1/tasks/${taskId}`)).body.status;
}

describe('active slots are held only by agents doing work', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startStack(testConfig({ AGENTS_MAX_ACTIVE: '2', PRIORITY_SCORING: 'off' }));
  });
  after(() => stack?.stop());

  it('two copilot agents waiting for approval leave room for a third agent, and resume when approved', async () => {
    const waiting = await Promise.all(
      [1, 2].map(async (i) => {
        const agent = await stack.api.createAgent({
          name: `waiter-${i}`,
          objective: 'write with approval',
          autonomy: 'copilot',
        });
        const task = await stack.api.createTask({
          agentId: agent.id,
          title: `write ${i}`,
          input: { script: writeThenAnswer(`v${i}`) },
        });
        return { agent, task };
      }),
    );
    for (const { task } of waiting) {
      await waitFor(
        async () => (await taskStatus(stack, task.id)) === 'awaiting_approval',
        `task ${task.id} awaiting approval`,
      );
    }
    // The slot goes back just after the request is recorded (the next local activity of the same workflow task).
    await waitFor(
      async () => ((await stack.api.get('/api/v1/governance')).body.usage.slots.agent?.held ?? 0) === 0,
      'agents waiting for a human to hold no active slot',
      10_000,
    );

    const worker = await stack.api.createAgent({ name: 'worker', objective: 'answer' });
    const task = await stack.api.createTask({
      agentId: worker.id,
      title: 'answer now',
      input: { script: [{ answer: 'done' }] },
    });
    const done = await stack.api.waitForTask(task.id, 40_000);
    assert.equal(done.status, 'completed', JSON.stringify(done));

    for (const { task } of waiting) {
      const pending = await stack.api.get(`/api/v1/approvals?status=pending`);
      const approval = pending.body.approvals.find((a: { taskId: string }) => a.taskId === task.id);
      assert.ok(approval, `an approval request for ${task.id}`);
      assert.equal((await stack.api.post(`/api/v1/approvals/${approval.id}/approve`, {})).status, 200);
    }
    for (const { task } of waiting) assert.equal((await stack.api.waitForTask(task.id)).status, 'completed');
  });

  it('an agent paused between steps gives its slot back; resumed, it takes one and finishes', async () => {
    const slowFirstStep = [
      { call: 'memory_read', args: { key: 'nothing' }, delayMs: 6000 },
      { answer: 'after the pause' },
    ];
    const agents = await Promise.all(
      [1, 2].map((i) => stack.api.createAgent({ name: `pausing-${i}`, objective: 'read' })),
    );
    const tasks = await Promise.all(
      agents.map((agent, i) =>
        stack.api.createTask({ agentId: agent.id, title: `pause ${i}`, input: { script: slowFirstStep } }),
      ),
    );
    for (const task of tasks)
      await waitFor(async () => (await taskStatus(stack, task.id)) === 'planning', 'the first step to start');
    // Paused during their first model call: they stop before step 2, holding both slots on earlier code.
    for (const agent of agents) assert.equal((await stack.api.post(`/api/v1/agents/${agent.id}/pause`)).status, 200);
    const other = await stack.api.createAgent({ name: 'other', objective: 'answer', provider: 'offline' });
    const done = await stack.api.waitForTask(
      (await stack.api.createTask({ agentId: other.id, title: 'go', input: { script: [{ answer: 'ok' }] } })).id,
      40_000,
    );
    assert.equal(done.status, 'completed');
    for (const task of tasks)
      assert.ok(
        ['planning', 'running'].includes(await taskStatus(stack, task.id)),
        'the paused tasks have not finished',
      );
    for (const agent of agents) assert.equal((await stack.api.post(`/api/v1/agents/${agent.id}/resume`)).status, 200);
    for (const task of tasks) {
      const finished = await stack.api.waitForTask(task.id);
      assert.equal(finished.status, 'completed');
      assert.equal(finished.output.answer, '[offline] after the pause');
    }
    await waitFor(
      async () => ((await stack.api.get('/api/v1/governance')).body.usage.slots.agent?.held ?? 0) === 0,
      'idle agents to hold no slot',
    );
  });
});

describe('a long wait for an active slot', () => {
  const HISTORY_LIMIT = 100;
  let stack: TestStack;
  before(async () => {
    stack = await startStack(
      testConfig({
        AGENTS_MAX_ACTIVE: '1',
        AGENT_SLOT_RECHECK_SECONDS: '1',
        AGENT_HISTORY_LIMIT: String(HISTORY_LIMIT),
        PRIORITY_SCORING: 'off',
        AGENT_WORKFLOW_TASK_TIMEOUT_SECONDS: '25',
      }),
    );
  });
  after(() => stack?.stop());

  /** The workflow task timeout a run of the agent's workflow has, in seconds. */
  const taskTimeoutOf = async (workflowId: string, runId?: string) => {
    const { raw } = await stack.client.workflow.getHandle(workflowId, runId).describe();
    return Number(raw.executionConfig?.defaultWorkflowTaskTimeout?.seconds);
  };

  it('continues as new while it waits, keeps every run small, and runs the goal once the slot is free', async () => {
    // The only slot is held by another (running, idle) agent, as if it were busy for hours.
    const holder = await stack.api.createAgent({ name: 'holder', objective: 'hold' });
    const pool = `agent:${stack.config.TEMPORAL_TASK_QUEUE}`;
    await stack.db.query(
      `INSERT INTO slot_leases (kind, holder, priority, expires_at) VALUES ($1, $2, 1, now() + interval '1 day')`,
      [pool, holder.id],
    );

    const waiter = await stack.api.createAgent({ name: 'waiter', objective: 'answer' });
    const task = await stack.api.createTask({
      agentId: waiter.id,
      title: 'wait for a slot',
      input: { script: [{ answer: 'finally' }] },
    });
    const handle = stack.client.workflow.getHandle(agentWorkflowId(waiter.id));
    const state = await waitFor(
      async () => {
        const s = await handle.query(getAgentStateQuery);
        return s.runs >= 2 ? s : undefined;
      },
      'the waiting agent to continue as new',
      120_000,
    );
    assert.equal(state.queue.length, 1, 'the goal travelled through continue-as-new');
    assert.equal(await taskStatus(stack, task.id), 'queued');

    // Every closed run of this agent stayed near the limit: the wait does not grow one history without end.
    const runs = stack.client.workflow.list({
      query: `WorkflowId = '${agentWorkflowId(waiter.id)}' AND ExecutionStatus = 'ContinuedAsNew'`,
    });
    let closed = 0;
    for await (const run of runs) {
      closed += 1;
      assert.ok(run.historyLength <= HISTORY_LIMIT + 30, `run ${run.runId} has ${run.historyLength} events`);
      assert.equal(await taskTimeoutOf(run.workflowId, run.runId), 25, 'AGENT_WORKFLOW_TASK_TIMEOUT_SECONDS');
    }
    assert.ok(closed >= 1, `${closed} continued-as-new runs`);
    assert.equal(await taskTimeoutOf(agentWorkflowId(waiter.id)), 25, 'the continued run keeps the timeout');

    await stack.db.query('DELETE FROM slot_leases WHERE kind = $1 AND holder = $2', [pool, holder.id]);
    const done = await stack.api.waitForTask(task.id, 30_000);
    assert.equal(done.status, 'completed');
    assert.equal(done.output.answer, '[offline] finally');
  });

  it('carries queued goals through continue-as-new by reference: the inputs stay in their rows', async () => {
    const agent = await stack.api.createAgent({ name: 'hoarder', objective: 'answer' });
    assert.equal((await stack.api.post(`/api/v1/agents/${agent.id}/pause`)).status, 200);
    const padding = 'x'.repeat(20_000);
    const tasks = [];
    for (let i = 0; i < 20; i++) {
      tasks.push(
        await stack.api.createTask({
          agentId: agent.id,
          title: `big ${i}`,
          input: { padding, script: [{ answer: `answer ${i}` }] },
        }),
      );
    }
    const handle = stack.client.workflow.getHandle(agentWorkflowId(agent.id));
    await waitFor(
      async () => (await handle.query(getAgentStateQuery)).runs >= 2,
      'the paused agent to continue as new',
      60_000,
    );
    const history = await handle.fetchHistory();
    const started = history.events![0]!.workflowExecutionStartedEventAttributes!;
    const carriedBytes = (started.input?.payloads ?? []).reduce((n, p) => n + (p.data?.length ?? 0), 0);
    assert.ok(carriedBytes < 50_000, `the new run was started with ${carriedBytes} bytes for 20 goals of 20 KB`);
    assert.equal((await handle.query(getAgentStateQuery)).queue.length, 20);

    assert.equal((await stack.api.post(`/api/v1/agents/${agent.id}/resume`)).status, 200);
    for (const [i, task] of tasks.entries()) {
      const done = await stack.api.waitForTask(task.id, 60_000);
      assert.equal(done.status, 'completed');
      assert.equal(
        done.output.answer,
        `[offline] answer ${i}`,
        'the goal ran with its own input, read back from its row',
      );
    }
  });
});

describe('a long wait for a step slot', () => {
  // The one step slot is held by another agent's model call this long: the equivalent of a busy system.
  const HOLD_MS = 60_000;
  let stack: TestStack;
  before(async () => {
    stack = await startStack(
      testConfig({ AGENTS_MAX_CONCURRENT_STEPS: '1', AGENTS_MAX_ACTIVE: '5', PRIORITY_SCORING: 'off' }),
    );
  });
  after(() => stack?.stop());

  it('sleeps on a doubling fallback timer, costs a few events, and is woken when the slot frees', async (t) => {
    const slow = await stack.api.createAgent({ name: 'slow', objective: 'think' });
    const quick = await stack.api.createAgent({ name: 'quick', objective: 'answer' });
    const pool = `step:${stack.config.TEMPORAL_TASK_QUEUE}`;
    const slowTask = await stack.api.createTask({
      agentId: slow.id,
      title: 'think long',
      input: { script: [{ answer: 'pondered', delayMs: HOLD_MS }] },
    });
    await waitFor(
      async () =>
        (
          await stack.db.query('SELECT 1 FROM slot_leases WHERE kind = $1 AND holder LIKE $2 AND released_at IS NULL', [
            pool,
            `${slowTask.id}:%`,
          ])
        ).rowCount === 1,
      'the slow model call to hold the only step slot',
    );
    const quickTask = await stack.api.createTask({
      agentId: quick.id,
      title: 'answer quickly',
      input: { script: [{ answer: 'done' }] },
    });
    await waitFor(
      async () =>
        (await stack.db.query('SELECT 1 FROM admission_waiters WHERE workflow_id = $1', [agentWorkflowId(quick.id)]))
          .rowCount === 1,
      'the quick step to sleep in the line for a step slot',
    );
    const slowDone = await stack.api.waitForTask(slowTask.id, HOLD_MS + 30_000);
    assert.equal(slowDone.status, 'completed', JSON.stringify(slowDone));
    const quickDone = await stack.api.waitForTask(quickTask.id, 30_000);
    assert.equal(quickDone.status, 'completed', JSON.stringify(quickDone));

    const events = await agentEvents(stack, quick.id);
    const tries = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'callModel');
    const timers = events.flatMap((e) => {
      const timeout = e.timerStartedEventAttributes?.startToFireTimeout;
      return timeout ? [Number(timeout.seconds ?? 0) * 1000 + Math.round((timeout.nanos ?? 0) / 1e6)] : [];
    });
    const woken = events.filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'admissionFreed');
    const cancelled = events.filter((e) => e.timerCanceledEventAttributes);
    const detail = `tries ${tries.length}, timers ${JSON.stringify(timers)}, ${events.length} events`;
    t.diagnostic(detail);
    // Polling every few seconds (as a step used to) asks about 18 times in a minute; a doubling timer asks
    // log₂ as often, and a wait of hours adds one try per ADMISSION_RECHECK_MAX_SECONDS (300 s) at most.
    assert.ok(tries.length >= 3 && tries.length <= 10, detail);
    for (let i = 1; i < timers.length; i++) assert.ok(timers[i]! >= 2 * timers[i - 1]! - 1, `timers double: ${detail}`);
    // The release signalled it: the last fallback timer was cancelled rather than left to fire.
    assert.ok(woken.length >= 1, `woken by the release: ${detail}`);
    assert.ok(cancelled.length >= 1, `the wake ended a timer early: ${detail}`);
    const left = await stack.db.query('SELECT 1 FROM admission_waiters WHERE workflow_id = $1', [
      agentWorkflowId(quick.id),
    ]);
    assert.equal(left.rowCount, 0, 'the woken workflow left the line');
  });
});

describe('a wait for budget held by a call in flight', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startStack(
      testConfig({
        AGENTS_GLOBAL_TOKEN_BUDGET_PER_MINUTE: '2000',
        TOKEN_RESERVATION_OUTPUT_TOKENS: '1500',
        PRIORITY_SCORING: 'off',
      }),
    );
  });
  after(() => stack?.stop());

  it('is woken by the call settling below its estimate, not by polling', async () => {
    const first = await stack.api.createAgent({ name: 'first', objective: 'think' });
    const second = await stack.api.createAgent({ name: 'second', objective: 'answer' });
    // Each call reserves about 1,500 tokens of the 2,000: the second fits only once the first settles.
    const slowTask = await stack.api.createTask({
      agentId: first.id,
      title: 'think a while',
      input: { script: [{ answer: 'thought', delayMs: 12_000 }] },
    });
    await waitFor(
      async () =>
        (await stack.db.query('SELECT 1 FROM token_ledger WHERE task_id = $1 AND settled_at IS NULL', [slowTask.id]))
          .rowCount === 1,
      'the first call to hold its reservation',
    );
    const waiting = await stack.api.createTask({
      agentId: second.id,
      title: 'answer',
      input: { script: [{ answer: 'answered' }] },
    });
    await waitFor(
      async () =>
        (
          await stack.db.query(`SELECT 1 FROM admission_waiters WHERE workflow_id = $1 AND kind = 'budget'`, [
            agentWorkflowId(second.id),
          ])
        ).rowCount === 1,
      'the second call to wait in the budget line',
    );
    assert.equal((await stack.api.waitForTask(slowTask.id, 40_000)).status, 'completed');
    assert.equal((await stack.api.waitForTask(waiting.id, 40_000)).status, 'completed');
    const events = await agentEvents(stack, second.id);
    const tries = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'callModel');
    const woken = events.filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'admissionFreed');
    // Asking every second (as it used to) would have tried about 12 times during the 12 s call.
    assert.ok(tries.length <= 7, `${tries.length} tries`);
    assert.ok(woken.length >= 1, 'woken by the settling call');
    assert.ok(
      events.some((e) => e.timerCanceledEventAttributes),
      'the wake ended its fallback timer early',
    );
  });
});

describe('a provider backing off', () => {
  const env = stackWithFakeOpenAi({ AGENTS_MAX_ACTIVE: '1', PRIORITY_SCORING: 'off' });

  it('gives the active slot back while it waits for retry-after, and the call still succeeds', async () => {
    const patient = await env.stack.api.createAgent({
      name: 'rate-limited',
      objective: 'answer',
      provider: 'openai',
      model: 'gpt-test',
    });
    const other = await env.stack.api.createAgent({ name: 'other', objective: 'answer', provider: 'offline' });
    env.openai.enqueue({ kind: 'error', status: 429, headers: { 'retry-after': '8' } });
    env.openai.enqueue({
      kind: 'completion',
      content: 'after the back-off',
      usage: { promptTokens: 10, completionTokens: 4 },
    });
    const limited = await env.stack.api.createTask({ agentId: patient.id, title: 'rate limited' });
    await waitFor(async () => env.openai.requests.length >= 1, 'the first model call to be refused with 429');
    const otherTask = await env.stack.api.createTask({
      agentId: other.id,
      title: 'meanwhile',
      input: { script: [{ answer: 'done meanwhile' }] },
    });
    const otherDone = await env.stack.api.waitForTask(otherTask.id, 30_000);
    const limitedDone = await env.stack.api.waitForTask(limited.id, 60_000);
    assert.equal(otherDone.status, 'completed', JSON.stringify(otherDone));
    assert.equal(limitedDone.status, 'completed', JSON.stringify(limitedDone));
    assert.equal(limitedDone.output.answer, 'after the back-off');
    // With AGENTS_MAX_ACTIVE=1, the other agent could only work while the rate-limited one waited.
    assert.ok(
      Date.parse(otherDone.completedAt) < Date.parse(limitedDone.completedAt),
      `${otherDone.completedAt} before ${limitedDone.completedAt}`,
    );
    assert.equal(env.openai.requests.length, 2);
  });
});

describe('unstorable values', () => {
  const env = stackWithFakeOpenAi({ PRIORITY_SCORING: 'off' });

  it('a lone surrogate in a task is refused with 400 naming the field, and the agent keeps working', async () => {
    const agent = await env.stack.api.createAgent({ name: 'sturdy', objective: 'answer', provider: 'offline' });
    const raw = `{"agentId":"${agent.id}","title":"poison","input":{"x":"\\ud800"}}`;
    const refused = await env.stack.api.request('POST', '/api/v1/tasks', undefined, { raw });
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.match(refused.body.error.message, /input\.x/);
    assert.match(refused.body.error.message, /surrogate/);
    const title = await env.stack.api.request('POST', '/api/v1/tasks', undefined, {
      raw: `{"agentId":"${agent.id}","title":"bad \\udfff end"}`,
    });
    assert.equal(title.status, 400);
    assert.match(title.body.error.message, /title/);
    // A proper pair (an emoji) is fine.
    const done = await env.stack.api.waitForTask(
      (
        await env.stack.api.createTask({
          agentId: agent.id,
          title: 'ok \u{1F600}',
          input: { script: [{ answer: 'fine' }] },
        })
      ).id,
    );
    assert.equal(done.status, 'completed');
  });

  it('a model call retried after a failed attempt reserves tokens again, and counts what the retry used', async () => {
    const agent = await env.stack.api.createAgent({
      name: 'retrier',
      objective: 'answer',
      provider: 'openai',
      model: 'gpt-test',
    });
    env.openai.enqueue({ kind: 'error', status: 500 });
    env.openai.enqueue({
      kind: 'completion',
      content: 'second time lucky',
      usage: { promptTokens: 30, completionTokens: 7 },
    });
    const done = await env.stack.api.waitForTask(
      (await env.stack.api.createTask({ agentId: agent.id, title: 'retry me' })).id,
    );
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const { rows } = await env.stack.db.query<{ id: string; tokens: number }>(
      `SELECT id, tokens FROM token_ledger WHERE task_id = $1 AND purpose = 'step' ORDER BY reserved_at`,
      [done.id],
    );
    // One reservation per attempt (its id names the attempt): the failed one settled at 0, the retry at its
    // usage. Under one id per step, the retry would have found the first reservation and reserved nothing.
    assert.equal(rows.length, 2, JSON.stringify(rows));
    assert.notEqual(rows[0]!.id, rows[1]!.id);
    assert.match(rows[0]!.id, /:1$/);
    assert.match(rows[1]!.id, /:2$/);
    assert.deepEqual(
      rows.map((r) => r.tokens),
      [0, 37],
    );
  });

  it('a value the database refuses later fails its task with the reason, and the next task of the agent completes', async () => {
    // A manual agent records the model's proposed arguments; these hold a lone surrogate, which jsonb refuses.
    const agent = await env.stack.api.createAgent({
      name: 'proposer',
      objective: 'propose',
      autonomy: 'manual',
      provider: 'openai',
      model: 'gpt-test',
    });
    env.openai.enqueue({
      kind: 'completion',
      toolCalls: [{ id: 'call_1', name: 'memory_write', arguments: '{"key":"k","value":"\\ud800"}' }],
    });
    const failed = await env.stack.api.waitForTask(
      (await env.stack.api.createTask({ agentId: agent.id, title: 'propose a write' })).id,
    );
    assert.equal(failed.status, 'failed', JSON.stringify(failed));
    assert.match(failed.error, /database refused a value/);
    env.openai.enqueue({ kind: 'completion', content: 'still here', usage: { promptTokens: 5, completionTokens: 2 } });
    const next = await env.stack.api.waitForTask(
      (await env.stack.api.createTask({ agentId: agent.id, title: 'answer' })).id,
    );
    assert.equal(next.status, 'completed', JSON.stringify(next));
    assert.equal(next.output.answer, 'still here');
  });
});

describe('admission waits and queue bounds', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startStack(
      testConfig({
        AGENTS_GLOBAL_TOKEN_BUDGET_PER_MINUTE: '2000',
        TOKEN_BUDGET_WINDOW_SECONDS: '6',
        TOKEN_RESERVATION_OUTPUT_TOKENS: '100',
        AGENT_TIMEOUT_SECONDS: '3',
        MAX_QUEUED_GOALS_PER_AGENT: '2',
        PRIORITY_SCORING: 'off',
      }),
    );
  });
  after(() => stack?.stop());

  it('time spent waiting for the token budget does not count toward AGENT_TIMEOUT_SECONDS', async () => {
    const agent = await stack.api.createAgent({ name: 'patient', objective: 'write' });
    // The whole window's budget is spent just now: the task's first step waits about 6 s, twice its time limit.
    await stack.db.query(
      `INSERT INTO token_ledger (id, org_id, agent_id, task_id, purpose, estimate, tokens, settled_at) VALUES ($1, $2, $3, NULL, 'step', 2000, 2000, now())`,
      [randomUUID(), stack.config.DEFAULT_ORG_ID, randomUUID()],
    );
    const task = await stack.api.createTask({
      agentId: agent.id,
      title: 'wait, then work',
      input: { script: writeThenAnswer('w') },
    });
    await waitFor(
      async () => (await taskStatus(stack, task.id)) === 'waiting_for_budget',
      'the task to wait for budget',
    );
    const done = await stack.api.waitForTask(task.id, 40_000);
    assert.equal(done.status, 'completed', JSON.stringify(done));
  });

  it('refuses a goal beyond MAX_QUEUED_GOALS_PER_AGENT with 429, and accepts it once the queue has room', async () => {
    const agent = await stack.api.createAgent({ name: 'busy', objective: 'queue' });
    assert.equal((await stack.api.post(`/api/v1/agents/${agent.id}/pause`)).status, 200);
    const queued = [];
    for (let i = 0; i < 2; i++)
      queued.push(
        await stack.api.createTask({ agentId: agent.id, title: `q${i}`, input: { script: [{ answer: `a${i}` }] } }),
      );
    const refused = await stack.api.post('/api/v1/tasks', { agentId: agent.id, title: 'one too many' });
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.match(refused.body.error.message, /MAX_QUEUED_GOALS_PER_AGENT/);
    const { rows } = await stack.db.query(`SELECT count(*)::int AS n FROM tasks WHERE agent_id = $1`, [agent.id]);
    assert.equal(rows[0].n, 2, 'the refused goal left no row');
    assert.equal((await stack.api.post(`/api/v1/agents/${agent.id}/resume`)).status, 200);
    for (const task of queued) assert.equal((await stack.api.waitForTask(task.id)).status, 'completed');
    const later = await stack.api.createTask({
      agentId: agent.id,
      title: 'room again',
      input: { script: [{ answer: 'yes' }] },
    });
    assert.equal((await stack.api.waitForTask(later.id)).status, 'completed');
  });
});

/** Requests of the fake model: priority scorings, and everything else (a goal's own steps). */
const isScoring = (request: RecordedRequest) =>
  (request.body as { messages?: { content?: unknown }[] }).messages?.[0]?.content === SCORING_SYSTEM_PROMPT;
const isGoalStep = (request: RecordedRequest) => !isScoring(request);

describe('archive wins', () => {
  const env = stackWithFakeOpenAi({ PRIORITY_SCORING: 'on', PRIORITY_SCORING_TIMEOUT_SECONDS: '10' });

  it('archived while its next goal is being scored, the agent runs nothing of that goal', async () => {
    const agent = await env.stack.api.createAgent({
      name: 'scored',
      objective: 'write',
      provider: 'openai',
      model: 'gpt-test',
    });
    // Goal 1 starts at once (not scored) and answers after a moment; goal 2, queued behind it, is scored by a
    // call that never answers (it would give up after 10 s), so when goal 1 ends the agent waits for that
    // score before choosing. Were goal 2 to run, it would write memory.
    env.openai.enqueue({ kind: 'completion', content: 'first done', delayMs: 1500 }, { when: isGoalStep });
    env.openai.enqueue({ kind: 'hang' }, { when: isScoring });
    env.openai.enqueue(
      {
        kind: 'completion',
        toolCalls: [{ id: 'call_1', name: 'memory_write', arguments: '{"key":"k","value":"side effect"}' }],
      },
      { when: isGoalStep },
    );
    env.openai.enqueue(
      { kind: 'completion', content: 'written', usage: { promptTokens: 5, completionTokens: 2 } },
      { when: isGoalStep },
    );
    const first = await env.stack.api.createTask({ agentId: agent.id, title: 'answer first' });
    await waitFor(async () => env.openai.requests.some(isGoalStep), 'goal 1 to call the model');
    const task = await env.stack.api.createTask({ agentId: agent.id, title: 'write a note' });
    await waitFor(async () => env.openai.requests.some(isScoring), 'the scoring call to be sent');
    assert.equal((await env.stack.api.waitForTask(first.id)).status, 'completed');
    const archived = await env.stack.api.post(`/api/v1/agents/${agent.id}/archive`);
    assert.equal(archived.status, 200, JSON.stringify(archived.body));
    const done = await env.stack.api.waitForTask(task.id);
    assert.equal(done.status, 'cancelled', JSON.stringify(done));
    assert.equal(
      env.openai.requests.filter(isGoalStep).length,
      1,
      "only goal 1's call and the scoring call were made; goal 2 never called the model",
    );
    const memory = await env.stack.db.query('SELECT count(*)::int AS n FROM memory WHERE scope = $1', [agent.id]);
    assert.equal(memory.rows[0].n, 0, 'no side effect of the cancelled goal');
  });
});

describe('archive while the agent waits to continue as new', () => {
  const HISTORY_LIMIT = 100;
  const SCORING_TIMEOUT_SECONDS = 60;
  const env = stackWithFakeOpenAi({
    AGENT_HISTORY_LIMIT: String(HISTORY_LIMIT),
    MAX_STEPS: '30',
    PRIORITY_SCORING: 'on',
    PRIORITY_SCORING_TIMEOUT_SECONDS: String(SCORING_TIMEOUT_SECONDS),
  });

  it('ends the wait for handlers and scorings, archives in the same run and cancels the queued goal', async () => {
    const agent = await env.stack.api.createAgent({
      name: 'long-history',
      objective: 'write',
      provider: 'openai',
      model: 'gpt-test',
    });
    // Goal 1 writes enough memory to pass the history limit; it starts at once, so it is not scored.
    const WRITES = 15;
    for (let i = 0; i < WRITES; i++) {
      env.openai.enqueue(
        {
          kind: 'completion',
          toolCalls: [
            { id: `call_${i}`, name: 'memory_write', arguments: JSON.stringify({ key: `k${i}`, value: `v${i}` }) },
          ],
        },
        { when: isGoalStep },
      );
    }
    const first = await env.stack.api.createTask({ agentId: agent.id, title: 'write many notes' });
    await waitFor(async () => env.openai.requests.some(isGoalStep), 'goal 1 to call the model');

    // Goal 2 arrives while goal 1 runs; its scoring never answers, so when goal 1 ends the agent is past the
    // history limit with a scoring in flight: it waits for it before continuing as new.
    env.openai.enqueue({ kind: 'hang' }, { when: isScoring });
    const second = await env.stack.api.createTask({ agentId: agent.id, title: 'never runs' });
    await waitFor(async () => env.openai.requests.filter(isScoring).length === 1, 'goal 2 to be scored');
    env.openai.enqueue(
      { kind: 'completion', content: 'all written', usage: { promptTokens: 5, completionTokens: 2 } },
      { when: isGoalStep },
    );
    const done = await env.stack.api.waitForTask(first.id, 60_000);
    assert.equal(done.status, 'completed', JSON.stringify(done));

    const handle = env.stack.client.workflow.getHandle(agentWorkflowId(agent.id));
    const waiting = await handle.describe();
    assert.ok(waiting.historyLength > HISTORY_LIMIT, `history ${waiting.historyLength} is past the limit`);
    assert.equal(await taskStatus(env.stack, second.id), 'queued');

    const started = Date.now();
    const archived = await env.stack.api.post(`/api/v1/agents/${agent.id}/archive`);
    assert.equal(archived.status, 200, JSON.stringify(archived.body));
    // Well before the scoring would give up by itself: the archive ended the wait, not the scoring's time-out.
    assert.ok(Date.now() - started < (SCORING_TIMEOUT_SECONDS * 1000) / 2, `archive took ${Date.now() - started} ms`);
    assert.equal((await env.stack.api.waitForTask(second.id)).status, 'cancelled');
    await handle.result();
    const closed = await handle.describe();
    assert.equal(closed.status.name, 'COMPLETED');
    assert.equal(closed.runId, waiting.runId, 'archived in the run that was waiting, without continuing as new');
    assert.equal(env.openai.requests.filter(isGoalStep).length, WRITES + 1, 'goal 2 never called the model');
  });
});
