import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getFreePort } from '../scripts/local-stack';
import { startStack, testConfig, waitFor, type TestStack } from './helpers/stack';

const BIN = path.resolve(__dirname, '../cli/agentctl.cjs');

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Every agentctl command, run as its own process (the installed `agentctl` bin) against the real API,
 * worker, Temporal and Postgres.
 */
describe('agentctl CLI', () => {
  let stack: TestStack;
  before(async () => (stack = await startStack(testConfig())));
  after(() => stack?.stop());

  /** Runs agentctl asynchronously: the API answering it lives in this process. */
  const cli = (args: string[], env: Record<string, string> = {}): Promise<CliResult> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, ...args], {
        env: { ...process.env, AGENTCTL_API_URL: stack.api.baseUrl, AGENTCTL_API_KEY: stack.api.apiKey ?? '', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  const ok = async (args: string[], env?: Record<string, string>) => {
    const result = await cli(args, env);
    assert.equal(result.code, 0, `agentctl ${args.join(' ')}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
    return result;
  };
  const json = async (args: string[]) => JSON.parse((await ok(['--json', ...args])).stdout);

  let agentId: string;

  it('agents create, list, get', async () => {
    const created = await ok([
      'agents',
      'create',
      '--name',
      'CLI agent',
      '--objective',
      'Be driven from a terminal',
      '--type',
      'cli',
      '--priority',
      '7',
    ]);
    const id = /created agent ([0-9a-f-]{36})/.exec(created.stdout)?.[1];
    assert.ok(id, created.stdout);
    agentId = id;
    assert.match(created.stdout, /status\s+IDLE/);

    const table = (await ok(['agents', 'list', '--type', 'cli'])).stdout.split('\n');
    assert.match(table[0]!, /^ID\s+NAME\s+TYPE\s+STATUS/);
    assert.ok(
      table.some((line) => line.startsWith(id) && /CLI agent\s+cli\s+IDLE/.test(line)),
      table.join('\n'),
    );
    const listed = await json(['agents', 'list', '--type', 'cli']);
    assert.deepEqual(
      listed.map((a: any) => a.id),
      [id],
    );

    const shown = await ok(['agents', 'get', id]);
    assert.match(shown.stdout, /name\s+CLI agent/);
    assert.match(shown.stdout, /priority\s+7/);
    assert.match(shown.stdout, /queue\s+0/);
    assert.equal((await json(['agents', 'get', id])).live.status, 'IDLE');
  });

  it('tasks submit, watch (decisions live, progress while waiting), list, get', async () => {
    const script = [
      { call: 'memory_write', args: { key: 'launch', op: 'set', value: 'friday' } },
      // A slow model turn: watch must say it is still waiting.
      { answer: 'noted: the launch is on Friday', delayMs: 8000 },
    ];
    const submitted = await json([
      'tasks',
      'submit',
      agentId,
      'remember the launch',
      '--input',
      JSON.stringify({ script }),
    ]);
    assert.equal(submitted.status, 'queued');

    const watched = await ok(['tasks', 'watch', submitted.id, '--interval', '200']);
    const lines = watched.stdout.trim().split('\n');
    assert.deepEqual(
      lines.map((l) => l.replace(/\s+/g, ' ')),
      [
        'step 1 plan [offline] Step 1 of the script.',
        'step 1 tool_call Called memory_write',
        'step 2 complete [offline] noted: the launch is on Friday',
        'task completed: [offline] noted: the launch is on Friday',
      ],
    );
    assert.match(watched.stderr, /… still (planning|running) \(\d+s, step 1\)/, watched.stderr);

    const table = await ok(['tasks', 'list', '--agent', agentId]);
    assert.match(table.stdout, new RegExp(`^${submitted.id}\\s+${agentId}\\s+remember the launch\\s+completed`, 'm'));
    const detail = await ok(['tasks', 'get', submitted.id]);
    assert.match(detail.stdout, /status\s+completed/);
    assert.match(detail.stdout, /reasoning trace:\n {2}step 1 plan/);
    assert.equal((await json(['tasks', 'list', '--agent', agentId, '--status', 'completed'])).length, 1);

    // --watch on submit, and --json watch as one JSON line per decision then the task.
    const both = await ok(['tasks', 'submit', agentId, 'plan the offsite', '--watch']);
    assert.match(
      both.stdout,
      /^submitted task [0-9a-f-]{36} \(queued, position \d\)\nstep 1 complete .*\ntask completed: /,
    );
    const id = /submitted task (\S+)/.exec(both.stdout)![1]!;
    const ndjson = (await ok(['--json', 'tasks', 'watch', id])).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(ndjson[0].decisionType, 'complete');
    assert.equal(ndjson.at(-1).status, 'completed');
  });

  it('tasks watch exits 1 for a task that fails, and tasks cancel', async () => {
    const loop = { script: Array.from({ length: 20 }, () => ({ call: 'memory_read', args: { key: 'x' } })) };
    const task = await json(['tasks', 'submit', agentId, 'loop forever', '--input', JSON.stringify(loop)]);
    const watched = await cli(['tasks', 'watch', task.id, '--interval', '200']);
    assert.equal(watched.code, 1);
    assert.match(watched.stdout, /task failed: .*after 10 steps/);

    await ok(['agents', 'pause', agentId]);
    const queued = await json(['tasks', 'submit', agentId, 'wait in line']);
    assert.match((await ok(['tasks', 'cancel', queued.id, '--reason', 'not needed'])).stdout, /is cancelled/);
  });

  it('agents pause, resume, archive; errors are readable and exit 1', async () => {
    assert.match((await ok(['agents', 'pause', agentId])).stdout, new RegExp(`agent ${agentId} is PAUSED`));
    assert.match((await ok(['agents', 'resume', agentId])).stdout, /is IDLE/);
    assert.match((await ok(['agents', 'archive', agentId])).stdout, /is ARCHIVED/);

    const refused = await cli(['agents', 'resume', agentId]);
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr.trim(), 'error: agent is archived; it cannot resume (HTTP 409, conflict)');
    assert.equal(refused.stdout, '');

    const unknown = await cli(['tasks', 'get', '00000000-0000-4000-8000-000000000000']);
    assert.equal(unknown.code, 1);
    assert.equal(
      unknown.stderr.trim(),
      'error: no task with id "00000000-0000-4000-8000-000000000000" (HTTP 404, not_found)',
    );
    const invalid = await cli(['agents', 'create', '--name', 'x', '--objective', 'y', '--priority', '11']);
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, /^error: invalid body: priority: Too big/);
    const badJson = await cli(['tasks', 'submit', agentId, 'x', '--input', '{nope']);
    assert.equal(badJson.code, 1);
    assert.match(badJson.stderr, /--input is not valid JSON/);
    const closedPort = await getFreePort();
    const unreachable = await cli(['agents', 'list', '--api-url', `http://127.0.0.1:${closedPort}`]);
    assert.equal(unreachable.code, 1);
    assert.equal(
      unreachable.stderr.trim(),
      `error: cannot reach the API at http://127.0.0.1:${closedPort}: ECONNREFUSED`,
    );
    const usage = await cli(['agents', 'frobnicate']);
    assert.notEqual(usage.code, 0);
    assert.match(usage.stderr, /unknown command 'frobnicate'/);
  });

  it('approvals list, approve, reject', async () => {
    const careful = await json([
      'agents',
      'create',
      '--name',
      'Careful',
      '--objective',
      'Ask first',
      '--autonomy',
      'copilot',
    ]);
    const write = (key: string) =>
      JSON.stringify({ script: [{ call: 'memory_write', args: { key, op: 'set', value: 1 } }] });
    // The agent runs one task at a time: each request is pending while its task waits.
    const pendingFor = (taskId: string) =>
      waitFor(
        async () => (await json(['approvals', 'list', '--task', taskId]))[0],
        `the approval request of ${taskId}`,
        60_000,
      );
    const first = await json(['tasks', 'submit', careful.id, 'write a', '--input', write('a')]);
    const firstRequest = await pendingFor(first.id);
    const table = await ok(['approvals', 'list', '--agent', careful.id]);
    assert.match(table.stdout, /^ID\s+TASKID\s+TOOL\s+STATUS/);
    assert.match(table.stdout, new RegExp(`^${firstRequest.id}\\s+${first.id}\\s+memory_write\\s+pending`, 'm'));
    assert.match((await ok(['approvals', 'approve', firstRequest.id, '--by', 'alice'])).stdout, /approved by alice/);
    assert.equal((await stack.api.waitForTask(first.id)).status, 'completed');

    const second = await json(['tasks', 'submit', careful.id, 'write b', '--input', write('b')]);
    const secondRequest = await pendingFor(second.id);
    assert.match(
      (await ok(['approvals', 'reject', secondRequest.id, '--reason', 'not now', '--by', 'bob'])).stdout,
      /rejected by bob/,
    );
    const again = await cli(['approvals', 'approve', secondRequest.id]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /approval request is already rejected by bob \(HTTP 409/);
    assert.deepEqual(
      (await json(['approvals', 'list', '--status', 'all', '--agent', careful.id])).map((a: any) => a.status).sort(),
      ['approved', 'rejected'],
    );
  });

  it('crews start and stop call the crews API', async () => {
    const crewId = randomUUID();
    for (const action of ['start', 'stop']) {
      const result = await cli(['crews', action, crewId]);
      // Without that crew the API answers 404; the message names the crew either way.
      assert.equal(result.code, 1, result.stdout);
      assert.match(result.stderr, /^error: .*crew/);
      assert.ok(result.stderr.includes(crewId), result.stderr);
      assert.match(result.stderr, /HTTP 404/);
    }
  });

  it('status shows health, agents, task counts and pending approvals', async () => {
    const status = await ok(['status']);
    assert.match(status.stdout, /: ok \(postgres ok, temporal ok\)/);
    assert.match(status.stdout, /^AGENTS \(\d+\)\nID\s+NAME/m);
    assert.match(
      status.stdout,
      /^TASKS\nQUEUED\s+PLANNING\s+AWAITING_APPROVAL\s+RUNNING\s+WAITING_FOR_BUDGET\s+VALIDATING\s+COMPLETED\s+FAILED\s+CANCELLED\n/m,
    );
    assert.match(status.stdout, /^PENDING APPROVALS \(\d+\)/m);
    const summary = await json(['status']);
    const counted = (await stack.api.get('/api/v1/tasks?status=completed&limit=500')).body.tasks.length;
    assert.equal(summary.tasks.completed, counted);
    assert.equal(summary.health.status, 'ok');
  });

  it('sends --api-key as a bearer token', async () => {
    const seen: IncomingHttpHeaders[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers);
      res.setHeader('content-type', 'application/json');
      res.end('{"agents":[],"limit":100,"offset":0}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      assert.equal((await ok(['--api-url', url, '--api-key', 'k-123', 'agents', 'list'])).stdout.trim(), '(none)');
      await ok(['agents', 'list'], { AGENTCTL_API_URL: url, AGENTCTL_API_KEY: 'k-env' });
      assert.deepEqual(
        seen.map((h) => h.authorization),
        ['Bearer k-123', 'Bearer k-env'],
      );
    } finally {
      server.close();
    }
  });
});
