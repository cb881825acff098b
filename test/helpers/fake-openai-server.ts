/**
 * A loopback HTTP server that speaks the OpenAI Chat Completions wire protocol (JSON and SSE), so the
 * adapter is exercised through the real SDK and real sockets. It validates requests the way the real
 * service does (auth header, JSON body, message/tool pairing) and answers with queued replies.
 *
 * The generic loopback core at the bottom is shared with fake-anthropic-server.ts.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface FakeToolCall {
  id: string;
  name: string;
  /** Raw argument text, sent verbatim (may be malformed on purpose). */
  arguments: string;
}

/** Streaming knobs shared by both fakes; ignored when the client did not ask for a stream. */
export interface StreamKnobs {
  /** Pause between SSE frames so a test can observe tokens before the stream ends. */
  chunkDelayMs?: number;
  /** Stop writing (but keep the connection open) after this many frames. */
  stallAfterFrames?: number;
  /** Destroy the socket after this many frames. */
  resetAfterFrames?: number;
}

/** A logical completion, rendered as JSON or as SSE chunks depending on the request's `stream` flag. */
export interface FakeCompletion extends StreamKnobs {
  kind: 'completion';
  content?: string | null;
  /** How `content` is split into stream deltas; defaults to word-sized pieces. */
  contentChunks?: string[];
  toolCalls?: FakeToolCall[];
  refusal?: string;
  finishReason?: 'stop' | 'tool_calls' | 'length' | 'content_filter';
  usage?: { promptTokens: number; completionTokens: number };
  model?: string;
  /** Older Ollama streamed tool call deltas without `index`. */
  omitToolCallIndex?: boolean;
  /** Answer only after this long (a slow model). */
  delayMs?: number;
}

export type FakeReply =
  | FakeCompletion
  /** Raw chat.completion.chunk payloads, each sent as one `data:` frame, then `data: [DONE]` unless done is false. */
  | ({ kind: 'sse'; chunks: unknown[]; done?: boolean } & StreamKnobs)
  | { kind: 'error'; status: number; body?: unknown; headers?: Record<string, string> }
  /** Destroys the socket as soon as the request body has been read (ECONNRESET for the client). */
  | { kind: 'reset' }
  /** Never answers; the connection stays open until the client gives up or the server closes. */
  | { kind: 'hang' }
  /** 200 with a JSON completion cut in half (well-framed HTTP, malformed JSON). */
  | { kind: 'truncated' };

export interface FakeOpenAiServer {
  /** Base URL for the SDK, ending in /v1. */
  url: string;
  requests: RecordedRequest[];
  /** Queues a reply for the first later request that `when` accepts (any request without it). */
  enqueue(reply: FakeReply, opts?: { when?: (request: RecordedRequest) => boolean }): void;
  /** Progress of the most recent SSE response. */
  stream: StreamProgress;
  close(): Promise<void>;
}

export function openAiErrorBody(
  message: string,
  type: string,
  code: string | null = null,
  param: string | null = null,
): unknown {
  return { error: { message, type, param, code } };
}

export async function startFakeOpenAi(): Promise<FakeOpenAiServer> {
  const queue: { reply: FakeReply; when?: (request: RecordedRequest) => boolean }[] = [];
  const stream: StreamProgress = { framesSent: 0, framesTotal: 0, finished: false };
  const core = await startLoopback((request, res) => {
    const problem = validateOpenAiRequest(request);
    if (problem)
      return sendJson(res, problem.status, openAiErrorBody(problem.message, problem.type, problem.code, problem.param));
    const index = queue.findIndex((queued) => !queued.when || queued.when(request));
    if (index < 0) return sendJson(res, 500, openAiErrorBody('fake server: no reply queued', 'server_error'));
    const [{ reply }] = queue.splice(index, 1);
    return answer(reply!, request, res, stream);
  });
  return {
    url: `${core.origin}/v1`,
    requests: core.requests,
    enqueue: (reply, opts) => queue.push({ reply, when: opts?.when }),
    stream,
    close: core.close,
  };
}

// ---------------------------------------------------------------------------------------------
// Request validation, mirroring the errors the real service returns

interface Problem {
  status: number;
  message: string;
  type: string;
  code: string | null;
  param: string | null;
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);

function validateOpenAiRequest(request: RecordedRequest): Problem | undefined {
  if (request.method !== 'POST' || request.path !== '/v1/chat/completions') {
    return problem(404, `Invalid URL (${request.method} ${request.path})`, null, null);
  }
  const auth = request.headers.authorization;
  if (typeof auth !== 'string' || !/^Bearer \S+/.test(auth)) {
    return problem(
      401,
      "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth.",
      null,
      null,
    );
  }
  if (!isObject(request.body)) return problem(400, 'We could not parse the JSON body of your request.', null, null);
  const body = request.body;
  if (typeof body.model !== 'string' || body.model === '')
    return problem(400, 'you must provide a model parameter', null, null);
  if (!Array.isArray(body.messages))
    return problem(400, "Missing required parameter: 'messages'.", 'missing_required_parameter', 'messages');
  if (body.messages.length === 0) return problem(400, "[] is too short - 'messages'", 'empty_array', 'messages');
  if (body.stream_options !== undefined && body.stream !== true) {
    return problem(
      400,
      "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
      null,
      'stream_options',
    );
  }
  return validateTools(body.tools) ?? validateMessages(body.messages);
}

function validateTools(tools: unknown): Problem | undefined {
  if (tools === undefined) return undefined;
  if (!Array.isArray(tools) || tools.length === 0)
    return problem(400, "[] is too short - 'tools'", 'empty_array', 'tools');
  for (const [i, tool] of tools.entries()) {
    const fn = isObject(tool) ? tool.function : undefined;
    if (
      !isObject(tool) ||
      tool.type !== 'function' ||
      !isObject(fn) ||
      typeof fn.name !== 'string' ||
      !/^[a-zA-Z0-9_-]{1,64}$/.test(fn.name)
    ) {
      return problem(
        400,
        `Invalid 'tools[${i}]': expected a function tool with a valid name.`,
        'invalid_value',
        `tools[${i}]`,
      );
    }
  }
  return undefined;
}

/** Tool messages must answer a preceding assistant tool_calls entry, and every tool call must be answered. */
function validateMessages(messages: unknown[]): Problem | undefined {
  let pending = new Set<string>();
  for (const [i, message] of messages.entries()) {
    if (!isObject(message) || typeof message.role !== 'string' || !ROLES.has(message.role)) {
      return problem(400, `Invalid value for 'messages[${i}].role'.`, 'invalid_value', `messages[${i}].role`);
    }
    if (message.role === 'tool') {
      if (typeof message.tool_call_id !== 'string' || !pending.has(message.tool_call_id)) {
        return problem(
          400,
          "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
          null,
          `messages.[${i}].role`,
        );
      }
      pending.delete(message.tool_call_id);
      continue;
    }
    if (pending.size > 0) return unansweredToolCalls(pending, i);
    pending = toolCallIds(message);
    if (message.role === 'assistant' && message.content === null && pending.size === 0) {
      return problem(
        400,
        `Invalid value for 'messages[${i}].content': expected a string, got null.`,
        null,
        `messages.[${i}].content`,
      );
    }
  }
  return pending.size > 0 ? unansweredToolCalls(pending, messages.length) : undefined;
}

function toolCallIds(message: Record<string, unknown>): Set<string> {
  if (message.role !== 'assistant' || !Array.isArray(message.tool_calls)) return new Set();
  return new Set(message.tool_calls.map((call) => (isObject(call) ? String(call.id) : '')));
}

function unansweredToolCalls(pending: Set<string>, index: number): Problem {
  return problem(
    400,
    `An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...pending].join(', ')}`,
    null,
    `messages.[${index}].role`,
  );
}

function problem(status: number, message: string, code: string | null, param: string | null): Problem {
  return { status, message, type: 'invalid_request_error', code, param };
}

// ---------------------------------------------------------------------------------------------
// Replies

function answer(reply: FakeReply, request: RecordedRequest, res: ServerResponse, progress: StreamProgress): void {
  const body = request.body as Record<string, unknown>;
  if (reply.kind === 'completion' && reply.delayMs) {
    setTimeout(() => answer({ ...reply, delayMs: undefined }, request, res, progress), reply.delayMs);
    return;
  }
  switch (reply.kind) {
    case 'error':
      return sendJson(
        res,
        reply.status,
        reply.body ?? openAiErrorBody(`fake ${reply.status}`, 'server_error'),
        reply.headers,
      );
    case 'reset':
      res.socket?.destroy();
      return;
    case 'hang':
      return;
    case 'truncated': {
      const json = JSON.stringify(completionJson({ kind: 'completion', content: 'cut short' }, String(body.model)));
      return sendRaw(res, 200, 'application/json', json.slice(0, Math.floor(json.length / 2)));
    }
    case 'sse':
      return void writeSse(
        res,
        [...reply.chunks.map(dataFrame), ...(reply.done === false ? [] : ['data: [DONE]\n\n'])],
        reply,
        progress,
      );
    case 'completion':
      if (body.stream === true) return void writeSse(res, completionFrames(reply, body), reply, progress);
      return sendJson(res, 200, completionJson(reply, String(body.model)));
  }
}

function completionJson(reply: FakeCompletion, requestedModel: string): unknown {
  const toolCalls = reply.toolCalls ?? [];
  const message: Record<string, unknown> = {
    role: 'assistant',
    content: reply.content ?? null,
    refusal: reply.refusal ?? null,
    annotations: [],
  };
  if (toolCalls.length > 0) {
    message.tool_calls = toolCalls.map((call) => ({
      id: call.id,
      type: 'function',
      function: { name: call.name, arguments: call.arguments },
    }));
  }
  return {
    id: 'chatcmpl-fake0001',
    object: 'chat.completion',
    created: 1_700_000_000,
    model: reply.model ?? requestedModel,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishReasonOf(reply) }],
    usage: usageJson(reply),
    service_tier: 'default',
    system_fingerprint: 'fp_fake',
  };
}

function finishReasonOf(reply: FakeCompletion): string {
  return reply.finishReason ?? ((reply.toolCalls ?? []).length > 0 ? 'tool_calls' : 'stop');
}

function usageJson(reply: FakeCompletion): unknown {
  const prompt = reply.usage?.promptTokens ?? 0;
  const completion = reply.usage?.completionTokens ?? 0;
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

/** The documented chunk sequence: role delta, content/refusal/tool deltas, finish chunk, optional usage chunk, [DONE]. */
function completionFrames(reply: FakeCompletion, body: Record<string, unknown>): string[] {
  const includeUsage = isObject(body.stream_options) && body.stream_options.include_usage === true;
  const model = reply.model ?? String(body.model);
  const chunk = (delta: unknown, finishReason: string | null = null): string =>
    dataFrame({
      id: 'chatcmpl-fake0001',
      object: 'chat.completion.chunk',
      created: 1_700_000_000,
      model,
      system_fingerprint: 'fp_fake',
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
      ...(includeUsage ? { usage: null } : {}),
    });
  const frames = [chunk({ role: 'assistant', content: '', refusal: null })];
  for (const piece of reply.contentChunks ?? splitWords(reply.content ?? '')) frames.push(chunk({ content: piece }));
  for (const piece of splitWords(reply.refusal ?? '')) frames.push(chunk({ refusal: piece }));
  for (const [index, call] of (reply.toolCalls ?? []).entries())
    frames.push(...toolCallFrames(call, index, reply.omitToolCallIndex === true, chunk));
  frames.push(chunk({}, finishReasonOf(reply)));
  if (includeUsage) {
    frames.push(
      dataFrame({
        id: 'chatcmpl-fake0001',
        object: 'chat.completion.chunk',
        created: 1_700_000_000,
        model,
        choices: [],
        usage: usageJson(reply),
      }),
    );
  }
  frames.push('data: [DONE]\n\n');
  return frames;
}

/** First delta carries id, type and name with empty arguments; the arguments follow in fragments. */
function toolCallFrames(
  call: FakeToolCall,
  index: number,
  omitIndex: boolean,
  chunk: (delta: unknown) => string,
): string[] {
  const withIndex = (fragment: Record<string, unknown>): unknown => ({
    tool_calls: [omitIndex ? fragment : { index, ...fragment }],
  });
  const frames = [chunk(withIndex({ id: call.id, type: 'function', function: { name: call.name, arguments: '' } }))];
  for (const piece of splitInThree(call.arguments)) frames.push(chunk(withIndex({ function: { arguments: piece } })));
  return frames;
}

function dataFrame(payload: unknown): string {
  return `data: ${JSON.stringify(payload)}\n\n`;
}

// =============================================================================================
// Generic loopback core (shared with fake-anthropic-server.ts)

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** Parsed JSON, or the raw text when the body was not JSON. */
  body: unknown;
}

export interface StreamProgress {
  framesSent: number;
  framesTotal: number;
  finished: boolean;
}

export interface Loopback {
  /** http://127.0.0.1:port */
  origin: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

export async function startLoopback(
  handle: (request: RecordedRequest, res: ServerResponse) => void,
): Promise<Loopback> {
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    void readBody(req).then((text) => {
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: parseJson(text),
      };
      requests.push(recorded);
      handle(recorded, res);
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      // Hung and streaming responses keep sockets open; end them so close() resolves.
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  sendRaw(res, status, 'application/json', JSON.stringify(body), headers);
}

export function sendRaw(
  res: ServerResponse,
  status: number,
  contentType: string,
  text: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Writes SSE frames one by one, honouring the delay/stall/reset knobs and reporting progress. */
export async function writeSse(
  res: ServerResponse,
  frames: string[],
  knobs: StreamKnobs,
  progress: StreamProgress,
): Promise<void> {
  Object.assign(progress, { framesSent: 0, framesTotal: frames.length, finished: false });
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  for (const frame of frames) {
    if (progress.framesSent === knobs.stallAfterFrames) return;
    if (progress.framesSent === knobs.resetAfterFrames) {
      res.socket?.destroy();
      return;
    }
    if (progress.framesSent > 0 && knobs.chunkDelayMs) await sleep(knobs.chunkDelayMs);
    if (res.destroyed) return;
    res.write(frame);
    progress.framesSent += 1;
  }
  progress.finished = true;
  res.end();
}

export function splitWords(text: string): string[] {
  return text.match(/\S+\s*|\s+/g) ?? [];
}

export function splitInThree(text: string): string[] {
  if (text.length < 3) return text === '' ? [] : [text];
  const third = Math.ceil(text.length / 3);
  return [text.slice(0, third), text.slice(third, 2 * third), text.slice(2 * third)];
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
