import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { routedTaskWorkflowId } from '../contract/definitions';
import { startStack, testConfig, waitFor, type ApiClient, type TestStack } from './helpers/stack';

const BIN = path.resolve(__dirname, '../cli/agentctl.cjs');

/** An offline script that never answers: with MAX_STEPS=3 the task fails at its step limit, on any agent. */
const neverFinishing = { script: Array.from({ length: 6 }, () => ({ call: 'memory_read', args: { key: 'nothing' } })) };
/** An offline script whose one answer takes a while, keeping its agent busy. */
const slow = (ms: number) => ({ script: [{ answer: 'done at last', delayMs: ms }] });

/**
 * Tasks submitted with a route instead of an agent id, through the HTTP API on the real stack: which agent
 * each strategy picks, the refusals, and the retry → reassign → fail path of a routed task that fails.
 */
describe('routed tasks', () => {
  let stack: TestStack;
  before(async () => (stack = await startStack(testConfig({ MAX_STEPS: '3', MAX_RETRIES: '1' }))));
  after(() => stack?.stop());

  /** Each case in an organisation of its own, so no other agent competes for its routes. */
  const freshOrg = () => stack.clientForOrg(`route-${randomUUID().slice(0, 8)}`);
  const agent = (api: ApiClient, name: string, capabilities: string[], extra: Record<string, unknown> = {}) =>
    api.createAgent({ name, objective: `Be the ${name}`, capabilities, ...extra });
  const route = (api: ApiClient, title: string, r: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    api.post('/api/v1/tasks', { title, route: r, ...extra });
  /** Waits for a routed task's route (not only its first attempt) to end. */
  const waitForRoute = (api: ApiClient, taskId: string, timeoutMs = 60_000) =>
    waitFor(
      async () => {
        const res = await api.get(`/api/v1/tasks/${taskId}`);
        return res.body?.routing && res.body.routing.status !== 'routing' ? res.body : undefined;
      },
      `route of task ${taskId} to end`,
      timeoutMs,
    );

  /** Asserts that a response body is what the served OpenAPI document says for this operation and status. */
  const conforms = async (method: string, template: string, status: number, body: unknown) => {
    const docId = 'https://agents.invalid/openapi.json';
    const doc = (await stack.api.get('/api/v1/openapi.json')).body;
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv);
    ajv.addSchema(doc, docId, undefined, false);
    const schema = doc.paths[template][method].responses[String(status)].content['application/json'].schema;
    const validate = ajv.compile(schema.$ref ? { $ref: `${docId}${schema.$ref}` } : schema);
    assert.ok(validate(body), `${method} ${template} ${status}: ${ajv.errorsText(validate.errors)}`);
  };

  it('capability: the agent with every capability, the closest match first; the task records its route', async () => {
    const api = await freshOrg();
    const generalist = await agent(api, 'Generalist', ['writing', 'research', 'law']);
    const writer = await agent(api, 'Writer', ['writing']);
    await agent(api, 'Researcher', ['research']);

    const first = await route(api, 'Draft the note', { capabilities: ['writing'], strategy: 'capability' });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.equal(first.body.agentId, writer.id, 'the specialist, though the generalist was created first');
    assert.deepEqual(first.body.routing.capabilities, ['writing']);
    assert.equal(first.body.routing.strategy, 'capability');
    await conforms('post', '/api/v1/tasks', 201, first.body);

    const both = await route(api, 'Research and write', { capabilities: ['writing', 'research'] });
    assert.equal(both.status, 201, JSON.stringify(both.body));
    assert.equal(both.body.agentId, generalist.id, 'only it has both');

    const done = await waitForRoute(api, first.body.id);
    assert.equal(done.status, 'completed');
    assert.equal(done.routing.status, 'completed');
    assert.equal(done.routing.routedTo.agentId, writer.id);
    assert.equal(done.routing.attempts.length, 1);
    await conforms('get', '/api/v1/tasks/{id}', 200, done);
    const row = await stack.db.query('SELECT route, route_status FROM tasks WHERE id = $1', [first.body.id]);
    assert.deepEqual(row.rows[0].route, { capabilities: ['writing'], strategy: 'capability' });
    assert.equal(row.rows[0].route_status, 'completed');
  });

  it('least_loaded: the agent with the shorter queue', async () => {
    const api = await freshOrg();
    const a = await agent(api, 'Busy', ['support']);
    const b = await agent(api, 'Free', ['support']);
    // Both idle: the tie goes to the agent created first, and keeps it busy.
    const first = await route(
      api,
      'Long ticket',
      { capabilities: ['support'], strategy: 'least_loaded' },
      {
        input: slow(8000),
      },
    );
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.equal(first.body.agentId, a.id);
    const second = await route(api, 'Short ticket', { capabilities: ['support'], strategy: 'least_loaded' });
    assert.equal(second.status, 201, JSON.stringify(second.body));
    assert.equal(second.body.agentId, b.id, 'the first agent has a task in its queue');
    assert.equal((await api.waitForTask(first.body.id)).status, 'completed');
    assert.equal((await api.waitForTask(second.body.id)).status, 'completed');
  });

  it('round_robin: the capable agents in turn; an idempotent repeat takes no turn', async () => {
    const api = await freshOrg();
    const agents = [
      await agent(api, 'One', ['triage']),
      await agent(api, 'Two', ['triage', 'extra']),
      await agent(api, 'Three', ['triage']),
    ];
    await agent(api, 'Outsider', ['other']);
    const picked: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await route(api, `Ticket ${i}`, { capabilities: ['triage'], strategy: 'round_robin' });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      picked.push(res.body.agentId);
    }
    assert.deepEqual(picked, [agents[0].id, agents[1].id, agents[2].id, agents[0].id]);

    // A repeat with the same Idempotency-Key answers the same task and takes no turn.
    const keyed = () =>
      api.request(
        'POST',
        '/api/v1/tasks',
        { title: 'Keyed ticket', route: { capabilities: ['triage'], strategy: 'round_robin' } },
        { headers: { 'idempotency-key': 'triage-ticket-1' } },
      );
    const once = await keyed();
    assert.equal(once.status, 201, JSON.stringify(once.body));
    assert.equal(once.body.agentId, agents[1].id);
    const again = await keyed();
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.id, once.body.id);
    assert.equal(again.body.routing.strategy, 'round_robin');
    const next = await route(api, 'Ticket after', { capabilities: ['triage'], strategy: 'round_robin' });
    assert.equal(next.body.agentId, agents[2].id);
  });

  it('422 naming the capabilities no agent has; paused and archived agents are not chosen', async () => {
    const api = await freshOrg();
    const paused = await agent(api, 'Paused lawyer', ['law']);
    const archived = await agent(api, 'Archived lawyer', ['law']);
    assert.equal((await api.post(`/api/v1/agents/${paused.id}/pause`)).status, 200);
    assert.equal((await api.post(`/api/v1/agents/${archived.id}/archive`)).status, 200);
    for (const capabilities of [['law'], ['law', 'astronomy']]) {
      const res = await route(api, 'Review the contract', { capabilities, strategy: 'capability' });
      assert.equal(res.status, 422, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'no_capable_agent');
      assert.match(res.body.error.message, new RegExp(`\\[${capabilities.join(', ')}\\]`));
      assert.deepEqual(res.body.error.details.capabilities, capabilities);
      await conforms('post', '/api/v1/tasks', 422, res.body);
    }
  });

  it('400 unless exactly one of agentId and route is given, and for a bad route', async () => {
    const api = await freshOrg();
    const a = await agent(api, 'Anyone', ['x']);
    const both = await api.post('/api/v1/tasks', { agentId: a.id, title: 't', route: { capabilities: ['x'] } });
    assert.equal(both.status, 400, JSON.stringify(both.body));
    assert.match(both.body.error.message, /exactly one of agentId and route/);
    const neither = await api.post('/api/v1/tasks', { title: 't' });
    assert.equal(neither.status, 400, JSON.stringify(neither.body));
    assert.match(neither.body.error.message, /exactly one of agentId and route/);
    const badStrategy = await api.post('/api/v1/tasks', { title: 't', route: { strategy: 'random' } });
    assert.equal(badStrategy.status, 400, JSON.stringify(badStrategy.body));
    const badCapabilities = await api.post('/api/v1/tasks', { title: 't', route: { capabilities: 'x' } });
    assert.equal(badCapabilities.status, 400, JSON.stringify(badCapabilities.body));
  });

  it("another organisation's agents are never chosen", async () => {
    const mine = await freshOrg();
    const theirs = await freshOrg();
    const foreign = await agent(theirs, 'Their astronomer', ['astronomy']);
    const refused = await route(mine, 'Find the comet', { capabilities: ['astronomy'] });
    assert.equal(refused.status, 422, JSON.stringify(refused.body));
    const own = await agent(mine, 'My astronomer', ['astronomy']);
    for (const strategy of ['capability', 'least_loaded', 'round_robin']) {
      const res = await route(mine, 'Find the comet', { capabilities: ['astronomy'], strategy });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal(res.body.agentId, own.id);
      assert.notEqual(res.body.agentId, foreign.id);
    }
  });

  it('a failed routed task is reassigned to another capable agent and completes there', async () => {
    const api = await freshOrg();
    // Created first, so the route picks it; its provider has no key here, so every task of it fails (and
    // the failure stops the agent, so the same-agent retry is skipped).
    const broken = await agent(api, 'Broken', ['ops'], { provider: 'anthropic' });
    const steady = await agent(api, 'Steady', ['ops']);
    const res = await route(api, 'Restart the service', { capabilities: ['ops'] });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.agentId, broken.id);

    const done = await waitForRoute(api, res.body.id);
    assert.equal(done.status, 'failed', 'the first attempt itself failed');
    assert.equal(done.routing.status, 'completed', JSON.stringify(done.routing));
    assert.equal(done.routing.routedTo.agentId, steady.id);
    assert.equal(done.routing.routedTo.status, 'completed');
    assert.deepEqual(
      done.routing.attempts.map((t: any) => [t.agentId, t.status, t.attempt]),
      [
        [broken.id, 'failed', 1],
        [steady.id, 'completed', 2],
      ],
    );
    const second = await api.get(`/api/v1/tasks/${done.routing.routedTo.taskId}`);
    assert.equal(second.body.title, 'Restart the service');
    assert.match(second.body.output.answer, /offline/);
  });

  it('fail → retry on the same agent → reassign → fail: the original records every reason', async () => {
    const api = await freshOrg();
    const first = await agent(api, 'First', ['chores']);
    const second = await agent(api, 'Second', ['chores']);
    await agent(api, 'Unrelated', ['gardening']);
    const res = await route(api, 'An endless chore', { capabilities: ['chores'] }, { input: neverFinishing });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.agentId, first.id);

    const done = await waitForRoute(api, res.body.id, 90_000);
    assert.equal(done.status, 'failed');
    assert.equal(done.routing.status, 'failed');
    assert.deepEqual(
      done.routing.attempts.map((t: any) => [t.agentId, t.status, t.attempt]),
      [
        [first.id, 'failed', 1],
        [first.id, 'failed', 2],
        [second.id, 'failed', 3],
      ],
    );
    assert.match(done.error, new RegExp(`attempt 1 on agent ${first.id}: .+; attempt 2 on agent ${first.id}: .+`));
    assert.match(done.error, new RegExp(`attempt 3 on agent ${second.id}: `));
    const result = await stack.client.workflow.getHandle(routedTaskWorkflowId(res.body.id)).result();
    assert.equal(result.status, 'failed');
    assert.equal(result.attempts.length, 3);
  });

  it('a failed route with no other capable agent says so', async () => {
    const api = await freshOrg();
    const only = await agent(api, 'Lonely', ['solo']);
    const res = await route(api, 'Another endless chore', { capabilities: ['solo'] }, { input: neverFinishing });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const done = await waitForRoute(api, res.body.id, 90_000);
    assert.equal(done.routing.status, 'failed');
    assert.deepEqual(
      done.routing.attempts.map((t: any) => t.agentId),
      [only.id, only.id],
    );
    assert.match(done.error, /no other agent has the capabilities \[solo\]/);
  });

  it('agentctl submit routes by --capability and --strategy', async () => {
    const orgId = `route-cli-${randomUUID().slice(0, 8)}`;
    const api = await stack.clientForOrg(orgId);
    await agent(api, 'Cli generalist', ['cli', 'docs']);
    const specialist = await agent(api, 'Cli specialist', ['cli']);
    const cli = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, [BIN, ...args], {
          env: { ...process.env, AGENTCTL_API_URL: api.baseUrl, AGENTCTL_API_KEY: api.apiKey ?? '' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        child.once('error', reject);
        child.once('close', (code) => resolve({ code, stdout, stderr }));
      });
    const routed = await cli([
      '--json',
      'submit',
      'Write the CLI docs',
      '--capability',
      'cli',
      '--strategy',
      'capability',
    ]);
    assert.equal(routed.code, 0, routed.stderr);
    const task = JSON.parse(routed.stdout);
    assert.equal(task.agentId, specialist.id);
    assert.equal(task.routing.strategy, 'capability');

    const text = await cli(['submit', 'Docs and CLI', '--capability', 'cli', '--capability', 'docs']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /submitted task [0-9a-f-]{36} to agent [0-9a-f-]{36}/);

    const refused = await cli(['submit', 'Nobody can', '--capability', 'nothing']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /no enabled agent of this organisation has the capabilities \[nothing\]/);
  });
});
