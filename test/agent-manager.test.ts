import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createToolRegistry } from '../activities/tools';
import type { Config } from '../lib/config';
import { startApi, startWorker, testConfig, waitFor, type ApiClient, type TestStack } from './helpers/stack';

/**
 * The agent_manager tool through real tasks: an agent creates, lists, pauses, resumes and archives other
 * agents of its organisation, within MAX_AGENTS and the delegation fuse, at most once per call, never
 * giving an agent more than its creator has and never lifting an operator's pause.
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
    otherOrg = await startApi(
      testConfig({ TEMPORAL_TASK_QUEUE: config.TEMPORAL_TASK_QUEUE, DEFAULT_ORG_ID: `${orgId}-other` }),
    );
    worker = await startWorker(config);
  });
  after(async () => {
    await worker?.stop();
    await otherOrg?.stop();
    await stack?.stop();
  });

  /** Runs a scripted task on `agentId` and returns its tool calls, approving each call that waits for a person. */
  const runFor = async (api: ApiClient, agentId: string, script: unknown[]) => {
    const { id } = await api.createTask({ agentId, title: 'manage agents', input: { script } });
    const task = await waitFor(async () => {
      for (const approval of (await api.get(`/api/v1/approvals?taskId=${id}&status=pending`)).body.approvals ?? []) {
        await api.post(`/api/v1/approvals/${approval.id}/approve`, { decidedBy: 'test' });
      }
      const res = await api.get(`/api/v1/tasks/${id}`);
      return ['completed', 'failed', 'cancelled'].includes(res.body?.status) ? res.body : undefined;
    }, `task ${id} to finish`);
    assert.equal(task.status, 'completed', JSON.stringify(task));
    return task.reasoningTrace.filter((d: any) => d.decisionType === 'tool_call');
  };
  const run = (agentId: string, script: unknown[]) => runFor(stack.api, agentId, script);
  /** An organisation of its own on the same API, so a test has MAX_AGENTS to itself. */
  const freshOrg = () => stack.clientForOrg(`${orgId}-${randomUUID().slice(0, 8)}`);
  const names = async (api: ApiClient) =>
    (await api.get('/api/v1/agents')).body.agents.map((a: { name: string }) => a.name).sort();

  it('creates, lists, pauses, resumes and archives another agent', async () => {
    const manager = await stack.api.createAgent({
      name: 'Manager',
      objective: 'Run a team',
      allowedTools: ['agent_manager'],
    });
    const [created] = await run(manager.id, [
      {
        call: 'agent_manager',
        args: { action: 'create', name: 'Scout', objective: 'Watch BTC and ETH prices', priority: 7 },
      },
      { answer: 'created' },
    ]);
    const scoutId = created.result.agentId;
    assert.match(scoutId, /^[0-9a-f-]{36}$/);
    const scout = await stack.api.get(`/api/v1/agents/${scoutId}`);
    assert.equal(scout.status, 200, 'the new agent belongs to the same organisation');
    assert.deepEqual(
      [scout.body.name, scout.body.priority, scout.body.status, scout.body.orgId],
      ['Scout', 7, 'IDLE', orgId],
    );
    // The new agent works like any other.
    assert.equal(
      (await stack.api.waitForTask((await stack.api.createTask({ agentId: scoutId, title: 'check prices' })).id))
        .status,
      'completed',
    );

    const [listed, paused, resumed, archived] = await run(manager.id, [
      { call: 'agent_manager', args: { action: 'list' } },
      { call: 'agent_manager', args: { action: 'pause', agentId: scoutId } },
      { call: 'agent_manager', args: { action: 'resume', agentId: scoutId } },
      { call: 'agent_manager', args: { action: 'archive', agentId: scoutId } },
      { answer: 'done' },
    ]);
    assert.deepEqual(listed.result.agents.map((a: { name: string }) => a.name).sort(), ['Manager', 'Scout']);
    assert.deepEqual(
      [paused.result.status, resumed.result.status, archived.result.status],
      ['PAUSED', 'IDLE', 'ARCHIVED'],
    );
    const after = await stack.api.get(`/api/v1/agents/${scoutId}`);
    assert.equal(after.body.status, 'ARCHIVED');
    const description = await stack.client.workflow.getHandle(`agent-${scoutId}`).describe();
    assert.equal(description.status.name, 'COMPLETED', "the archived agent's workflow has ended");
  });

  it('refuses itself, other organisations, the agent limit and the delegation fuse', async () => {
    const outsider = await otherOrg.api.createAgent({ name: 'Outsider', objective: 'Elsewhere' });
    const boss = await stack.api.createAgent({
      name: 'Boss',
      objective: 'Delegate',
      allowedTools: ['agent_manager', 'create_task'],
    });
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
    assert.equal(
      (await otherOrg.api.get(`/api/v1/agents/${outsider.id}`)).body.status,
      'IDLE',
      'the other organisation is untouched',
    );
    const names = (await stack.api.get('/api/v1/agents')).body.agents.map((a: { name: string }) => a.name).sort();
    assert.deepEqual(names, ['Boss', 'Helper', 'Manager']);

    // Archive Helper to make room, then delegate a creation: the delegated task is at depth 1, the fuse.
    const helperId = results[2].result.agentId;
    await run(boss.id, [
      { call: 'agent_manager', args: { action: 'archive', agentId: helperId } },
      { answer: 'archived' },
    ]);
    const [delegation] = (
      await stack.api.waitForTask(
        (
          await stack.api.createTask({
            agentId: boss.id,
            title: 'delegate',
            input: {
              script: [
                {
                  call: 'create_task',
                  args: {
                    agentId: boss.id,
                    title: 'deep',
                    input: {
                      script: [
                        { call: 'agent_manager', args: { action: 'create', name: 'Deep', objective: 'Too deep' } },
                      ],
                    },
                  },
                },
              ],
            },
          })
        ).id,
      )
    ).reasoningTrace.filter((d: any) => d.decisionType === 'delegate');
    const deep = await stack.api.waitForTask(delegation.result.taskId);
    assert.equal(deep.delegationDepth, 1);
    assert.match(
      deep.reasoningTrace.find((d: any) => d.decisionType === 'tool_call').result.error,
      /delegation depth 1, the fuse is 1/,
    );
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
    for (const a of (await stack.api.get('/api/v1/agents')).body.agents.filter((x: { name: string }) =>
      ['Once', 'Boss'].includes(x.name),
    )) {
      await stack.api.post(`/api/v1/agents/${a.id}/archive`);
    }
    const careful = await stack.api.createAgent({
      name: 'Careful',
      objective: 'Ask first',
      autonomy: 'copilot',
      allowedTools: ['agent_manager'],
    });
    const task = await stack.api.createTask({
      agentId: careful.id,
      title: 'hire',
      input: {
        script: [
          { call: 'agent_manager', args: { action: 'create', name: 'Hire', objective: 'Work' } },
          { answer: 'asked' },
        ],
      },
    });
    const approval = await waitFor(
      async () => (await stack.api.get(`/api/v1/approvals?taskId=${task.id}&status=pending`)).body.approvals?.[0],
      'an approval request',
    );
    assert.equal(approval.proposedAction.tool, 'agent_manager');
    assert.equal(
      (await stack.api.post(`/api/v1/approvals/${approval.id}/reject`, { reason: 'no hiring' })).status,
      200,
    );
    await stack.api.waitForTask(task.id);
    assert.ok(!(await stack.api.get('/api/v1/agents')).body.agents.some((a: { name: string }) => a.name === 'Hire'));
  });

  it('never creates an agent with more tools, budget, MCP servers or fewer approvals than its creator', async () => {
    const api = await freshOrg();
    const docs = {
      name: 'docs',
      transport: 'http',
      url: 'https://docs.example.invalid/mcp',
      headers: { 'x-team': 'lead' },
    };
    const lead = await api.createAgent({
      name: 'Lead',
      objective: 'Build a team',
      allowedTools: ['agent_manager', 'memory_read', 'mcp__docs__*'],
      tokenBudgetPerMinute: 100_000,
      approvalRequiredTools: ['memory_read'],
      mcpServers: [docs],
      provider: 'offline',
      model: 'offline-small',
    });
    const create = (name: string, extra: Record<string, unknown> = {}) => ({
      call: 'agent_manager',
      args: { action: 'create', name, objective: 'Help the lead', ...extra },
    });
    const results = await runFor(api, lead.id, [
      create('Poster', { allowedTools: ['memory_read', 'http_post'] }),
      create('Other server', { allowedTools: ['mcp__other__*'] }),
      create('Big spender', { tokenBudgetPerMinute: 200_000 }),
      create('Stranger', { mcpServers: ['web'] }),
      create('Everything', { allowedTools: ['http_get', 'memory_read'], tokenBudgetPerMinute: 999_999 }),
      create('Analyst', {
        allowedTools: ['memory_read', 'mcp__docs__search'],
        approvalRequiredTools: ['mcp__docs__search'],
        mcpServers: ['docs'],
      }),
      create('Plain'),
      { answer: 'hired' },
    ]);
    const errors = results.map((d: any) => d.result.error);
    assert.match(
      errors[0],
      /agent creation refused: .*exceeded: allowedTools http_post \(yours: agent_manager, memory_read, mcp__docs__\*\)\. Nothing was created/,
    );
    assert.match(errors[1], /exceeded: allowedTools mcp__other__\*/);
    assert.match(errors[2], /exceeded: tokenBudgetPerMinute 200000 \(yours: 100000\)/);
    assert.match(errors[3], /you have no MCP server "web" \(yours: docs\); nothing was created/);
    assert.match(
      errors[4],
      /exceeded: allowedTools http_get .*; tokenBudgetPerMinute 999999 \(yours: 100000\)/,
      'every excess is named',
    );
    assert.deepEqual(errors.slice(5), [undefined, undefined], JSON.stringify(results.slice(5)));
    assert.deepEqual(await names(api), ['Analyst', 'Lead', 'Plain'], 'refused creations leave nothing behind');

    const analyst = (await api.get(`/api/v1/agents/${results[5].result.agentId}`)).body;
    assert.deepEqual(analyst.allowedTools, ['memory_read', 'mcp__docs__search']);
    assert.equal(analyst.autonomy, 'autopilot');
    assert.equal(analyst.tokenBudgetPerMinute, 100_000, "an agent left without a budget gets its creator's");
    assert.deepEqual(
      analyst.approvalRequiredTools.sort(),
      ['mcp__docs__search', 'memory_read'],
      "the creator's approvals are kept",
    );
    assert.deepEqual(
      [analyst.provider, analyst.model],
      ['offline', 'offline-small'],
      "the creator's provider and model",
    );
    assert.deepEqual(analyst.live.agent.mcpServers, [docs], "the creator's own server entry, named");
    const plain = (await api.get(`/api/v1/agents/${results[6].result.agentId}`)).body;
    assert.deepEqual(plain.allowedTools, ['memory_read'], 'the default tools the creator has, and no others');
    assert.deepEqual(plain.live.agent.mcpServers, []);
  });

  it('never creates an agent with a higher autonomy than its creator', async () => {
    const api = await freshOrg();
    const careful = await api.createAgent({
      name: 'Cautious',
      objective: 'Ask first',
      autonomy: 'copilot',
      allowedTools: ['agent_manager', 'memory_write'],
    });
    const [bold, inherited] = await runFor(api, careful.id, [
      {
        call: 'agent_manager',
        args: { action: 'create', name: 'Bold', objective: 'Act alone', autonomy: 'autopilot' },
      },
      { call: 'agent_manager', args: { action: 'create', name: 'Careful too', objective: 'Act carefully' } },
      { answer: 'done' },
    ]);
    assert.match(bold.result.error, /exceeded: autonomy autopilot \(yours: copilot\)\. Nothing was created/);
    const child = (await api.get(`/api/v1/agents/${inherited.result.agentId}`)).body;
    assert.equal(child.autonomy, 'copilot', "left out, the autonomy is the creator's, not the API's default autopilot");
    assert.deepEqual(child.allowedTools, ['memory_write']);
    assert.deepEqual(await names(api), ['Careful too', 'Cautious']);
  });

  it("resumes only agents paused through the tool, never an operator's pause", async () => {
    const api = await freshOrg();
    const manager = await api.createAgent({
      name: 'Supervisor',
      objective: 'Keep the team in line',
      allowedTools: ['agent_manager'],
    });
    const worker = await api.createAgent({ name: 'Crew hand', objective: 'Work' });
    const status = async () => (await api.get(`/api/v1/agents/${worker.id}`)).body.status;
    const resume = { call: 'agent_manager', args: { action: 'resume', agentId: worker.id } };
    const pause = { call: 'agent_manager', args: { action: 'pause', agentId: worker.id } };
    const refused = new RegExp(
      `agent ${worker.id} refused to resume: it was paused by an operator; only an operator can resume it`,
    );

    // An operator's pause (API) stays.
    assert.equal((await api.post(`/api/v1/agents/${worker.id}/pause`)).status, 200);
    const [first] = await runFor(api, manager.id, [resume, { answer: 'tried' }]);
    assert.match(first.result.error, refused);
    assert.equal(await status(), 'PAUSED');

    // Pausing an agent an operator paused does not make that pause the tool's.
    const [again, afterAgain] = await runFor(api, manager.id, [pause, resume, { answer: 'tried' }]);
    assert.equal(again.result.status, 'PAUSED');
    assert.match(afterAgain.result.error, refused);
    assert.equal(await status(), 'PAUSED');

    // Once the operator has resumed it, a pause made through the tool may be lifted through the tool.
    assert.equal((await api.post(`/api/v1/agents/${worker.id}/resume`)).status, 200);
    const [own] = await runFor(api, manager.id, [pause, { answer: 'paused' }]);
    assert.equal(own.result.status, 'PAUSED');
    const [lifted] = await runFor(api, manager.id, [resume, { answer: 'resumed' }]);
    assert.equal(lifted.result.status, 'IDLE', JSON.stringify(lifted.result));

    // A tool's pause, then an operator's resume and pause: the pause in effect is the operator's.
    await runFor(api, manager.id, [pause, { answer: 'paused' }]);
    assert.equal((await api.post(`/api/v1/agents/${worker.id}/resume`)).status, 200);
    assert.equal((await api.post(`/api/v1/agents/${worker.id}/pause`)).status, 200);
    const [late] = await runFor(api, manager.id, [resume, { answer: 'tried' }]);
    assert.match(late.result.error, refused);
    assert.equal(await status(), 'PAUSED');
    // A tool's pause that an operator then confirms (pauses the paused agent): the operator's too.
    assert.equal((await api.post(`/api/v1/agents/${worker.id}/resume`)).status, 200);
    await runFor(api, manager.id, [pause, { answer: 'paused' }]);
    assert.equal((await api.post(`/api/v1/agents/${worker.id}/pause`)).status, 200);
    const [confirmed] = await runFor(api, manager.id, [resume, { answer: 'tried' }]);
    assert.match(confirmed.result.error, refused);
    assert.equal(await status(), 'PAUSED');
    // The worker still works once an operator resumes it.
    assert.equal((await api.post(`/api/v1/agents/${worker.id}/resume`)).status, 200);
    assert.equal(
      (await api.waitForTask((await api.createTask({ agentId: worker.id, title: 'back to work' })).id)).status,
      'completed',
    );
  });
});
