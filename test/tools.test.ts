import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startApi, startWorker, testConfig, waitFor, type TestStack } from './helpers/stack';

/** The built-in tools through real tasks: http_get's allowlist, delegation with its depth fuse, messages. */
describe('built-in tools', () => {
  let stack: TestStack;
  let worker: { stop(): Promise<void> };
  let server: http.Server;
  let host: string;

  before(async () => {
    server = http.createServer((req, res) =>
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello from ${req.url}`),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const config = testConfig({ HTTP_ALLOWED_HOSTS: host, HTTP_ALLOW_PRIVATE_HOSTS: host, MAX_DELEGATION_DEPTH: '1' });
    stack = await startApi(config);
    worker = await startWorker(config);
  });
  after(async () => {
    await worker?.stop();
    await stack?.stop();
    await new Promise((resolve) => server.close(resolve));
  });

  const toolResults = (task: any) =>
    task.reasoningTrace.filter((d: any) => d.decisionType === 'tool_call' || d.decisionType === 'delegate');

  it('http_get reaches allowlisted hosts only', async () => {
    const agent = await stack.api.createAgent({ name: 'Fetcher', objective: 'Fetch', allowedTools: ['http_get'] });
    const script = [
      { call: 'http_get', args: { url: `http://${host}/status` } },
      { call: 'http_get', args: { url: 'http://169.254.169.254/latest/meta-data' } },
      { answer: 'fetched' },
    ];
    const done = await stack.api.waitForTask(
      (await stack.api.createTask({ agentId: agent.id, title: 'fetch', input: { script } })).id,
    );
    const [allowed, refused] = toolResults(done);
    assert.equal(allowed.result.status, 200);
    assert.equal(allowed.result.body, 'hello from /status');
    assert.match(refused.result.error, /not in the allowlist/);
  });

  it('create_task delegates to another agent, and the depth fuse refuses deeper chains', async () => {
    const lead = await stack.api.createAgent({ name: 'Lead', objective: 'Delegate', allowedTools: ['create_task'] });
    const helper = await stack.api.createAgent({ name: 'Helper', objective: 'Help', allowedTools: ['create_task'] });
    // The helper's delegated task tries to delegate again: depth 2 exceeds MAX_DELEGATION_DEPTH=1.
    const nested = {
      script: [{ call: 'create_task', args: { agentId: lead.id, title: 'too deep' } }, { answer: 'tried' }],
    };
    const script = [
      { call: 'create_task', args: { agentId: helper.id, title: 'research this', input: nested, priority: 8 } },
      { answer: 'delegated' },
    ];
    const parent = await stack.api.waitForTask(
      (await stack.api.createTask({ agentId: lead.id, title: 'plan', input: { script } })).id,
    );
    const delegation = toolResults(parent)[0];
    assert.equal(delegation.decisionType, 'delegate');
    const childId = delegation.result.taskId;

    const child = await stack.api.waitForTask(childId);
    assert.equal(child.agentId, helper.id);
    assert.equal(child.parentTaskId, parent.id);
    assert.equal(child.delegationDepth, 1);
    assert.equal(child.priority, 8);
    assert.match(toolResults(child)[0].result.error, /delegation refused: depth 2 exceeds the fuse of 1/);
  });

  it('send_message stores a message for another agent of the organisation', async () => {
    const sender = await stack.api.createAgent({ name: 'Sender', objective: 'Tell', allowedTools: ['send_message'] });
    const receiver = await stack.api.createAgent({ name: 'Receiver', objective: 'Listen' });
    const script = [
      { call: 'send_message', args: { toAgentId: receiver.id, content: 'the build is green' } },
      { answer: 'sent' },
    ];
    const done = await stack.api.waitForTask(
      (await stack.api.createTask({ agentId: sender.id, title: 'tell', input: { script } })).id,
    );
    assert.equal(toolResults(done)[0].result.delivered, true);
    const { rows } = await waitFor(async () => {
      const r = await stack.db.query(
        'SELECT from_agent_id, content, task_id FROM agent_messages WHERE to_agent_id = $1',
        [receiver.id],
      );
      return r.rowCount ? r : undefined;
    }, 'the message');
    assert.deepEqual(rows, [{ from_agent_id: sender.id, content: 'the build is green', task_id: done.id }]);
  });
});
