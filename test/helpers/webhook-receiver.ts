import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedWebhook {
  headers: http.IncomingHttpHeaders;
  body: any;
}

/** A local HTTP server that records the JSON bodies POSTed to it; `failFirst` answers 503 that many times. */
export async function startWebhookReceiver(opts: { failFirst?: number } = {}) {
  const received: ReceivedWebhook[] = [];
  let failuresLeft = opts.failFirst ?? 0;
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (chunk) => (data += chunk));
    req.on('end', () => {
      if (failuresLeft > 0) {
        failuresLeft -= 1;
        res.writeHead(503).end();
        return;
      }
      received.push({ headers: req.headers, body: JSON.parse(data) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    host: `127.0.0.1:${port}`,
    received,
    events: () => received.map((r) => r.body.event as string),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
