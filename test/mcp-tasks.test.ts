import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import dns from 'node:dns/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { nonPublicAddressKind } from '../lib/outbound-policy';
import { fixtureCallCount, startHttpMcpServer } from './fixtures/mcp-server';
import {
  killHard,
  startApi,
  startWorker,
  testConfig,
  waitFor,
  withKillableWorkers,
  type TestStack,
} from './helpers/stack';

const ROOT = path.resolve(__dirname, '..');

// The operator's settings: one stdio server tenants may pick by name, and the loopback fixtures allowed for
// outbound connections. Set in the environment, so the API's body checks, in-process workers and worker
// processes all read them.
process.env.MCP_STDIO_SERVERS = JSON.stringify({
  calc: {
    command: process.execPath,
    args: ['--import', 'tsx', path.join(__dirname, 'fixtures/mcp-server.ts'), '--stdio'],
    cwd: ROOT,
  },
});
process.env.OUTBOUND_ALLOW_HOSTS = '127.0.0.1';

const stdioServer = { name: 'calc', transport: 'stdio' as const, server: 'calc' };

/** Agents using tools of real MCP servers (stdio and Streamable HTTP) inside tasks. */
describe('MCP tools in tasks', () => {
  let stack: TestStack;
  let worker: { stop(): Promise<void> };
  let http: Awaited<ReturnType<typeof startHttpMcpServer>>;

  before(async () => {
    http = await startHttpMcpServer();
    const config = testConfig();
    stack = await startApi(config);
    worker = await startWorker(config);
  });
  after(async () => {
    await worker?.stop();
    await stack?.stop();
    await http?.close();
  });

  it('runs an allowed tool of an operator-defined stdio server and refuses one outside the allowlist', async () => {
    const agent = await stack.api.createAgent({
      name: 'Calculator',
      objective: 'Add numbers',
      allowedTools: ['mcp__calc__add'],
      mcpServers: [stdioServer],
    });
    const script = [
      { call: 'mcp__calc__add', args: { a: 2, b: 3 } },
      { call: 'mcp__calc__echo', args: { text: 'not allowed' } },
      { answer: 'added' },
    ];
    const done = await stack.api.waitForTask(
      (await stack.api.createTask({ agentId: agent.id, title: 'add', input: { script } })).id,
      60_000,
    );
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const calls = done.reasoningTrace.filter((d: any) => d.decisionType === 'tool_call');
    assert.equal(calls[0].result, 5);
    assert.match(calls[1].result.error, /not allowed/);
  });

  it('offers and runs every tool of an HTTP MCP server allowed by wildcard', async () => {
    const agent = await stack.api.createAgent({
      name: 'Web tools',
      objective: 'Echo',
      allowedTools: ['mcp__web__*'],
      mcpServers: [{ name: 'web', transport: 'http', url: http.url }],
    });
    const script = [
      { call: 'mcp__web__echo', args: { text: 'over http' } },
      { call: 'mcp__web__fail', args: {} },
      { answer: 'echoed' },
    ];
    const done = await stack.api.waitForTask(
      (await stack.api.createTask({ agentId: agent.id, title: 'echo', input: { script } })).id,
      60_000,
    );
    assert.equal(done.status, 'completed');
    const calls = done.reasoningTrace.filter((d: any) => d.decisionType === 'tool_call');
    assert.equal(calls[0].result, 'over http');
    assert.ok(calls[1].result.error, 'an MCP tool error reaches the model as an error result');
  });

  it('approvalRequiredTools mcp__<server>__* gates every tool of that server, even for an autopilot agent', async () => {
    const agent = await stack.api.createAgent({
      name: 'Gated web tools',
      objective: 'Echo',
      autonomy: 'autopilot',
      allowedTools: ['mcp__web__*'],
      approvalRequiredTools: ['mcp__web__*'],
      mcpServers: [{ name: 'web', transport: 'http', url: http.url }],
    });
    const script = [{ call: 'mcp__web__echo', args: { text: 'only once approved' } }, { answer: 'echoed' }];
    const task = await stack.api.createTask({ agentId: agent.id, title: 'echo with approval', input: { script } });
    const approval = await waitFor(async () => {
      const pending = await stack.api.get('/api/v1/approvals?status=pending');
      return pending.body.approvals.find((a: { taskId: string }) => a.taskId === task.id);
    }, 'an approval request for the MCP call');
    assert.equal(approval.proposedAction.tool, 'mcp__web__echo');
    assert.equal((await stack.api.post(`/api/v1/approvals/${approval.id}/approve`, {})).status, 200);
    const done = await stack.api.waitForTask(task.id, 60_000);
    assert.equal(done.status, 'completed');
    assert.equal(done.reasoningTrace.find((d: any) => d.decisionType === 'tool_call').result, 'only once approved');
  });

  it('refuses a stdio server that sets what it runs, or one the operator did not define, naming the field', async () => {
    for (const [field, value] of [
      ['command', '/bin/sh'],
      ['args', ['-c', 'id']],
      ['env', { LD_PRELOAD: '/tmp/x.so' }],
      ['cwd', '/'],
    ] as const) {
      const res = await stack.api.post('/api/v1/agents', {
        name: 'Sneaky',
        objective: 'Run things',
        mcpServers: [{ ...stdioServer, [field]: value }],
      });
      assert.equal(res.status, 400, field);
      assert.match(
        res.body.error.message,
        new RegExp(`mcpServers\\.0\\.${field}: stdio MCP servers are defined by the operator \\(MCP_STDIO_SERVERS\\)`),
      );
    }
    const legacy = await stack.api.post('/api/v1/agents', {
      name: 'Sneaky',
      objective: 'Run things',
      mcpServers: [{ name: 'sh', transport: 'stdio', command: '/bin/sh' }],
    });
    assert.equal(legacy.status, 400);
    assert.match(legacy.body.error.message, /mcpServers\.0\.command: stdio MCP servers are defined by the operator/);
    const unknown = await stack.api.post('/api/v1/agents', {
      name: 'Sneaky',
      objective: 'Run things',
      mcpServers: [{ name: 'x', transport: 'stdio', server: 'shell' }],
    });
    assert.equal(unknown.status, 400);
    assert.match(
      unknown.body.error.message,
      /mcpServers\.0\.server: no stdio MCP server "shell" is defined by the operator/,
    );
    const agent = await stack.api.createAgent({ name: 'Patched', objective: 'Run things' });
    const patch = await stack.api.patch(`/api/v1/agents/${agent.id}`, {
      mcpServers: [{ ...stdioServer, command: '/bin/sh' }],
    });
    assert.equal(patch.status, 400);
    assert.match(patch.body.error.message, /mcpServers\.0\.command/);
  });

  it('refuses at connection time a server whose name resolves to a loopback address', async (t) => {
    // The machine's own name passes the configuration check (no lookup there) and resolves to loopback here.
    const host = os.hostname();
    const address = await dns.lookup(host).then(
      (a) => a.address,
      () => undefined,
    );
    if (!address || nonPublicAddressKind(address) !== 'loopback')
      return t.skip(`${host} does not resolve to a loopback address on this machine`);
    const before = http.sessionsCreated();
    const agent = await stack.api.createAgent({
      name: 'Rebound',
      objective: 'Reach the fixture by name',
      allowedTools: ['mcp__near__*'],
      mcpServers: [{ name: 'near', transport: 'http', url: `http://${host}:${http.port}/mcp` }],
    });
    const script = [{ call: 'mcp__near__add', args: { a: 1, b: 2 } }, { answer: 'refused' }];
    const done = await stack.api.waitForTask(
      (await stack.api.createTask({ agentId: agent.id, title: 'add', input: { script } })).id,
      60_000,
    );
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const call = done.reasoningTrace.find((d: any) => d.decisionType === 'tool_call');
    assert.match(
      call.result.error,
      new RegExp(`refused: "${host}" is resolved to ${address.replace(/\./g, '\\.')}, a loopback address`),
    );
    assert.equal(http.sessionsCreated(), before, 'no request reached the server');
  });
});

/** A worker killed while an MCP tool call is in flight: the retry reports an unknown outcome and does not call again. */
describe('MCP tool calls at most once across a worker crash', () => {
  const crash = withKillableWorkers();
  let http: Awaited<ReturnType<typeof startHttpMcpServer>>;
  before(async () => {
    http = await startHttpMcpServer();
  });
  after(async () => {
    await crash.killAll();
    await http?.close();
  });

  it('the tool runs once and the model reads "outcome unknown"', async () => {
    const first = await crash.start();
    const agent = await crash.stack.api.createAgent({
      name: 'Once',
      objective: 'Call a remote tool',
      allowedTools: ['mcp__web__*'],
      mcpServers: [{ name: 'web', transport: 'http', url: http.url }],
    });
    const id = randomUUID();
    const script = [{ call: 'mcp__web__hang_once', args: { id } }, { answer: 'reported' }];
    const task = await crash.stack.api.createTask({ agentId: agent.id, title: 'call once', input: { script } });
    // The server has the call (it hangs on the first one); the worker dies before any result comes back.
    await waitFor(async () => fixtureCallCount('hang_once', id) === 1, 'the tool call to reach the server', 30_000);
    await killHard(first);

    await crash.start();
    const done = await crash.stack.api.waitForTask(task.id, 60_000);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.equal(fixtureCallCount('hang_once', id), 1, 'the tool ran once');
    const call = done.reasoningTrace.find((d: any) => d.decisionType === 'tool_call');
    assert.match(call.result.error, /^outcome unknown: .*not repeated/);
    const ledger = await crash.stack.db.query('SELECT tool, result FROM side_effects WHERE idempotency_key = $1', [
      `task-${task.id}:1:0`,
    ]);
    assert.deepEqual(ledger.rows, [{ tool: 'mcp__web__hang_once', result: null }]);
  });
});
