/**
 * MCP tools against real MCP servers built with the SDK: a stdio child spawned by McpToolSource and a
 * Streamable HTTP server on loopback.
 *
 * Run: node --import tsx --test test/mcp.test.ts
 */
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  McpConfigError,
  McpConnectionError,
  McpServerConfigSchema,
  McpToolSource,
  mcpToolName,
  parseMcpToolName,
  type McpServerConfig,
  type McpToolSourceOptions,
} from '../activities/tools/mcp';
import type { McpStdioServer } from '../lib/config';
import { createPool, type Db } from '../lib/db';
import { fixtureCallCount, startHttpMcpServer, type HttpMcpServerHandle } from './fixtures/mcp-server';

const ROOT = path.resolve(__dirname, '..');
const FIXTURE = path.join(__dirname, 'fixtures', 'mcp-server.ts');

/** The operator's stdio servers (MCP_STDIO_SERVERS); tenants refer to them by name. */
const STDIO_SERVERS: Record<string, McpStdioServer> = {
  fixture: { command: process.execPath, args: ['--import', 'tsx', FIXTURE, '--stdio'], cwd: ROOT },
  ghost: { command: '/nonexistent/mcp-server-binary' },
  crashy: { command: process.execPath, args: ['-e', 'console.error("missing API key"); process.exit(3)'] },
  mute: { command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'] },
};

/** What a source gets from the operator's configuration; loopback is allowed for the fixtures. */
const sourceOptions = (o: McpToolSourceOptions = {}): McpToolSourceOptions => ({
  stdioServers: STDIO_SERVERS,
  outboundAllowHosts: ['127.0.0.1'],
  idleMs: 300_000,
  maxConnections: 32,
  ...o,
});

const stdioServer: McpServerConfig = { name: 'fixture', transport: 'stdio', server: 'fixture' };

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

async function waitFor(cond: () => boolean, ms = 5_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return cond();
}

/** Live node child processes of this test process (Linux /proc; empty elsewhere). tsx's esbuild service is not one. */
function nodeChildProcesses(): { pid: number; cmd: string }[] {
  if (process.platform !== 'linux') return [];
  const children: { pid: number; cmd: string }[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // state, ppid, ...
      if (Number(fields[1]) !== process.pid || fields[0] === 'Z') continue;
      const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      if (cmd.startsWith(process.execPath)) children.push({ pid: Number(entry), cmd });
    } catch {
      // raced with an exiting process
    }
  }
  return children;
}

// Every MCP server child must be gone once its source is closed. Leftovers fail the run and are
// killed, so a broken close() cannot hang the test process.
after(async () => {
  await waitFor(() => nodeChildProcesses().length === 0, 6_000);
  const leaked = nodeChildProcesses();
  for (const { pid } of leaked) process.kill(pid, 'SIGKILL');
  assert.deepEqual(leaked, [], 'leaked MCP server processes');
});

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  assert.fail('expected the promise to reject');
}

/** A loopback port nobody listens on. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('MCP tool names and config', { timeout: 60_000 }, () => {
  it('qualifies and parses tool names', () => {
    assert.equal(mcpToolName('files', 'read_file'), 'mcp__files__read_file');
    assert.deepEqual(parseMcpToolName('mcp__files__read_file'), { server: 'files', tool: 'read_file' });
    assert.deepEqual(parseMcpToolName('mcp__my-srv__a__b'), { server: 'my-srv', tool: 'a__b' });
    assert.deepEqual(parseMcpToolName(mcpToolName('_x', 'y')), { server: '_x', tool: 'y' });
    assert.equal(parseMcpToolName('web_search'), null);
    assert.equal(parseMcpToolName('mcp__files'), null);
    assert.equal(parseMcpToolName('mcp__files__'), null);
    assert.equal(parseMcpToolName('mcp____tool'), null);
    assert.throws(() => mcpToolName('a b', 't'));
    assert.throws(() => mcpToolName('a__b', 't'));
  });

  it('validates server configs strictly', () => {
    assert.ok(McpServerConfigSchema.safeParse(stdioServer).success);
    assert.ok(
      McpServerConfigSchema.safeParse({
        name: 'h',
        transport: 'http',
        url: 'http://127.0.0.1:1/mcp',
        headers: { a: 'b' },
      }).success,
    );
    // A tenant picks an operator-defined stdio server; what it runs is not the tenant's to say.
    for (const field of ['command', 'args', 'env', 'cwd']) {
      const res = McpServerConfigSchema.safeParse({
        ...stdioServer,
        [field]: field === 'args' ? ['-c', 'id'] : field === 'env' ? { A: '1' } : '/bin/sh',
      });
      assert.equal(res.success, false, field);
      assert.deepEqual(
        res.error!.issues.map((i) => i.path.join('.')),
        [field],
      );
      assert.match(res.error!.issues[0]!.message, /defined by the operator \(MCP_STDIO_SERVERS\)/);
    }
    assert.equal(
      McpServerConfigSchema.safeParse({ name: 'sh', transport: 'stdio', command: '/bin/sh' }).success,
      false,
    );
    assert.equal(McpServerConfigSchema.safeParse({ ...stdioServer, name: 'bad name' }).success, false);
    assert.equal(McpServerConfigSchema.safeParse({ ...stdioServer, name: 'x'.repeat(33) }).success, false);
    assert.equal(McpServerConfigSchema.safeParse({ ...stdioServer, extra: 1 }).success, false);
    assert.equal(McpServerConfigSchema.safeParse({ name: 'h', transport: 'http', command: 'x' }).success, false);
    assert.equal(McpServerConfigSchema.safeParse({ name: 'h', transport: 'http', url: 'not a url' }).success, false);
    assert.equal(McpServerConfigSchema.safeParse({ name: 'h', transport: 'ws', url: 'ws://x' }).success, false);
  });
});

describe('McpToolSource over stdio', { timeout: 60_000 }, () => {
  let source: McpToolSource;
  beforeEach(() => {
    source = new McpToolSource(sourceOptions());
  });
  afterEach(async () => {
    await source.close();
  });

  it('lists tools with qualified names and JSON schemas', async () => {
    const tools = await source.listTools(stdioServer);
    const byName = new Map(tools.map((t) => [t.name, t]));
    assert.deepEqual([...byName.keys()].sort(), [
      'mcp__fixture__add',
      'mcp__fixture__count',
      'mcp__fixture__echo',
      'mcp__fixture__fail',
      'mcp__fixture__hang_once',
      'mcp__fixture__last_meta',
      'mcp__fixture__pid',
      'mcp__fixture__sleep',
    ]);
    const add = byName.get('mcp__fixture__add')!;
    assert.equal(add.description, 'Adds two numbers.');
    assert.equal(add.parameters.type, 'object');
    assert.deepEqual(add.parameters.required, ['a', 'b']);
    assert.deepEqual((add.parameters.properties as Record<string, { type: string }>).a.type, 'number');
    assert.equal('$schema' in add.parameters, false);
    // Cached per connection: the same list object comes back.
    assert.equal(await source.listTools(stdioServer), tools);
  });

  it('calls tools, propagates isError, and reuses the connection and the child process', async () => {
    assert.deepEqual(await source.callTool(stdioServer, 'add', { a: 2, b: 3 }), { content: '5', isError: false });
    const pid = await source.stdioPid(stdioServer);
    assert.ok(pid && isAlive(pid));
    assert.deepEqual(await source.callTool(stdioServer, 'echo', { text: 'hi there' }), {
      content: 'hi there',
      isError: false,
    });
    assert.deepEqual(await source.callTool(stdioServer, 'fail', {}), {
      content: 'this tool always fails',
      isError: true,
    });
    // The server process answering is the one we spawned, every time.
    assert.equal((await source.callTool(stdioServer, 'pid', {})).content, String(pid));
    assert.equal((await source.callTool(stdioServer, 'pid', {})).content, String(pid));
    assert.equal(await source.stdioPid(stdioServer), pid);
    assert.equal(source.size, 1);
    // Same config with keys in another order hashes to the same connection.
    const reordered = { server: 'fixture', transport: 'stdio', name: 'fixture' } as const;
    assert.equal((await source.callTool(reordered, 'pid', {})).content, String(pid));
    assert.equal(source.size, 1);
  });

  it('reports unknown tools and invalid arguments as tool errors', async () => {
    const unknown = await source.callTool(stdioServer, 'nope', {});
    assert.equal(unknown.isError, true);
    assert.match(unknown.content, /nope/);
    const invalid = await source.callTool(stdioServer, 'add', { a: 'two' });
    assert.equal(invalid.isError, true);
    assert.match(invalid.content, /invalid/i);
  });

  it('renders non-text parts as JSON', async () => {
    const res = await source.callTool(stdioServer, 'sleep', { ms: 0 });
    const [text, link] = res.content.split('\n');
    assert.equal(text, 'slept');
    assert.deepEqual(JSON.parse(link!), { type: 'resource_link', uri: 'file:///tmp/x', name: 'x' });
  });

  it('honours timeoutMs and abort signals without losing the connection', async () => {
    const timedOut = await rejectionOf(source.callTool(stdioServer, 'sleep', { ms: 5_000 }, { timeoutMs: 100 }));
    assert.match(String((timedOut as Error).message), /timed out/i);
    const controller = new AbortController();
    const call = source.callTool(stdioServer, 'sleep', { ms: 5_000 }, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('stop now')), 100);
    assert.match(String(((await rejectionOf(call)) as Error).message), /stop now/);
    assert.deepEqual(await source.callTool(stdioServer, 'add', { a: 1, b: 1 }), { content: '2', isError: false });
  });

  it('close() terminates the stdio child process', async () => {
    await source.listTools(stdioServer);
    const pid = await source.stdioPid(stdioServer);
    assert.ok(pid && isAlive(pid));
    await source.close();
    assert.equal(source.size, 0);
    assert.ok(await waitFor(() => !isAlive(pid)), `child ${pid} still alive after close()`);
    // Usable again afterwards: a fresh child.
    assert.deepEqual(await source.callTool(stdioServer, 'add', { a: 2, b: 3 }), { content: '5', isError: false });
    const pid2 = await source.stdioPid(stdioServer);
    assert.ok(pid2 && pid2 !== pid);
  });

  it('reconnects when the child process dies', async () => {
    await source.callTool(stdioServer, 'add', { a: 2, b: 3 });
    const pid = (await source.stdioPid(stdioServer))!;
    process.kill(pid, 'SIGKILL');
    assert.ok(await waitFor(() => !isAlive(pid)));
    await new Promise((r) => setTimeout(r, 50)); // let the transport notice
    assert.deepEqual(await source.callTool(stdioServer, 'add', { a: 2, b: 3 }), { content: '5', isError: false });
    const pid2 = await source.stdioPid(stdioServer);
    assert.ok(pid2 && pid2 !== pid && isAlive(pid2));
  });

  it('shares one connection between concurrent first uses', async () => {
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map((n) => source.callTool(stdioServer, 'pid', {}).then((r) => r.content + n)),
    );
    const pids = new Set(results.map((r) => r.slice(0, -1)));
    assert.equal(pids.size, 1);
    assert.equal(source.size, 1);
  });
});

describe('McpToolSource startup failures', { timeout: 60_000 }, () => {
  const source = new McpToolSource(sourceOptions({ connectTimeoutMs: 1_000 }));
  after(() => source.close());

  it('a command that does not exist yields a clear error', async () => {
    const err = await rejectionOf(source.listTools({ name: 'ghost', transport: 'stdio', server: 'ghost' }));
    assert.ok(err instanceof McpConnectionError, String(err));
    assert.equal(err.server, 'ghost');
    assert.match(err.message, /MCP server "ghost" .*failed to start/);
    assert.match(err.message, /ENOENT/);
    assert.equal(source.size, 0);
  });

  it('a server that exits at once reports its stderr', async () => {
    const err = await rejectionOf(
      source.callTool({ name: 'crashy', transport: 'stdio', server: 'crashy' }, 'add', { a: 1, b: 2 }),
    );
    assert.ok(err instanceof McpConnectionError, String(err));
    assert.match(err.message, /MCP server "crashy" .*failed to start/);
    assert.match(err.message, /missing API key/);
  });

  it('a server that never answers times out', async () => {
    const started = Date.now();
    const err = await rejectionOf(source.listTools({ name: 'mute', transport: 'stdio', server: 'mute' }));
    assert.ok(err instanceof McpConnectionError, String(err));
    assert.match(err.message, /timed out after 1000 ms/);
    assert.ok(Date.now() - started < 5_000);
  });

  it('an HTTP server that is not listening yields a clear error', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/mcp`;
    const err = await rejectionOf(source.listTools({ name: 'down', transport: 'http', url }));
    assert.ok(err instanceof McpConnectionError, String(err));
    assert.match(err.message, /MCP server "down" \(http: .*\) failed to start: connect ECONNREFUSED/);
    assert.match(err.message, /ECONNREFUSED/);
  });

  it('rejects invalid configs before connecting', async () => {
    await assert.rejects(
      source.listTools({ name: 'bad name', transport: 'stdio', server: 'fixture' }),
      /invalid MCP server config/,
    );
  });

  it('runs only stdio servers the operator defined, and never a command from a tenant', async () => {
    const unknown = { name: 'x', transport: 'stdio', server: 'not-defined' } as const;
    await assert.rejects(
      source.listTools(unknown),
      (err: unknown) =>
        err instanceof McpConfigError &&
        /no stdio MCP server "not-defined" is defined by the operator/.test(err.message),
    );
    assert.deepEqual(await source.callTool(unknown, 'add', {}), {
      content: 'MCP server "x": no stdio MCP server "not-defined" is defined by the operator (MCP_STDIO_SERVERS)',
      isError: true,
    });
    // A config of the old shape (stored before this change) is refused, not run.
    const legacy = {
      name: 'sh',
      transport: 'stdio',
      command: '/bin/sh',
      args: ['-c', 'id'],
    } as unknown as McpServerConfig;
    const res = await source.callTool(legacy, 'add', {});
    assert.equal(res.isError, true);
    assert.match(res.content, /defined by the operator/);
    assert.equal(source.size, 0);
  });
});

describe('McpToolSource over Streamable HTTP', { timeout: 60_000 }, () => {
  let http: HttpMcpServerHandle;
  let server: McpServerConfig;
  let source: McpToolSource;
  before(async () => {
    http = await startHttpMcpServer();
    server = { name: 'remote', transport: 'http', url: http.url, headers: { 'x-test': '1' } };
  });
  after(async () => {
    await http.close();
  });
  beforeEach(() => {
    source = new McpToolSource(sourceOptions());
  });
  afterEach(async () => {
    await source.close();
  });

  it('lists tools and calls them', async () => {
    const before = http.sessionsCreated();
    const tools = await source.listTools(server);
    assert.ok(tools.some((t) => t.name === 'mcp__remote__add' && t.parameters.type === 'object'));
    assert.deepEqual(await source.callTool(server, 'add', { a: 2, b: 3 }), { content: '5', isError: false });
    assert.deepEqual(await source.callTool(server, 'fail', {}), { content: 'this tool always fails', isError: true });
    assert.deepEqual(await source.callTool(server, 'echo', { text: 'x' }), { content: 'x', isError: false });
    // One session (one initialize handshake) served everything.
    assert.equal(http.sessionsCreated() - before, 1);
    assert.equal(http.openSessions(), 1);
    await source.close();
    assert.ok(await waitFor(() => http.openSessions() === 0), 'close() should terminate the HTTP session');
  });

  it('starts a new session when the server forgot the old one', async () => {
    const before = http.sessionsCreated();
    assert.deepEqual(await source.callTool(server, 'add', { a: 2, b: 3 }), { content: '5', isError: false });
    await http.forgetSessions();
    assert.deepEqual(await source.callTool(server, 'add', { a: 20, b: 3 }), { content: '23', isError: false });
    assert.equal(http.sessionsCreated() - before, 2);
  });
});

describe('MCP HTTP servers and the outbound address policy', { timeout: 60_000 }, () => {
  let http: HttpMcpServerHandle;
  before(async () => {
    http = await startHttpMcpServer();
  });
  after(async () => {
    await http.close();
  });

  it('refuses loopback, private and metadata addresses unless the operator allows them, checking names after resolution', async () => {
    const literal = { name: 'lit', transport: 'http', url: http.url } as const;
    const named = { name: 'named', transport: 'http', url: `http://localhost:${http.port}/mcp` } as const;
    const metadata = { name: 'meta', transport: 'http', url: 'http://169.254.169.254/latest/' } as const;
    const strict = new McpToolSource(sourceOptions({ outboundAllowHosts: [] }));
    const before = http.sessionsCreated();
    try {
      await assert.rejects(
        strict.listTools(literal),
        /refused: "127\.0\.0\.1" is a loopback address; only hosts on OUTBOUND_ALLOW_HOSTS/,
      );
      // Not a literal: refused once resolved, at connection time.
      await assert.rejects(
        strict.listTools(named),
        /refused: "localhost" is resolved to (127\.0\.0\.1|::1), a loopback address/,
      );
      const called = await strict.callTool(named, 'add', { a: 1, b: 2 });
      assert.equal(called.isError, true, 'a refusal reaches the model as a tool error');
      assert.match(called.content, /^MCP server "named": refused: "localhost" is resolved to/);
      assert.match(
        (await strict.callTool(metadata, 'anything', {})).content,
        /169\.254\.169\.254" is a link-local \(cloud metadata\) address/,
      );
      assert.equal(http.sessionsCreated(), before, 'no request reached the server');
      assert.equal(strict.size, 0);
    } finally {
      await strict.close();
    }
    // Allowed by host and port, or by address range, the same server is reached.
    for (const allow of [[`localhost:${http.port}`], ['127.0.0.0/8', '::1/128']]) {
      const allowed = new McpToolSource(sourceOptions({ outboundAllowHosts: allow }));
      try {
        assert.deepEqual(
          await allowed.callTool(named, 'add', { a: 1, b: 2 }),
          { content: '3', isError: false },
          allow.join(),
        );
      } finally {
        await allowed.close();
      }
    }
  });
});

describe('MCP tool calls at most once (side_effects ledger)', { timeout: 60_000 }, () => {
  let http: HttpMcpServerHandle;
  let db: Db;
  let source: McpToolSource;
  let server: McpServerConfig;
  const ledgerFor = (key = `task-${randomUUID()}:1:0`) => ({ db, idempotencyKey: key, taskId: randomUUID() });
  const ledgerRow = async (key: string) =>
    (await db.query('SELECT tool, result FROM side_effects WHERE idempotency_key = $1', [key])).rows[0];

  before(async () => {
    http = await startHttpMcpServer();
    server = { name: 'remote', transport: 'http', url: http.url };
    db = createPool(process.env.DATABASE_URL!, 2);
    source = new McpToolSource(
      sourceOptions({
        stdioServers: {
          ...STDIO_SERVERS,
          readonly: { ...STDIO_SERVERS.fixture!, readOnlyTools: ['hang_once', 'count'] },
        },
      }),
    );
  });
  after(async () => {
    await source.close();
    await http.close();
    await db.end();
  });

  it('records a call as started before sending it: after an unknown outcome the retry reports it and does not call again', async () => {
    const id = randomUUID();
    const ledger = ledgerFor();
    // The first attempt hangs past its time limit: the server got the call, its outcome is unknown.
    const first = await rejectionOf(source.callTool(server, 'hang_once', { id }, { ledger, timeoutMs: 300 }));
    assert.match(String((first as Error).message), /timed out/i);
    assert.equal(fixtureCallCount('hang_once', id), 1);
    assert.deepEqual(await ledgerRow(ledger.idempotencyKey), { tool: 'mcp__remote__hang_once', result: null });

    const retry = await source.callTool(server, 'hang_once', { id }, { ledger });
    assert.equal(retry.isError, true);
    assert.match(retry.content, /^outcome unknown: .* it was not repeated/);
    assert.equal(fixtureCallCount('hang_once', id), 1, 'the tool ran once');
  });

  it('replays a recorded result instead of calling again, and sends the idempotency key in _meta', async () => {
    const id = randomUUID();
    const ledger = ledgerFor();
    assert.deepEqual(await source.callTool(server, 'count', { id }, { ledger }), { content: '1', isError: false });
    assert.deepEqual(JSON.parse((await source.callTool(server, 'last_meta', {})).content), {
      idempotencyKey: ledger.idempotencyKey,
    });
    assert.deepEqual(await source.callTool(server, 'count', { id }, { ledger }), {
      content: '1',
      isError: false,
      replayed: true,
    });
    assert.equal(fixtureCallCount('count', id), 1);
    assert.deepEqual((await ledgerRow(ledger.idempotencyKey)).result, { content: '1', isError: false });
  });

  it('releases the claim when the call certainly never reached a server, so a retry may send it', async () => {
    const ledger = ledgerFor();
    const down = { name: 'down', transport: 'http', url: `http://127.0.0.1:${await closedPort()}/mcp` } as const;
    assert.ok(
      (await rejectionOf(source.callTool(down, 'count', { id: 'x' }, { ledger }))) instanceof McpConnectionError,
    );
    assert.equal(await ledgerRow(ledger.idempotencyKey), undefined);
    const refused = new McpToolSource(sourceOptions({ outboundAllowHosts: [] }));
    try {
      assert.match((await refused.callTool(server, 'count', { id: 'x' }, { ledger })).content, /refused/);
      assert.equal(await ledgerRow(ledger.idempotencyKey), undefined);
    } finally {
      await refused.close();
    }
  });

  it('lets read-only tools declared by the operator retry freely', async () => {
    const readonly = { name: 'ro', transport: 'stdio', server: 'readonly' } as const;
    const ledger = ledgerFor();
    const id = randomUUID();
    await rejectionOf(source.callTool(readonly, 'hang_once', { id }, { ledger, timeoutMs: 300 }));
    assert.deepEqual(await source.callTool(readonly, 'hang_once', { id }, { ledger }), {
      content: 'done',
      isError: false,
    });
    assert.deepEqual(await source.callTool(readonly, 'count', { id }, { ledger }), { content: '1', isError: false });
    assert.deepEqual(await source.callTool(readonly, 'count', { id }, { ledger }), { content: '2', isError: false });
    assert.equal(await ledgerRow(ledger.idempotencyKey), undefined, 'read-only calls leave no ledger row');
  });
});

describe('MCP connections: per organisation, idle eviction, per-worker cap', { timeout: 60_000 }, () => {
  let http: HttpMcpServerHandle;
  let server: McpServerConfig;
  before(async () => {
    http = await startHttpMcpServer();
    server = { name: 'remote', transport: 'http', url: http.url };
  });
  after(async () => {
    await http.close();
  });
  const add = (source: McpToolSource, orgId: string, target: McpServerConfig = server) =>
    source.callTool(target, 'add', { a: 1, b: 1 }, { orgId });

  it('keys connections by organisation and config: organisations never share one', async () => {
    const source = new McpToolSource(sourceOptions());
    try {
      const before = http.sessionsCreated();
      await add(source, 'org-a');
      await source.listTools(server, { orgId: 'org-a' });
      await add(source, 'org-a');
      assert.equal(source.size, 1);
      assert.equal(http.sessionsCreated() - before, 1);
      await add(source, 'org-b');
      assert.equal(source.size, 2);
      assert.equal(http.sessionsCreated() - before, 2, 'a second organisation gets its own session');
      await add(source, 'org-a', stdioServer);
      await add(source, 'org-b', stdioServer);
      const [pidA, pidB] = [await source.stdioPid(stdioServer, 'org-a'), await source.stdioPid(stdioServer, 'org-b')];
      assert.ok(pidA && pidB && pidA !== pidB, 'and its own stdio child');
      assert.equal(source.size, 4);
    } finally {
      await source.close();
    }
  });

  it('closes connections unused for the idle time, never one in use', async () => {
    const source = new McpToolSource(sourceOptions({ idleMs: 600 }));
    try {
      const open = http.openSessions();
      // The stdio child first: it takes longer to start than the idle time.
      await add(source, 'org-a', stdioServer);
      await add(source, 'org-a');
      const pid = (await source.stdioPid(stdioServer, 'org-a'))!;
      assert.equal(source.size, 2);
      assert.ok(await waitFor(() => source.size === 0, 5_000), 'idle connections closed');
      assert.ok(await waitFor(() => http.openSessions() === open), 'the HTTP session was terminated');
      assert.ok(await waitFor(() => !isAlive(pid)), 'the stdio child was stopped');
      // A call longer than the idle time keeps its connection.
      assert.equal((await source.callTool(server, 'sleep', { ms: 1_200 }, { orgId: 'org-a' })).isError, false);
      assert.equal(source.size, 1);
      assert.deepEqual(await add(source, 'org-a'), { content: '2', isError: false });
    } finally {
      await source.close();
    }
  });

  it('caps connections per worker, closing the least recently used first', async () => {
    const source = new McpToolSource(sourceOptions({ maxConnections: 2 }));
    try {
      const open = http.openSessions();
      await add(source, 'org-a');
      await add(source, 'org-b');
      await add(source, 'org-a'); // b is now the least recently used
      await add(source, 'org-c');
      assert.equal(source.size, 2);
      assert.ok(await waitFor(() => http.openSessions() === open + 2), 'the evicted session was terminated');
      const created = http.sessionsCreated();
      await add(source, 'org-a');
      await add(source, 'org-c');
      assert.equal(http.sessionsCreated(), created, 'a and c kept their connections');
      await add(source, 'org-b');
      assert.equal(http.sessionsCreated(), created + 1, 'b connects again');
      assert.equal(source.size, 2);
    } finally {
      await source.close();
    }
  });
});
