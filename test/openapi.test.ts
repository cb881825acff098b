import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { documentedOperations } from '../api/openapi';
import { startApi, startWorker, testConfig, waitFor, type ApiResponse, type TestStack } from './helpers/stack';

const DOC_ID = 'https://agents.invalid/openapi.json';

/**
 * Every documented operation is called for real, and each response (status, media type, body) must be
 * what the OpenAPI document served at /api/v1/openapi.json says, checked with ajv (JSON Schema 2020-12).
 */
describe('OpenAPI 3.1 contract', () => {
  let stack: TestStack;
  let worker: { stop(): Promise<void> };
  let doc: any;
  let ajv: Ajv2020;
  const covered = new Set<string>();

  before(async () => {
    const config = testConfig({ META_AGENT_ENABLED: 'true' });
    stack = await startApi(config);
    worker = await startWorker(config);
  });
  after(async () => {
    await worker?.stop();
    await stack?.stop();
  });

  /** Asserts that a real response matches the document for this operation and records it as covered. */
  const conforms = (method: string, template: string, res: ApiResponse, expectedStatus: number) => {
    assert.equal(res.status, expectedStatus, `${method.toUpperCase()} ${template}: ${JSON.stringify(res.body)}`);
    const operation = doc.paths[template.replace(/:(\w+)/g, '{$1}')]?.[method];
    assert.ok(operation, `${method.toUpperCase()} ${template} is documented`);
    const response = operation.responses[String(res.status)];
    assert.ok(response, `${method.toUpperCase()} ${template} documents status ${res.status}`);
    if (res.status === 204) {
      assert.equal(response.content, undefined, `${method.toUpperCase()} ${template} 204 documents no body`);
      assert.equal(res.body, undefined, `${method.toUpperCase()} ${template} 204 sends no body`);
      covered.add(`${method} ${template}`);
      return;
    }
    const mediaType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const media = response.content[mediaType];
    assert.ok(
      media,
      `${method.toUpperCase()} ${template} ${res.status} documents ${mediaType} (has ${Object.keys(response.content)})`,
    );
    const schema = media.schema.$ref ? { $ref: `${DOC_ID}${media.schema.$ref}` } : media.schema;
    const validate = ajv.compile(schema);
    assert.ok(
      validate(res.body),
      `${method.toUpperCase()} ${template} ${res.status}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(res.body).slice(0, 2000)}`,
    );
    if (res.status < 400) covered.add(`${method} ${template}`);
  };

  it('serves an OpenAPI 3.1 document whose schemas all compile', async () => {
    const res = await stack.api.get('/api/v1/openapi.json');
    doc = res.body;
    assert.equal(doc.openapi, '3.1.0');
    assert.equal(doc.jsonSchemaDialect, 'https://json-schema.org/draft/2020-12/schema');
    ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv);
    // The document as one resource, so `#/components/schemas/…` references resolve inside it.
    ajv.addSchema(doc, DOC_ID, undefined, false);
    for (const name of Object.keys(doc.components.schemas))
      ajv.compile({ $ref: `${DOC_ID}#/components/schemas/${name}` });
    conforms('get', '/api/v1/openapi.json', res, 200);
    // Request schemas come from lib/models.ts: the document rejects what the API rejects.
    const createAgent = ajv.compile({ $ref: `${DOC_ID}#/components/schemas/CreateAgentBody` });
    assert.equal(createAgent({ name: 'A', objective: 'B', priority: 7 }), true);
    assert.equal(createAgent({ name: 'A', objective: 'B', priority: 11 }), false);
    assert.equal(createAgent({ name: 'A', objective: 'B', surprise: true }), false);
    assert.ok(
      doc.paths['/api/v1/tasks'].get.parameters.some(
        (p: any) => p.name === 'status' && p.schema.enum.includes('awaiting_approval'),
      ),
    );
  });

  it('health and metrics', async () => {
    conforms('get', '/health', await stack.api.get('/health'), 200);
    const metrics = await fetch(`${stack.api.baseUrl}/metrics`, {
      headers: { authorization: `Bearer ${stack.api.apiKey}` },
    });
    conforms('get', '/metrics', { status: metrics.status, headers: metrics.headers, body: await metrics.text() }, 200);
  });

  it('agents: create, list, read, change, pause, resume, archive, and errors', async () => {
    const created = await stack.api.post('/api/v1/agents', {
      name: 'Contract',
      objective: 'Conform',
      type: 'contract',
    });
    conforms('post', '/api/v1/agents', created, 201);
    const id = created.body.id;
    // The schemas are strict enough to catch a drifted response.
    const agentSchema = ajv.compile({ $ref: `${DOC_ID}#/components/schemas/AgentWithLive` });
    assert.equal(agentSchema({ ...created.body, status: 'SLEEPING' }), false);
    assert.equal(agentSchema({ ...created.body, createdAt: 'yesterday' }), false);
    const { live: _live, ...withoutLive } = created.body;
    assert.equal(agentSchema(withoutLive), false);
    conforms('post', '/api/v1/agents', await stack.api.post('/api/v1/agents', { name: '' }), 400);
    conforms('get', '/api/v1/agents', await stack.api.get('/api/v1/agents?type=contract&limit=5'), 200);
    conforms('get', '/api/v1/agents/:id', await stack.api.get(`/api/v1/agents/${id}`), 200);
    conforms(
      'get',
      '/api/v1/agents/:id',
      await stack.api.get('/api/v1/agents/00000000-0000-4000-8000-000000000000'),
      404,
    );
    conforms(
      'patch',
      '/api/v1/agents/:id',
      await stack.api.patch(`/api/v1/agents/${id}`, {
        priority: 9,
        notify: { type: 'webhook', url: 'https://hooks.example.com/hook' },
      }),
      200,
    );
    conforms('post', '/api/v1/agents/:id/pause', await stack.api.post(`/api/v1/agents/${id}/pause`), 200);
    conforms('post', '/api/v1/agents/:id/resume', await stack.api.post(`/api/v1/agents/${id}/resume`), 200);
    conforms('post', '/api/v1/agents/:id/archive', await stack.api.post(`/api/v1/agents/${id}/archive`), 200);
    conforms('post', '/api/v1/agents/:id/resume', await stack.api.post(`/api/v1/agents/${id}/resume`), 409);
    conforms('get', '/api/v1/agents/:id', await stack.api.get(`/api/v1/agents/${id}`), 200);
  });

  it('messages and topics: an inbox with a message, subscribe, list subscribers, unsubscribe', async () => {
    const sender = await stack.api.createAgent({ name: 'Sender', objective: 'Tell', allowedTools: ['send_message'] });
    const receiver = await stack.api.createAgent({ name: 'Receiver', objective: 'Listen' });
    const script = [{ call: 'send_message', args: { toAgentId: receiver.id, content: 'hello' } }, { answer: 'sent' }];
    await stack.api.waitForTask(
      (await stack.api.createTask({ agentId: sender.id, title: 'tell', input: { script } })).id,
    );
    const inbox = await stack.api.get(`/api/v1/agents/${receiver.id}/messages?direction=in`);
    assert.equal(inbox.body.messages.length, 1);
    conforms('get', '/api/v1/agents/:id/messages', inbox, 200);
    conforms(
      'get',
      '/api/v1/agents/:id/messages',
      await stack.api.get(`/api/v1/agents/${sender.id}/messages?direction=sideways`),
      400,
    );
    const topic = 'contract.news';
    conforms(
      'post',
      '/api/v1/topics/:topic/subscribers',
      await stack.api.post(`/api/v1/topics/${topic}/subscribers`, { agentId: receiver.id }),
      201,
    );
    conforms(
      'get',
      '/api/v1/topics/:topic/subscribers',
      await stack.api.get(`/api/v1/topics/${topic}/subscribers`),
      200,
    );
    const removed = await stack.api.request('DELETE', `/api/v1/topics/${topic}/subscribers/${receiver.id}`);
    conforms('delete', '/api/v1/topics/:topic/subscribers/:agentId', removed, 204);
    conforms(
      'delete',
      '/api/v1/topics/:topic/subscribers/:agentId',
      await stack.api.request('DELETE', `/api/v1/topics/${topic}/subscribers/${receiver.id}`),
      404,
    );
  });

  it('tasks: submit, list, read with a reasoning trace, cancel', async () => {
    const agent = await stack.api.createAgent({ name: 'Tasker', objective: 'Do' });
    const script = [{ call: 'memory_write', args: { key: 'k', op: 'set', value: 1 } }, { answer: 'done' }];
    const submitted = await stack.api.post('/api/v1/tasks', { agentId: agent.id, title: 'write', input: { script } });
    conforms('post', '/api/v1/tasks', submitted, 201);
    await stack.api.waitForTask(submitted.body.id);
    const detail = await stack.api.get(`/api/v1/tasks/${submitted.body.id}`);
    conforms('get', '/api/v1/tasks/:id', detail, 200);
    assert.deepEqual(
      detail.body.reasoningTrace.map((d: any) => d.decisionType),
      ['plan', 'tool_call', 'complete'],
    );
    conforms('get', '/api/v1/tasks', await stack.api.get(`/api/v1/tasks?agentId=${agent.id}`), 200);
    conforms('get', '/api/v1/tasks', await stack.api.get('/api/v1/tasks?status=nonsense'), 400);

    await stack.api.post(`/api/v1/agents/${agent.id}/pause`);
    const queued = await stack.api.createTask({ agentId: agent.id, title: 'never runs' });
    conforms(
      'post',
      '/api/v1/tasks/:id/cancel',
      await stack.api.post(`/api/v1/tasks/${queued.id}/cancel`, { reason: 'not needed' }),
      200,
    );
    conforms('post', '/api/v1/tasks/:id/cancel', await stack.api.post(`/api/v1/tasks/${queued.id}/cancel`, {}), 409);
  });

  it('approvals: list, read, approve, reject', async () => {
    const agent = await stack.api.createAgent({ name: 'Asker', objective: 'Ask', autonomy: 'copilot' });
    const pending = async (key: string) => {
      const task = await stack.api.createTask({
        agentId: agent.id,
        title: `write ${key}`,
        input: { script: [{ call: 'memory_write', args: { key, op: 'set', value: 1 } }] },
      });
      return waitFor(
        async () => (await stack.api.get(`/api/v1/approvals?taskId=${task.id}`)).body.approvals[0],
        'an approval request',
      );
    };
    const first = await pending('a');
    conforms('get', '/api/v1/approvals', await stack.api.get('/api/v1/approvals?status=pending'), 200);
    conforms('get', '/api/v1/approvals/:id', await stack.api.get(`/api/v1/approvals/${first.id}`), 200);
    conforms(
      'post',
      '/api/v1/approvals/:id/approve',
      await stack.api.post(`/api/v1/approvals/${first.id}/approve`, { decidedBy: 'carol' }),
      200,
    );
    const second = await pending('b');
    conforms(
      'post',
      '/api/v1/approvals/:id/reject',
      await stack.api.post(`/api/v1/approvals/${second.id}/reject`, { reason: 'no' }),
      200,
    );
    conforms(
      'post',
      '/api/v1/approvals/:id/approve',
      await stack.api.post(`/api/v1/approvals/${second.id}/approve`, {}),
      409,
    );
  });

  it('chat: a JSON turn, an event stream, the stored history', async () => {
    const agent = await stack.api.createAgent({ name: 'Talker', objective: 'Talk' });
    const turn = await stack.api.post('/api/v1/chat', { agentId: agent.id, message: 'hello there', stream: false });
    conforms('post', '/api/v1/chat', turn, 200);
    const streamed = await fetch(`${stack.api.baseUrl}/api/v1/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.api.apiKey}` },
      body: JSON.stringify({ agentId: agent.id, sessionId: turn.body.sessionId, message: 'and again' }),
    });
    const text = await streamed.text();
    assert.match(text, /^event: session\n/);
    conforms('post', '/api/v1/chat', { status: streamed.status, headers: streamed.headers, body: text }, 200);
    conforms('get', '/api/v1/chat/:sessionId', await stack.api.get(`/api/v1/chat/${turn.body.sessionId}`), 200);
  });

  it('crews: create, list, read, start, message, stop, and errors', async () => {
    const [slow, next] = [
      await stack.api.createAgent({ name: 'Slow member', objective: 'Take time' }),
      await stack.api.createAgent({ name: 'Next member', objective: 'Follow' }),
    ];
    const created = await stack.api.post('/api/v1/crews', {
      name: 'Contract crew',
      goal: 'Conform while running',
      process: 'sequential',
      members: [
        { agentId: slow.id, role: 'first', input: { script: [{ answer: 'too late', delayMs: 30_000 }] } },
        next.id,
      ],
    });
    conforms('post', '/api/v1/crews', created, 201);
    const id = created.body.id;
    conforms(
      'post',
      '/api/v1/crews',
      await stack.api.post('/api/v1/crews', { name: 'No members', goal: 'g', process: 'sequential', members: [] }),
      400,
    );
    conforms('get', '/api/v1/crews', await stack.api.get('/api/v1/crews?status=idle&limit=5'), 200);
    conforms('get', '/api/v1/crews', await stack.api.get('/api/v1/crews?status=dancing'), 400);
    conforms('get', '/api/v1/crews/:id', await stack.api.get(`/api/v1/crews/${id}`), 200);
    conforms(
      'get',
      '/api/v1/crews/:id',
      await stack.api.get('/api/v1/crews/00000000-0000-4000-8000-000000000000'),
      404,
    );
    conforms('post', '/api/v1/crews/:id/stop', await stack.api.post(`/api/v1/crews/${id}/stop`), 409);
    conforms(
      'post',
      '/api/v1/crews/:id/messages',
      await stack.api.post(`/api/v1/crews/${id}/messages`, { type: 'request', content: 'not yet' }),
      409,
    );

    const started = await stack.api.post(`/api/v1/crews/${id}/start`);
    conforms('post', '/api/v1/crews/:id/start', started, 200);
    assert.ok(started.body.live, 'a running crew shows its workflow state');
    const crewSchema = ajv.compile({ $ref: `${DOC_ID}#/components/schemas/CrewDetail` });
    assert.equal(crewSchema({ ...started.body, status: 'resting' }), false);
    assert.equal(crewSchema({ ...started.body, members: [{ ...started.body.members[0], running: '1' }] }), false);
    const message = { fromAgentId: null, toAgentId: next.id, type: 'status_update', content: 'deadline is noon' };
    conforms('post', '/api/v1/crews/:id/messages', await stack.api.post(`/api/v1/crews/${id}/messages`, message), 202);
    conforms(
      'post',
      '/api/v1/crews/:id/messages',
      await stack.api.post(`/api/v1/crews/${id}/messages`, { ...message, toAgentId: randomUUID() }),
      400,
    );
    const running = await waitFor(async () => {
      const res = await stack.api.get(`/api/v1/crews/${id}`);
      return res.body.messages.length && res.body.tasks.length ? res : undefined;
    }, 'the message stored and the first member working');
    conforms('get', '/api/v1/crews/:id', running, 200);
    const stopped = await stack.api.post(`/api/v1/crews/${id}/stop`);
    conforms('post', '/api/v1/crews/:id/stop', stopped, 200);
    assert.equal(stopped.body.status, 'stopped');
    conforms('post', '/api/v1/crews/:id/start', await stack.api.post(`/api/v1/crews/${id}/start`), 409);
    conforms('get', '/api/v1/crews', await stack.api.get('/api/v1/crews?status=stopped'), 200);
  });

  it('reminders: create, list, read, delete, and errors', async () => {
    const agent = await stack.api.createAgent({ name: 'Reminded', objective: 'Remember' });
    const base = `/api/v1/agents/${agent.id}/reminders`;
    const created = await stack.api.post(base, {
      title: 'hourly check',
      schedule: { every: '1h' },
      input: { note: 'x' },
    });
    conforms('post', '/api/v1/agents/:id/reminders', created, 201);
    conforms(
      'post',
      '/api/v1/agents/:id/reminders',
      await stack.api.post(base, { title: 'bad', schedule: { cron: 'every day' } }),
      400,
    );
    conforms(
      'post',
      '/api/v1/agents/:id/reminders',
      await stack.api.post('/api/v1/agents/00000000-0000-4000-8000-000000000000/reminders', {
        title: 't',
        schedule: { every: '1h' },
      }),
      404,
    );
    conforms('get', '/api/v1/agents/:id/reminders', await stack.api.get(base), 200);
    conforms('get', '/api/v1/agents/:id/reminders/:reminderId', await stack.api.get(`${base}/${created.body.id}`), 200);
    conforms(
      'delete',
      '/api/v1/agents/:id/reminders/:reminderId',
      await stack.api.request('DELETE', `${base}/${created.body.id}`),
      204,
    );
    conforms(
      'delete',
      '/api/v1/agents/:id/reminders/:reminderId',
      await stack.api.request('DELETE', `${base}/${created.body.id}`),
      404,
    );
    const removed = await stack.api.get(`${base}/${created.body.id}`);
    conforms('get', '/api/v1/agents/:id/reminders/:reminderId', removed, 200);
    assert.equal(removed.body.status, 'removed');
  });

  it('governance: limits and usage', async () => {
    const res = await stack.api.get('/api/v1/governance');
    conforms('get', '/api/v1/governance', res, 200);
    assert.ok(res.body.usage.tokens.usedByOrg > 0, 'the tasks above used tokens');
    const governanceSchema = ajv.compile({ $ref: `${DOC_ID}#/components/schemas/Governance` });
    assert.equal(
      governanceSchema({
        ...res.body,
        usage: { ...res.body.usage, tokens: { ...res.body.usage.tokens, usedByOrg: '12' } },
      }),
      false,
    );
  });

  it('tools: the built-in tools with their input schemas', async () => {
    const res = await stack.api.get('/api/v1/tools');
    conforms('get', '/api/v1/tools', res, 200);
    const memoryWrite = res.body.tools.find((t: { name: string }) => t.name === 'memory_write');
    assert.equal(memoryWrite?.sideEffect, true);
    assert.deepEqual(memoryWrite?.parameters.required, ['key']);
  });

  it('meta: start, list, read a finished run, and errors', async () => {
    const created = await stack.api.post('/api/v1/meta', {
      objective: 'Write a short product announcement',
      maxAgents: 2,
    });
    conforms('post', '/api/v1/meta', created, 201);
    conforms('post', '/api/v1/meta', await stack.api.post('/api/v1/meta', { objective: 'x', maxAgents: 6 }), 400);
    conforms('get', '/api/v1/meta', await stack.api.get('/api/v1/meta?limit=5'), 200);
    conforms('get', '/api/v1/meta/:id', await stack.api.get('/api/v1/meta/00000000-0000-4000-8000-000000000000'), 404);
    const finished = await waitFor(
      async () => {
        const res = await stack.api.get(`/api/v1/meta/${created.body.id}`);
        return ['completed', 'failed'].includes(res.body.status) ? res : undefined;
      },
      'the meta run to finish',
      120_000,
    );
    conforms('get', '/api/v1/meta/:id', finished, 200);
    assert.ok(
      finished.body.team.length >= 1 && finished.body.team.every((m: { agentId: string | null }) => m.agentId),
      JSON.stringify(finished.body.team),
    );
    assert.ok(finished.body.crew, 'the run names its crew');
    conforms('get', '/api/v1/meta', await stack.api.get('/api/v1/meta?status=completed'), 200);
  });

  it('agent types: list, read, change', async () => {
    // An organisation of its own, so the change touches no other test's catalogue.
    const api = await stack.clientForOrg(`openapi-${randomUUID()}`);
    conforms('get', '/api/v1/agent-types', await api.get('/api/v1/agent-types'), 200);
    conforms('get', '/api/v1/agent-types/:agentType', await api.get('/api/v1/agent-types/content'), 200);
    conforms('get', '/api/v1/agent-types/:agentType', await api.get('/api/v1/agent-types/nothing'), 404);
    const put = (body: unknown) => api.request('PUT', '/api/v1/agent-types/growth', body);
    conforms('put', '/api/v1/agent-types/:agentType', await put({ autonomyLevel: 'manual', config: { a: 1 } }), 200);
    conforms('put', '/api/v1/agent-types/:agentType', await put({ autonomyLevel: 'sometimes' }), 400);
  });

  it('covered every documented operation with a real response', () => {
    const missing = documentedOperations().filter(({ method, path }) => !covered.has(`${method} ${path}`));
    assert.deepEqual(missing, []);
  });
});
