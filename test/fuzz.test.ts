import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { generateKey } from '../lib/codec';
import { ApiClient, startApi, startWorker, testConfig, type ApiResponse, type TestStack } from './helpers/stack';

/**
 * Hostile input over every endpoint: malformed JSON, wrong types, missing and unknown fields, oversized
 * bodies, deep nesting, unicode and control characters, SQL injection, unknown and malformed ids, path
 * traversal, odd content types and query strings, sent with the fixture's key, another organisation's,
 * a malformed one or none. Every answer must be below 500 and every error a JSON body with a code and a
 * message; without a valid key a protected route answers 401; a JSON body holding a NUL character or a
 * lone UTF-16 surrogate answers 400 invalid_input; afterwards the API and the worker still work.
 */

interface Endpoint {
  method: string;
  /** `:id` is replaced by a generated id, `:agent` by the fixture agent's id. */
  path: string;
  /** Field names the route knows, so generated bodies hit real validation paths. */
  fields?: string[];
  query?: string[];
}

const AGENT_FIELDS = [
  'name',
  'objective',
  'type',
  'capabilities',
  'autonomy',
  'priority',
  'allowedTools',
  'systemPrompt',
  'provider',
  'model',
  'fallbackProviders',
  'mcpServers',
  'approvalRequiredTools',
  'approvalTimeoutHours',
  'onApprovalTimeout',
  'notify',
];
const ENDPOINTS: Endpoint[] = [
  { method: 'GET', path: '/api/v1/agents', query: ['status', 'type', 'limit', 'offset'] },
  { method: 'POST', path: '/api/v1/agents', fields: AGENT_FIELDS },
  { method: 'GET', path: '/api/v1/agents/:id' },
  { method: 'PATCH', path: '/api/v1/agents/:id', fields: AGENT_FIELDS },
  { method: 'POST', path: '/api/v1/agents/:id/pause', fields: [] },
  { method: 'POST', path: '/api/v1/agents/:id/resume', fields: [] },
  { method: 'POST', path: '/api/v1/agents/:id/archive', fields: [] },
  { method: 'POST', path: '/api/v1/tasks', fields: ['agentId', 'title', 'taskType', 'input', 'priority'] },
  { method: 'GET', path: '/api/v1/tasks', query: ['agentId', 'status', 'limit', 'offset'] },
  { method: 'GET', path: '/api/v1/tasks/:id' },
  { method: 'POST', path: '/api/v1/tasks/:id/cancel', fields: ['reason'] },
  { method: 'GET', path: '/api/v1/approvals', query: ['status', 'agentId', 'taskId', 'limit', 'offset'] },
  { method: 'GET', path: '/api/v1/approvals/:id' },
  { method: 'POST', path: '/api/v1/approvals/:id/approve', fields: ['editedAction', 'reason', 'decidedBy'] },
  { method: 'POST', path: '/api/v1/approvals/:id/reject', fields: ['reason', 'decidedBy'] },
  { method: 'POST', path: '/api/v1/chat', fields: ['message', 'sessionId', 'agentId', 'agentType', 'stream'] },
  { method: 'GET', path: '/api/v1/chat/:id' },
  { method: 'POST', path: '/api/v1/crews', fields: ['name', 'goal', 'process', 'members', 'assignment', 'input'] },
  { method: 'GET', path: '/api/v1/crews', query: ['status', 'limit', 'offset'] },
  { method: 'GET', path: '/api/v1/crews/:id' },
  { method: 'POST', path: '/api/v1/crews/:id/start', fields: [] },
  { method: 'POST', path: '/api/v1/crews/:id/stop', fields: [] },
  {
    method: 'POST',
    path: '/api/v1/crews/:id/messages',
    fields: ['fromAgentId', 'toAgentId', 'type', 'content', 'messageId'],
  },
  {
    method: 'POST',
    path: '/api/v1/agents/:id/reminders',
    fields: ['title', 'schedule', 'taskType', 'input', 'priority'],
  },
  { method: 'GET', path: '/api/v1/agents/:id/reminders' },
  { method: 'GET', path: '/api/v1/agents/:agent/reminders/:id' },
  { method: 'DELETE', path: '/api/v1/agents/:agent/reminders/:id' },
  { method: 'GET', path: '/api/v1/governance' },
  { method: 'POST', path: '/api/v1/meta', fields: ['objective', 'maxAgents', 'name'] },
  { method: 'GET', path: '/api/v1/meta', query: ['status', 'limit', 'offset'] },
  { method: 'GET', path: '/api/v1/meta/:id' },
  // Outside /api/v1, with keys of their own: /metrics (operators and METRICS_TOKEN), the codec server.
  { method: 'GET', path: '/metrics' },
  { method: 'POST', path: '/codec/encode', fields: ['payloads'] },
  { method: 'POST', path: '/codec/decode', fields: ['payloads'] },
  { method: 'POST', path: '/codec/:id/decode', fields: ['payloads'] },
];

/** Routes that answer without a key: the OpenAPI document, and the codec's CORS preflight. */
const needsKey = (method: string, pathname: string) =>
  /^\/api\/v1(\/|$)/i.test(pathname)
    ? !/^\/api\/v1\/openapi\.json\/?$/i.test(pathname) || method !== 'GET'
    : /^\/codec(\/|$)/i.test(pathname)
      ? method !== 'OPTIONS'
      : /^\/metrics\/?$/i.test(pathname) && method === 'GET';

/** Whether a JSON value holds a string (or key) the API must refuse: a NUL character or a lone surrogate. */
const unstorable = (value: unknown): boolean =>
  typeof value === 'string'
    ? value.includes('\u0000') || /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(value)
    : value !== null &&
      typeof value === 'object' &&
      Object.entries(value).some(([k, v]) => unstorable(k) || unstorable(v));

const SQL_INJECTION = [
  "' OR '1'='1",
  '1; DROP TABLE agents;--',
  '" OR 1=1 --',
  "'); DELETE FROM tasks; --",
  "%' UNION SELECT key_hash FROM api_keys --",
  '$1',
  '\\x00',
];
const TRAVERSAL = [
  '../../etc/passwd',
  '..%2F..%2Fetc%2Fpasswd',
  '%2e%2e%2f%2e%2e%2fetc',
  '....//....//etc',
  '..\\..\\windows\\win.ini',
  '%00',
  '/',
];
const ODD_STRINGS = [
  '\u0000',
  'a\u0000b',
  '\u202egnp.exe',
  '\ud800',
  '\udfff\ud800',
  '\u0007\u001b[31m',
  '\r\n\r\nHTTP/1.1 200 OK',
  '🤖'.repeat(50),
  'x'.repeat(5000),
  '',
  ' ',
  'null',
  '{}',
  '1e309',
  '-0',
  'NaN',
  '__proto__',
  'constructor',
];

/** encodeURIComponent, or every UTF-8 byte percent-encoded for strings it refuses (lone surrogates). */
const encode = (s: string) => {
  try {
    return encodeURIComponent(s);
  } catch {
    return [...Buffer.from(s)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  }
};

const nastyString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.constantFrom(...SQL_INJECTION, ...TRAVERSAL, ...ODD_STRINGS),
);

describe('fuzzing every endpoint with hostile input', () => {
  let stack: TestStack;
  let worker: { stop(): Promise<void> };
  let agentId: string;
  let taskId: string;
  let approvalId: string;
  let crewId: string;
  let reminderId: string;
  let metaId: string;
  let anonymous: ApiClient;
  let otherOrg: ApiClient;
  const seen = new Map<string, number>();

  before(async () => {
    // With a payload key, so the codec server (/codec) is there to be fuzzed too.
    const config = testConfig({ META_AGENT_ENABLED: 'true', PAYLOAD_ENCRYPTION_KEY: generateKey() });
    stack = await startApi(config);
    worker = await startWorker(config);
    anonymous = new ApiClient(stack.api.baseUrl);
    otherOrg = await stack.clientForOrg(`fuzz-other-${randomUUID().slice(0, 8)}`);
    const agent = await stack.api.createAgent({
      name: 'Fuzz target',
      objective: 'Receive odd input',
      autonomy: 'copilot',
      allowedTools: ['memory_write'],
    });
    agentId = agent.id;
    const task = await stack.api.createTask({
      agentId,
      title: 'wait',
      input: { script: [{ call: 'memory_write', args: { key: 'k', value: 1 } }, { answer: 'ok' }] },
    });
    taskId = task.id;
    for (let i = 0; i < 100 && !approvalId; i++) {
      approvalId = (await stack.api.get(`/api/v1/approvals?taskId=${taskId}`)).body.approvals[0]?.id;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(approvalId, 'an approval to aim at');
    const member = await stack.api.createAgent({ name: 'Fuzz crew member', objective: 'Work in a crew' });
    const created = await Promise.all([
      stack.api.post('/api/v1/crews', {
        name: 'Fuzz crew',
        goal: 'Receive odd input',
        process: 'sequential',
        members: [member.id],
      }),
      stack.api.post(`/api/v1/agents/${agentId}/reminders`, { title: 'Fuzz reminder', schedule: { every: '1h' } }),
      stack.api.post('/api/v1/meta', { objective: 'Receive odd input', maxAgents: 1 }),
    ]);
    for (const res of created) assert.equal(res.status, 201, JSON.stringify(res.body));
    [crewId, reminderId, metaId] = created.map((res) => res.body.id);
  });
  after(async () => {
    await worker?.stop();
    await stack?.stop();
    console.error(`fuzz: status counts ${JSON.stringify(Object.fromEntries([...seen].sort()))}`);
  });

  /** Ids: real ones (the requests may act on them), unknown, malformed, hostile. */
  const idArb = () =>
    fc.oneof(
      fc.constantFrom(agentId, taskId, approvalId, crewId, reminderId, metaId),
      fc.uuid(),
      nastyString.filter((s) => s.length > 0),
      fc.constantFrom(
        '00000000-0000-0000-0000-000000000000',
        'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF',
        `${randomUUID()}x`,
        randomUUID().toUpperCase(),
      ),
    );

  const deepJson = fc
    .integer({ min: 10, max: 30_000 })
    .chain((depth) =>
      fc.constantFrom('[', '{"a":').map((open) => `${open.repeat(depth)}1${(open === '[' ? ']' : '}').repeat(depth)}`),
    );
  const fieldValue = () =>
    fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      nastyString,
      fc.constantFrom(agentId, taskId, approvalId),
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
    );

  /** A body: raw text (malformed, oversized, deep) or a JSON value shaped more or less like the route's. */
  const bodyArb = (ep: Endpoint) =>
    fc.oneof(
      {
        weight: 4,
        arbitrary: fc
          .dictionary(
            fc.oneof(fc.constantFrom(...(ep.fields?.length ? ep.fields : ['x'])), nastyString),
            fieldValue(),
            { maxKeys: 8 },
          )
          .map((v) => ({ json: v })),
      },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => ({ json: v })) },
      { weight: 1, arbitrary: fc.string({ maxLength: 200 }).map((raw) => ({ raw })) },
      { weight: 1, arbitrary: fc.jsonValue().map((v) => ({ raw: JSON.stringify(v).slice(0, -1) || '{' })) },
      { weight: 1, arbitrary: deepJson.map((raw) => ({ raw })) },
      {
        weight: 1,
        arbitrary: fc
          .integer({ min: 260_000, max: 400_000 })
          .map((n) => ({ raw: JSON.stringify({ name: 'x', objective: 'y'.repeat(n) }) })),
      },
      {
        weight: 1,
        arbitrary: fc.constant({
          raw: '{"name":"a","name":"b","__proto__":{"admin":true},"constructor":{"prototype":{"x":1}}}',
        }),
      },
      // A field, nested or not, holding what Postgres cannot store: refused with 400 invalid_input.
      {
        weight: 1,
        arbitrary: fc
          .tuple(
            fc.constantFrom(...(ep.fields?.length ? ep.fields : ['x'])),
            fc.constantFrom('\u0000', 'a\u0000b', '\ud800', 'x\udfff', '\udfff\ud800'),
            fc.boolean(),
          )
          .map(([field, value, nested]) => ({ json: { [field]: nested ? { input: [value] } : value } })),
      },
    );

  const queryArb = (ep: Endpoint) =>
    fc
      .array(
        fc.tuple(
          fc.oneof(fc.constantFrom(...(ep.query ?? ['x'])), nastyString),
          fc.oneof(nastyString, fc.integer().map(String), fc.constant('99999999999999999999'), fc.constant('-1')),
        ),
        { maxLength: 4 },
      )
      .map((pairs) => (pairs.length ? `?${pairs.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&')}` : ''));

  const requestArb = () =>
    fc.constantFrom(...ENDPOINTS).chain((ep) =>
      fc.record({
        ep: fc.constant(ep),
        method: fc.oneof(
          { weight: 9, arbitrary: fc.constant(ep.method) },
          { weight: 1, arbitrary: fc.constantFrom('PUT', 'DELETE', 'OPTIONS', 'POST', 'PATCH') },
        ),
        id: idArb(),
        encodeId: fc.boolean(),
        suffix: fc.oneof(
          { weight: 9, arbitrary: fc.constant('') },
          { weight: 1, arbitrary: fc.constantFrom('/x', '/../agents', '/%2e%2e/tasks', '//', '/;') },
        ),
        query: queryArb(ep),
        body: fc.option(bodyArb(ep), { nil: undefined, freq: 3 }),
        contentType: fc.constantFrom(
          'application/json',
          'application/json',
          'application/json',
          'text/plain',
          'application/json; charset=utf-16',
          'application/x-www-form-urlencoded',
          'application/json; charset=latin1',
        ),
        auth: fc.oneof(
          { weight: 12, arbitrary: fc.constant<Auth>({ kind: 'own' }) },
          { weight: 1, arbitrary: fc.constant<Auth>({ kind: 'other org' }) },
          { weight: 1, arbitrary: fc.constant<Auth>({ kind: 'none' }) },
          {
            weight: 2,
            arbitrary: fc
              .oneof(
                fc.stringMatching(/^[\x21-\x7e]{0,80}$/).map((key) => `Bearer ${key}`),
                fc.constantFrom(
                  'Bearer',
                  'Bearer ',
                  'bearer  tao_x',
                  'Basic dXNlcjpwYXNz',
                  `Bearer tao_${'A'.repeat(43)}`,
                  `Bearer ${'x'.repeat(201)}`,
                  'Token abc',
                  'Bearer a b',
                ),
              )
              .map((header): Auth => ({ kind: 'malformed', header })),
          },
        ),
      }),
    );

  type Auth = { kind: 'own' | 'other org' | 'none' } | { kind: 'malformed'; header: string };
  type FuzzRequest = ReturnType<typeof requestArb> extends fc.Arbitrary<infer R> ? R : never;

  /** The endpoint's path with this id (and the fixture agent) filled in. */
  const fill = (path: string, id: string) => path.replace(':agent', agentId).replace(':id', id);

  /** Sends the request; answers what was sent (its path and whether a JSON body went with it) and the response. */
  const send = async (
    r: FuzzRequest,
  ): Promise<{ pathname: string; jsonBody?: { value: unknown }; res: ApiResponse } | undefined> => {
    const id = r.encodeId ? encode(r.id) : r.id;
    const path = `${fill(r.ep.path, id)}${r.suffix}${r.query}`;
    let url: URL;
    try {
      url = new URL(path, stack.api.baseUrl);
    } catch {
      return undefined; // Not even a URL: nothing is sent.
    }
    const hasBody = r.body !== undefined && r.method !== 'GET';
    const raw = r.body === undefined ? undefined : 'raw' in r.body ? r.body.raw : JSON.stringify(r.body.json);
    const client = r.auth.kind === 'own' ? stack.api : r.auth.kind === 'other org' ? otherOrg : anonymous;
    const res = await client.request(r.method, `${url.pathname}${url.search}`, undefined, {
      ...(hasBody ? { raw } : {}),
      headers: {
        'content-type': r.contentType,
        ...(r.auth.kind === 'malformed' ? { authorization: r.auth.header } : {}),
      },
    });
    const jsonBody = hasBody && r.body !== undefined && 'json' in r.body ? { value: r.body.json } : undefined;
    return { pathname: url.pathname, jsonBody, res };
  };

  const check = (res: ApiResponse, what: string) => {
    seen.set(String(res.status), (seen.get(String(res.status)) ?? 0) + 1);
    assert.ok(res.status < 500, `${what} → ${res.status} ${JSON.stringify(res.body)?.slice(0, 500)}`);
    const type = res.headers.get('content-type') ?? '';
    if (res.status >= 400) {
      assert.match(type, /application\/json/, `${what}: an error is JSON`);
      assert.equal(typeof res.body?.error?.code, 'string', `${what}: error code`);
      assert.ok(
        typeof res.body.error.message === 'string' && res.body.error.message.length >= 10,
        `${what}: a message a person can act on`,
      );
    } else if (res.status !== 204 && !what.startsWith('OPTIONS')) {
      // (OPTIONS answers Express's Allow listing; /metrics answers Prometheus text.)
      assert.match(
        type,
        /application\/json|text\/event-stream|^text\/plain.*version=0\.0\.4/,
        `${what}: success is JSON (or a chat stream, or metrics)`,
      );
    }
  };

  it('answers every generated request below 500 with a JSON error body', async () => {
    await fc.assert(
      fc.asyncProperty(requestArb(), async (r) => {
        const sent = await send(r);
        if (!sent) return;
        const { pathname, jsonBody, res } = sent;
        const what = `${r.method} ${pathname} (${r.auth.kind}) id=${JSON.stringify(r.id)} query=${r.query} body=${JSON.stringify(r.body)?.slice(0, 200)}`;
        check(res, what);
        const keyless = r.auth.kind === 'none' || r.auth.kind === 'malformed';
        if (keyless && needsKey(r.method, pathname)) assert.equal(res.status, 401, `${what}: no valid key, no access`);
        if (r.auth.kind === 'other org' && /^\/metrics\/?$/.test(pathname) && r.method === 'GET')
          assert.equal(res.status, 401, `${what}: only operators scrape`);
        // A body reaches /api/v1's input checks as JSON with a valid key, on a route behind the key.
        const checked =
          !keyless &&
          jsonBody &&
          r.contentType === 'application/json' &&
          /^\/api\/v1\//i.test(pathname) &&
          needsKey(r.method, pathname);
        if (checked && unstorable(jsonBody.value)) {
          assert.deepEqual(
            [res.status, res.body?.error?.code],
            [400, 'invalid_input'],
            `${what}: NUL and lone surrogates are refused`,
          );
        }
      }),
      // Interrupted is failed: a run slowed down enough to hit the limit must not pass on fewer requests.
      // A normal run of these 400 requests takes seconds, far within the limit on two cores.
      { numRuns: 400, interruptAfterTimeLimit: 8 * 60_000, markInterruptAsFailure: true },
    );
  });

  it('covers each hostile body kind on every endpoint that takes a body', async () => {
    const kinds: Record<string, string> = {
      'malformed JSON': '{"name": "x",',
      'wrong type': '["not", "an", "object"]',
      'bare string': '"just a string"',
      'missing fields': '{}',
      'unknown fields': '{"definitelyNotAField": 1}',
      'deep nesting': `${'['.repeat(5000)}${']'.repeat(5000)}`,
      oversized: JSON.stringify({ objective: 'x'.repeat(300_000) }),
      'NUL and control characters': JSON.stringify({
        name: 'a\u0000b',
        objective: '\u0007\u001b',
        message: '\u0000',
        reason: '\u0000',
        title: '\u0000',
      }),
      'SQL injection': JSON.stringify({
        name: SQL_INJECTION[1],
        objective: SQL_INJECTION[0],
        agentId: SQL_INJECTION[4],
        title: SQL_INJECTION[3],
        reason: SQL_INJECTION[2],
      }),
      'lone surrogates': '{"name":"\\ud800","objective":"\\udfff","message":"\\ud800","title":"\\ud800"}',
    };
    for (const ep of ENDPOINTS.filter((e) => e.fields)) {
      for (const [kind, raw] of Object.entries(kinds)) {
        const fixture = ep.path.includes('approvals')
          ? approvalId
          : ep.path.includes('tasks/')
            ? taskId
            : ep.path.includes('crews/')
              ? crewId
              : agentId;
        const path = fill(ep.path, fixture);
        // Leave the fixtures in place: archiving, cancelling, starting and stopping are exercised with unknown ids.
        const target = /archive|cancel|start|stop/.test(path) ? path.replace(/[0-9a-f-]{36}/, randomUUID()) : path;
        const res = await stack.api.request(ep.method, target, undefined, { raw });
        check(res, `${kind}: ${ep.method} ${target}`);
        if ((kind === 'NUL and control characters' || kind === 'lone surrogates') && target.startsWith('/api/v1/')) {
          assert.deepEqual(
            [res.status, res.body.error.code],
            [400, 'invalid_input'],
            `${kind}: ${ep.method} ${target}`,
          );
        }
      }
    }
  });

  it('covers hostile query strings and ids on every endpoint', async () => {
    const queries = [
      'offset=99999999999999999999',
      'offset=1e400',
      'limit=1e2',
      'limit=0x10',
      'type=%00',
      'status=%00',
      `agentId=${encode(SQL_INJECTION[0]!)}`,
      'taskId=..%2F..%2Fetc',
      'limit=1&limit=2',
      'type[]=a',
      `type=${'x'.repeat(5000)}`,
      'offset=-0',
      `status=${encode('\u202e')}`,
    ];
    const ids = [
      ...SQL_INJECTION,
      ...TRAVERSAL.filter((t) => t !== '/'),
      '\u0000',
      'x'.repeat(3000),
      `${agentId}/../${taskId}`,
    ];
    for (const ep of ENDPOINTS) {
      for (const q of ep.query ? queries : []) {
        const res = await stack.api.request(ep.method, `${ep.path}?${q}`);
        check(res, `${ep.method} ${ep.path}?${q}`);
        if (q.includes('%00'))
          assert.deepEqual(
            [res.status, res.body.error.code],
            [400, 'invalid_input'],
            `${ep.method} ${ep.path}?${q}: NUL is refused`,
          );
      }
      if (!ep.path.includes(':id')) continue;
      for (const id of ids) {
        const path = fill(ep.path, encode(id));
        check(
          await stack.api.request(ep.method, path, ep.method === 'GET' ? undefined : {}),
          `${ep.method} ${path.slice(0, 200)}`,
        );
      }
    }
  });

  it('still serves requests and runs tasks afterwards', async () => {
    const health = await stack.api.get('/health');
    assert.equal(health.status, 200);
    const agent = await stack.api.createAgent({ name: 'After the storm', objective: 'Still works' });
    const done = await stack.api.waitForTask(
      (await stack.api.createTask({ agentId: agent.id, title: 'remember it still works' })).id,
    );
    assert.equal(done.status, 'completed');
  });
});
