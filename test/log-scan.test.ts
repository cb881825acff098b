import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createApiKey } from '../lib/api-keys';
import { createPool } from '../lib/db';
import { getFreePort } from '../scripts/local-stack';
import { openAiErrorBody, startFakeOpenAi, type FakeOpenAiServer } from './helpers/fake-openai-server';
import { ApiClient, testConfig, waitFor } from './helpers/stack';

const ROOT = path.resolve(__dirname, '..');

/**
 * The real API and worker processes at trace level, through a run that uses a provider key, the API_KEY
 * from the environment, a database API key (one also sent carelessly in a query string) and a task whose
 * input marks a value secret. The provider echoes both the key and the secret in an error, and the model
 * writes the secret with a tool, which the autopilot notification logs. Every line of both processes is
 * captured; none may contain any of the secrets.
 */
describe('secrets never reach the logs', () => {
  const providerKey = `sk-live-${randomUUID()}`;
  const envApiKey = `env-${randomUUID()}`;
  const secretValue = `hunter2-${randomUUID()}`;
  let dbApiKey: string;
  let openai: FakeOpenAiServer;
  let api: ApiClient;
  const children: ChildProcess[] = [];
  let logs = '';

  const spawnProcess = (entry: string, env: Record<string, string>, ready: string) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, entry)], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    child.stdout!.on('data', (chunk: Buffer) => (logs += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (logs += chunk.toString()));
    return waitFor(async () => logs.includes(ready), `${entry} to start`, 60_000);
  };

  before(async () => {
    openai = await startFakeOpenAi();
    const config = testConfig();
    const db = createPool(config.DATABASE_URL!);
    dbApiKey = (await createApiKey(db, config.DEFAULT_ORG_ID, 'log scan')).key;
    await db.end();
    const port = await getFreePort();
    const env = {
      LOG_LEVEL: 'trace',
      TEMPORAL_TASK_QUEUE: config.TEMPORAL_TASK_QUEUE,
      PORT: String(port),
      API_KEY: envApiKey,
      OPENAI_API_KEY: providerKey,
      OPENAI_BASE_URL: openai.url,
      AI_PROVIDER: 'openai',
      MAX_RETRIES: '3',
      // The suite's other files share the default organisation and its agent count.
      MAX_AGENTS: '1000000',
    };
    await Promise.all([
      spawnProcess('api/server.ts', env, 'API listening'),
      spawnProcess('workers/main.ts', env, 'worker started'),
    ]);
    api = new ApiClient(`http://127.0.0.1:${port}`, envApiKey);
  });
  after(async () => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
    await openai?.close();
  });

  it('a task with a secret-marked input, provider errors echoing secrets and careless clients leave no secret in the logs', async () => {
    const agent = await api.createAgent({
      name: 'Keeper',
      objective: 'Handle credentials',
      provider: 'openai',
      allowedTools: ['memory_write'],
    });
    // A provider error that echoes the key and the prompt (retryable: logged by the worker, then retried).
    openai.enqueue({
      kind: 'error',
      status: 500,
      body: openAiErrorBody(
        `upstream failed for key ${providerKey} on prompt containing ${secretValue}`,
        'server_error',
      ),
    });
    openai.enqueue({
      kind: 'completion',
      toolCalls: [
        {
          id: 'call_1',
          name: 'memory_write',
          arguments: JSON.stringify({ key: 'customer-token', value: secretValue }),
        },
      ],
    });
    openai.enqueue({
      kind: 'completion',
      content: 'Stored the token.',
      usage: { promptTokens: 10, completionTokens: 3 },
    });

    const viaDbKey = new ApiClient(api.baseUrl, dbApiKey);
    const task = await viaDbKey.createTask({
      agentId: agent.id,
      title: 'store the customer token',
      input: { secrets: { customerToken: secretValue }, customer: 'ACME' },
    });
    const done = await viaDbKey.waitForTask(task.id, 60_000);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    // The model did receive the secret, and the credentials went out where they belong.
    const sent = openai.requests.filter((r) => r.path.endsWith('/chat/completions'));
    assert.ok(
      sent.some((r) => JSON.stringify(r.body).includes(secretValue)),
      'the prompt carried the secret to the model',
    );
    assert.ok(sent.every((r) => r.headers.authorization === `Bearer ${providerKey}`));

    // Careless clients: a key in the query string, a wrong key, a key in a header the API ignores.
    assert.equal((await viaDbKey.get(`/api/v1/agents?api_key=${dbApiKey}`)).status, 400);
    assert.equal((await new ApiClient(api.baseUrl, `${dbApiKey}x`).get('/api/v1/agents')).status, 401);
    await viaDbKey.request('GET', `/api/v1/nothing/${secretValue}`, undefined, { headers: { 'x-api-key': envApiKey } });

    // Logs of the finished run: wait for the notification of the tool call, then stop both processes.
    await waitFor(
      async () => logs.includes('notification: autopilot_executed'),
      'the autopilot notification in the log',
    );
    await Promise.all(
      children.map((c) => new Promise<void>((resolve) => (c.once('exit', () => resolve()), c.kill('SIGTERM')))),
    );

    const lines = logs.split('\n').filter(Boolean);
    assert.ok(lines.length > 50, `trace logging captured (${lines.length} lines)`);
    assert.match(logs, /provider failed/, 'the echoing provider error was logged');
    assert.match(logs, /\[redacted\]/, 'secrets were replaced, not just absent');
    for (const [what, secret] of Object.entries({ providerKey, envApiKey, dbApiKey, secretValue })) {
      const leaks = lines.filter((l) => l.includes(secret) || l.includes(secret.slice(0, 24)));
      assert.deepEqual(leaks.slice(0, 3), [], `${what} appears in ${leaks.length} log line(s)`);
    }
  });
});
