import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startHttpMcpServer } from './fixtures/mcp-server';
import { startApi, startWorker, testConfig, type TestStack } from './helpers/stack';

const ROOT = path.resolve(__dirname, '..');
const stdioServer = {
  name: 'calc',
  transport: 'stdio' as const,
  command: process.execPath,
  args: ['--import', 'tsx', path.join(__dirname, 'fixtures/mcp-server.ts'), '--stdio'],
  cwd: ROOT,
};

/** Agents using tools of real MCP servers (stdio and Streamable HTTP) inside tasks. */
describe('MCP tools in tasks', () => {
  let stack: TestStack;
  let worker: { stop(): Promise<void> };
  let http: Awaited<ReturnType<typeof startHttpMcpServer>>;

  before(async () => {
    http = await startHttpMcpServer();
    const config = testConfig({ MCP_ALLOWED_COMMANDS: process.execPath });
    stack = await startApi(config);
    worker = await startWorker(config);
  });
  after(async () => {
    await worker?.stop();
    await stack?.stop();
    await http?.close();
  });

  it('runs an allowed MCP tool over stdio and refuses one outside the allowlist', async () => {
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
    const done = await stack.api.waitForTask((await stack.api.createTask({ agentId: agent.id, title: 'add', input: { script } })).id, 60_000);
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
    const script = [{ call: 'mcp__web__echo', args: { text: 'over http' } }, { call: 'mcp__web__fail', args: {} }, { answer: 'echoed' }];
    const done = await stack.api.waitForTask((await stack.api.createTask({ agentId: agent.id, title: 'echo', input: { script } })).id, 60_000);
    assert.equal(done.status, 'completed');
    const calls = done.reasoningTrace.filter((d: any) => d.decisionType === 'tool_call');
    assert.equal(calls[0].result, 'over http');
    assert.ok(calls[1].result.error, 'an MCP tool error reaches the model as an error result');
  });

  it('refuses a stdio command the operator did not allow', async () => {
    const res = await stack.api.post('/api/v1/agents', {
      name: 'Sneaky',
      objective: 'Run things',
      mcpServers: [{ name: 'sh', transport: 'stdio', command: '/bin/sh', args: ['-c', 'id'] }],
    });
    assert.equal(res.status, 400);
    assert.match(res.body.error.message, /not in MCP_ALLOWED_COMMANDS/);
  });
});
