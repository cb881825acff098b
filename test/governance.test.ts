import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { randomUUID } from 'node:crypto';
import { CpuGatedActivitySlots } from '../workers/cpu-gate';
import { agentEvents } from './helpers/history';
import { startApi, startStack, startWorker, testConfig, waitFor, type TestStack } from './helpers/stack';

/** Resource governance through real tasks: token budget, slots, resource buckets, fuses, AI priorities. */

type Interval = { start: number; end: number };

/** The most intervals open at one instant. */
function maxOverlap(intervals: Interval[]): number {
  const edges = intervals.flatMap((i) => [
    { at: i.start, d: 1 },
    { at: i.end, d: -1 },
  ]);
  // Ends sort before starts at the same instant: a slot handed over is not an overlap.
  edges.sort((a, b) => a.at - b.at || a.d - b.d);
  let open = 0;
  let most = 0;
  for (const e of edges) {
    open += e.d;
    most = Math.max(most, open);
  }
  return most;
}

/** Two model steps and two tool steps, one of them a local tool (memory_read): every one takes a step slot. */
const memoryScript = (i: number) => [
  {
    calls: [
      { call: 'memory_write', args: { key: `k${i}`, value: `v${i}` } },
      { call: 'memory_read', args: { key: `k${i}` } },
    ],
    delayMs: 120,
  },
  { answer: `stored ${i}`, delayMs: 120 },
];

describe('resource governance', () => {
  describe('50 agents contending for a small token budget', () => {
    const BUDGET = 1000;
    const WINDOW_SECONDS = 4;
    const MAX_ACTIVE = 8;
    const MAX_STEPS = 3;
    let stack: TestStack;
    let worker: { stop(): Promise<void> };

    before(async () => {
      const config = testConfig({
        AGENTS_GLOBAL_TOKEN_BUDGET_PER_MINUTE: String(BUDGET),
        TOKEN_BUDGET_WINDOW_SECONDS: String(WINDOW_SECONDS),
        TOKEN_RESERVATION_OUTPUT_TOKENS: '100',
        AGENTS_MAX_ACTIVE: String(MAX_ACTIVE),
        AGENTS_MAX_CONCURRENT_STEPS: String(MAX_STEPS),
        AGENTS_CPU_THRESHOLD: '100',
        PRIORITY_SCORING: 'off',
      });
      stack = await startApi(config);
      worker = await startWorker(config);
    });
    after(async () => {
      await worker?.stop();
      await stack?.stop();
    });

    it('keeps every window within the budget, and never exceeds max-active or max-steps', async () => {
      const agents = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          stack.api.createAgent({ name: `contender-${i}`, objective: 'store notes', priority: 1 + (i % 10) }),
        ),
      );
      const tasks = await Promise.all(
        agents.map((agent, i) =>
          stack.api.createTask({ agentId: agent.id, title: `note ${i}`, input: { script: memoryScript(i) } }),
        ),
      );
      let sawWaitingForBudget = false;
      await waitFor(
        async () => {
          const waiting = await stack.api.get('/api/v1/tasks?status=waiting_for_budget&limit=500');
          if (waiting.body.tasks.some((t: { agentId: string }) => agents.some((a) => a.id === t.agentId)))
            sawWaitingForBudget = true;
          const { rows } = await stack.db.query<{ n: number }>(
            `SELECT count(*) AS n FROM tasks WHERE id = ANY($1) AND status IN ('completed','failed','cancelled')`,
            [tasks.map((t) => t.id)],
          );
          return rows[0].n === tasks.length;
        },
        'all 50 tasks to finish',
        240_000,
      );
      const statuses = await stack.db.query<{ status: string; n: number }>(
        'SELECT status, count(*) AS n FROM tasks WHERE id = ANY($1) GROUP BY status',
        [tasks.map((t) => t.id)],
      );
      assert.deepEqual(statuses.rows, [{ status: 'completed', n: 50 }]);
      const dbg = await stack.db.query(
        `SELECT count(*) AS n, sum(tokens) AS t, min(reserved_at) AS a, max(reserved_at) AS b FROM token_ledger WHERE agent_id = ANY($1)`,
        [agents.map((a) => a.id)],
      );
      assert.ok(
        sawWaitingForBudget,
        `some task was seen waiting_for_budget through the API ${JSON.stringify(dbg.rows)}`,
      );

      // Tokens: for every window starting at a reservation, the settled tokens stay within the budget
      // plus one reservation.
      const ledger = await stack.db.query<{ at: number; tokens: number; estimate: number }>(
        `SELECT extract(epoch FROM reserved_at) * 1000 AS at, tokens, estimate FROM token_ledger WHERE agent_id = ANY($1) ORDER BY reserved_at`,
        [agents.map((a) => a.id)],
      );
      assert.equal(ledger.rows.filter((r) => r.tokens > 0).length, 100, 'two settled model calls per task');
      const largestReservation = Math.max(...ledger.rows.map((r) => r.estimate));
      let worstWindow = 0;
      for (const start of ledger.rows) {
        const inWindow = ledger.rows.filter((r) => r.at >= start.at && r.at < start.at + WINDOW_SECONDS * 1000);
        worstWindow = Math.max(
          worstWindow,
          inWindow.reduce((n, r) => n + r.tokens, 0),
        );
      }
      assert.ok(
        worstWindow <= BUDGET + largestReservation,
        `worst window ${worstWindow} > ${BUDGET} + ${largestReservation}`,
      );
      const total = ledger.rows.reduce((n, r) => n + r.tokens, 0);
      assert.ok(total > BUDGET * 2, `demand (${total} tokens) exceeded the budget several times over`);

      // Slots, from the recorded lease start and end times.
      const leases = async (kind: string) => {
        const { rows } = await stack.db.query<{ start: number; end: number }>(
          `SELECT extract(epoch FROM acquired_at) * 1000 AS start, extract(epoch FROM COALESCE(released_at, clock_timestamp())) * 1000 AS end
             FROM slot_leases WHERE kind = $1`,
          [`${kind}:${stack.config.TEMPORAL_TASK_QUEUE}`],
        );
        return rows;
      };
      const agentLeases = await leases('agent');
      const stepLeases = await leases('step');
      assert.ok(agentLeases.length >= 50, `every task ran in an agent slot (${agentLeases.length} leases)`);
      assert.ok(
        stepLeases.length >= 200,
        `every model and tool step, local tools included, ran in a step slot (${stepLeases.length} leases)`,
      );
      const activeAtOnce = maxOverlap(agentLeases);
      const stepsAtOnce = maxOverlap(stepLeases);
      assert.ok(
        activeAtOnce <= MAX_ACTIVE && activeAtOnce >= 2,
        `agents running at once: ${activeAtOnce} (limit ${MAX_ACTIVE})`,
      );
      assert.ok(stepsAtOnce <= MAX_STEPS && stepsAtOnce >= 2, `steps at once: ${stepsAtOnce} (limit ${MAX_STEPS})`);

      // Each agent gives its slot back once it has processed its last child's completion, just after the task row is final.
      const view = await waitFor(async () => {
        const v = await stack.api.get('/api/v1/governance');
        return v.body.usage?.slots.agent.held === 0 ? v : undefined;
      }, 'every active slot to be given back');
      assert.equal(view.status, 200);
      assert.equal(view.body.limits.globalTokenBudget, BUDGET);
      assert.deepEqual(view.body.usage.slots.agent, { held: 0, waiting: 0 });
    });
  });

  describe('fuses, resource buckets and AI priorities', () => {
    let stack: TestStack;
    let worker: { stop(): Promise<void> };
    let limited: http.Server;
    const hits: { at: number; status: number }[] = [];

    before(async () => {
      // An external API allowing 3 requests at once and 2 per second after; beyond that it answers 429.
      let tokens = 3;
      let last = Date.now();
      limited = http.createServer((_req, res) => {
        const now = Date.now();
        tokens = Math.min(3, tokens + ((now - last) / 1000) * 2);
        last = now;
        const ok = tokens >= 1;
        if (ok) tokens -= 1;
        hits.push({ at: now, status: ok ? 200 : 429 });
        res.writeHead(ok ? 200 : 429, { 'content-type': 'application/json' }).end(JSON.stringify({ ok }));
      });
      await new Promise<void>((resolve) => limited.listen(0, '127.0.0.1', resolve));
      const host = `127.0.0.1:${(limited.address() as AddressInfo).port}`;
      const config = testConfig({
        HTTP_ALLOWED_HOSTS: '127.0.0.1',
        HTTP_ALLOW_PRIVATE_HOSTS: '127.0.0.1',
        RESOURCE_BUCKETS: JSON.stringify({ [`http:${host}`]: { capacity: 2, refillPerSecond: 2 } }),
        MAX_SUBTASKS_PER_TASK: '2',
        AGENTS_CPU_THRESHOLD: '100',
      });
      stack = await startApi(config);
      worker = await startWorker(config);
    });
    after(async () => {
      await worker?.stop();
      await stack?.stop();
      limited?.close();
    });

    it('throttles a burst of calls to a shared resource so it never answers 429', async () => {
      const url = `http://127.0.0.1:${(limited.address() as AddressInfo).port}/quote`;
      const agents = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          stack.api.createAgent({ name: `caller-${i}`, objective: 'fetch quotes', allowedTools: ['http_get'] }),
        ),
      );
      const tasks = await Promise.all(
        agents.map((a) => stack.api.createTask({ agentId: a.id, title: `fetch ${url}` })),
      );
      const done = await Promise.all(tasks.map((t) => stack.api.waitForTask(t.id, 60_000)));
      assert.deepEqual(
        done.map((t) => t.status),
        tasks.map(() => 'completed'),
      );
      assert.equal(hits.length, 10, `one request per task: ${JSON.stringify(hits)}`);
      assert.deepEqual(
        hits.filter((h) => h.status === 429),
        [],
        'no request was refused',
      );
      // Without the bucket all ten would arrive within a few hundred milliseconds.
      const spread = hits.at(-1)!.at - hits[0].at;
      assert.ok(spread >= 3000, `requests were spread over ${spread} ms`);
      const view = await stack.api.get('/api/v1/governance');
      const bucket = view.body.usage.resources.find((r: { name: string }) => r.name.startsWith('http:127.0.0.1'));
      assert.ok(bucket.waitsTotal > 0 && bucket.grantedTotal >= 10, JSON.stringify(bucket));
    });

    it('refuses delegation beyond depth 5, sub-tasks beyond the cap, and pending tasks beyond the org cap', async () => {
      const helper = await stack.api.createAgent({ name: 'helper', objective: 'help' });
      const delegator = await stack.api.createAgent({
        name: 'delegator',
        objective: 'delegate',
        allowedTools: ['create_task'],
      });
      const delegate = (title: string) => ({ call: 'create_task', args: { agentId: helper.id, title } });

      // A chain already five deep: its sub-task would be the sixth level.
      const deep = randomUUID();
      await stack.gateway.submitGoal(delegator.id, {
        taskId: deep,
        title: 'deep chain',
        input: { script: [delegate('level 6')] },
        delegationDepth: 5,
      });
      const deepTask = await stack.api.waitForTask(deep);
      const deepResult = deepTask.reasoningTrace.find(
        (d: { action: { tool?: string } }) => d.action?.tool === 'create_task',
      );
      assert.match(deepResult.result.error, /delegation refused: depth 6 exceeds the fuse of 5/);

      const shallow = randomUUID();
      await stack.gateway.submitGoal(delegator.id, {
        taskId: shallow,
        title: 'fan out',
        input: { script: [{ calls: [delegate('a'), delegate('b'), delegate('c')] }] },
        delegationDepth: 4,
      });
      const fanOut = await stack.api.waitForTask(shallow);
      const results = fanOut.reasoningTrace.filter(
        (d: { action: { tool?: string } }) => d.action?.tool === 'create_task',
      );
      assert.equal(results.length, 3);
      assert.equal(
        results.filter((d: { result: { error?: string } }) => !d.result.error).length,
        2,
        'depth 5 is allowed, twice',
      );
      assert.match(results[2].result.error, /already created 2 sub-tasks \(MAX_SUBTASKS_PER_TASK=2\)/);

      // The org cap, set just above what the org has pending now (once the sub-tasks above are done).
      await waitFor(async () => {
        const { rows: open } = await stack.db.query(
          `SELECT 1 FROM tasks WHERE agent_id = $1 AND status NOT IN ('completed','failed','cancelled')`,
          [helper.id],
        );
        return open.length === 0;
      }, 'the delegated sub-tasks to finish');
      const { rows } = await stack.db.query<{ n: number }>(
        `SELECT count(*) AS n FROM tasks WHERE org_id = 'default' AND status NOT IN ('completed','failed','cancelled')`,
      );
      const capped = await startApi(
        testConfig({
          MAX_PENDING_TASKS_PER_ORG: String(rows[0].n + 1),
          TEMPORAL_TASK_QUEUE: stack.config.TEMPORAL_TASK_QUEUE,
        }),
      );
      try {
        await stack.api.post(`/api/v1/agents/${helper.id}/pause`);
        const first = await capped.api.post('/api/v1/tasks', { agentId: helper.id, title: 'fits' });
        assert.equal(first.status, 201);
        const second = await capped.api.post('/api/v1/tasks', { agentId: helper.id, title: 'one too many' });
        assert.equal(second.status, 429);
        assert.equal(second.body.error.code, 'pending_task_limit');
        assert.match(second.body.error.message, /MAX_PENDING_TASKS_PER_ORG=/);
        await stack.api.post(`/api/v1/tasks/${first.body.id}/cancel`);
      } finally {
        await stack.api.post(`/api/v1/agents/${helper.id}/resume`);
        await capped.stop();
      }
    });

    it('scores tasks with the model, reuses the score for a paraphrase, and works in score order', async () => {
      const writer = await stack.api.createAgent({
        name: 'writer',
        objective: 'Publish articles about AI and summarize quarterly sales reports',
        priority: 5,
      });
      // A goal the agent starts at once is not scored (nothing to rank it against): submitted to the paused
      // agent, it waits and is scored. Scoring runs in the background; the paraphrase comes once the first
      // score is cached.
      await stack.api.post(`/api/v1/agents/${writer.id}/pause`);
      const original = await stack.api.createTask({ agentId: writer.id, title: 'Write blog post about AI' });
      await waitFor(
        async () => (await stack.api.get(`/api/v1/tasks/${original.id}`)).body.priorityScore !== null,
        'the first score',
      );
      const paraphrase = await stack.api.createTask({
        agentId: writer.id,
        title: 'Create an article on artificial intelligence',
      });
      await stack.api.post(`/api/v1/agents/${writer.id}/resume`);
      await stack.api.waitForTask(original.id);
      await stack.api.waitForTask(paraphrase.id);
      const scores = await stack.db.query<{ task_id: string; score: number; source: string; concept_hash: string }>(
        'SELECT task_id, score, source, concept_hash FROM priority_scores WHERE task_id = ANY($1)',
        [[original.id, paraphrase.id]],
      );
      const byTask = new Map(scores.rows.map((r) => [r.task_id, r]));
      assert.equal(byTask.get(original.id)?.source, 'model');
      assert.equal(byTask.get(paraphrase.id)?.source, 'cache');
      assert.equal(byTask.get(paraphrase.id)?.score, byTask.get(original.id)?.score);
      assert.equal(byTask.get(paraphrase.id)?.concept_hash, byTask.get(original.id)?.concept_hash);
      const detail = await stack.api.get(`/api/v1/tasks/${paraphrase.id}`);
      assert.equal(detail.body.priorityScore, byTask.get(original.id)?.score);
      // The scoring call was admitted like a step: a step slot and a token reservation of its own.
      const slot = await stack.db.query('SELECT 1 FROM slot_leases WHERE kind = $1 AND holder = $2', [
        `step:${stack.config.TEMPORAL_TASK_QUEUE}`,
        `${original.id}:score`,
      ]);
      assert.equal(slot.rowCount, 1, 'the scoring held a step slot');
      const reserved = await stack.db.query(`SELECT 1 FROM token_ledger WHERE task_id = $1 AND purpose = 'priority'`, [
        original.id,
      ]);
      assert.equal(reserved.rowCount, 1, 'and reserved tokens once');
      const scoringCalls = (await agentEvents(stack, writer.id)).filter(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'scoreGoal',
      );
      assert.equal(scoringCalls.length, 1, 'the paraphrase, a cache hit, needed no scoring activity');

      // Score order beats static priority: the relevant task (priority 5) runs before the irrelevant one (priority 8).
      await stack.api.post(`/api/v1/agents/${writer.id}/pause`);
      const irrelevant = await stack.api.createTask({
        agentId: writer.id,
        title: 'Water the office plants',
        priority: 8,
      });
      const relevant = await stack.api.createTask({
        agentId: writer.id,
        title: 'Summarize the quarterly sales reports',
        priority: 5,
      });
      await waitFor(async () => {
        const { rows: scored } = await stack.db.query('SELECT 1 FROM priority_scores WHERE task_id = ANY($1)', [
          [irrelevant.id, relevant.id],
        ]);
        return scored.length === 2;
      }, 'both tasks scored');
      await stack.api.post(`/api/v1/agents/${writer.id}/resume`);
      const [a, b] = [await stack.api.waitForTask(relevant.id), await stack.api.waitForTask(irrelevant.id)];
      assert.ok(a.priorityScore > b.priorityScore, `${a.priorityScore} > ${b.priorityScore}`);
      assert.ok(Date.parse(a.startedAt) < Date.parse(b.startedAt), 'the higher score started first');

      const view = await stack.api.get('/api/v1/governance');
      assert.ok(
        view.body.usage.priority.cache >= 1 && view.body.usage.priority.hitRatio > 0,
        JSON.stringify(view.body.usage.priority),
      );
    });
  });

  describe('AI priorities for goals that wait', () => {
    let stack: TestStack;
    before(async () => {
      stack = await startStack(testConfig({ AGENTS_MAX_ACTIVE: '1', AGENTS_CPU_THRESHOLD: '100' }));
    });
    after(() => stack?.stop());

    const scoredTasks = async (taskIds: string[]): Promise<string[]> =>
      (
        await stack.db.query<{ task_id: string }>('SELECT task_id FROM priority_scores WHERE task_id = ANY($1)', [
          taskIds,
        ])
      ).rows.map((r) => r.task_id);

    it('scores no goal its agent starts at once, and both goals once a second queues beside the first', async () => {
      // The one active slot is held by a goal whose first step takes a few seconds.
      const busy = await stack.api.createAgent({ name: 'busy', objective: 'read slowly' });
      const holding = await stack.api.createTask({
        agentId: busy.id,
        title: 'hold the active slot',
        input: { script: [{ call: 'memory_read', args: { key: 'x' }, delayMs: 4000 }, { answer: 'done' }] },
      });
      await waitFor(
        async () => (await stack.api.get(`/api/v1/tasks/${holding.id}`)).body.status === 'planning',
        'the slow goal to run',
      );
      // The second agent is idle: its first goal would start at once, so it is not scored; it then waits
      // for the slot, and a second goal queuing beside it has both scored.
      const writer = await stack.api.createAgent({ name: 'waiting writer', objective: 'Publish articles about AI' });
      const first = await stack.api.createTask({ agentId: writer.id, title: 'Write blog post about AI' });
      assert.deepEqual(await scoredTasks([first.id]), [], 'a goal that starts at once asks for no score');
      const second = await stack.api.createTask({ agentId: writer.id, title: 'Water the office plants' });
      await waitFor(async () => (await scoredTasks([first.id, second.id])).length === 2, 'both waiting goals scored');
      const { rows } = await stack.db.query<{ later: boolean }>(
        `SELECT s.created_at >= t.created_at AS later FROM priority_scores s, tasks t WHERE s.task_id = $1 AND t.id = $2`,
        [first.id, second.id],
      );
      assert.equal(rows[0]?.later, true, 'the first goal was scored only once the second had queued');
      for (const task of [holding, first, second])
        assert.equal((await stack.api.waitForTask(task.id)).status, 'completed');
      assert.deepEqual(await scoredTasks([holding.id]), [], 'the goal that started at once was never scored');
    });
  });

  it('a worker above the CPU threshold hands out no activity slot beyond its minimum until load drops', async () => {
    const cpu = { percent: 95 };
    const slots = new CpuGatedActivitySlots(cpu, {
      thresholdPercent: 85,
      maxSlots: 10,
      minimumSlots: 1,
      recheckMs: 10,
    });
    const abort = new AbortController();
    const ctx = {} as never;
    await slots.reserveSlot(ctx, abort.signal);
    assert.equal(slots.tryReserveSlot(), null, 'no eager slot above the threshold');
    let second = false;
    const pending = slots.reserveSlot(ctx, abort.signal).then(() => (second = true));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(second, false, 'the second reservation waits while the CPU is busy');
    cpu.percent = 40;
    await pending;
    assert.equal(slots.issued, 2);
    slots.releaseSlot();
    assert.equal(slots.issued, 1);
  });
});
