import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { agentWorkflowId } from '../contract/definitions';
import { loadConfig } from '../lib/config';
import { startStack, testConfig, waitFor, type ApiClient, type TestStack } from './helpers/stack';

const put = (api: ApiClient, path: string, body: unknown) => api.request('PUT', path, body);

/** Every string inside the JSON payloads of a workflow's history (activity inputs among them). */
async function historyStrings(stack: TestStack, workflowId: string): Promise<string[]> {
  const history = await stack.client.workflow.getHandle(workflowId).fetchHistory();
  const out: string[] = [];
  const walk = (value: unknown): void => {
    if (typeof value === 'string') out.push(value);
    else if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') Object.values(value).forEach(walk);
  };
  const visit = (node: unknown): void => {
    if (node instanceof Uint8Array) {
      try {
        walk(JSON.parse(Buffer.from(node).toString('utf8')));
      } catch {
        // Not a JSON payload.
      }
    } else if (Array.isArray(node)) node.forEach(visit);
    else if (node && typeof node === 'object') Object.values(node).forEach(visit);
  };
  visit(history.events);
  return out;
}

describe('agent types (the catalogue of seed 004)', () => {
  let stack: TestStack;
  /** A fresh organisation per test that changes the catalogue, so no other test sees the change. */
  const freshOrg = () => stack.clientForOrg(`types-${randomUUID()}`);
  before(async () => (stack = await startStack(testConfig())));
  after(() => stack?.stop());

  it('lists the eight types with their default autonomy, tools and prompts', async () => {
    const api = await freshOrg();
    const res = await api.get('/api/v1/agent-types');
    assert.equal(res.status, 200);
    const types = res.body.agentTypes as any[];
    assert.deepEqual(
      types.map((t) => [t.agentType, t.autonomyLevel]),
      [
        ['content', 'copilot'],
        ['clip', 'copilot'],
        ['publishing', 'copilot'],
        ['moderation', 'autopilot'],
        ['analytics', 'autopilot'],
        ['growth', 'copilot'],
        ['community', 'manual'],
        ['revenue', 'manual'],
      ],
    );
    for (const t of types) {
      assert.equal(t.isEnabled, true);
      assert.equal(t.customised, false);
      assert.ok(t.allowedSkills.length > 0 && t.systemPrompt, `${t.agentType} has tools and a prompt`);
      assert.deepEqual(t.config, {});
    }
    const one = await api.get('/api/v1/agent-types/analytics');
    assert.equal(one.status, 200);
    assert.equal(one.body.name, 'Analytics');
    assert.equal(one.body.description, 'Generate insights, weekly reports');
  });

  it('PUT changes the given fields and keeps the others; bad bodies are 400, unknown types 404', async () => {
    const api = await freshOrg();
    const before = (await api.get('/api/v1/agent-types/growth')).body;
    const res = await put(api, '/api/v1/agent-types/growth', {
      autonomyLevel: 'autopilot',
      config: { region: 'EU', keywords: ['temporal'] },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const read = (await api.get('/api/v1/agent-types/growth')).body;
    assert.equal(read.autonomyLevel, 'autopilot');
    assert.deepEqual(read.config, { region: 'EU', keywords: ['temporal'] });
    assert.equal(read.customised, true);
    assert.ok(read.updatedAt);
    assert.deepEqual(read.allowedSkills, before.allowedSkills, 'fields not sent are kept');
    assert.equal(read.systemPrompt, before.systemPrompt);

    // A second change of another field keeps the first.
    assert.equal((await put(api, '/api/v1/agent-types/growth', { systemPrompt: null })).status, 200);
    const again = (await api.get('/api/v1/agent-types/growth')).body;
    assert.equal(again.systemPrompt, null);
    assert.equal(again.autonomyLevel, 'autopilot');

    for (const body of [
      {},
      { autonomyLevel: 'sometimes' },
      { isEnabled: 'yes' },
      { allowedSkills: ['no spaces allowed'] },
      { config: [1, 2] },
      { surprise: true },
    ]) {
      const bad = await put(api, '/api/v1/agent-types/growth', body);
      assert.equal(bad.status, 400, JSON.stringify(body));
      assert.equal(bad.body.error.code, 'validation_failed');
    }
    const unknown = await put(api, '/api/v1/agent-types/astrology', { isEnabled: false });
    assert.equal(unknown.status, 404);
    assert.match(unknown.body.error.message, /no agent type "astrology"/);
    assert.equal((await api.get('/api/v1/agent-types/astrology')).status, 404);
    assert.equal((await api.get('/api/v1/agent-types/growth')).body.autonomyLevel, 'autopilot', 'unchanged by 400s');
  });

  it("the seed's own paths GET/PUT /api/v1/agents/:agentType work; agent ids still reach agents", async () => {
    const api = await freshOrg();
    const got = await api.get('/api/v1/agents/revenue');
    assert.equal(got.status, 200);
    assert.equal(got.body.agentType, 'revenue');
    assert.equal(got.body.autonomyLevel, 'manual');
    const changed = await put(api, '/api/v1/agents/revenue', { allowedSkills: ['memory_read'] });
    assert.equal(changed.status, 200);
    assert.deepEqual((await api.get('/api/v1/agent-types/revenue')).body.allowedSkills, ['memory_read']);
    assert.equal((await put(api, '/api/v1/agents/revenue', { isEnabled: 3 })).status, 400);

    const agent = await api.createAgent({ name: 'Plain', objective: 'Be read' });
    const byId = await api.get(`/api/v1/agents/${agent.id}`);
    assert.equal(byId.status, 200);
    assert.equal(byId.body.id, agent.id);
    const unknownId = await api.get(`/api/v1/agents/${randomUUID()}`);
    assert.equal(unknownId.status, 404);
    assert.match(unknownId.body.error.message, /no agent with id/);
    assert.equal((await api.get('/api/v1/agents/not-a-type')).status, 404);
  });

  it('agents created with a type take its defaults unless the request sets them', async () => {
    const api = await freshOrg();
    const content = await api.createAgent({ name: 'Writer', objective: 'Write captions', type: 'content' });
    assert.equal(content.autonomy, 'copilot');
    const defaults = (await api.get('/api/v1/agent-types/content')).body;
    assert.deepEqual(content.allowedTools, defaults.allowedSkills);
    assert.equal(content.systemPrompt, defaults.systemPrompt);

    const community = await api.createAgent({ name: 'Replier', objective: 'Answer', type: 'Community' });
    assert.equal(community.autonomy, 'manual', 'the type is matched in any case');

    const explicit = await api.createAgent({
      name: 'Bold writer',
      objective: 'Write',
      type: 'content',
      autonomy: 'autopilot',
      allowedTools: ['memory_read'],
      systemPrompt: 'Mine.',
    });
    assert.equal(explicit.autonomy, 'autopilot');
    assert.deepEqual(explicit.allowedTools, ['memory_read']);
    assert.equal(explicit.systemPrompt, 'Mine.');

    // The organisation's change is what new agents take.
    await put(api, '/api/v1/agent-types/moderation', { autonomyLevel: 'copilot' });
    const moderator = await api.createAgent({ name: 'Moderator', objective: 'Moderate', type: 'moderation' });
    assert.equal(moderator.autonomy, 'copilot');

    // A type outside the catalogue keeps the old defaults.
    const other = await api.createAgent({ name: 'Other', objective: 'Other', type: 'research' });
    assert.equal(other.autonomy, 'autopilot');

    // Changing one field of the agent keeps its type's defaults.
    const patched = await api.patch(`/api/v1/agents/${content.id}`, { name: 'Caption writer' });
    assert.equal(patched.status, 200);
    assert.equal(patched.body.name, 'Caption writer');
    assert.equal(patched.body.autonomy, 'copilot');
    assert.equal(patched.body.type, 'content');
    assert.deepEqual(patched.body.allowedTools, defaults.allowedSkills);
  });

  it("the type's config reaches the agent's prompt", async () => {
    const api = await freshOrg();
    await put(api, '/api/v1/agent-types/analytics', { config: { reportDay: 'Monday', currency: 'EUR' } });
    const agent = await api.createAgent({ name: 'Analyst', objective: 'Report', type: 'analytics' });
    assert.deepEqual(agent.live.agent.config, { reportDay: 'Monday', currency: 'EUR' });
    const task = await api.createTask({ agentId: agent.id, title: 'weekly report' });
    assert.equal((await api.waitForTask(task.id)).status, 'completed');
    const strings = await historyStrings(stack, agentWorkflowId(agent.id));
    const prompt = strings.find((s) => s.startsWith('You are Analyst'));
    assert.ok(prompt, 'the system prompt was sent to the model');
    const section = /^Configuration: (.*)$/m.exec(prompt);
    assert.ok(section, prompt);
    assert.deepEqual(JSON.parse(section[1]!), { reportDay: 'Monday', currency: 'EUR' });

    // Without a config the prompt has no configuration section.
    const plain = await api.createAgent({ name: 'Plainly', objective: 'Report', type: 'research' });
    await api.waitForTask((await api.createTask({ agentId: plain.id, title: 'report' })).id);
    const plainPrompt = (await historyStrings(stack, agentWorkflowId(plain.id))).find((s) =>
      s.startsWith('You are Plainly'),
    );
    assert.ok(plainPrompt && !plainPrompt.includes('Configuration:'), plainPrompt);
  });

  it('a disabled type takes no new tasks (409) and leaves running ones alone; enabled again it does', async () => {
    const api = await freshOrg();
    const agent = await api.createAgent({ name: 'Mod', objective: 'Moderate', type: 'moderation' });
    const running = await api.createTask({
      agentId: agent.id,
      title: 'slow review',
      input: { script: [{ answer: 'reviewed', delayMs: 3000 }] },
    });
    await waitFor(
      async () => ['planning', 'running'].includes((await api.get(`/api/v1/tasks/${running.id}`)).body.status),
      'the task to start',
    );

    assert.equal((await put(api, '/api/v1/agent-types/moderation', { isEnabled: false })).status, 200);
    const refused = await api.post('/api/v1/tasks', { agentId: agent.id, title: 'more reviews' });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'conflict');
    assert.match(refused.body.error.message, /agent type "moderation" is disabled/);
    assert.equal((await api.get(`/api/v1/tasks?agentId=${agent.id}`)).body.tasks.length, 1, 'nothing was queued');

    const done = await api.waitForTask(running.id);
    assert.equal(done.status, 'completed', 'the running task finished');
    assert.match(done.output.answer, /reviewed/);

    // Other types and other organisations are not affected.
    const other = await api.createAgent({ name: 'Counter', objective: 'Count', type: 'analytics' });
    assert.equal((await api.post('/api/v1/tasks', { agentId: other.id, title: 'count' })).status, 201);

    // Nor can other agents give it work: create_task and a request (each would be its goal) are tool errors.
    const boss = await api.createAgent({
      name: 'Boss',
      objective: 'Delegate',
      allowedTools: ['create_task', 'send_message'],
    });
    const tried = await api.waitForTask(
      (
        await api.createTask({
          agentId: boss.id,
          title: 'delegate the review',
          input: {
            script: [
              {
                calls: [
                  { call: 'create_task', args: { agentId: agent.id, title: 'review this' } },
                  { call: 'send_message', args: { toAgentId: agent.id, type: 'request', content: 'review?' } },
                ],
              },
              { answer: 'tried' },
            ],
          },
        })
      ).id,
    );
    const errors = tried.reasoningTrace
      .map((d: { result: { error?: string } | null }) => d.result?.error)
      .filter(Boolean);
    assert.deepEqual(errors, [
      'delegation refused: agent type "moderation" is disabled in this organisation',
      'request refused: agent type "moderation" is disabled in this organisation',
    ]);
    assert.equal((await api.get(`/api/v1/tasks?agentId=${agent.id}`)).body.tasks.length, 1, 'still nothing queued');

    assert.equal((await put(api, '/api/v1/agents/moderation', { isEnabled: true })).status, 200);
    const accepted = await api.post('/api/v1/tasks', { agentId: agent.id, title: 'more reviews' });
    assert.equal(accepted.status, 201, JSON.stringify(accepted.body));
    assert.equal((await api.waitForTask(accepted.body.id)).status, 'completed');
  });

  it("another organisation neither sees nor changes this organisation's catalogue", async () => {
    const mine = await freshOrg();
    const theirOrg = `types-${randomUUID()}`;
    const theirs = await stack.clientForOrg(theirOrg);
    await put(mine, '/api/v1/agent-types/clip', { isEnabled: false, autonomyLevel: 'manual', config: { secret: 1 } });

    const seen = (await theirs.get('/api/v1/agent-types/clip')).body;
    assert.equal(seen.isEnabled, true);
    assert.equal(seen.autonomyLevel, 'copilot');
    assert.deepEqual(seen.config, {});
    assert.equal(seen.customised, false);
    assert.ok(
      (await theirs.get('/api/v1/agent-types')).body.agentTypes.every(
        (t: any) => t.orgId === theirOrg && !t.customised,
      ),
    );
    const theirAgent = await theirs.createAgent({ name: 'Clipper', objective: 'Clip', type: 'clip' });
    assert.equal(theirAgent.autonomy, 'copilot');
    assert.equal((await theirs.post('/api/v1/tasks', { agentId: theirAgent.id, title: 'clip it' })).status, 201);

    await put(theirs, '/api/v1/agent-types/clip', { autonomyLevel: 'autopilot' });
    const still = (await mine.get('/api/v1/agent-types/clip')).body;
    assert.equal(still.autonomyLevel, 'manual');
    assert.equal(still.isEnabled, false);
    assert.deepEqual(still.config, { secret: 1 });
  });

  it('a task keeps the skill it was submitted with', async () => {
    const api = await freshOrg();
    const agent = await api.createAgent({ name: 'Skilled', objective: 'Use skills' });
    const task = await api.createTask({ agentId: agent.id, title: 'caption this', skillId: 'captions.v2' });
    assert.equal(task.skillId, 'captions.v2');
    const done = await api.waitForTask(task.id);
    assert.equal(done.skillId, 'captions.v2');
    const listed = (await api.get(`/api/v1/tasks?agentId=${agent.id}`)).body.tasks;
    assert.equal(listed[0].skillId, 'captions.v2');
    const without = await api.createTask({ agentId: agent.id, title: 'no skill' });
    assert.equal(without.skillId, null);
    const bad = await api.post('/api/v1/tasks', { agentId: agent.id, title: 'bad skill', skillId: '' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /skillId/);
  });

  it('a final answer that states a confidence stores it on the decision', async () => {
    const api = await freshOrg();
    const agent = await api.createAgent({ name: 'Judge', objective: 'Judge', type: 'moderation' });
    const answers = [
      'Allowed: no rule is broken.\nConfidence: 0.85',
      '{"verdict":"remove","confidence":0.6}',
      'Allowed.',
    ];
    const confidences = [];
    for (const answer of answers) {
      const task = await api.createTask({ agentId: agent.id, title: 'review', input: { script: [{ answer }] } });
      const done = await api.waitForTask(task.id);
      assert.equal(done.status, 'completed');
      const complete = done.reasoningTrace.find((d: any) => d.decisionType === 'complete');
      confidences.push(complete.confidence);
    }
    assert.deepEqual(confidences, [0.85, 0.6, null]);
  });

  it('GET /api/v1/approvals lists pending requests unless status says otherwise', async () => {
    const api = await freshOrg();
    const agent = await api.createAgent({ name: 'Drafter', objective: 'Draft', type: 'content' });
    const script = (value: string) => [
      { call: 'memory_write', args: { key: 'draft', op: 'set', value } },
      { answer: 'stored' },
    ];
    const first = await api.createTask({ agentId: agent.id, title: 'draft one', input: { script: script('a') } });
    const firstApproval = await waitFor(
      async () => (await api.get(`/api/v1/approvals?taskId=${first.id}`)).body.approvals[0],
      'the first approval',
    );
    assert.equal((await api.post(`/api/v1/approvals/${firstApproval.id}/approve`)).status, 200);
    assert.equal((await api.waitForTask(first.id)).status, 'completed');
    const second = await api.createTask({ agentId: agent.id, title: 'draft two', input: { script: script('b') } });
    await waitFor(
      async () => (await api.get(`/api/v1/approvals?taskId=${second.id}`)).body.approvals[0],
      'the second approval',
    );

    const byDefault = (await api.get(`/api/v1/approvals?agentId=${agent.id}`)).body.approvals;
    assert.deepEqual(
      byDefault.map((a: any) => [a.taskId, a.status]),
      [[second.id, 'pending']],
    );
    const all = (await api.get(`/api/v1/approvals?agentId=${agent.id}&status=all`)).body.approvals;
    assert.deepEqual(all.map((a: any) => a.status).sort(), ['approved', 'pending']);
    const approved = (await api.get(`/api/v1/approvals?agentId=${agent.id}&status=approved`)).body.approvals;
    assert.deepEqual(
      approved.map((a: any) => a.taskId),
      [first.id],
    );
    assert.equal((await api.get('/api/v1/approvals?status=sometimes')).status, 400);
  });

  it('LOG_LEVEL accepts any case and still refuses unknown levels', () => {
    assert.equal(loadConfig({ LOG_LEVEL: 'INFO' }).LOG_LEVEL, 'info');
    assert.equal(loadConfig({ LOG_LEVEL: 'Debug' }).LOG_LEVEL, 'debug');
    assert.equal(loadConfig({}).LOG_LEVEL, 'info');
    assert.throws(() => loadConfig({ LOG_LEVEL: 'LOUD' }), /LOG_LEVEL/);
  });
});
