import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startApi, testConfig, type TestStack } from './helpers/stack';

/** Client mistakes get a 4xx with a JSON body that says what is wrong; nothing here needs a worker. */
describe('API errors', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startApi(testConfig());
  });
  after(async () => stack?.stop());

  const expectError = (res: { status: number; body: any }, status: number, pattern: RegExp) => {
    assert.equal(res.status, status, JSON.stringify(res.body));
    assert.equal(typeof res.body.error.code, 'string');
    assert.match(res.body.error.message, pattern);
  };

  it('rejects malformed JSON with 400', async () => {
    expectError(
      await stack.api.request('POST', '/api/v1/agents', undefined, { raw: '{"name": "x",' }),
      400,
      /malformed JSON/,
    );
  });

  it('rejects invalid fields with the zod issues', async () => {
    const res = await stack.api.post('/api/v1/agents', {
      name: '',
      objective: 'x',
      priority: 11,
      autonomy: 'yolo',
      extra: 1,
    });
    expectError(res, 400, /invalid body/);
    const paths = res.body.error.details.issues.map((i: { path: string }) => i.path);
    for (const field of ['name', 'priority', 'autonomy', '(root)'])
      assert.ok(paths.includes(field), `issue for ${field}: ${paths}`);
  });

  it('rejects a missing body and wrong types', async () => {
    expectError(await stack.api.post('/api/v1/agents'), 400, /name/);
    expectError(await stack.api.post('/api/v1/agents', ['not', 'an', 'object']), 400, /invalid body/);
    expectError(
      await stack.api.post('/api/v1/tasks', { agentId: 'not-a-uuid', title: 5 }),
      400,
      /agentId.*title|title.*agentId/,
    );
    expectError(await stack.api.get('/api/v1/tasks?status=done'), 400, /status/);
    expectError(await stack.api.get('/api/v1/agents?limit=-1'), 400, /limit/);
    expectError(await stack.api.patch(`/api/v1/agents/${randomUUID()}`, {}), 404, /no agent/);
  });

  it('answers 404 for unknown and malformed ids and routes', async () => {
    expectError(await stack.api.get(`/api/v1/agents/${randomUUID()}`), 404, /no agent/);
    expectError(await stack.api.get('/api/v1/agents/../../etc/passwd'), 404, /no/);
    expectError(await stack.api.get("/api/v1/tasks/1'; DROP TABLE tasks;--"), 404, /no task/);
    expectError(await stack.api.post(`/api/v1/agents/${randomUUID()}/pause`), 404, /no agent/);
    expectError(await stack.api.post(`/api/v1/tasks/${randomUUID()}/cancel`), 404, /no task/);
    expectError(await stack.api.post('/api/v1/tasks', { agentId: randomUUID(), title: 'orphan' }), 404, /no agent/);
    expectError(await stack.api.get('/api/v1/nothing'), 404, /no route/);
  });

  it('rejects oversized bodies with 413', async () => {
    const res = await stack.api.post('/api/v1/agents', { name: 'big', objective: 'x'.repeat(300_000) });
    expectError(res, 413, /too large/);
  });

  it('reports health of Temporal and Postgres', async () => {
    const res = await stack.api.get('/health');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.checks, { postgres: 'ok', temporal: 'ok' });
    assert.ok(res.headers.get('x-request-id'));
  });
});
