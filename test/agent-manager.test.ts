import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createToolRegistry } from '../activities/tools';
import type { Config } from '../lib/config';
import { startApi, startWorker, testConfig, waitFor, type TestStack } from './helpers/stack';

/**
 * The agent_manager tool through real tasks: an agent creates, lists, pauses, resumes and archives other
 * agents of its organisation, within MAX_AGENTS and the delegation fuse, at most once per call.
 */
describe('agent_manager', () => {
  let config: Config;
  let stack: TestStack;
  let otherOrg: TestStack;
  let worker: { stop(): Promise<void> };
  const orgId = `org-${randomUUID().slice(0, 8)}`;

  before(async () => {
    // An organisation of its own, so MAX_AGENTS counts only this file's agents.
    config = testConfig({ DEFAULT_ORG_ID: orgId, MAX_AGENTS: '3', MAX_DELEGATION_DEPTH: '1' });
    stack = await startApi(config);
    otherOrg = await startApi(testConfig({ TEMPORAL_TASK_QUEUE: config.TEMPORAL_TASK_QUEUE, DEFAULT_ORG_ID: `${orgId}-other` }));
    worker = await startWorker(config);
  });
  after(async () => {
    await worker?.stop();
    await otherOrg?.stop();
    await stack?.stop();
  });

  const run = async (agentId: string, script: unknown[]) => {
    const task = await stack.api.waitForTask((await stack.api.createTask({ agentId, title: 'manage agents', input: { script } })).id);
    assert.equal(task.status, 'completed', JSON.stringify(task));
    return task.reasoningTrace.filter((d: any) => d.decisionType === 'tool_call');
  };

  it('creates, lists, pauses, resumes and archives another agent', async () => {
    const manager = await stack.api.createAgent({ name: 'Manager', objective: 'Run a team', allowedTools: ['agent_manager'] });
    const [created] = await run(manager.id, [
      { call: 'agent_manager', args: { action: 'create', name: 'Scout', objective: 'Watch BTC and ETH prices', priority: 7 } },
      { answer: 'created' },
    ]);
    const scoutId = created.result.agentId;
    assert.match(scoutId, /^[0-9a-f-]{36}$/);
    const scout = await stack.api.get(`/api/v1/agents/${scoutId}`);
    assert.equal(scout.status, 200, 'the new agent belongs to the same organisation');
    assert.deepEqual([scout.body.name, scout.body.priority, scout.body.status, scout.body.orgId], ['Scout', 7, 'IDLE', orgId]);
    // The new agent works like any other.
    assert.equal((await stack.api.waitForTask((await stack.api.createTask({ agentId: scoutId, title: 'check prices' })).id)).status, 'completed');

    const [listed, paused, resumed, archived] = await run(manager.id, [
      { call: 'agent_manager', args: { action: 'list' } },
      { call: 'agent_manager', args: { action: 'pause', agentId: scoutId } },
      { call: 'agent_manager', args: { action: 'resume', agentId: scoutId } },
      { call: 'agent_manager', args: { action: 'archive', agentId: scoutId } },
      { answer: 'done' },
    ]);
    assert.deepEqual(listed.result.agents.map((a: { name: string }) => a.name).sort(), ['Manager', 'Scout']);
    assert.deepEqual([paused.result.status, resumed.result.status, archived.result.status], ['PAUSED', 'IDLE', 'ARCHIVED']);
    const after = await stack.api.get(`/api/v1/agents/${scoutId}`);
    assert.equal(after.body.status, 'ARCHIVED');
    const description = await stack.client.workflow.getHandle(`agent-${scoutId}`).describe();
    assert.equal(description.status.name, 'COMPLETED', "the archived agent's workflow has ended");
  });

  it('refuses itself, other organisations, the agent limit and the delegation fuse', async () => {
    const outsider = await otherOrg.api.createAgent({ name: 'Outsider', objective: 'Elsewhere' });
    const boss = await stack.api.createAgent({ name: 'Boss', objective: 'Delegate', allowedTools: ['agent_manager', 'create_task'] });
    const results = await run(boss.id, [
      { call: 'agent_manager', args: { action: 'archive', agentId: boss.id } },
      { call: 'agent_manager', args: { action: 'archive', agentId: outsider.id } },
      { call: 'agent_manager', args: { action: 'create', name: 'Helper', objective: 'Help' } },
      { call: 'agent_manager', args: { action: 'create', name: 'One too many', objective: 'Exceed' } },
      { call: 'agent_manager', args: { action: 'create', objective: 'No name' } },
      { answer: 'tried' },
    ]);
    const errors = results.map((d: any) => d.result.error);
    assert.match(errors[0], /cannot archive itself/);
    assert.match(errors[1], new RegExp(`no agent ${outsider.id} in this organisation`));
    assert.equal(errors[2], undefined, 'the first creation fits: Manager, Boss, Helper');
    assert.match(errors[3], /agent limit reached: MAX_AGENTS is 3/);
    assert.match(errors[4], /invalid agent: name/);
    assert.equal((await otherOrg.api.get(`/api/v1/agents/${outsider.id}`)).body.status, 'IDLE', 'the other organisation is untouched');
    const names = (await stack.api.get('/api/v1/agents')).body.agents.map((a: { name: string }) => a.name).sort();
    assert.deepEqual(names, ['Boss', 'Helper', 'Manager']);

    // Archive Helper to make room, then delegate a creation: the delegated task is at depth 1, the fuse.
    const helperId = results[2].result.agentId;
    await run(boss.id, [{ call: 'agent_manager', args: { action: 'archive', agentId: helperId } }, { answer: 'archived' }]);
    const [delegation] = (
      await stack.api.waitForTask(
        (
          await stack.api.createTask({
            agentId: boss.id,
            title: 'delegate',
            input: { script: [{ call: 'create_task', args: { agentId: boss.id, title: 'deep', input: { script: [{ call: 'agent_manager', args: { action: 'create', name: 'Deep', objective: 'Too deep' } }] } } }] },
          })
        ).id,
      )
    ).reasoningTrace.filter((d: any) => d.decisionType === 'delegate');
    const deep = await stack.api.waitForTask(delegation.result.taskId);
    assert.equal(deep.delegationDepth, 1);
    assert.match(deep.reasoningTrace.find((d: any) => d.decisionType === 'tool_call').result.error, /delegation depth 1, the fuse is 1/);
    assert.ok(!(await stack.api.get('/api/v1/agents')).body.agents.some((a: { name: string }) => a.name === 'Deep'));
  });

  it('creates an agent at most once when the call is retried', async () => {
    const tool = createToolRegistry({ agents: stack.gateway }).get('agent_manager')!;
    const active = (await stack.api.get('/api/v1/agents')).body.agents.length;
    const owner = (await stack.api.get('/api/v1/agents')).body.agents.find((a: { name: string }) => a.name === 'Boss');
    const ctx = {
      db: stack.db,
      config,
      orgId,
      agentId: owner.id,
      taskId: randomUUID(),
      idempotencyKey: `task-${randomUUID()}:1:0`,
      delegationDepth: 0,
      maxDelegationDepth: 1,
      submitGoal: () => Promise.reject(new Error('not used')),
    };
    const args = { action: 'create', name: 'Once', objective: 'Exist once' };
    // Two attempts of the same call (same idempotency key), as Temporal retries an activity.
    const first = (await tool.run(args, ctx)).content as any;
    const second = (await tool.run(args, ctx)).content as any;
    assert.equal(second.agentId, first.agentId);
    assert.equal(second.replayed, true);
    const agents = (await stack.api.get('/api/v1/agents')).body.agents;
    assert.equal(agents.length, active + 1);
    assert.equal(agents.filter((a: { name: string }) => a.name === 'Once').length, 1);
    // A retry whose ledger write was lost still finds the agent it started, rather than starting another.
    await stack.db.query('DELETE FROM side_effects WHERE idempotency_key = $1', [ctx.idempotencyKey]);
    const third = (await tool.run(args, ctx)).content as any;
    assert.equal(third.agentId, first.agentId);
    assert.equal((await stack.api.get('/api/v1/agents')).body.agents.length, active + 1);
  });

  it('waits for approval in copilot mode and creates nothing when rejected', async () => {
    // Make room under MAX_AGENTS for this copilot agent.
    for (const a of (await stack.api.get('/api/v1/agents')).body.agents.filter((x: { name: string }) => ['Once', 'Boss'].includes(x.name))) {
      await stack.api.post(`/api/v1/agents/${a.id}/archive`);
    }
    const careful = await stack.api.createAgent({ name: 'Careful', objective: 'Ask first', autonomy: 'copilot', allowedTools: ['agent_manager'] });
    const task = await stack.api.createTask({
      agentId: careful.id,
      title: 'hire',
      input: { script: [{ call: 'agent_manager', args: { action: 'create', name: 'Hire', objective: 'Work' } }, { answer: 'asked' }] },
    });
    const approval = await waitFor(async () => (await stack.api.get(`/api/v1/approvals?taskId=${task.id}&status=pending`)).body.approvals?.[0], 'an approval request');
    assert.equal(approval.proposedAction.tool, 'agent_manager');
    assert.equal((await stack.api.post(`/api/v1/approvals/${approval.id}/reject`, { reason: 'no hiring' })).status, 200);
    await stack.api.waitForTask(task.id);
    assert.ok(!(await stack.api.get('/api/v1/agents')).body.agents.some((a: { name: string }) => a.name === 'Hire'));
  });
});
