/**
 * The model every system in the peers benchmark calls: a loopback server speaking the OpenAI Chat
 * Completions wire format (JSON and SSE). A conversation without a tool result gets one `memory_write` tool
 * call; a conversation with one gets the final answer. Every answer leaves after a per-call latency that
 * `POST /latency {"ms": n}` changes while it runs. `GET /calls` counts, per task, the tool calls and the
 * final answers it gave: a final answer given twice means the task's last step ran twice.
 *
 * Run as its own process (`tsx bench/peers/model-server.ts <ms>`), so its CPU time is its own; prints
 * `{"port":…}` on stdout once it listens.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

let latencyMs = Number(process.argv[2] ?? 0);
let calls = 0;
const perTask: Record<string, { tool: number; answer: number }> = {};

interface WireMessage {
  role: string;
  content?: unknown;
  tool_call_id?: string;
}

const frame = (data: unknown) => `data: ${JSON.stringify(data)}\n\n`;
const usage = { prompt_tokens: 40, completion_tokens: 8, total_tokens: 48 };

/** The task's key, from the prompt ("peer-task <id>"), so the tool call names the task it writes for. */
function taskKey(messages: WireMessage[]): string {
  const text = messages.map((m) => (typeof m.content === 'string' ? m.content : JSON.stringify(m.content))).join(' ');
  return /peer-task ([0-9a-zA-Z-]+)/.exec(text)?.[1] ?? 'unknown';
}

function reply(res: ServerResponse, body: { model?: string; stream?: boolean; messages?: WireMessage[] }): void {
  const messages = body.messages ?? [];
  const model = body.model ?? 'loopback';
  const answered = messages.some((m) => m.role === 'tool');
  const key = taskKey(messages);
  const counts = (perTask[key] ??= { tool: 0, answer: 0 });
  if (answered) counts.answer++;
  else counts.tool++;
  const toolCall = {
    id: `call_${key.replace(/-/g, '').slice(0, 24)}`,
    type: 'function',
    function: { name: 'memory_write', arguments: JSON.stringify({ key: `peer-${key}`, value: 1 }) },
  };
  const message = answered
    ? { role: 'assistant', content: 'done', refusal: null }
    : { role: 'assistant', content: null, refusal: null, tool_calls: [toolCall] };
  const finish = answered ? 'stop' : 'tool_calls';
  const base = { id: `chatcmpl-${++calls}`, created: Math.floor(Date.now() / 1000), model };
  if (!body.stream) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        ...base,
        object: 'chat.completion',
        choices: [{ index: 0, message, logprobs: null, finish_reason: finish }],
        usage,
      }),
    );
    return;
  }
  const chunk = (delta: unknown, finishReason: string | null = null) =>
    frame({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finishReason }] });
  const frames = [chunk({ role: 'assistant', content: answered ? '' : null })];
  if (answered) frames.push(chunk({ content: 'done' }));
  else frames.push(chunk({ tool_calls: [{ index: 0, ...toolCall }] }));
  frames.push(chunk({}, finish));
  frames.push(frame({ ...base, object: 'chat.completion.chunk', choices: [], usage }));
  frames.push('data: [DONE]\n\n');
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.end(frames.join(''));
}

const server = createServer((req, res) => {
  let raw = '';
  req.on('data', (c: Buffer) => (raw += c.toString()));
  req.on('end', () => {
    if (req.method === 'POST' && req.url === '/latency') {
      latencyMs = Number((JSON.parse(raw) as { ms: number }).ms);
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ ms: latencyMs, calls }));
    }
    if (req.method === 'GET' && req.url === '/calls') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ calls, perTask }));
    }
    if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}` } }));
    }
    const body = JSON.parse(raw || '{}') as { model?: string; stream?: boolean; messages?: WireMessage[] };
    if (latencyMs > 0) setTimeout(() => reply(res, body), latencyMs);
    else reply(res, body);
  });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
