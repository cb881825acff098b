/**
 * `npm run histories:record` (or `npx tsx test/run.ts test/histories/record.ts`): runs the canonical
 * scenarios of every workflow type against a real server, with the offline provider, and saves each
 * workflow's history as JSON for the replay test (test/replay.test.ts). Each history is saved once its
 * workflow has closed, so it holds the whole path.
 *
 * It writes into test/histories/ (top level only), or into HISTORIES_DIR when set (to try the scenarios
 * without touching the committed recordings; `HISTORIES_DIR=… npx tsx test/run.ts test/replay.test.ts`
 * replays those). When every scenario passed, top-level files it did not write are deleted: the folder
 * holds exactly the current recordings. Histories of an older code shape, kept for a patch, live in
 * sub-folders (test/histories/before-<patch-id>/) and are never touched here; see docs/workflow-changes.md.
 */
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  agentWorkflowId,
  chatWorkflowId,
  crewWorkflowId,
  metaWorkflowId,
  reminderChangeWorkflowId,
  reminderScheduleId,
  routedTaskWorkflowId,
  taskWorkflowId,
} from '../../contract/definitions';
import { startApi, startWorker, testConfig, waitFor, type TestStack } from '../helpers/stack';

const OUT_DIR = process.env.HISTORIES_DIR ? path.resolve(process.env.HISTORIES_DIR) : __dirname;
const run = promisify(execFile);

describe('record canonical histories', () => {
  let stack: TestStack;
  /** A second API on the same task queue whose agents continue as new after 150 events (the marathon), or 100 when idle. */
  let shortHistories: TestStack;
  let worker: { stop(): Promise<void> };
  /** File names written by this run; scenarios declared and passed (a partial run cleans nothing up). */
  const written = new Set<string>();
  let declared = 0;
  let passed = 0;

  before(async () => {
    // The meta supervisor is off by default. Agents keep the default history limit and continue as new when
    // idle only past it, so each scenario's agent stays in one run and its history holds the whole scenario.
    const config = testConfig({ META_AGENT_ENABLED: 'true', AGENT_IDLE_HISTORY_LIMIT: '2000' });
    stack = await startApi(config);
    shortHistories = await startApi({ ...config, AGENT_HISTORY_LIMIT: 150, AGENT_IDLE_HISTORY_LIMIT: 100 });
    worker = await startWorker(config);
    fs.mkdirSync(OUT_DIR, { recursive: true });
  });
  after(async () => {
    await worker?.stop();
    await shortHistories?.stop();
    await stack?.stop();
  });

  /** A scenario; unless every one passed (none failed or was filtered out), the cleanup at the end is skipped. */
  const scenario = (name: string, fn: () => Promise<void>): void => {
    declared += 1;
    it(name, { timeout: 180_000 }, async () => {
      await fn();
      passed += 1;
    });
  };

  /**
   * Saves a workflow's history once it has closed: its latest run, or `runId`. The run must be the
   * workflow's first (not a continuation), so the history starts where the scenario started.
   */
  const save = async (name: string, workflowId: string, runId?: string) => {
    const handle = stack.client.workflow.getHandle(workflowId, runId);
    await waitFor(async () => (await handle.describe()).status.name !== 'RUNNING', `${workflowId} to close`, 60_000);
    // The CLI writes the history in the JSON form historyFromJSON reads (the proto3 JSON mapping).
    const args = [
      'workflow',
      'show',
      '--address',
      stack.config.TEMPORAL_ADDRESS,
      '--workflow-id',
      workflowId,
      '--output',
      'json',
    ];
    if (runId) args.push('--run-id', runId);
    const { stdout } = await run(process.env.TEMPORAL_CLI_PATH!, args, { maxBuffer: 64 * 1024 * 1024 });
    const started = JSON.parse(stdout).events[0].workflowExecutionStartedEventAttributes;
    if (started.continuedExecutionRunId)
      throw new Error(`${workflowId} continued as new during the scenario: ${name} would miss its start`);
    if (written.has(`${name}.json`)) throw new Error(`two recordings named ${name}`);
    fs.writeFileSync(path.join(OUT_DIR, `${name}.json`), stdout);
    written.add(`${name}.json`);
  };
  const agent = (body: Record<string, unknown>) => stack.api.createAgent({ objective: 'Recorded scenario', ...body });
  const task = async (agentId: string, title: string, script?: unknown[]) =>
    stack.api.createTask({ agentId, title, ...(script ? { input: { script } } : {}) });
  const pending = (agentId: string) =>
    waitFor(
      async () => (await stack.api.get(`/api/v1/approvals?status=pending&agentId=${agentId}`)).body.approvals[0],
      'approval',
    );
  const write = [{ call: 'memory_write', args: { key: 'k', op: 'set', value: 1 } }, { answer: 'done' }];
  /** Waits for the task to finish and checks it ended as the scenario means it to (else the path is not recorded). */
  const finished = async (taskId: string, status: 'completed' | 'failed' | 'cancelled') => {
    const done = await stack.api.waitForTask(taskId);
    if (done.status !== status) throw new Error(`task ${taskId} ended ${done.status}, not ${status}: ${done.error}`);
  };

  /** Creates and starts a crew; returns its id. */
  const crew = async (body: Record<string, unknown>): Promise<string> => {
    const created = await stack.api.post('/api/v1/crews', body);
    if (created.status !== 201) throw new Error(`create crew: ${created.status} ${JSON.stringify(created.body)}`);
    const started = await stack.api.post(`/api/v1/crews/${created.body.id}/start`);
    if (started.status !== 200) throw new Error(`start crew: ${started.status} ${JSON.stringify(started.body)}`);
    return created.body.id;
  };
  const crewFinished = (crewId: string) =>
    waitFor(
      async () => {
        const res = await stack.api.get(`/api/v1/crews/${crewId}`);
        return ['completed', 'failed', 'stopped'].includes(res.body?.status) ? res.body : undefined;
      },
      `crew ${crewId} to finish`,
      120_000,
    );
  /** The crew's member tasks (each a TaskWorkflow child `task-<id>`), in the order they were created. */
  const crewTasks = async (crewId: string) =>
    (
      await stack.db.query<{ id: string; agent_id: string; status: string }>(
        'SELECT id, agent_id, status FROM tasks WHERE crew_id = $1 ORDER BY created_at, id',
        [crewId],
      )
    ).rows;
  /** A task a reminder's fire submitted, once there is one. */
  const firedTask = async (reminderId: string) =>
    (
      await stack.db.query<{ id: string }>(`SELECT id FROM tasks WHERE input->'reminder'->>'id' = $1 LIMIT 1`, [
        reminderId,
      ])
    ).rows[0];

  /** An offline script whose single answer is this JSON. */
  const answering = (value: unknown) => ({ script: [{ answer: JSON.stringify(value) }] });

  // ---- AgentWorkflow (goals run inline) ----

  scenario('goal loop: answer, tools, step limit, then archive', async () => {
    const a = await agent({ name: 'Recorder' });
    const plain = await task(a.id, 'plain answer');
    await finished(plain.id, 'completed');
    const tools = await task(a.id, 'tools', [
      {
        calls: [
          { call: 'memory_write', args: { key: 'n', op: 'increment', value: 1 } },
          { call: 'memory_read', args: { key: 'n' } },
        ],
      },
      { call: 'memory_write', args: { op: 'set' } },
      { answer: 'ok' },
    ]);
    await finished(tools.id, 'completed');
    const looping = await task(
      a.id,
      'loop',
      Array.from({ length: 12 }, () => ({ call: 'memory_read', args: { key: 'n' } })),
    );
    await finished(looping.id, 'failed'); // the step limit
    await stack.api.post(`/api/v1/agents/${a.id}/archive`);
    await save('agent-goal-loop-archived', agentWorkflowId(a.id));
  });

  scenario(
    'checked output: a schema refused then passed, criteria failed to the last check, then archive',
    async () => {
      const a = await agent({ name: 'Recorder checked' });
      const schema = await stack.api.createTask({
        agentId: a.id,
        title: 'checked by a schema',
        expectedOutput: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } },
        input: { script: [{ answer: 'n is two' }, { answer: '{"n": 2}' }] },
      });
      await finished(schema.id, 'completed');
      const criteria = await stack.api.createTask({
        agentId: a.id,
        title: 'checked by a reviewer',
        acceptanceCriteria: 'Says "done".',
        maxValidationAttempts: 2,
        input: { script: [{ answer: 'not yet' }, { answer: 'still not' }] },
      });
      await finished(criteria.id, 'failed');
      await stack.api.post(`/api/v1/agents/${a.id}/archive`);
      await save('agent-output-checked', agentWorkflowId(a.id));
    },
  );

  scenario('messages: a status, a request answered as a response and awaited, a handoff, then archive', async () => {
    const asker = await agent({ name: 'Recorder asker', allowedTools: ['send_message', 'await_response'] });
    const expert = await agent({ name: 'Recorder expert' });
    const asked = await task(asker.id, 'ask the expert', [
      { call: 'send_message', args: { toAgentId: expert.id, content: 'heads up: a question follows' } },
      { call: 'send_message', args: { toAgentId: expert.id, type: 'request', content: 'What is the build status?' } },
      { call: 'await_response', args: { timeoutSeconds: 60 } },
      { call: 'send_message', args: { toAgentId: expert.id, type: 'handoff', content: 'take it from here' } },
    ]);
    await finished(asked.id, 'completed');
    const handedOff = await stack.api.waitForTask(asked.id);
    await finished(handedOff.output.handedOffTo.taskId, 'completed');
    for (const a of [asker, expert]) await stack.api.post(`/api/v1/agents/${a.id}/archive`);
    await save('agent-messages-asker', agentWorkflowId(asker.id));
    await save('agent-messages-expert', agentWorkflowId(expert.id));
  });

  scenario('pause, priorities, cancel queued and running', async () => {
    const a = await agent({ name: 'Recorder pause' });
    await stack.api.post(`/api/v1/agents/${a.id}/pause`);
    const low = await task(a.id, 'low');
    const slow = await task(a.id, 'slow', [{ answer: 'late', delayMs: 20_000 }]);
    await stack.api.patch(`/api/v1/agents/${a.id}`, { priority: 9 });
    await stack.api.post(`/api/v1/tasks/${low.id}/cancel`);
    await stack.api.post(`/api/v1/agents/${a.id}/resume`);
    await waitFor(
      async () => (await stack.api.get(`/api/v1/tasks/${slow.id}`)).body.status === 'planning',
      'slow task to start',
    );
    await stack.api.post(`/api/v1/tasks/${slow.id}/cancel`);
    await finished(low.id, 'cancelled');
    await finished(slow.id, 'cancelled');
    await stack.api.post(`/api/v1/agents/${a.id}/archive`);
    await save('agent-pause-cancel', agentWorkflowId(a.id));
  });

  scenario('approvals: approved with edits, rejected, expired, escalated, manual proposal', async () => {
    const copilot = await agent({ name: 'Recorder copilot', autonomy: 'copilot' });
    const edited = await task(copilot.id, 'edit me', write);
    await stack.api.post(`/api/v1/approvals/${(await pending(copilot.id)).id}/approve`, {
      editedAction: { key: 'k', value: 2 },
    });
    await finished(edited.id, 'completed');
    const rejected = await task(copilot.id, 'reject me', write);
    await stack.api.post(`/api/v1/approvals/${(await pending(copilot.id)).id}/reject`, { reason: 'no' });
    await finished(rejected.id, 'completed');
    await stack.api.post(`/api/v1/agents/${copilot.id}/archive`);
    await save('agent-approval-edited-rejected', agentWorkflowId(copilot.id));

    const expiring = await agent({ name: 'Recorder expiry', autonomy: 'copilot', approvalTimeoutHours: 0.0003 });
    const expired = await task(expiring.id, 'expire', write);
    await finished(expired.id, 'failed');
    await stack.api.post(`/api/v1/agents/${expiring.id}/archive`);
    await save('agent-approval-expired', agentWorkflowId(expiring.id));

    const escalating = await agent({
      name: 'Recorder escalate',
      autonomy: 'copilot',
      approvalTimeoutHours: 0.0003,
      onApprovalTimeout: 'escalate',
    });
    const escalated = await task(escalating.id, 'escalate', write);
    await finished(escalated.id, 'completed');
    await stack.api.post(`/api/v1/agents/${escalating.id}/archive`);
    await save('agent-approval-escalated', agentWorkflowId(escalating.id));

    const manual = await agent({ name: 'Recorder manual', autonomy: 'manual' });
    const proposal = await task(manual.id, 'propose', write);
    await finished(proposal.id, 'completed');
    await stack.api.post(`/api/v1/agents/${manual.id}/archive`);
    await save('agent-manual-proposal', agentWorkflowId(manual.id));
  });

  scenario('continue-as-new carries the queue', async () => {
    const a = await shortHistories.api.createAgent({ name: 'Recorder marathon', objective: 'Recorded scenario' });
    const ids = [];
    for (let i = 0; i < 12; i++)
      ids.push((await shortHistories.api.createTask({ agentId: a.id, title: `goal ${i}` })).id);
    for (const id of ids) await stack.api.waitForTask(id);
    const runs = [];
    for await (const run of stack.client.workflow.list({ query: `WorkflowId = '${agentWorkflowId(a.id)}'` }))
      runs.push(run);
    const closed = runs.find((r) => r.status.name === 'CONTINUED_AS_NEW');
    if (!closed) throw new Error('the agent did not continue as new');
    await save('agent-continued-as-new', agentWorkflowId(a.id), closed.runId);
  });

  scenario('an idle agent continues as new', async () => {
    const a = await shortHistories.api.createAgent({ name: 'Recorder idle', objective: 'Recorded scenario' });
    const handle = stack.client.workflow.getHandle(agentWorkflowId(a.id));
    const firstRunId = (await handle.describe()).runId;
    const continued = async () => (await handle.describe()).runId !== firstRunId;
    // One goal at a time: between them the agent is idle, and once past 100 events (not yet 150) it continues as new.
    for (let i = 0; i < 10 && !(await continued()); i++) {
      await stack.api.waitForTask((await shortHistories.api.createTask({ agentId: a.id, title: `goal ${i}` })).id);
    }
    await waitFor(continued, 'the idle agent to continue as new', 10_000);
    const { historyLength } = await stack.client.workflow.getHandle(agentWorkflowId(a.id), firstRunId).describe();
    if (historyLength > 150) throw new Error(`the run reached the other limit (${historyLength} events)`);
    await save('agent-compacted-when-idle', agentWorkflowId(a.id), firstRunId);
  });

  // ---- ChatWorkflow ----

  scenario('chat: a turn with a tool, and a cancelled turn', async () => {
    const a = await agent({ name: 'Recorder chat' });
    const first = await stack.api.post('/api/v1/chat', {
      agentId: a.id,
      message: 'remember the door code',
      stream: false,
    });
    if (!first.body?.sessionId) throw new Error(`chat: ${first.status} ${JSON.stringify(first.body)}`);
    await stack.api.post('/api/v1/chat', {
      agentId: a.id,
      sessionId: first.body.sessionId,
      message: 'thanks',
      stream: false,
    });
    await stack.client.workflow.getHandle(chatWorkflowId(first.body.sessionId)).terminate('recorded');
    await save('chat-session', chatWorkflowId(first.body.sessionId));
  });

  // ---- CrewWorkflow and its TaskWorkflow children ----

  scenario('crew, sequential: a pipeline with a message, and a member task waiting for approval', async () => {
    const [research, writer, editor] = [
      await agent({ name: 'Recorder researcher' }),
      await agent({ name: 'Recorder writer', autonomy: 'copilot' }),
      await agent({ name: 'Recorder editor' }),
    ];
    const crewId = await crew({
      name: 'Recorded pipeline',
      goal: 'Write the launch newsletter',
      process: 'sequential',
      members: [
        { agentId: research.id, role: 'research', input: answering({ facts: ['launch on Friday'] }) },
        { agentId: writer.id, role: 'write', input: { script: write } },
        { agentId: editor.id, role: 'edit' },
      ],
    });
    // While the writer's task waits for its approval, a message reaches the crew (a signal).
    const approval = await pending(writer.id);
    const message = await stack.api.post(`/api/v1/crews/${crewId}/messages`, {
      fromAgentId: research.id,
      toAgentId: editor.id,
      type: 'request',
      content: 'check the dates',
    });
    if (message.status !== 202) throw new Error(`crew message: ${message.status} ${JSON.stringify(message.body)}`);
    await stack.api.post(`/api/v1/approvals/${approval.id}/approve`);
    const done = await crewFinished(crewId);
    if (done.status !== 'completed') throw new Error(`sequential crew ${done.status}`);
    const tasks = await crewTasks(crewId);
    await save('crew-sequential', crewWorkflowId(crewId));
    await save('crew-sequential-task-approved', taskWorkflowId(tasks.find((t) => t.agent_id === writer.id)!.id));
  });

  scenario('crew, parallel: a splitter, work items on two members, a reducer', async () => {
    const [docs, code, reducer] = [
      await agent({ name: 'Recorder docs' }),
      await agent({ name: 'Recorder code' }),
      await agent({ name: 'Recorder reducer' }),
    ];
    // No items in the input: the first member splits the goal (the offline provider answers with three).
    const crewId = await crew({
      name: 'Recorded review',
      goal: 'check the docs, the code and the tests',
      process: 'parallel',
      assignment: 'least-loaded',
      members: [docs.id, code.id, { agentId: reducer.id, role: 'reducer' }],
    });
    const done = await crewFinished(crewId);
    if (done.status !== 'completed') throw new Error(`parallel crew ${done.status}`);
    const tasks = await crewTasks(crewId);
    await save('crew-parallel', crewWorkflowId(crewId));
    await save('crew-parallel-task', taskWorkflowId(tasks.find((t) => t.agent_id === code.id)!.id));
  });

  scenario('crew, hierarchical: a planned DAG, a failing node retried and reassigned, one skipped', async () => {
    const planner = await agent({ name: 'Recorder planner', capabilities: ['planning'] });
    const flaky = await agent({ name: 'Recorder flaky', capabilities: ['research'] });
    const steady = await agent({ name: 'Recorder steady', capabilities: ['research'] });
    const writer = await agent({ name: 'Recorder report writer', capabilities: ['writing'] });
    const plan = {
      subtasks: [
        { id: 'facts', title: 'Collect the facts', capabilities: ['research'], dependsOn: [] },
        { id: 'draft', title: 'Draft the report', capabilities: ['writing'], dependsOn: ['facts'] },
        { id: 'legal', title: 'Legal review', capabilities: ['law'], dependsOn: [] },
        { id: 'publish', title: 'Publish it', capabilities: ['writing'], dependsOn: ['draft', 'legal'] },
      ],
    };
    const crewId = await crew({
      name: 'Recorded report team',
      goal: 'Produce the quarterly report',
      process: 'hierarchical',
      members: [
        { agentId: planner.id, role: 'planner', input: answering(plan) },
        // Picked first for "facts"; it never answers, so each attempt ends at the step limit.
        {
          agentId: flaky.id,
          input: { script: Array.from({ length: 12 }, () => ({ call: 'memory_read', args: { key: 'x' } })) },
        },
        steady.id,
        writer.id,
      ],
    });
    const done = await crewFinished(crewId);
    if (done.status !== 'completed' || !done.result.partial)
      throw new Error(`hierarchical crew ${done.status}: ${JSON.stringify(done.result)}`);
    const tasks = await crewTasks(crewId);
    await save('crew-hierarchical', crewWorkflowId(crewId));
    await save('crew-hierarchical-task-failed', taskWorkflowId(tasks.find((t) => t.agent_id === flaky.id)!.id));
  });

  scenario('crew, consensus: confidence-weighted votes', async () => {
    const voters = [
      await agent({ name: 'Recorder voter A' }),
      await agent({ name: 'Recorder voter B' }),
      await agent({ name: 'Recorder voter C' }),
    ];
    const ballots = [
      { decision: 'ship', confidence: 0.9 },
      { decision: 'ship', confidence: 0.6 },
      { decision: 'wait', confidence: 0.8 },
    ];
    const crewId = await crew({
      name: 'Recorded board',
      goal: 'Ship version 2 today?',
      process: 'consensus',
      input: { options: ['ship', 'wait'] },
      members: voters.map((v, i) => ({ agentId: v.id, input: answering(ballots[i]) })),
    });
    const done = await crewFinished(crewId);
    if (done.status !== 'completed') throw new Error(`consensus crew ${done.status}`);
    const tasks = await crewTasks(crewId);
    await save('crew-consensus', crewWorkflowId(crewId));
    await save('crew-consensus-task', taskWorkflowId(tasks[0]!.id));
  });

  scenario('crew, stopped: the running member task is cancelled', async () => {
    const [slow, next] = [await agent({ name: 'Recorder slow' }), await agent({ name: 'Recorder never reached' })];
    const crewId = await crew({
      name: 'Recorded stop',
      goal: 'Take a long time',
      process: 'sequential',
      members: [{ agentId: slow.id, input: { script: [{ answer: 'too late', delayMs: 30_000 }] } }, next.id],
    });
    await waitFor(
      async () => (await crewTasks(crewId)).find((t) => t.status === 'planning' || t.status === 'running'),
      'the first member to be working',
    );
    const stopped = await stack.api.post(`/api/v1/crews/${crewId}/stop`);
    if (stopped.status !== 200) throw new Error(`stop crew: ${stopped.status} ${JSON.stringify(stopped.body)}`);
    const [cancelled] = await crewTasks(crewId);
    await save('crew-stopped', crewWorkflowId(crewId));
    await save('crew-stopped-task-cancelled', taskWorkflowId(cancelled!.id));
  });

  // ---- MetaSupervisorWorkflow (and the crew it runs) ----

  scenario('meta supervisor: designs a team, runs the plan as a crew child, combines the answers', async () => {
    const created = await stack.api.post('/api/v1/meta', {
      objective: 'Launch a community newsletter about urban gardening',
      name: 'Recorded meta',
    });
    if (created.status !== 201) throw new Error(`meta: ${created.status} ${JSON.stringify(created.body)}`);
    const metaRun = await waitFor(
      async () => {
        const res = await stack.api.get(`/api/v1/meta/${created.body.id}`);
        return ['completed', 'failed'].includes(res.body?.status) ? res.body : undefined;
      },
      'the meta run to finish',
      120_000,
    );
    if (metaRun.status !== 'completed') throw new Error(`meta run ${metaRun.status}: ${metaRun.error}`);
    await save('meta-supervisor', metaWorkflowId(created.body.id));
    await save('meta-supervisor-crew', crewWorkflowId(metaRun.crewId));
  });

  scenario('meta_orchestrate: an agent starts a meta run, awaits its result; the team is archived', async () => {
    const lead = await agent({
      name: 'Recorder lead',
      allowedTools: ['memory_read', 'memory_write', 'meta_orchestrate', 'await_response'],
    });
    const asked = await task(lead.id, 'delegate to a team', [
      { call: 'meta_orchestrate', args: { objective: 'Plan a small herb garden', maxAgents: 2 } },
      { call: 'await_response', args: { timeoutSeconds: 120 } },
      { answer: 'the team answered' },
    ]);
    const done = await stack.api.waitForTask(asked.id, 120_000);
    if (done.status !== 'completed') throw new Error(`task ${done.status}: ${done.error}`);
    const metaId = done.reasoningTrace.find((d: { decisionType: string }) => d.decisionType === 'tool_call').result
      .metaId as string;
    await stack.api.post(`/api/v1/agents/${lead.id}/archive`);
    await save('meta-orchestrated-by-agent', metaWorkflowId(metaId));
    await save('agent-meta-orchestrate-awaited', agentWorkflowId(lead.id));
  });

  // ---- Reminders: ReminderChangeWorkflow, ReminderFireWorkflow, and the agent following them ----

  scenario('reminders: created, fired by the schedule, paused with the agent, removed, archived', async () => {
    const a = await agent({ name: 'Recorder reminders' });
    const created = await stack.api.post(`/api/v1/agents/${a.id}/reminders`, {
      title: 'tick',
      schedule: { every: '2s' },
    });
    if (created.status !== 201) throw new Error(`reminder: ${created.status} ${JSON.stringify(created.body)}`);
    const reminderId: string = created.body.id;
    const schedule = stack.client.schedule.getHandle(reminderScheduleId(reminderId));
    const [fired] = await waitFor(async () => {
      const actions = (await schedule.describe()).info.recentActions;
      return actions.length ? actions : undefined;
    }, 'the first fire');
    await save('reminder-fire', fired!.action.workflow.workflowId);
    await stack.api.waitForTask((await waitFor(() => firedTask(reminderId), 'the fired task')).id);
    // The agent pauses and resumes its reminders' schedules with itself.
    await stack.api.post(`/api/v1/agents/${a.id}/pause`);
    await stack.api.post(`/api/v1/agents/${a.id}/resume`);
    const removed = await stack.api.request('DELETE', `/api/v1/agents/${a.id}/reminders/${reminderId}`);
    if (removed.status !== 204) throw new Error(`remove reminder: ${removed.status} ${JSON.stringify(removed.body)}`);
    // The fires' goals reach the agent; wait until every one of them is done before archiving.
    await waitFor(async () => {
      const { rows } = await stack.db.query(
        `SELECT count(*)::int AS n FROM tasks WHERE agent_id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')`,
        [a.id],
      );
      return rows[0].n === 0;
    }, 'the fired goals to finish');
    await stack.api.post(`/api/v1/agents/${a.id}/archive`);
    await save('reminder-create', reminderChangeWorkflowId(reminderId, 'create'));
    await save('reminder-remove', reminderChangeWorkflowId(reminderId, 'remove'));
    await save('agent-reminders', agentWorkflowId(a.id));
  });

  // ---- RoutedTaskWorkflow ----

  scenario('routed task: failed, retried on its agent, reassigned, failed with every reason', async () => {
    const first = await agent({ name: 'Recorder routed first', capabilities: ['recorded-routing'] });
    await agent({ name: 'Recorder routed second', capabilities: ['recorded-routing'] });
    // More tool calls than MAX_STEPS allows: every attempt fails at the step limit.
    const endless = Array.from({ length: 12 }, () => ({ call: 'memory_read', args: { key: 'nothing' } }));
    const res = await stack.api.post('/api/v1/tasks', {
      title: 'An endless chore',
      input: { script: endless },
      route: { capabilities: ['recorded-routing'], strategy: 'capability' },
    });
    if (res.status !== 201 || res.body.agentId !== first.id)
      throw new Error(`routed task: ${res.status} ${JSON.stringify(res.body)}`);
    await waitFor(
      async () => (await stack.api.get(`/api/v1/tasks/${res.body.id}`)).body.routing?.status === 'failed',
      'the route to fail',
      120_000,
    );
    await save('routed-task-reassigned-failed', routedTaskWorkflowId(res.body.id));
  });

  // ---- Last: the folder holds exactly this run's recordings ----

  it('removes top-level recordings this run did not write', () => {
    if (passed !== declared)
      throw new Error(`${declared - passed} scenario(s) failed or did not run: the recordings are incomplete`);
    for (const file of fs.readdirSync(OUT_DIR)) {
      if (!file.endsWith('.json') || written.has(file)) continue;
      fs.rmSync(path.join(OUT_DIR, file));
      console.error(`removed ${path.join(OUT_DIR, file)}: no scenario records it any more`);
    }
  });
});
