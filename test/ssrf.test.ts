import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { nonPublicAddressKind } from '../lib/outbound-policy';
import { MAX_RESPONSE_BYTES, safeGet, safePost, type HttpPolicy } from '../activities/tools/safe-http';
import { MAX_TOOL_OUTPUT_CHARS } from '../activities/tools/registry';
import { startApi, startWorker, testConfig, type TestStack } from './helpers/stack';

/**
 * http_get / http_post against SSRF: every non-public address class is refused unless its host or address
 * range is on OUTBOUND_ALLOW_HOSTS (HTTP_ALLOW_PRIVATE_HOSTS, its older name, merged in), names are checked
 * after resolution, redirects are checked hop by hop, and responses are bounded in size and time. Then the
 * same refusal and the tool output bound in a real task.
 */
describe('safe HTTP for tools (SSRF)', () => {
  let server: http.Server;
  let port: number;
  /** Requests the local server saw, by path. */
  const seen: string[] = [];
  let bigBodyBytesSent = 0;

  before(async () => {
    server = http.createServer((req, res) => {
      seen.push(req.url!);
      const url = new URL(req.url!, 'http://x');
      if (url.pathname === '/redirect') return void res.writeHead(302, { location: url.searchParams.get('to')! }).end();
      if (url.pathname === '/hop') {
        const n = Number(url.searchParams.get('n'));
        return void res.writeHead(307, { location: n > 0 ? `/hop?n=${n - 1}` : '/hello' }).end();
      }
      if (url.pathname === '/loop') return void res.writeHead(301, { location: '/loop' }).end();
      if (url.pathname === '/big') {
        // 8 MB in 64 kB chunks, written as long as the client reads.
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(64 * 1024, 'a');
        let left = 128;
        const pump = () => {
          while (left > 0) {
            left -= 1;
            bigBodyBytesSent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('close', () => (left = 0));
        return pump();
      }
      if (url.pathname === '/slow') return; // never answers
      if (req.method === 'POST') return void res.writeHead(303, { location: '/posted' }).end();
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello from ${req.url}`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const local = () => `127.0.0.1:${port}`;
  const policy = (p: Partial<HttpPolicy> = {}): HttpPolicy => ({
    allowedHosts: [local(), `localhost:${port}`],
    privateHosts: [local()],
    ...p,
  });
  const signal = () => AbortSignal.timeout(5000);

  it('classifies every non-public address range', () => {
    const cases: [string, string][] = [
      ['127.0.0.1', 'loopback'],
      ['127.255.0.9', 'loopback'],
      ['::1', 'loopback'],
      ['10.1.2.3', 'private'],
      ['172.16.0.1', 'private'],
      ['172.31.255.254', 'private'],
      ['192.168.1.1', 'private'],
      ['fc00::1', 'private'],
      ['fd12:3456::1', 'private'],
      ['169.254.169.254', 'link-local (cloud metadata)'],
      ['fe80::1', 'link-local'],
      ['0.0.0.0', 'unspecified'],
      ['::', 'unspecified'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:a9fe:a9fe', 'link-local (cloud metadata)'],
      ['100.64.0.1', 'private (carrier-grade NAT)'],
      ['224.0.0.1', 'multicast'],
    ];
    for (const [address, kind] of cases) assert.equal(nonPublicAddressKind(address), kind, address);
    for (const address of ['93.184.216.34', '172.32.0.1', '8.8.8.8', '2606:4700::1111', '::ffff:8.8.8.8']) {
      assert.equal(nonPublicAddressKind(address), undefined, address);
    }
  });

  it('refuses loopback, private, link-local, unspecified and metadata addresses that are allowlisted but not allowed private', async () => {
    const urls = [
      'http://127.0.0.1/',
      'http://[::1]/',
      'http://10.0.0.5/',
      'http://172.16.3.4/',
      'http://192.168.0.10/',
      'http://[fc00::5]/',
      'http://[fd00:ec2::254]/',
      'http://169.254.169.254/latest/meta-data/',
      'http://[fe80::1]/',
      'http://0.0.0.0/',
      'http://[::]/',
      'http://[::ffff:127.0.0.1]/',
    ];
    for (const url of urls) {
      const host = new URL(url).host;
      await assert.rejects(
        safeGet(url, { allowedHosts: [host], privateHosts: [] }, signal()),
        /refused: .* address; only hosts on OUTBOUND_ALLOW_HOSTS/,
        url,
      );
    }
  });

  it('checks names after resolving them: localhost resolves to loopback and is refused', async () => {
    await assert.rejects(
      safeGet(`http://localhost:${port}/x`, policy(), signal()),
      /refused: "localhost" is resolved to (127\.0\.0\.1|::1), a loopback address/,
    );
    assert.ok(!seen.includes('/x'), 'no request reached the server');
    // Allowed explicitly, the same name is reached.
    const ok = await safeGet(`http://localhost:${port}/y`, policy({ privateHosts: [`localhost:${port}`] }), signal());
    assert.equal(ok.body, 'hello from /y');
    // Or by address range: the resolved address is inside an allowed CIDR.
    const inRange = await safeGet(
      `http://localhost:${port}/z`,
      policy({ privateHosts: ['127.0.0.0/8', '::1/128'] }),
      signal(),
    );
    assert.equal(inRange.body, 'hello from /z');
    await assert.rejects(
      safeGet(`http://localhost:${port}/w`, policy({ privateHosts: ['10.0.0.0/8'] }), signal()),
      /refused: "localhost" is resolved to/,
    );
  });

  it('refuses hosts outside the allowlist and other protocols', async () => {
    await assert.rejects(safeGet('http://example.com/', policy(), signal()), /not in the allowlist/);
    await assert.rejects(safeGet('file:///etc/passwd', policy(), signal()), /unsupported protocol file:/);
    await assert.rejects(safeGet(`http://user:pw@${local()}/`, policy(), signal()), /credentials/);
  });

  it('follows redirects up to five hops, checking each one', async () => {
    const followed = await safeGet(`http://${local()}/hop?n=4`, policy(), signal());
    assert.equal(followed.status, 200);
    assert.equal(followed.body, 'hello from /hello');
    await assert.rejects(safeGet(`http://${local()}/loop`, policy(), signal()), /too many redirects \(more than 5\)/);
    const toMetadata = `http://${local()}/redirect?to=${encodeURIComponent('http://169.254.169.254/latest/meta-data/')}`;
    await assert.rejects(
      safeGet(toMetadata, policy({ allowedHosts: [local(), '169.254.169.254'] }), signal()),
      /refused: "169.254.169.254" is a link-local/,
    );
    const toOther = `http://${local()}/redirect?to=${encodeURIComponent('http://example.com/')}`;
    await assert.rejects(safeGet(toOther, policy(), signal()), /host "example.com" is not in the allowlist/);
    const toLocalhost = `http://${local()}/redirect?to=${encodeURIComponent(`http://localhost:${port}/sneaky`)}`;
    await assert.rejects(safeGet(toLocalhost, policy(), signal()), /refused: "localhost"/);
    assert.ok(!seen.includes('/sneaky'));
  });

  it('does not follow a redirect of a POST', async () => {
    const res = await safePost(
      `http://${local()}/submit`,
      '{}',
      { 'content-type': 'application/json' },
      policy(),
      signal(),
    );
    assert.equal(res.status, 303);
    assert.equal(res.location, '/posted');
    assert.ok(!seen.includes('/posted'));
    await assert.rejects(
      safePost('http://10.0.0.1/', '{}', {}, { allowedHosts: ['10.0.0.1'], privateHosts: [] }, signal()),
      /private address/,
    );
  });

  it('stops reading at the size bound and gives up at the time bound', async () => {
    const res = await safeGet(`http://${local()}/big`, policy(), signal());
    assert.equal(res.truncated, true);
    assert.equal(Buffer.byteLength(res.body), MAX_RESPONSE_BYTES);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(bigBodyBytesSent < 8 * 1024 * 1024, `the server stopped early (${bigBodyBytesSent} bytes written)`);
    await assert.rejects(safeGet(`http://${local()}/slow`, policy(), AbortSignal.timeout(300)), /timed out/);
  });

  describe('in a task', () => {
    let stack: TestStack;
    let worker: { stop(): Promise<void> };
    before(async () => {
      // Allowlisted but not allowed to be private: the refusal must reach the model as a tool result.
      const config = testConfig({ HTTP_ALLOWED_HOSTS: `${local()},localhost:${port}` });
      stack = await startApi(config);
      worker = await startWorker(config);
    });
    after(async () => {
      await worker?.stop();
      await stack?.stop();
    });

    it('returns the refusal to the model and bounds tool output in the trace', async () => {
      const agent = await stack.api.createAgent({
        name: 'Prober',
        objective: 'Probe',
        allowedTools: ['http_get', 'memory_write', 'memory_read'],
      });
      const big = 'x'.repeat(MAX_TOOL_OUTPUT_CHARS + 5000);
      const script = [
        { call: 'http_get', args: { url: `http://${local()}/internal` } },
        { call: 'http_get', args: { url: `http://localhost:${port}/internal` } },
        { call: 'memory_write', args: { key: 'big', value: big } },
        { call: 'memory_read', args: { key: 'big' } },
        { answer: 'done' },
      ];
      const done = await stack.api.waitForTask(
        (await stack.api.createTask({ agentId: agent.id, title: 'probe', input: { script } })).id,
      );
      assert.equal(done.status, 'completed');
      const results = done.reasoningTrace.filter((d: any) => d.decisionType === 'tool_call').map((d: any) => d.result);
      assert.match(results[0].error, /refused: "127.0.0.1" is a loopback address/);
      assert.match(results[1].error, /refused: "localhost" is resolved to/);
      assert.ok(!seen.includes('/internal'), 'the internal server was never reached');
      const stored = results[3];
      assert.equal(typeof stored, 'string', 'cut output is kept as text');
      assert.ok(stored.length <= MAX_TOOL_OUTPUT_CHARS + 100, `bounded: ${stored.length}`);
      assert.match(stored, /…\[truncated \d+ characters\]$/);
    });
  });
});
