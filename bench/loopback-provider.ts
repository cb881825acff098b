/**
 * A loopback model provider for the chat scenario: speaks the OpenAI Chat Completions wire format (JSON
 * and SSE) and answers every request the same way, after a fixed first-token delay, so the time a chat
 * takes to its first token minus that delay is what the orchestrator adds. Run as its own process
 * (`tsx bench/loopback-provider.ts <first-token ms>`); prints `{"port":…}` on stdout once it listens.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const FIRST_TOKEN_MS = Number(process.argv[2] ?? 200);
const PIECES = ['Hello', ' from', ' the', ' loopback', ' provider.'];

const frame = (data: unknown) => `data: ${JSON.stringify(data)}\n\n`;

function chunk(model: string, delta: unknown, finishReason: string | null = null) {
  return frame({
    id: 'chatcmpl-bench',
    object: 'chat.completion.chunk',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  });
}

const usage = { prompt_tokens: 20, completion_tokens: PIECES.length, total_tokens: 20 + PIECES.length };

function stream(res: ServerResponse, model: string, includeUsage: boolean): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  // The role frame and the first content frame leave together, after the fixed delay: that is the
  // provider's own first-token time.
  setTimeout(() => {
    res.write(chunk(model, { role: 'assistant', content: '' }) + chunk(model, { content: PIECES[0] }));
    const rest = PIECES.slice(1).map((p) => chunk(model, { content: p }));
    rest.push(chunk(model, {}, 'stop'));
    if (includeUsage)
      rest.push(frame({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', model, choices: [], usage }));
    rest.push('data: [DONE]\n\n');
    res.end(rest.join(''));
  }, FIRST_TOKEN_MS);
}

const server = createServer((req, res) => {
  let raw = '';
  req.on('data', (c: Buffer) => (raw += c.toString()));
  req.on('end', () => {
    if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}` } }));
    }
    const body = JSON.parse(raw || '{}') as {
      model?: string;
      stream?: boolean;
      stream_options?: { include_usage?: boolean };
    };
    const model = body.model ?? 'loopback';
    if (body.stream) return stream(res, model, body.stream_options?.include_usage === true);
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: 'chatcmpl-bench',
          object: 'chat.completion',
          created: Math.floor(Date.now() / 1000),
          model,
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: PIECES.join(''), refusal: null },
              logprobs: null,
              finish_reason: 'stop',
            },
          ],
          usage,
        }),
      );
    }, FIRST_TOKEN_MS);
  });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
