import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { agentWorkflowId } from '../contract/definitions';
import { killHard, spawnWorker, startApi, startWorker, testConfig, waitFor, type TestStack } from './helpers/stack';
import { startWebhookReceiver } from './helpers/webhook-receiver';

const run = promisify(execFile);

const writeScript = (key: string, value: unknown) => [
  { call: 'memory_write', args: { key, op: 'set', value } },
  { answer: `stored ${key}` },
];

describe('approvals', () => {
  let stack: TestStack;
  let worker: { stop(): Promise<void> } | undefined;
  let webhook: Awaited<ReturnType<typeof startWebhookReceiver>>;

  before(async () => {
    webhook = await startWebhookReceiver({ failFirst: 1 });
    // The receiver is on loopback: the operator allows its host for outbound connections. The API checks
    // agent bodies against the process configuration, the worker against its own: both get it.
    process.env.OUTBOUND_ALLOW_HOSTS = webhook.host;
    const config = testConfig({ HTTP_ALLOWED_HOSTS: webhook.host, OUTBOUND_ALLOW_HOSTS: webhook.host });
    stack = await startApi(config);
    worker = await startWorker(config);
  });
  after(async () => {
    await worker?.stop();
    await stack?.stop();
    await webhook?.close();
  });

  const memory = async (agentId: string, key: string) =>
    (await stack.db.query('SELECT value FROM memory WHERE scope = $1 AND key = $2', [agentId, key])).rows[0]?.value;

  /** Creates a task and waits until it asks for approval; returns the pending request. */
  const pendingApproval = async (agentId: string, script: unknown[]) => {
    const task = await stack.api.createTask({ agentId, title: 'needs a decision', input: { script } });
    const approval = await waitFor(async () => {
      const res = await stack.api.get(`/api/v1/approvals?status=pending&agentId=${agentId}`);
      return res.body.approvals.find((a: { taskId: string }) => a.taskId === task.id);
    }, 'an approval request');
    return { task, approval };
  };

  it('manual: the agent proposes, nothing is executed, the task completes with the suggestion', async () => {
    const agent = await stack.api.createAgent({ name: 'Advisor', objective: 'Suggest', autonomy: 'manual' });
    const done = await stack.api.waitForTask(
      (await stack.api.createTask({ agentId: agent.id, title: 'suggest', input: { script: writeScript('plan', 'A') } }))
        .id,
    );
    assert.equal(done.status, 'completed');
    assert.equal(done.output.executed, false);
    assert.deepEqual(done.output.proposedActions, [
      { tool: 'memory_write', arguments: { key: 'plan', op: 'set', value: 'A' } },
    ]);
    assert.equal(await memory(agent.id, 'plan'), undefined, 'nothing executed');
    const proposal = done.reasoningTrace.find((d: any) => d.decisionType === 'tool_call');
    assert.deepEqual(proposal.result, { proposed: true, executed: false });
  });

  it('copilot: waits in awaiting_approval, then approval executes the action', async () => {
    const agent = await stack.api.createAgent({
      name: 'Drafter',
      objective: 'Draft',
      autonomy: 'copilot',
      notify: { type: 'webhook', url: webhook.url },
    });
    const { task, approval } = await pendingApproval(agent.id, writeScript('draft', 'v1'));
    assert.equal(approval.status, 'pending');
    assert.deepEqual(approval.proposedAction, {
      tool: 'memory_write',
      arguments: { key: 'draft', op: 'set', value: 'v1' },
    });
    assert.ok(Date.parse(approval.expiresAt) > Date.now() + 23 * 3600_000, 'default expiry is 24 h');
    assert.equal((await stack.api.get(`/api/v1/tasks/${task.id}`)).body.status, 'awaiting_approval');
    // The goal runs in its agent's workflow, which waits for the decision; the Web UI shows its current details.
    assert.equal(approval.workflowId, agentWorkflowId(agent.id));
    const metadata = await stack.client.workflow
      .getHandle(approval.workflowId)
      .query<{ currentDetails: string }>('__temporal_workflow_metadata');
    assert.match(metadata.currentDetails, /waiting for approval of memory_write/);

    const res = await stack.api.post(`/api/v1/approvals/${approval.id}/approve`, { decidedBy: 'alice' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.status, 'approved');
    assert.equal(res.body.decidedBy, 'alice');
    assert.ok(res.body.decidedAt);
    const done = await stack.api.waitForTask(task.id);
    assert.equal(done.status, 'completed');
    assert.equal(await memory(agent.id, 'draft'), 'v1');

    const eventsOf = () => webhook.received.filter((r) => r.body.taskId === task.id).map((r) => r.body.event as string);
    await waitFor(async () => eventsOf().length >= 2, 'webhook events');
    await new Promise((r) => setTimeout(r, 300));
    // The receiver answered the very first delivery with 503: it was retried, and nothing arrived twice.
    assert.deepEqual(eventsOf().sort(), ['approval_decided', 'approval_needed']);
    assert.ok(webhook.received[0]!.headers['idempotency-key']);
  });

  it('approve with edits: the edit is validated against the tool schema and executed instead', async () => {
    const agent = await stack.api.createAgent({ name: 'Editor', objective: 'Edit', autonomy: 'copilot' });
    const { task, approval } = await pendingApproval(agent.id, writeScript('headline', 'draft headline'));
    const invalid = await stack.api.post(`/api/v1/approvals/${approval.id}/approve`, {
      editedAction: { key: 5, op: 'explode' },
    });
    assert.equal(invalid.status, 400);
    assert.match(invalid.body.error.message, /editedAction does not match memory_write/);
    const ok = await stack.api.post(`/api/v1/approvals/${approval.id}/approve`, {
      editedAction: { key: 'headline', op: 'set', value: 'edited headline' },
    });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body.editedAction, { key: 'headline', op: 'set', value: 'edited headline' });
    assert.equal((await stack.api.waitForTask(task.id)).status, 'completed');
    assert.equal(await memory(agent.id, 'headline'), 'edited headline');
  });

  it('reject: nothing is executed and the reason reaches the trace', async () => {
    const agent = await stack.api.createAgent({ name: 'Rejected', objective: 'Try', autonomy: 'copilot' });
    const { task, approval } = await pendingApproval(agent.id, writeScript('risky', 'yes'));
    const res = await stack.api.post(`/api/v1/approvals/${approval.id}/reject`, { reason: 'too risky' });
    assert.equal(res.status, 200);
    assert.equal(res.body.status, 'rejected');
    assert.equal(res.body.reason, 'too risky');
    const done = await stack.api.waitForTask(task.id);
    assert.equal(done.status, 'completed');
    assert.equal(await memory(agent.id, 'risky'), undefined);
    const escalation = done.reasoningTrace.find((d: any) => d.decisionType === 'escalate');
    assert.match(escalation.reasoning, /too risky/);
    const again = await stack.api.post(`/api/v1/approvals/${approval.id}/approve`);
    assert.equal(again.status, 409);
    assert.match(again.body.error.message, /already rejected/);
  });

  it('concurrent approve and reject: exactly one wins; a repeated identical decision is idempotent', async () => {
    const agent = await stack.api.createAgent({ name: 'Contested', objective: 'Be decided once', autonomy: 'copilot' });
    const { task, approval } = await pendingApproval(agent.id, writeScript('contested', 1));
    const [approve, reject] = await Promise.all([
      stack.api.post(`/api/v1/approvals/${approval.id}/approve`),
      stack.api.post(`/api/v1/approvals/${approval.id}/reject`),
    ]);
    assert.deepEqual([approve.status, reject.status].sort(), [200, 409], `${approve.status} / ${reject.status}`);
    const winner = approve.status === 200 ? 'approved' : 'rejected';
    const repeat = await stack.api.post(
      `/api/v1/approvals/${approval.id}/${winner === 'approved' ? 'approve' : 'reject'}`,
    );
    assert.equal(repeat.status, 200, 'the same decision again is answered, not refused');
    assert.equal(repeat.body.status, winner);
    const done = await stack.api.waitForTask(task.id);
    assert.equal(done.status, 'completed');
    assert.equal(await memory(agent.id, 'contested'), winner === 'approved' ? 1 : undefined);
  });

  it('a request pending in its row that the task is not waiting on is retried for a while, then refused; nothing changes', async () => {
    // What a worker crash between writing the row and completing its workflow task leaves for a moment: the
    // row is pending, the task re-runs the step on another worker. Here the task never reaches that request.
    const agent = await stack.api.createAgent({ name: 'Behind', objective: 'Catch up', autonomy: 'copilot' });
    const { task, approval } = await pendingApproval(agent.id, writeScript('behind', 1));
    const strayId = randomUUID();
    await stack.db.query(
      `INSERT INTO approvals (id, task_id, agent_id, org_id, step, call_index, title, proposed_action, expires_at, workflow_id)
       SELECT $1, task_id, agent_id, org_id, step + 50, call_index, title, proposed_action, expires_at, workflow_id
       FROM approvals WHERE id = $2`,
      [strayId, approval.id],
    );
    const patient = await startApi({ ...stack.config, APPROVAL_DECISION_WAIT_SECONDS: 2 });
    try {
      const sentAt = Date.now();
      const refused = await patient.api.post(`/api/v1/approvals/${strayId}/approve`, {});
      const waitedMs = Date.now() - sentAt;
      assert.equal(refused.status, 409, JSON.stringify(refused.body));
      assert.match(refused.body.error.message, /no pending approval request/);
      assert.ok(waitedMs >= 1500, `resent for the configured 2 s before refusing (${waitedMs} ms)`);
    } finally {
      await patient.stop();
    }
    const stray = await stack.api.get(`/api/v1/approvals/${strayId}`);
    assert.equal(stray.body.status, 'pending', 'the refused decision changed nothing');
    // The request the task does wait on is decided as usual.
    assert.equal((await stack.api.post(`/api/v1/approvals/${approval.id}/approve`, {})).status, 200);
    assert.equal((await stack.api.waitForTask(task.id)).status, 'completed');
    assert.equal(await memory(agent.id, 'behind'), 1);
  });

  it('expiry: an unanswered request expires and the task fails with the reason, or escalates', async () => {
    const failing = await stack.api.createAgent({
      name: 'Impatient',
      objective: 'Wait briefly',
      autonomy: 'copilot',
      approvalTimeoutHours: 0.0005, // 1.8 s
      notify: { type: 'webhook', url: webhook.url },
    });
    const { task, approval } = await pendingApproval(failing.id, writeScript('late', true));
    const done = await stack.api.waitForTask(task.id);
    assert.equal(done.status, 'failed');
    assert.match(done.error, /approval .* expired/);
    assert.equal((await stack.api.get(`/api/v1/approvals/${approval.id}`)).body.status, 'expired');
    const late = await stack.api.post(`/api/v1/approvals/${approval.id}/approve`);
    assert.equal(late.status, 409);
    assert.match(late.body.error.message, /expired/);
    await waitFor(
      async () => webhook.received.some((r) => r.body.taskId === task.id && r.body.event === 'approval_expired'),
      'expired webhook',
    );

    const escalating = await stack.api.createAgent({
      name: 'Escalator',
      objective: 'Carry on',
      autonomy: 'copilot',
      approvalTimeoutHours: 0.0005,
      onApprovalTimeout: 'escalate',
    });
    const escalated = await stack.api.waitForTask(
      (await pendingApproval(escalating.id, writeScript('late', true))).task.id,
    );
    assert.equal(escalated.status, 'completed');
    assert.match(
      escalated.reasoningTrace.find((d: any) => d.decisionType === 'escalate').reasoning,
      /No decision arrived in time/,
    );
  });

  it('autopilot executes and notifies; a tool marked always-approve still waits (http_post)', async () => {
    const agent = await stack.api.createAgent({
      name: 'Pilot',
      objective: 'Act',
      autonomy: 'autopilot',
      allowedTools: ['memory_write', 'http_post'],
      notify: { type: 'webhook', url: webhook.url },
    });
    const auto = await stack.api.waitForTask(
      (await stack.api.createTask({ agentId: agent.id, title: 'act', input: { script: writeScript('auto', 'done') } }))
        .id,
    );
    assert.equal(auto.status, 'completed');
    await waitFor(
      async () => webhook.received.find((r) => r.body.taskId === auto.id && r.body.event === 'autopilot_executed'),
      'autopilot notification',
    );
    const note = webhook.received.find((r) => r.body.taskId === auto.id && r.body.event === 'autopilot_executed')!;
    assert.equal(note.body.tool, 'memory_write');

    const script = [{ call: 'http_post', args: { url: webhook.url, body: { hello: 'world' } } }, { answer: 'posted' }];
    const { task, approval } = await pendingApproval(agent.id, script);
    assert.equal(approval.proposedAction.tool, 'http_post');
    assert.equal((await stack.api.post(`/api/v1/approvals/${approval.id}/approve`)).status, 200);
    assert.equal((await stack.api.waitForTask(task.id)).status, 'completed');
    assert.ok(
      webhook.received.some((r) => r.body.hello === 'world'),
      'the approved POST was sent',
    );
  });

  it('a decision can be sent with the Temporal CLI, as an update or as a signal', async () => {
    const cli = process.env.TEMPORAL_CLI_PATH!;
    const address = stack.config.TEMPORAL_ADDRESS;
    const agent = await stack.api.createAgent({
      name: 'Terminal',
      objective: 'Be approved from a shell',
      autonomy: 'copilot',
    });

    const first = await pendingApproval(agent.id, writeScript('cli', 'update'));
    const payload = JSON.stringify({ approvalId: first.approval.id, decision: 'approve', decidedBy: 'ops-cli' });
    const { stdout } = await run(cli, [
      'workflow',
      'update',
      'execute',
      '--address',
      address,
      '--workflow-id',
      first.approval.workflowId,
      '--name',
      'decideApproval',
      '--input',
      payload,
    ]);
    assert.match(stdout, /approved/);
    assert.equal((await stack.api.waitForTask(first.task.id)).status, 'completed');
    assert.equal((await stack.api.get(`/api/v1/approvals/${first.approval.id}`)).body.decidedBy, 'ops-cli');

    const second = await pendingApproval(agent.id, writeScript('cli', 'signal'));
    const signal = JSON.stringify({ approvalId: second.approval.id, decision: 'reject', reason: 'from a shell' });
    await run(cli, [
      'workflow',
      'signal',
      '--address',
      address,
      '--workflow-id',
      second.approval.workflowId,
      '--name',
      'decideApprovalSignal',
      '--input',
      signal,
    ]);
    assert.equal((await stack.api.waitForTask(second.task.id)).status, 'completed');
    assert.equal((await stack.api.get(`/api/v1/approvals/${second.approval.id}`)).body.status, 'rejected');

    const wrong = JSON.stringify({ approvalId: randomUUID(), decision: 'approve' });
    await assert.rejects(
      run(cli, [
        'workflow',
        'update',
        'execute',
        '--address',
        address,
        '--workflow-id',
        second.approval.workflowId,
        '--name',
        'decideApproval',
        '--input',
        wrong,
      ]),
      'an update for an unknown request is refused',
    );
  });

  it('waits survive a killed worker: approve after a restart, and a timeout fires after one', async () => {
    await worker?.stop();
    worker = undefined;
    const spawned = spawnWorker(stack.config);
    await spawned.ready;
    const agent = await stack.api.createAgent({ name: 'Durable', objective: 'Outlive workers', autonomy: 'copilot' });
    const { task, approval } = await pendingApproval(agent.id, writeScript('durable', 'kept'));
    const shortLived = await stack.api.createAgent({
      name: 'Durable timer',
      objective: 'Expire on time',
      autonomy: 'copilot',
      approvalTimeoutHours: 0.001,
    });
    const timed = await pendingApproval(shortLived.id, writeScript('never', true));
    await killHard(spawned);

    // The short approval timer (3.6 s) lapses while no worker runs at all; an update needs a worker to run
    // its validator, so the other decision is sent once a fresh worker is up.
    await new Promise((r) => setTimeout(r, 4000));
    const replacement = spawnWorker(stack.config);
    await replacement.ready;
    try {
      const res = await stack.api.post(`/api/v1/approvals/${approval.id}/approve`);
      assert.equal(res.status, 200);
      assert.equal((await stack.api.waitForTask(task.id)).status, 'completed');
      assert.equal(await memory(agent.id, 'durable'), 'kept');
      const expired = await stack.api.waitForTask(timed.task.id);
      assert.equal(expired.status, 'failed');
      assert.equal((await stack.api.get(`/api/v1/approvals/${timed.approval.id}`)).body.status, 'expired');
    } finally {
      await killHard(replacement);
    }
  });
});
