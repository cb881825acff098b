/**
 * `npm run histories:record`: runs the canonical scenarios against a real server and saves each
 * workflow's history under test/histories/ as JSON, for the replay test (test/replay.test.ts). Re-run it
 * when a new workflow path ships; keep fixtures of older code (legacy/) so patched() paths stay covered.
 */
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { agentWorkflowId, chatWorkflowId } from '../../contract/definitions';
import { startApi, startWorker, testConfig, waitFor, type TestStack } from '../helpers/stack';

const OUT_DIR = __dirname;
const run = promisify(execFile);

describe('record canonical histories', () => {
  let stack: TestStack;
  let worker: { stop(): Promise<void> };

  before(async () => {
    const config = testConfig({ AGENT_HISTORY_LIMIT: '100' });
    stack = await startApi(config);
    worker = await startWorker(config);
  });
  after(async () => {
    await worker?.stop();
    await stack?.stop();
  });

  /** Saves a workflow's history once it has closed (or as it is, for long-lived ones when `open`). */
  const save = async (name: string, workflowId: string, opts: { open?: boolean; runId?: string } = {}) => {
    const handle = stack.client.workflow.getHandle(workflowId, opts.runId);
    if (!opts.open)
      await waitFor(async () => (await handle.describe()).status.name !== 'RUNNING', `${workflowId} to close`);
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
    if (opts.runId) args.push('--run-id', opts.runId);
    const { stdout } = await run(process.env.TEMPORAL_CLI_PATH!, args, { maxBuffer: 64 * 1024 * 1024 });
    fs.writeFileSync(path.join(OUT_DIR, `${name}.json`), stdout);
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

  it('goal loop: answer, tools, step limit, then archive', async () => {
    const a = await agent({ name: 'Recorder' });
    const plain = await task(a.id, 'plain answer');
    await stack.api.waitForTask(plain.id);
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
    await stack.api.waitForTask(tools.id);
    const looping = await task(
      a.id,
      'loop',
      Array.from({ length: 12 }, () => ({ call: 'memory_read', args: { key: 'n' } })),
    );
    await stack.api.waitForTask(looping.id);
    await stack.api.post(`/api/v1/agents/${a.id}/archive`);
    await save('agent-goal-loop-archived', agentWorkflowId(a.id));
  });

  it('pause, priorities, cancel queued and running', async () => {
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
    await stack.api.post(`/api/v1/agents/${a.id}/archive`);
    await save('agent-pause-cancel', agentWorkflowId(a.id));
  });

  it('approvals: approved with edits, rejected, expired, escalated, manual proposal', async () => {
    const copilot = await agent({ name: 'Recorder copilot', autonomy: 'copilot' });
    const edited = await task(copilot.id, 'edit me', write);
    await stack.api.post(`/api/v1/approvals/${(await pending(copilot.id)).id}/approve`, {
      editedAction: { key: 'k', value: 2 },
    });
    await stack.api.waitForTask(edited.id);
    const rejected = await task(copilot.id, 'reject me', write);
    await stack.api.post(`/api/v1/approvals/${(await pending(copilot.id)).id}/reject`, { reason: 'no' });
    await stack.api.waitForTask(rejected.id);
    await stack.api.post(`/api/v1/agents/${copilot.id}/archive`);
    await save('agent-approval-edited-rejected', agentWorkflowId(copilot.id));

    const expiring = await agent({ name: 'Recorder expiry', autonomy: 'copilot', approvalTimeoutHours: 0.0003 });
    const expired = await task(expiring.id, 'expire', write);
    await stack.api.waitForTask(expired.id);
    await stack.api.post(`/api/v1/agents/${expiring.id}/archive`);
    await save('agent-approval-expired', agentWorkflowId(expiring.id));

    const escalating = await agent({
      name: 'Recorder escalate',
      autonomy: 'copilot',
      approvalTimeoutHours: 0.0003,
      onApprovalTimeout: 'escalate',
    });
    const escalated = await task(escalating.id, 'escalate', write);
    await stack.api.waitForTask(escalated.id);
    await stack.api.post(`/api/v1/agents/${escalating.id}/archive`);
    await save('agent-approval-escalated', agentWorkflowId(escalating.id));

    const manual = await agent({ name: 'Recorder manual', autonomy: 'manual' });
    const proposal = await task(manual.id, 'propose', write);
    await stack.api.waitForTask(proposal.id);
    await stack.api.post(`/api/v1/agents/${manual.id}/archive`);
    await save('agent-manual-proposal', agentWorkflowId(manual.id));
  });

  it('continue-as-new carries the queue', async () => {
    const a = await agent({ name: 'Recorder marathon' });
    const ids = [];
    for (let i = 0; i < 12; i++) ids.push((await task(a.id, `goal ${i}`)).id);
    for (const id of ids) await stack.api.waitForTask(id);
    const runs = [];
    for await (const run of stack.client.workflow.list({ query: `WorkflowId = '${agentWorkflowId(a.id)}'` }))
      runs.push(run);
    const closed = runs.find((r) => r.status.name === 'CONTINUED_AS_NEW');
    if (!closed) throw new Error('the agent did not continue as new');
    await save('agent-continued-as-new', agentWorkflowId(a.id), { runId: closed.runId });
  });

  it('chat: a turn with a tool, and a cancelled turn', async () => {
    const a = await agent({ name: 'Recorder chat' });
    const first = await stack.api.post('/api/v1/chat', {
      agentId: a.id,
      message: 'remember the door code',
      stream: false,
    });
    await stack.api.post('/api/v1/chat', {
      agentId: a.id,
      sessionId: first.body.sessionId,
      message: 'thanks',
      stream: false,
    });
    await stack.client.workflow.getHandle(chatWorkflowId(first.body.sessionId)).terminate('recorded');
    await save('chat-session', chatWorkflowId(first.body.sessionId));
  });
});
