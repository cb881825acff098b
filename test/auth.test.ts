import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createApiKey, revokeApiKey } from '../lib/api-keys';
import {
  ApiClient,
  startApi,
  startWorker,
  testConfig,
  waitFor,
  type ApiResponse,
  type TestStack,
} from './helpers/stack';

/** The resources of the owning organisation that the rows below address. */
interface Ids {
  agent: string;
  task: string;
  approval: string;
  chatAgent: string;
  session: string;
  crew: string;
  reminder: string;
  meta: string;
  /** An agent of the other organisation (for routes that combine ids). */
  strangerAgent: string;
}

interface Route {
  name: string;
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  path(ids: Ids): string;
  body?(ids: Ids): unknown;
  /** What the owner gets on the same call (run in table order after the stranger's attempts); none: stranger-only row. */
  owner?: number[];
  /** An unknown id is valid here (a client may choose a new chat session id), so only the 404 is compared. */
  unknownIdIsNew?: boolean;
}

/**
 * Every route that addresses a resource, one row each. A new resource (crews, reminders) adds its rows
 * here; the test proves the other organisation gets exactly the 404 an unknown id gets, and the owner
 * does not. Rows run for the owner in this order, so transitions come last.
 */
const ROUTES: Route[] = [
  { name: 'read an agent', method: 'GET', path: (i) => `/api/v1/agents/${i.agent}`, owner: [200] },
  { name: 'read a task', method: 'GET', path: (i) => `/api/v1/tasks/${i.task}`, owner: [200] },
  { name: 'read an approval', method: 'GET', path: (i) => `/api/v1/approvals/${i.approval}`, owner: [200] },
  { name: 'read a chat session', method: 'GET', path: (i) => `/api/v1/chat/${i.session}`, owner: [200] },
  { name: 'read a crew', method: 'GET', path: (i) => `/api/v1/crews/${i.crew}`, owner: [200] },
  { name: 'read a meta run', method: 'GET', path: (i) => `/api/v1/meta/${i.meta}`, owner: [200] },
  {
    name: "list an agent's reminders",
    method: 'GET',
    path: (i) => `/api/v1/agents/${i.agent}/reminders`,
    owner: [200],
  },
  {
    name: 'change an agent (PATCH)',
    method: 'PATCH',
    path: (i) => `/api/v1/agents/${i.agent}`,
    body: () => ({ priority: 3 }),
    owner: [200],
  },
  { name: 'pause an agent', method: 'POST', path: (i) => `/api/v1/agents/${i.agent}/pause`, owner: [200] },
  { name: 'resume an agent', method: 'POST', path: (i) => `/api/v1/agents/${i.agent}/resume`, owner: [200] },
  {
    name: 'submit a task to an agent',
    method: 'POST',
    path: () => '/api/v1/tasks',
    body: (i) => ({ agentId: i.agent, title: 'intrude' }),
    owner: [201],
  },
  {
    name: 'chat with an agent',
    method: 'POST',
    path: () => '/api/v1/chat',
    body: (i) => ({ agentId: i.chatAgent, message: 'hello', stream: false }),
    owner: [200],
  },
  {
    name: 'continue a chat session with an own agent',
    method: 'POST',
    path: () => '/api/v1/chat',
    body: (i) => ({ agentId: i.strangerAgent, sessionId: i.session, message: 'what did they say?', stream: false }),
    unknownIdIsNew: true,
  },
  { name: 'start a crew', method: 'POST', path: (i) => `/api/v1/crews/${i.crew}/start`, owner: [200] },
  {
    name: 'message a crew',
    method: 'POST',
    path: (i) => `/api/v1/crews/${i.crew}/messages`,
    body: () => ({ type: 'request', content: 'stop working' }),
    owner: [202],
  },
  { name: 'stop a crew', method: 'POST', path: (i) => `/api/v1/crews/${i.crew}/stop`, owner: [200] },
  {
    name: 'give an agent a reminder',
    method: 'POST',
    path: (i) => `/api/v1/agents/${i.agent}/reminders`,
    body: () => ({ title: 'intrude', schedule: { every: '1m' } }),
    owner: [201],
  },
  {
    name: "delete an agent's reminder",
    method: 'DELETE',
    path: (i) => `/api/v1/agents/${i.agent}/reminders/${i.reminder}`,
    owner: [204],
  },
  {
    name: 'approve a request',
    method: 'POST',
    path: (i) => `/api/v1/approvals/${i.approval}/approve`,
    body: () => ({ decidedBy: 'mallory' }),
    owner: [200],
  },
  {
    name: 'reject a request',
    method: 'POST',
    path: (i) => `/api/v1/approvals/${i.approval}/reject`,
    body: () => ({ reason: 'no' }),
    owner: [409],
  },
  { name: 'cancel a task', method: 'POST', path: (i) => `/api/v1/tasks/${i.task}/cancel`, owner: [200, 409] },
  { name: 'archive an agent', method: 'POST', path: (i) => `/api/v1/agents/${i.agent}/archive`, owner: [200] },
];

/** Lists must not show another org's rows, whatever the filter. */
const LISTS: { name: string; path(ids: Ids): string; items: string; owned(ids: Ids): string }[] = [
  { name: 'agents', path: () => '/api/v1/agents', items: 'agents', owned: (i) => i.agent },
  { name: 'agents by status', path: () => '/api/v1/agents?status=IDLE', items: 'agents', owned: (i) => i.chatAgent },
  { name: 'tasks', path: () => '/api/v1/tasks', items: 'tasks', owned: (i) => i.task },
  { name: 'tasks of an agent', path: (i) => `/api/v1/tasks?agentId=${i.agent}`, items: 'tasks', owned: (i) => i.task },
  { name: 'approvals', path: () => '/api/v1/approvals', items: 'approvals', owned: (i) => i.approval },
  {
    name: 'approvals of a task',
    path: (i) => `/api/v1/approvals?taskId=${i.task}`,
    items: 'approvals',
    owned: (i) => i.approval,
  },
  { name: 'crews', path: () => '/api/v1/crews', items: 'crews', owned: (i) => i.crew },
  { name: 'crews by status', path: () => '/api/v1/crews?status=idle', items: 'crews', owned: (i) => i.crew },
  { name: 'meta runs', path: () => '/api/v1/meta', items: 'runs', owned: (i) => i.meta },
];

describe('API keys and organisation isolation', () => {
  let stack: TestStack;
  let worker: { stop(): Promise<void> };
  let owner: ApiClient;
  let stranger: ApiClient;
  const strangerOrg = `other-${randomUUID().slice(0, 8)}`;
  let ids: Ids;

  before(async () => {
    const config = testConfig({ META_AGENT_ENABLED: 'true' });
    stack = await startApi(config);
    worker = await startWorker(config);
    owner = stack.api;
    stranger = await stack.clientForOrg(strangerOrg);

    const agent = await owner.createAgent({
      name: 'Careful',
      objective: 'Ask first',
      autonomy: 'copilot',
      allowedTools: ['memory_write'],
    });
    const chatAgent = await owner.createAgent({ name: 'Talker', objective: 'Chat' });
    const task = await owner.createTask({
      agentId: agent.id,
      title: 'write with approval',
      input: { script: [{ call: 'memory_write', args: { key: 'k', value: 'v' } }, { answer: 'written' }] },
    });
    const approval = await waitFor(
      async () => (await owner.get(`/api/v1/approvals?status=pending&taskId=${task.id}`)).body.approvals[0],
      'approval',
    );
    const chat = await owner.post('/api/v1/chat', { agentId: chatAgent.id, message: 'my secret plan', stream: false });
    assert.equal(chat.status, 200, JSON.stringify(chat.body));
    // The crew's one member works slowly, so the crew still runs when the owner messages and stops it.
    const member = await owner.createAgent({ name: 'Crew member', objective: 'Work slowly' });
    const crew = await owner.post('/api/v1/crews', {
      name: 'Private crew',
      goal: 'Keep to ourselves',
      process: 'sequential',
      members: [{ agentId: member.id, input: { script: [{ answer: 'late', delayMs: 30_000 }] } }],
    });
    assert.equal(crew.status, 201, JSON.stringify(crew.body));
    const reminder = await owner.post(`/api/v1/agents/${agent.id}/reminders`, {
      title: 'daily review',
      schedule: { every: '1d' },
    });
    assert.equal(reminder.status, 201, JSON.stringify(reminder.body));
    const meta = await owner.post('/api/v1/meta', { objective: 'Plan our secret launch', maxAgents: 1 });
    assert.equal(meta.status, 201, JSON.stringify(meta.body));
    const strangerAgent = await stranger.createAgent({ name: 'Mallory', objective: 'Snoop' });
    ids = {
      agent: agent.id,
      task: task.id,
      approval: approval.id,
      chatAgent: chatAgent.id,
      session: chat.body.sessionId,
      crew: crew.body.id,
      reminder: reminder.body.id,
      meta: meta.body.id,
      strangerAgent: strangerAgent.id,
    };
  });
  after(async () => {
    await worker?.stop();
    await stack?.stop();
  });

  const call = (client: ApiClient, route: Route, i: Ids) =>
    client.request(route.method, route.path(i), route.body?.(i));
  const withUnknownIds = (i: Ids): Ids => ({
    ...i,
    agent: randomUUID(),
    task: randomUUID(),
    approval: randomUUID(),
    chatAgent: randomUUID(),
    session: randomUUID(),
    crew: randomUUID(),
    reminder: randomUUID(),
    meta: randomUUID(),
  });
  /** The error with every id of `i` replaced by a placeholder, to compare with the unknown-id answer. */
  const shape = (res: ApiResponse, i: Ids) => {
    let message: string = res.body?.error?.message ?? '';
    for (const id of Object.values(i)) message = message.replaceAll(id, '<id>');
    return { status: res.status, code: res.body?.error?.code, message };
  };

  it('requires an API key on every /api/v1 route, with a JSON 401 that says what to send', async () => {
    const anonymous = new ApiClient(owner.baseUrl);
    for (const route of ROUTES) {
      const res = await call(anonymous, route, ids);
      assert.equal(res.status, 401, `${route.name}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'unauthorized');
      assert.match(res.body.error.message, /Authorization: Bearer <key>/);
    }
    assert.equal((await anonymous.get('/api/v1/agents')).status, 401);
    assert.equal((await anonymous.get('/api/v1/no-such-route')).status, 401);
    const bad = (authorization: string) =>
      anonymous.request('GET', '/api/v1/agents', undefined, { headers: { authorization } });
    assert.match((await bad('Basic dXNlcjpwdw==')).body.error.message, /malformed Authorization header/);
    assert.match((await bad('Bearer tao_not-a-real-key')).body.error.message, /invalid or revoked API key/);
    assert.match((await bad(`Bearer ${owner.apiKey}x`)).body.error.message, /invalid or revoked/);
    assert.equal((await bad(`Bearer ${owner.apiKey}`)).status, 200);
    assert.equal((await bad(`bearer   ${owner.apiKey}`)).status, 200, 'the scheme is case-insensitive');
    // Outside the API key: health (for probes).
    assert.equal((await anonymous.get('/health')).status, 200);
  });

  it('a revoked key stops working at once; keys are stored hashed', async () => {
    const { key, record } = await createApiKey(stack.db, 'revoke-me', 'temp');
    const client = new ApiClient(owner.baseUrl, key);
    assert.equal((await client.get('/api/v1/agents')).status, 200);
    const { rows } = await stack.db.query('SELECT key_hash, prefix FROM api_keys WHERE id = $1', [record.id]);
    assert.notEqual(rows[0].key_hash, key);
    assert.ok(!rows[0].key_hash.includes(key.slice(4, 20)), 'no part of the key is stored beyond the display prefix');
    assert.ok(key.startsWith(rows[0].prefix) && rows[0].prefix.length <= 10);
    assert.equal(await revokeApiKey(stack.db, record.id), true);
    assert.equal((await client.get('/api/v1/agents')).status, 401);
  });

  it('another organisation gets the same 404 as for an unknown id on every route, and changes nothing', async () => {
    for (const route of ROUTES) {
      const res = await call(stranger, route, ids);
      assert.equal(res.status, 404, `${route.name}: ${res.status} ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'not_found');
      if (!route.unknownIdIsNew) {
        const unknownIds = withUnknownIds(ids);
        const unknown = await call(stranger, route, unknownIds);
        assert.deepEqual(
          shape(res, ids),
          shape(unknown, unknownIds),
          `${route.name}: indistinguishable from an unknown id`,
        );
      }
      assert.ok(!JSON.stringify(res.body).includes(stack.config.DEFAULT_ORG_ID + '"'), `${route.name}: no org named`);
    }
    // Nothing changed: the agent runs unpaused at its priority, the request is pending, the task waits for it.
    const agent = (await owner.get(`/api/v1/agents/${ids.agent}`)).body;
    assert.notEqual(agent.status, 'ARCHIVED');
    assert.notEqual(agent.status, 'PAUSED');
    assert.notEqual(agent.priority, 3);
    const approval = (await owner.get(`/api/v1/approvals/${ids.approval}`)).body;
    assert.equal(approval.status, 'pending');
    assert.equal((await owner.get(`/api/v1/tasks/${ids.task}`)).body.status, 'awaiting_approval');
    const tasks = (await owner.get(`/api/v1/tasks?agentId=${ids.agent}`)).body.tasks;
    assert.deepEqual(
      tasks.map((t: { id: string }) => t.id),
      [ids.task],
      'no task was submitted by the stranger',
    );
    const history = (await owner.get(`/api/v1/chat/${ids.session}`)).body.messages;
    assert.equal(history.length, 2, 'the session holds only the owner turn');
    const crew = (await owner.get(`/api/v1/crews/${ids.crew}`)).body;
    assert.equal(crew.status, 'idle', 'the crew was not started');
    assert.deepEqual(crew.messages, [], 'no message reached the crew');
    const reminders = (await owner.get(`/api/v1/agents/${ids.agent}/reminders`)).body.reminders;
    assert.deepEqual(
      reminders.map((r: { id: string; status: string }) => [r.id, r.status]),
      [[ids.reminder, 'active']],
      'no reminder added or removed',
    );
  });

  it("governance shows each organisation its own usage, not another's", async () => {
    const mine = await owner.get('/api/v1/governance');
    assert.equal(mine.status, 200);
    assert.ok(mine.body.usage.tokens.usedByOrg > 0, 'the owner used tokens (its chat turn)');
    const theirs = await stranger.get('/api/v1/governance');
    assert.equal(theirs.status, 200);
    assert.equal(theirs.body.usage.tokens.usedByOrg, 0, 'the stranger ran nothing');
    assert.equal(theirs.body.usage.priority.scored, 0, "no priority score of the owner's tasks");
  });

  it('lists show only the caller organisation', async () => {
    for (const list of LISTS) {
      const mine = await owner.get(list.path(ids));
      assert.equal(mine.status, 200);
      assert.ok(
        mine.body[list.items].some((r: { id: string }) => r.id === list.owned(ids)),
        `owner sees its ${list.name}`,
      );
      const theirs = await stranger.get(list.path(ids));
      assert.equal(theirs.status, 200);
      const leaked = theirs.body[list.items].filter((r: { orgId: string }) => r.orgId !== strangerOrg);
      assert.deepEqual(leaked, [], `${list.name}: nothing of another org`);
    }
  });

  it('the owner can do everything the stranger could not (the routes work)', async () => {
    for (const route of ROUTES.filter((r) => r.owner)) {
      const res = await call(owner, route, ids);
      assert.ok(route.owner!.includes(res.status), `${route.name}: ${res.status} ${JSON.stringify(res.body)}`);
    }
  });
});

describe('API_KEY, rate limits, security headers and the request time limit', () => {
  const envKey = `env-key-${randomUUID()}`;
  let stack: TestStack;

  before(async () => {
    // No worker: an agent's creation waits for one, which the time limit cuts off.
    stack = await startApi(
      testConfig({ API_KEY: envKey, API_RATE_LIMIT_PER_MINUTE: '5', API_REQUEST_TIMEOUT_SECONDS: '1' }),
    );
  });
  after(async () => stack?.stop());

  it('API_KEY is a key of the default organisation', async () => {
    const viaEnv = new ApiClient(stack.api.baseUrl, envKey);
    const res = await viaEnv.get('/api/v1/agents?limit=1');
    assert.equal(res.status, 200);
  });

  it('limits requests per key with 429, Retry-After and a JSON error; other keys are unaffected', async () => {
    const client = await stack.clientForOrg('limited');
    const statuses: number[] = [];
    let limited: ApiResponse | undefined;
    for (let n = 0; n < 7; n++) {
      const res = await client.get('/api/v1/tasks?limit=1');
      statuses.push(res.status);
      if (res.status === 429) limited ??= res;
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429]);
    assert.equal(limited!.body.error.code, 'rate_limited');
    assert.match(limited!.body.error.message, /5 requests per minute per API key/);
    assert.ok(Number(limited!.headers.get('retry-after')) > 0);
    const other = await stack.clientForOrg('limited');
    assert.equal((await other.get('/api/v1/tasks?limit=1')).status, 200, 'a second key has its own budget');
  });

  it('sends security headers', async () => {
    const client = await stack.clientForOrg('headers');
    for (const res of [
      await client.get('/api/v1/agents'),
      await client.get('/health'),
      await client.get('/api/v1/nope'),
    ]) {
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'self'/);
      assert.equal(res.headers.get('x-frame-options'), 'SAMEORIGIN');
      assert.ok(res.headers.get('strict-transport-security'));
      assert.equal(res.headers.get('x-powered-by'), null);
    }
  });

  it('answers 503 with a JSON error when a request outlives the time limit', async () => {
    const client = await stack.clientForOrg('slow');
    const started = Date.now();
    const res = await client.post('/api/v1/agents', { name: 'Waits for a worker', objective: 'never starts' });
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'request_timeout');
    assert.match(res.body.error.message, /did not finish within 1 s; .* read the resource before retrying/);
    assert.ok(Date.now() - started < 10_000);
  });
});
