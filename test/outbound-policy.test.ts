import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createApprovalActivities } from '../activities/approvals';
import { configuredUrlRefusal } from '../lib/outbound-policy';
import { postWebhook } from '../activities/tools/safe-http';
import { loadConfig } from '../lib/config';
import { silentLogger, startApi, startStack, testConfig, type TestStack } from './helpers/stack';

/**
 * One outbound-address policy for every connection made for a tenant. This file runs without
 * OUTBOUND_ALLOW_HOSTS: agent bodies naming loopback, private, link-local or metadata addresses are refused
 * with 400 naming the field, and webhooks are refused at connection time (after resolution) and follow no
 * redirect.
 */
describe('outbound address policy', () => {
  let stack: TestStack;
  before(async () => {
    assert.equal(
      process.env.OUTBOUND_ALLOW_HOSTS ?? '',
      '',
      'this file tests the policy without an operator allowlist',
    );
    stack = await startStack(testConfig());
  });
  after(async () => {
    await stack?.stop();
  });

  const refusedUrls = [
    'http://169.254.169.254/latest/',
    'http://127.0.0.1:5432/',
    'http://localhost:8080/mcp',
    'http://[::1]/',
    'http://10.0.0.8/',
    'http://172.16.0.1/',
    'http://192.168.1.1/',
    'http://[fd00::1]/',
    'http://[fe80::1]/',
    'http://0.0.0.0/',
    'http://2130706433/', // 127.0.0.1 as one number
    'http://metadata.google.internal/computeMetadata/v1/',
  ];

  it('refuses agents whose MCP server URL is not public, with 400 naming the field', async () => {
    for (const url of refusedUrls) {
      const res = await stack.api.post('/api/v1/agents', {
        name: 'Reach in',
        objective: 'x',
        mcpServers: [{ name: 'in', transport: 'http', url }],
      });
      assert.equal(res.status, 400, url);
      assert.match(
        res.body.error.message,
        /mcpServers\.0\.url: MCP server URL refused: .*only OUTBOUND_ALLOW_HOSTS may be reached/,
        url,
      );
    }
  });

  it('refuses a webhook notify URL that is not public, on create and on patch', async () => {
    for (const url of ['http://169.254.169.254/latest/', 'http://127.0.0.1:5432/']) {
      const res = await stack.api.post('/api/v1/agents', {
        name: 'Hook',
        objective: 'x',
        notify: { type: 'webhook', url },
      });
      assert.equal(res.status, 400, url);
      assert.match(
        res.body.error.message,
        /notify\.url: webhook URL refused: .*only OUTBOUND_ALLOW_HOSTS may be reached/,
        url,
      );
    }
    const agent = await stack.api.createAgent({
      name: 'Hook',
      objective: 'x',
      notify: { type: 'webhook', url: 'https://hooks.example.com/agents' },
    });
    const patch = await stack.api.patch(`/api/v1/agents/${agent.id}`, {
      notify: { type: 'webhook', url: 'http://169.254.169.254/latest/' },
    });
    assert.equal(patch.status, 400);
    assert.match(patch.body.error.message, /notify\.url/);
    const patchMcp = await stack.api.patch(`/api/v1/agents/${agent.id}`, {
      mcpServers: [{ name: 'db', transport: 'http', url: 'http://127.0.0.1:5432/' }],
    });
    assert.equal(patchMcp.status, 400);
    assert.match(patchMcp.body.error.message, /mcpServers\.0\.url/);
  });

  it('lets the operator allow hosts and address ranges (OUTBOUND_ALLOW_HOSTS)', () => {
    assert.equal(configuredUrlRefusal('http://127.0.0.1:5432/', ['127.0.0.1:5432']), undefined);
    assert.equal(configuredUrlRefusal('http://127.0.0.1:5432/', ['127.0.0.1']), undefined);
    assert.equal(configuredUrlRefusal('http://10.1.2.3/', ['10.0.0.0/8']), undefined);
    assert.match(configuredUrlRefusal('http://127.0.0.1:5433/', ['127.0.0.1:5432'])!, /loopback/);
    assert.match(configuredUrlRefusal('http://169.254.169.254/', ['10.0.0.0/8'])!, /link-local/);
    assert.equal(configuredUrlRefusal('https://mcp.example.com/mcp', []), undefined);
    assert.throws(() => loadConfig({ OUTBOUND_ALLOW_HOSTS: '10.0.0.0/99' }), /OUTBOUND_ALLOW_HOSTS/);
    assert.deepEqual(loadConfig({ OUTBOUND_ALLOW_HOSTS: 'a.internal:8080, 10.0.0.0/8' }).OUTBOUND_ALLOW_HOSTS, [
      'a.internal:8080',
      '10.0.0.0/8',
    ]);
  });
});

describe('webhook delivery and the outbound address policy', () => {
  let stack: TestStack;
  let receiver: http.Server;
  let port: number;
  const seen: string[] = [];
  before(async () => {
    stack = await startApi(testConfig());
    receiver = http.createServer((req, res) => {
      seen.push(req.url!);
      req.resume();
      if (req.url === '/redirect')
        return void res.writeHead(307, { location: `http://localhost:${port}/inside` }).end();
      res.writeHead(204).end();
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    port = (receiver.address() as AddressInfo).port;
  });
  after(async () => {
    receiver.closeAllConnections();
    await new Promise((resolve) => receiver.close(resolve));
    await stack?.stop();
  });

  const notification = (url: string) => ({
    key: `test-${randomUUID()}`,
    orgId: 'default',
    agentId: randomUUID(),
    taskId: null,
    event: 'approval_needed' as const,
    payload: {},
    target: { type: 'webhook' as const, url },
  });
  const notifier = (allow: string) =>
    createApprovalActivities({
      db: stack.db,
      logger: silentLogger,
      config: loadConfig({ OUTBOUND_ALLOW_HOSTS: allow, HTTP_ALLOW_PRIVATE_HOSTS: '' }),
    });

  it('refuses a webhook whose name resolves to a loopback address, at connection time', async () => {
    const n = notification(`http://localhost:${port}/hook`);
    await assert.rejects(
      notifier('').notify(n),
      /refused: "localhost" is resolved to (127\.0\.0\.1|::1), a loopback address/,
    );
    assert.deepEqual(seen, [], 'nothing was sent');
    const { rows } = await stack.db.query(
      'SELECT attempts, delivered_at, last_error FROM notifications WHERE idempotency_key = $1',
      [n.key],
    );
    assert.equal(rows[0].delivered_at, null);
    assert.match(rows[0].last_error, /refused/);
  });

  it('follows no redirect: a hop to a refused address is never made', async () => {
    await assert.rejects(
      notifier(`127.0.0.1:${port}`).notify(notification(`http://127.0.0.1:${port}/redirect`)),
      /webhook answered 307 \(redirect to http:\/\/localhost:\d+\/inside not followed\)/,
    );
    assert.deepEqual(seen, ['/redirect']);
    // Delivered where the operator allows it.
    await notifier(`127.0.0.1:${port}`).notify(notification(`http://127.0.0.1:${port}/hook`));
    assert.deepEqual(seen, ['/redirect', '/hook']);
    const direct = await postWebhook(
      `http://127.0.0.1:${port}/redirect`,
      '{}',
      {},
      [`127.0.0.1:${port}`],
      AbortSignal.timeout(5000),
    );
    assert.equal(direct.status, 307);
  });
});
