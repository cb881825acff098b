import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Worker } from '@temporalio/worker';
import { CREW_PARALLEL_ITEMS_AT_ONCE, crewWorkflowId } from '../contract/definitions';
import {
  killHard,
  startApi,
  startWorker,
  testConfig,
  waitFor,
  withKillableWorkers,
  type ApiClient,
  type TestStack,
} from './helpers/stack';

/** Polls the crew until it reaches a terminal status and returns its detail. */
async function waitForCrew(api: ApiClient, crewId: string, timeoutMs = 60_000): Promise<any> {
  return waitFor(
    async () => {
      const res = await api.get(`/api/v1/crews/${crewId}`);
      return ['completed', 'failed', 'stopped'].includes(res.body?.status) ? res.body : undefined;
    },
    `crew ${crewId} to finish`,
    timeoutMs,
  );
}

async function createCrew(api: ApiClient, body: Record<string, unknown>): Promise<any> {
  const res = await api.post('/api/v1/crews', body);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body;
}

/** Every crew a test started, for the replay check at the end. */
const startedCrews: string[] = [];

async function startCrew(api: ApiClient, crewId: string): Promise<any> {
  startedCrews.push(crewId);
  const res = await api.post(`/api/v1/crews/${crewId}/start`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

/** An offline script whose single answer is this JSON (the offline provider prefixes "[offline] "). */
const answering = (value: unknown) => ({ script: [{ answer: JSON.stringify(value) }] });
/** An offline script that never answers: with MAX_STEPS=3 the task fails at its step limit. */
const neverFinishing = { script: Array.from({ length: 6 }, () => ({ call: 'memory_read', args: { key: 'nothing' } })) };

const taskRows = async (stack: TestStack, crewId: string) =>
  (
    await stack.db.query(
      'SELECT id, agent_id, status, input, output FROM tasks WHERE crew_id = $1 ORDER BY created_at, id',
      [crewId],
    )
  ).rows;

describe('crews', () => {
  let stack: TestStack;
  let worker: { stop(): Promise<void> };

  before(async () => {
    // One retry after the first attempt, and a low step limit, keep the failing paths short.
    const config = testConfig({ MAX_RETRIES: '1', MAX_STEPS: '3' });
    stack = await startApi(config);
    worker = await startWorker(config);
  });
  after(async () => {
    await worker?.stop();
    await stack?.stop();
  });

  const agent = (name: string, extra: Record<string, unknown> = {}) =>
    stack.api.createAgent({ name, objective: `Be the ${name}`, ...extra });

  it('validates the body: unknown agents, too many members, bad process; lists and reads crews', async () => {
    const a = await agent('Validator A');
    const unknownId = randomUUID();
    const bad = await stack.api.post('/api/v1/crews', {
      name: 'Bad',
      goal: 'g',
      process: 'sequential',
      members: [a.id, { agentId: unknownId, role: 'x' }],
    });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body.error.details.issues, [
      { path: 'members.1.agentId', message: `no agent "${unknownId}" in this organisation` },
    ]);

    const six = Array.from({ length: 6 }, () => randomUUID());
    const tooMany = await stack.api.post('/api/v1/crews', {
      name: 'Big',
      goal: 'g',
      process: 'tapdance',
      members: six,
    });
    assert.equal(tooMany.status, 400);
    const paths = tooMany.body.error.details.issues.map((i: { path: string }) => i.path).sort();
    assert.deepEqual(paths, ['members', 'process']);
    assert.match(tooMany.body.error.message, /at most 5 members/);

    const duplicate = await stack.api.post('/api/v1/crews', {
      name: 'Twice',
      goal: 'g',
      process: 'parallel',
      members: [a.id, a.id],
    });
    assert.equal(duplicate.status, 400);

    const crew = await createCrew(stack.api, {
      name: 'Listed',
      goal: 'be listed',
      process: 'consensus',
      members: [a.id],
    });
    assert.equal(crew.status, 'idle');
    assert.equal(crew.members[0].agentId, a.id);
    assert.equal(crew.members[0].name, 'Validator A');
    assert.ok(
      (await stack.api.get('/api/v1/crews?status=idle')).body.crews.some((c: { id: string }) => c.id === crew.id),
    );
    assert.equal((await stack.api.get(`/api/v1/crews/${randomUUID()}`)).status, 404);
    assert.equal(
      (await stack.api.post(`/api/v1/crews/${crew.id}/stop`)).status,
      409,
      'an idle crew has nothing to stop',
    );
  });

  it('sequential: a pipeline, each output is the next input, handed off with a message', async () => {
    const [research, write, edit] = [await agent('Researcher'), await agent('Writer'), await agent('Editor')];
    const crew = await createCrew(stack.api, {
      name: 'Newsletter',
      goal: 'Write the launch newsletter',
      process: 'sequential',
      members: [
        { agentId: research.id, role: 'research', input: answering({ facts: ['launch on Friday'] }) },
        { agentId: write.id, role: 'write' },
        { agentId: edit.id, role: 'edit' },
      ],
    });
    const started = await startCrew(stack.api, crew.id);
    assert.ok(['running', 'completed'].includes(started.status), started.status);
    const done = await waitForCrew(stack.api, crew.id);
    assert.equal(done.status, 'completed', JSON.stringify(done.result));
    assert.equal(done.result.partial, false);

    const tasks = await taskRows(stack, crew.id);
    assert.deepEqual(
      tasks.map((t) => t.agent_id),
      [research.id, write.id, edit.id],
    );
    assert.ok(tasks.every((t) => t.status === 'completed'));
    assert.equal(tasks[0].input.previous, null);
    assert.deepEqual(tasks[1].input.previous, tasks[0].output, "step 2's input is step 1's output");
    assert.deepEqual(tasks[2].input.previous, tasks[1].output);
    assert.deepEqual(done.result.output, tasks[2].output, 'the crew answers with the last output');

    const handoffs = done.messages.filter((m: { type: string }) => m.type === 'handoff');
    assert.deepEqual(
      handoffs.map((m: any) => [m.fromAgentId, m.toAgentId]),
      [
        [research.id, write.id],
        [write.id, edit.id],
      ],
    );
    assert.match(handoffs[0].content, /launch on Friday/);
    // Member work is the member's own task, with its reasoning trace.
    const own = await stack.api.get(`/api/v1/tasks?agentId=${write.id}`);
    assert.equal(own.body.tasks.length, 1);
    assert.ok((await stack.api.get(`/api/v1/tasks/${tasks[1].id}`)).body.reasoningTrace.length > 0);
    assert.equal(
      (await stack.api.post(`/api/v1/crews/${crew.id}/start`)).status,
      409,
      'a finished crew does not run again',
    );
  });

  it('parallel: work items run in parallel across members, then the reducer aggregates', async () => {
    const [m1, m2, reducer] = [await agent('Mapper 1'), await agent('Mapper 2'), await agent('Reducer')];
    const crew = await createCrew(stack.api, {
      name: 'Review four docs',
      goal: 'Summarise each document',
      process: 'parallel',
      assignment: 'least-loaded',
      input: { items: ['doc-a', 'doc-b', 'doc-c', 'doc-d'] },
      members: [m1.id, m2.id, { agentId: reducer.id, role: 'reducer' }],
    });
    await startCrew(stack.api, crew.id);
    const done = await waitForCrew(stack.api, crew.id);
    assert.equal(done.status, 'completed', JSON.stringify(done.result));

    const tasks = await taskRows(stack, crew.id);
    const mapped = tasks.filter((t) => t.input.item !== undefined);
    assert.deepEqual(mapped.map((t) => t.input.item).sort(), ['doc-a', 'doc-b', 'doc-c', 'doc-d']);
    const perMapper = [m1.id, m2.id].map((id) => mapped.filter((t) => t.agent_id === id).length);
    assert.deepEqual(perMapper, [2, 2], 'least-loaded spreads the items over both mappers');
    assert.ok(!mapped.some((t) => t.agent_id === reducer.id), 'the reducer does not map');

    const reduce = tasks.at(-1)!;
    assert.equal(reduce.agent_id, reducer.id);
    assert.deepEqual(
      reduce.input.results.map((r: { item: string }) => r.item),
      ['doc-a', 'doc-b', 'doc-c', 'doc-d'],
    );
    assert.ok(reduce.input.results.every((r: { status: string }) => r.status === 'completed'));
    assert.equal(done.result.output.answer, reduce.output.answer);
    const member = done.members.find((m: { agentId: string }) => m.agentId === m1.id);
    assert.deepEqual(member.tasks, { total: 2, completed: 2, failed: 0, cancelled: 0 });
  });

  it('parallel: many work items run at most CREW_PARALLEL_ITEMS_AT_ONCE at a time, all of them mapped', async () => {
    const [m1, m2, reducer] = [await agent('Bulk mapper 1'), await agent('Bulk mapper 2'), await agent('Bulk reducer')];
    const items = Array.from({ length: CREW_PARALLEL_ITEMS_AT_ONCE + 5 }, (_, i) => `doc-${i}`);
    const crew = await createCrew(stack.api, {
      name: 'Review many docs',
      goal: 'Summarise each document',
      process: 'parallel',
      input: { items },
      members: [m1.id, m2.id, { agentId: reducer.id, role: 'reducer' }],
    });
    await startCrew(stack.api, crew.id);
    const done = await waitForCrew(stack.api, crew.id);
    assert.equal(done.status, 'completed', JSON.stringify(done.result));
    const { rows } = await stack.db.query<{ start: Date; end: Date }>(
      `SELECT created_at AS start, completed_at AS "end" FROM tasks WHERE crew_id = $1 AND input ? 'item'`,
      [crew.id],
    );
    assert.equal(rows.length, items.length);
    const edges = rows
      .flatMap((r) => [
        { at: r.start.getTime(), d: 1 },
        { at: r.end.getTime(), d: -1 },
      ])
      .sort((a, b) => a.at - b.at || a.d - b.d);
    let open = 0;
    let most = 0;
    for (const e of edges) most = Math.max(most, (open += e.d));
    assert.ok(most <= CREW_PARALLEL_ITEMS_AT_ONCE, `${most} work items in flight at once`);
    assert.ok(most >= 2, 'they still run in parallel');
  });

  it('hierarchical: the planner’s DAG runs in dependency order; a failing node is retried, reassigned, and an impossible one degrades the result', async () => {
    const planner = await agent('Planner', { capabilities: ['planning'] });
    const flaky = await agent('Flaky researcher', { capabilities: ['research'] });
    const steady = await agent('Steady researcher', { capabilities: ['research'] });
    const writer = await agent('Writer', { capabilities: ['writing'] });
    const plan = {
      subtasks: [
        { id: 'facts', title: 'Collect the facts', capabilities: ['research'], dependsOn: [] },
        { id: 'draft', title: 'Draft the report', capabilities: ['writing'], dependsOn: ['facts'] },
        { id: 'legal', title: 'Legal review', capabilities: ['law'], dependsOn: [] },
        { id: 'publish', title: 'Publish it', capabilities: ['writing'], dependsOn: ['draft', 'legal'] },
      ],
    };
    const crew = await createCrew(stack.api, {
      name: 'Report team',
      goal: 'Produce the quarterly report',
      process: 'hierarchical',
      members: [
        { agentId: planner.id, role: 'planner', input: answering(plan) },
        // First in order, so the capability strategy picks it first for "facts"; it never finishes.
        { agentId: flaky.id, input: neverFinishing },
        steady.id,
        writer.id,
      ],
    });
    await startCrew(stack.api, crew.id);
    const done = await waitForCrew(stack.api, crew.id, 90_000);
    assert.equal(done.status, 'completed', JSON.stringify(done.result));
    assert.equal(done.result.partial, true);
    const byKey = Object.fromEntries(done.result.subTasks.map((s: any) => [s.key, s]));

    // facts: two attempts on the flaky member (1 + MAX_RETRIES), then reassigned to the steady one.
    assert.equal(byKey.facts.status, 'completed');
    assert.equal(byKey.facts.agentId, steady.id);
    assert.equal(byKey.facts.taskIds.length, 3);
    const tasks = await taskRows(stack, crew.id);
    const factsTasks = byKey.facts.taskIds.map((id: string) => tasks.find((t) => t.id === id));
    assert.deepEqual(
      factsTasks.map((t: any) => [t.agent_id, t.status]),
      [
        [flaky.id, 'failed'],
        [flaky.id, 'failed'],
        [steady.id, 'completed'],
      ],
    );
    assert.ok(
      done.messages.some((m: any) => m.type === 'status_update' && /reassigned to Steady researcher/.test(m.content)),
    );

    // draft ran after facts, with its output as a dependency.
    assert.equal(byKey.draft.status, 'completed');
    assert.equal(byKey.draft.agentId, writer.id);
    const draftTask = tasks.find((t) => t.id === byKey.draft.taskIds[0]);
    assert.deepEqual(
      draftTask.input.dependencies.map((d: { id: string }) => d.id),
      ['facts'],
    );
    // legal needs a capability nobody has; publish depends on it and is skipped, not run.
    assert.equal(byKey.legal.status, 'failed');
    assert.match(byKey.legal.error, /no member has the capabilities \["law"\]/);
    assert.equal(byKey.publish.status, 'skipped');
    assert.equal(byKey.publish.taskIds.length, 0);
    assert.deepEqual(done.result.failed.map((f: { key: string }) => f.key).sort(), ['legal', 'publish']);
    assert.deepEqual(Object.keys(done.result.output.outputs).sort(), ['draft', 'facts']);
    // The planner requested the work and got responses.
    assert.ok(
      done.messages.some((m: any) => m.type === 'request' && m.fromAgentId === planner.id && m.toAgentId === writer.id),
    );
    assert.ok(
      done.messages.some(
        (m: any) => m.type === 'response' && m.fromAgentId === writer.id && m.toAgentId === planner.id,
      ),
    );
  });

  it('consensus: the confidence-weighted winner, its share and whether it reached the threshold', async () => {
    const voters = [await agent('Voter A'), await agent('Voter B'), await agent('Voter C')];
    const ballots = [
      { decision: 'ship', confidence: 0.9 },
      { decision: 'ship', confidence: 0.6 },
      { decision: 'wait', confidence: 0.8 },
    ];
    const crew = await createCrew(stack.api, {
      name: 'Release board',
      goal: 'Ship version 2 today?',
      process: 'consensus',
      input: { options: ['ship', 'wait'] },
      members: voters.map((v, i) => ({ agentId: v.id, input: answering(ballots[i]) })),
    });
    await startCrew(stack.api, crew.id);
    const done = await waitForCrew(stack.api, crew.id);
    assert.equal(done.status, 'completed', JSON.stringify(done.result));
    const out = done.result.output;
    assert.equal(out.decision, 'ship');
    assert.equal(out.share, Math.round((1.5 / 2.3) * 1000) / 1000);
    assert.equal(out.threshold, 0.6);
    assert.equal(out.reached, true);
    assert.deepEqual(
      out.votes.map((v: { agentId: string }) => v.agentId),
      voters.map((v) => v.id),
    );

    // Two against one with equal weight falls short of 0.6.
    const split = await createCrew(stack.api, {
      name: 'Split board',
      goal: 'Ship version 3 today?',
      process: 'consensus',
      members: voters.map((v, i) => ({
        agentId: v.id,
        input: answering({ decision: i < 2 ? 'ship' : 'wait', confidence: 0.5 }),
      })),
    });
    await startCrew(stack.api, split.id);
    const splitDone = await waitForCrew(stack.api, split.id);
    assert.equal(splitDone.result.output.decision, 'ship');
    assert.equal(splitDone.result.output.share, 0.667);
    assert.equal(splitDone.result.output.reached, true);
  });

  it('with no scripts, the offline provider plans, splits and votes: round-robin hierarchical, split parallel, default consensus', async () => {
    const lead = await agent('Lead', { capabilities: ['planning'] });
    const docs = await agent('Docs', { capabilities: ['docs'] });
    const code = await agent('Code', { capabilities: ['code'] });
    const hier = await createCrew(stack.api, {
      name: 'Offline hierarchy',
      goal: 'Prepare the release',
      process: 'hierarchical',
      assignment: 'round-robin',
      members: [{ agentId: lead.id, role: 'planner' }, docs.id, code.id],
    });
    await startCrew(stack.api, hier.id);
    const hierDone = await waitForCrew(stack.api, hier.id);
    assert.equal(hierDone.status, 'completed', JSON.stringify(hierDone.result));
    assert.deepEqual(
      hierDone.result.output.plan.map((n: { id: string }) => n.id),
      ['part-1', 'part-2', 'combine'],
    );
    const tasks = await taskRows(stack, hier.id);
    const combine = tasks.find((t) => t.input.subtask?.id === 'combine')!;
    assert.deepEqual(
      combine.input.dependencies.map((d: { id: string }) => d.id),
      ['part-1', 'part-2'],
      'combine ran after both parts',
    );
    // Round-robin over the workers (the planner only plans): docs, code, then docs again.
    const byNode = Object.fromEntries(
      tasks.filter((t) => t.input.subtask).map((t) => [t.input.subtask.id, t.agent_id]),
    );
    assert.deepEqual(byNode, { 'part-1': docs.id, 'part-2': code.id, combine: docs.id });

    const par = await createCrew(stack.api, {
      name: 'Offline split',
      goal: 'check the docs, the code and the tests',
      process: 'parallel',
      members: [docs.id, code.id],
    });
    await startCrew(stack.api, par.id);
    const parDone = await waitForCrew(stack.api, par.id);
    assert.equal(parDone.status, 'completed', JSON.stringify(parDone.result));
    assert.deepEqual(
      parDone.result.output.results.map((r: { item: string }) => r.item),
      ['check the docs', 'the code', 'the tests'],
    );

    const vote = await createCrew(stack.api, {
      name: 'Offline vote',
      goal: 'Pick a name',
      process: 'consensus',
      input: { options: ['Atlas', 'Borealis'] },
      members: [docs.id, code.id],
    });
    await startCrew(stack.api, vote.id);
    const voteDone = await waitForCrew(stack.api, vote.id);
    assert.deepEqual(
      [voteDone.result.output.decision, voteDone.result.output.share, voteDone.result.output.reached],
      ['Atlas', 1, true],
    );
  });

  it('stores messages in the order the crew received them and hands them to their recipient', async () => {
    const [first, second] = [await agent('Slow first'), await agent('Second')];
    const crew = await createCrew(stack.api, {
      name: 'Chatty pair',
      goal: 'Talk while working',
      process: 'sequential',
      members: [{ agentId: first.id, input: { script: [{ answer: 'first done', delayMs: 8000 }] } }, second.id],
    });
    await startCrew(stack.api, crew.id);
    const sent = [
      { fromAgentId: first.id, toAgentId: second.id, type: 'request', content: 'message 1: please check the numbers' },
      { fromAgentId: second.id, toAgentId: first.id, type: 'response', content: 'message 2: will do' },
      { fromAgentId: null, toAgentId: null, type: 'status_update', content: 'message 3: deadline is noon' },
      { fromAgentId: first.id, toAgentId: second.id, type: 'handoff', content: 'message 4: over to you soon' },
    ];
    const ids: string[] = [];
    for (const body of sent) {
      const res = await stack.api.post(`/api/v1/crews/${crew.id}/messages`, body);
      assert.equal(res.status, 202, JSON.stringify(res.body));
      ids.push(res.body.messageId);
    }
    // The same message sent again (a retried request) is stored once.
    const repeat = await stack.api.post(`/api/v1/crews/${crew.id}/messages`, { ...sent[0], messageId: ids[0] });
    assert.equal(repeat.status, 202);
    const outsider = await stack.api.post(`/api/v1/crews/${crew.id}/messages`, {
      toAgentId: randomUUID(),
      type: 'request',
      content: 'hi',
    });
    assert.equal(outsider.status, 400);

    const done = await waitForCrew(stack.api, crew.id);
    assert.equal(done.status, 'completed');
    const seqs = done.messages.map((m: { seq: number }) => m.seq);
    assert.deepEqual(
      seqs,
      seqs.map((_: number, i: number) => i + 1),
      'one gapless ordered log',
    );
    const fromApi = done.messages.filter((m: { messageId: string }) => ids.includes(m.messageId));
    assert.deepEqual(
      fromApi.map((m: { content: string }) => m.content),
      sent.map((m) => m.content),
    );
    assert.deepEqual(
      fromApi.map((m: { type: string }) => m.type),
      ['request', 'response', 'status_update', 'handoff'],
    );
    // The pipeline's own handoff comes after the messages that arrived during step 1.
    assert.equal(done.messages.at(-1).type, 'handoff');
    assert.equal(done.messages.at(-1).content, '[offline] first done');

    // The second member's task received what was addressed to it or broadcast, in order.
    const tasks = await taskRows(stack, crew.id);
    const inbox = tasks[1].input.messages.map((m: { content: string }) => m.content);
    assert.deepEqual(inbox, [
      'message 1: please check the numbers',
      'message 3: deadline is noon',
      'message 4: over to you soon',
      '[offline] first done',
    ]);
  });

  it('stop in the middle of a run cancels the running child; nothing keeps running', async () => {
    const [slow, next] = [await agent('Slow worker'), await agent('Never reached')];
    const crew = await createCrew(stack.api, {
      name: 'Stoppable',
      goal: 'Take a long time',
      process: 'sequential',
      members: [{ agentId: slow.id, input: { script: [{ answer: 'too late', delayMs: 30_000 }] } }, next.id],
    });
    await startCrew(stack.api, crew.id);
    await waitFor(
      async () => (await taskRows(stack, crew.id)).find((t) => t.status === 'planning' || t.status === 'running'),
      'the first member to be working',
    );

    const stopped = await stack.api.post(`/api/v1/crews/${crew.id}/stop`);
    assert.equal(stopped.status, 200, JSON.stringify(stopped.body));
    assert.equal(stopped.body.status, 'stopped');
    assert.equal(stopped.body.result.status, 'stopped');

    const tasks = await taskRows(stack, crew.id);
    assert.deepEqual(
      tasks.map((t) => [t.agent_id, t.status]),
      [[slow.id, 'cancelled']],
      'the running task was cancelled, the next never started',
    );
    const crewRun = await stack.client.workflow.getHandle(crewWorkflowId(crew.id)).describe();
    assert.notEqual(crewRun.status.name, 'RUNNING');
    const child = await stack.client.workflow.getHandle(`task-${tasks[0].id}`).describe();
    assert.notEqual(child.status.name, 'RUNNING', 'the child workflow ended');
    // Visibility is eventually consistent: wait until it shows the crew and its child closed.
    await waitFor(
      async () =>
        (await stack.client.workflow.count(`CrewId = "${crew.id}" AND ExecutionStatus = "Running"`)).count === 0,
      'no open workflow of the crew',
      10_000,
    );
    const closed = await stack.client.workflow.count(`CrewId = "${crew.id}"`);
    assert.equal(closed.count, 2, 'the crew and its one child are visible by CrewId');
    assert.equal((await stack.api.post(`/api/v1/crews/${crew.id}/stop`)).status, 409);
  });

  it('every crew history above replays with the current workflow code', async () => {
    const histories = await Promise.all(
      startedCrews.map(async (id) => ({
        workflowId: crewWorkflowId(id),
        history: await stack.client.workflow.getHandle(crewWorkflowId(id)).fetchHistory(),
      })),
    );
    const failures: string[] = [];
    for await (const result of Worker.runReplayHistories(
      { workflowBundle: { codePath: process.env.WORKFLOW_BUNDLE_PATH! } },
      histories,
    )) {
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message.split('\n')[0]}`);
    }
    assert.ok(histories.length >= 8, `replayed ${histories.length} crews`);
    assert.deepEqual(failures, []);
  });
});

describe('crews survive a killed worker', () => {
  const crash = withKillableWorkers();

  it('a crew whose worker is SIGKILLed mid-run completes on a new worker', async () => {
    const first = await crash.start();
    const a = await crash.stack.api.createAgent({ name: 'Crash A', objective: 'Work' });
    const b = await crash.stack.api.createAgent({ name: 'Crash B', objective: 'Work' });
    const crew = await createCrew(crash.stack.api, {
      name: 'Crash crew',
      goal: 'Finish despite a crash',
      process: 'sequential',
      members: [{ agentId: a.id, input: { script: [{ answer: 'survived', delayMs: 5000 }] } }, b.id],
    });
    await startCrew(crash.stack.api, crew.id);
    await waitFor(
      async () => (await taskRows(crash.stack, crew.id)).find((t) => t.status === 'planning'),
      'the first model call to be in flight',
      20_000,
    );
    await new Promise((r) => setTimeout(r, 500));
    await killHard(first);
    assert.equal((await crash.stack.api.get(`/api/v1/crews/${crew.id}`)).body.status, 'running', 'killed mid-run');

    await crash.start();
    const done = await waitForCrew(crash.stack.api, crew.id, 90_000);
    assert.equal(done.status, 'completed', JSON.stringify(done.result));
    const tasks = await taskRows(crash.stack, crew.id);
    assert.deepEqual(
      tasks.map((t) => [t.agent_id, t.status]),
      [
        [a.id, 'completed'],
        [b.id, 'completed'],
      ],
      'each step ran once',
    );
    assert.equal(tasks[0].output.answer, '[offline] survived');
  });
});
