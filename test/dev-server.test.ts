/**
 * Starts the real Temporal dev server (pinned CLI) on free ports with a temp SQLite file.
 * Run: node --import tsx --test test/dev-server.test.ts
 * The first run may build the CLI with `go install` (minutes); later runs use the cache.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import {
  SEARCH_ATTRIBUTES,
  SEARCH_ATTRIBUTE_KEYS,
  findTemporalCli,
  getFreePort,
  startDevServer,
  type DevServerHandle,
  type DevServerOptions,
} from '../temporal/dev-server';

const KEYWORD = encodeSearchAttributeIndexedValueType('KEYWORD');

async function withConnection<T>(server: DevServerHandle, fn: (c: Connection) => Promise<T>): Promise<T> {
  // lazy + ensureConnected inside try: a failed Connection.connect() leaks a retrying channel.
  const connection = Connection.lazy({ address: server.address });
  try {
    await connection.ensureConnected();
    return await fn(connection);
  } finally {
    await connection.close();
  }
}

async function customSearchAttributes(server: DevServerHandle): Promise<Record<string, number>> {
  return withConnection(server, async (c) => {
    const res = await c.operatorService.listSearchAttributes({ namespace: server.namespace });
    return (res.customAttributes ?? {}) as Record<string, number>;
  });
}

function assertRegistered(attrs: Record<string, number>, names: string[]): void {
  for (const name of names) {
    assert.equal(attrs[name], KEYWORD, `search attribute ${name} should be registered as Keyword`);
  }
}

describe('temporal dev server', () => {
  let cliPath: string;
  let tmpDir: string;
  let dbFilename: string;
  const servers: DevServerHandle[] = [];
  const workflowId = `dev-server-test-${Date.now()}`;

  before(async () => {
    cliPath = await findTemporalCli();
    tmpDir = await mkdtemp(path.join(os.tmpdir(), 'temporal-dev-server-test-'));
    // A subdirectory that does not exist yet: startDevServer must create it.
    dbFilename = path.join(tmpDir, 'nested', 'temporal.sqlite');
  });

  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    if (tmpDir) await rm(tmpDir, { recursive: true, force: true });
  });

  async function start(t: TestContext, extra: DevServerOptions = {}): Promise<DevServerHandle> {
    const started = Date.now();
    const server = await startDevServer({ cliPath, dbFilename, port: 0, uiPort: 0, ...extra });
    servers.push(server);
    t.diagnostic(`dev server ready in ${Date.now() - started} ms at ${server.address}`);
    return server;
  }

  it('starts, answers, and registers the custom search attributes', async (t) => {
    const server = await start(t);
    assert.match(server.address, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(server.address, '127.0.0.1:7233', 'port 0 should pick a free port');
    assert.match(server.uiUrl ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(server.namespace, 'default');
    assert.ok(existsSync(dbFilename), 'the SQLite file should have been created');

    const info = await withConnection(server, (c) => c.workflowService.getSystemInfo({}));
    assert.ok(info.capabilities, 'GetSystemInfo should return capabilities');

    assertRegistered(await customSearchAttributes(server), Object.keys(SEARCH_ATTRIBUTES));

    // Leave a running workflow behind (no worker polls this queue) to prove persistence later.
    await withConnection(server, async (connection) => {
      const client = new Client({ connection, namespace: server.namespace });
      await client.workflow.start('neverExecuted', {
        workflowId,
        taskQueue: 'dev-server-test-no-worker',
        typedSearchAttributes: [{ key: SEARCH_ATTRIBUTE_KEYS.AgentId, value: 'agent-42' }],
      });
    });

    await server.stop();
    const exit = await server.exited;
    assert.equal(exit.error, undefined);
    await server.stop(); // idempotent
  });

  it('restarts on the same database: data persists and new search attributes are added', async (t) => {
    // Simulates SEARCH_ATTRIBUTES growing after the database was created; start-dev alone skips it.
    const server = await start(t, { searchAttributes: { ...SEARCH_ATTRIBUTES, DevServerTestExtra: 'KEYWORD' } });

    assertRegistered(await customSearchAttributes(server), [...Object.keys(SEARCH_ATTRIBUTES), 'DevServerTestExtra']);

    await withConnection(server, async (connection) => {
      const client = new Client({ connection, namespace: server.namespace });
      const description = await client.workflow.getHandle(workflowId).describe();
      assert.equal(description.status.name, 'RUNNING');
      assert.equal(description.typedSearchAttributes.get(SEARCH_ATTRIBUTE_KEYS.AgentId), 'agent-42');

      // The attribute is usable in visibility queries, not just registered.
      const count = await client.workflow.count(`AgentId = "agent-42"`);
      assert.equal(count.count, 1);
      await client.workflow.getHandle(workflowId).terminate('test done');
    });

    await server.stop();
  });

  it('refuses a busy frontend port instead of adopting whatever listens there', async () => {
    const port = await getFreePort();
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    try {
      await assert.rejects(startDevServer({ cliPath, inMemory: true, port, headless: true }), (err: Error) => {
        assert.match(err.message, new RegExp(`frontend port ${port} on 127\\.0\\.0\\.1 is not available`));
        return true;
      });
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });

  it('rejects with the server output when start-dev exits early', async () => {
    await assert.rejects(
      startDevServer({ cliPath, inMemory: true, port: 0, headless: true, extraArgs: ['--no-such-flag'] }),
      (err: Error) => {
        assert.match(err.message, /exited \(code \d+\) before answering/);
        assert.match(err.message, /unknown flag: --no-such-flag/, 'the CLI output should be included');
        return true;
      },
    );
  });

  it('rejects an unusable TEMPORAL_CLI_PATH, naming it', async () => {
    const missing = path.join(os.tmpdir(), `no-such-temporal-${process.pid}`);
    await withEnv({ TEMPORAL_CLI_PATH: missing }, async () => {
      await assert.rejects(findTemporalCli(), (err: Error) => {
        assert.ok(err.message.includes(missing), `error should name ${missing}: ${err.message}`);
        assert.match(err.message, /TEMPORAL_CLI_PATH/);
        assert.match(err.message, /does not exist/);
        return true;
      });
    });
  });

  it('uses a temporal on PATH only when it embeds Server 1.29.1, else the cached build', async () => {
    const binDir = path.join(tmpDir, 'bin');
    const cacheDir = path.join(tmpDir, 'cli-cache');
    const onPath = await fakeCli(binDir, 'temporal', 'temporal version 1.5.1 (Server 1.29.1, UI 2.41.0)');
    const cached = await fakeCli(cacheDir, 'temporal', 'temporal version 0.0.0-DEV (Server 1.29.1, UI 2.42.1)');
    const env = {
      TEMPORAL_CLI_PATH: undefined,
      TEMPORAL_CLI_CACHE_DIR: cacheDir,
      PATH: `${binDir}${path.delimiter}${process.env.PATH}`,
    };
    await withEnv(env, async () => assert.equal(await findTemporalCli(), onPath));

    // 1.29.10 must not pass for 1.29.1.
    await fakeCli(binDir, 'temporal', 'temporal version 1.9.0 (Server 1.29.10, UI 2.50.0)');
    await withEnv(env, async () => assert.equal(await findTemporalCli(), cached));
  });
});

async function fakeCli(dir: string, name: string, versionLine: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, name);
  await writeFile(file, `#!/bin/sh\necho '${versionLine}'\n`, { mode: 0o755 });
  return file;
}

async function withEnv(vars: Record<string, string | undefined>, fn: () => Promise<void>): Promise<void> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  apply(vars);
  try {
    await fn();
  } finally {
    apply(saved);
  }
}
