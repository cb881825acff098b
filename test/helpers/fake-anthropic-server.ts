/**
 * A loopback HTTP server that speaks the Anthropic Messages wire protocol (JSON and the named-event
 * SSE sequence). It validates requests like the real service (auth and version headers, max_tokens,
 * tool_use/tool_result pairing, sampling parameters rejected by API version 2026-10-21).
 */
import type { ServerResponse } from 'node:http';
import {
  isObject,
  sendJson,
  sendRaw,
  splitInThree,
  splitWords,
  startLoopback,
  writeSse,
  type RecordedRequest,
  type StreamKnobs,
  type StreamProgress,
} from './fake-openai-server';

export type FakeBlock =
  | { type: 'text'; text: string }
  /**
   * `input` is what the JSON reply carries; `rawInputJson` overrides the streamed partial_json text
   * (e.g. a fragment cut by max_tokens), which only a stream can deliver.
   */
  | { type: 'tool_use'; id: string; name: string; input?: Record<string, unknown>; rawInputJson?: string };

/** A logical message, rendered as JSON or as the SSE event sequence depending on the request's `stream` flag. */
export interface FakeMessage extends StreamKnobs {
  kind: 'message';
  content: FakeBlock[];
  stopReason?: 'end_turn' | 'tool_use' | 'max_tokens' | 'stop_sequence' | 'refusal' | 'pause_turn';
  usage?: {
    inputTokens: number;
    outputTokens: number;
    cacheReadInputTokens?: number;
    cacheCreationInputTokens?: number;
  };
  model?: string;
}

export type FakeAnthropicReply =
  | FakeMessage
  /** Raw named events, each written as `event: <event>\ndata: <json>`. */
  | ({ kind: 'sse'; events: Array<{ event: string; data: unknown }> } & StreamKnobs)
  | { kind: 'error'; status: number; body?: unknown; headers?: Record<string, string> }
  | { kind: 'reset' }
  | { kind: 'hang' }
  | { kind: 'truncated' };

export interface FakeAnthropicServer {
  /** Base URL for the SDK (the SDK appends /v1/messages). */
  url: string;
  requests: RecordedRequest[];
  enqueue(reply: FakeAnthropicReply): void;
  stream: StreamProgress;
  close(): Promise<void>;
}

export function anthropicErrorBody(type: string, message: string): unknown {
  return { type: 'error', error: { type, message }, request_id: 'req_fake0001' };
}

export async function startFakeAnthropic(): Promise<FakeAnthropicServer> {
  const queue: FakeAnthropicReply[] = [];
  const stream: StreamProgress = { framesSent: 0, framesTotal: 0, finished: false };
  const core = await startLoopback((request, res) => {
    const problem = validateAnthropicRequest(request);
    if (problem) return sendJson(res, problem.status, anthropicErrorBody(problem.type, problem.message));
    const reply = queue.shift();
    if (!reply) return sendJson(res, 500, anthropicErrorBody('api_error', 'fake server: no reply queued'));
    return answer(reply, request, res, stream);
  });
  return {
    url: core.origin,
    requests: core.requests,
    enqueue: (reply) => queue.push(reply),
    stream,
    close: core.close,
  };
}

// ---------------------------------------------------------------------------------------------
// Request validation

interface Problem {
  status: number;
  type: string;
  message: string;
}

const SAMPLING_PARAMS = ['temperature', 'top_p', 'top_k'];

function validateAnthropicRequest(request: RecordedRequest): Problem | undefined {
  if (request.method !== 'POST' || request.path !== '/v1/messages')
    return { status: 404, type: 'not_found_error', message: 'Not found' };
  const { headers } = request;
  // The API takes x-api-key, or Authorization: Bearer (what SDK 1.x sends); x-api-key wins when both are present.
  const hasKey = typeof headers['x-api-key'] === 'string' || /^Bearer \S+/.test(String(headers.authorization ?? ''));
  if (!hasKey) return { status: 401, type: 'authentication_error', message: 'x-api-key header is required' };
  const version = headers['anthropic-version'];
  if (typeof version !== 'string') return invalid('anthropic-version: header is required');
  if (!isObject(request.body)) return invalid('There was an error parsing the body');
  const body = request.body;
  if (typeof body.model !== 'string') return invalid('model: Field required');
  if (!Number.isInteger(body.max_tokens)) return invalid('max_tokens: Field required');
  if (!Array.isArray(body.messages)) return invalid('messages: Field required');
  if (version >= '2026-10-21') {
    const sampling = SAMPLING_PARAMS.find((key) => key in body);
    if (sampling) return invalid(`${sampling}: Extra inputs are not permitted`);
  }
  return validateTools(body.tools) ?? validateTurns(body.messages);
}

function validateTools(tools: unknown): Problem | undefined {
  if (tools === undefined) return undefined;
  if (!Array.isArray(tools)) return invalid('tools: Input should be a valid list');
  for (const [i, tool] of tools.entries()) {
    if (!isObject(tool) || typeof tool.name !== 'string') return invalid(`tools.${i}.name: Field required`);
    if (!isObject(tool.input_schema) || tool.input_schema.type !== 'object')
      return invalid(`tools.${i}.input_schema.type: Input should be 'object'`);
  }
  return undefined;
}

type Block = Record<string, unknown>;

/** The API combines consecutive same-role turns, then checks every tool_use is answered in the next turn. */
function validateTurns(messages: unknown[]): Problem | undefined {
  const turns: Array<{ role: string; blocks: Block[] }> = [];
  for (const [i, message] of messages.entries()) {
    if (!isObject(message) || (message.role !== 'user' && message.role !== 'assistant')) {
      return invalid(`messages.${i}.role: Input should be 'user' or 'assistant'`);
    }
    const blocks = blocksOf(message.content);
    if (!blocks) return invalid(`messages.${i}.content: Input should be a valid string or list`);
    const blockProblem = validateBlocks(blocks, i);
    if (blockProblem) return blockProblem;
    const last = turns[turns.length - 1];
    if (last && last.role === message.role) last.blocks.push(...blocks);
    else turns.push({ role: message.role, blocks: [...blocks] });
  }
  return validatePairing(turns);
}

function blocksOf(content: unknown): Block[] | undefined {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  if (Array.isArray(content) && content.every(isObject)) return content;
  return undefined;
}

function validateBlocks(blocks: Block[], index: number): Problem | undefined {
  for (const block of blocks) {
    if (block.type === 'text' && (typeof block.text !== 'string' || block.text === ''))
      return invalid('messages: text content blocks must be non-empty');
    if (block.type === 'tool_use' && !isObject(block.input))
      return invalid(`messages.${index}.content: tool_use.input: Input should be a valid dictionary`);
    if (block.type === 'tool_result' && typeof block.tool_use_id !== 'string')
      return invalid(`messages.${index}.content: tool_result.tool_use_id: Field required`);
  }
  return undefined;
}

function validatePairing(turns: Array<{ role: string; blocks: Block[] }>): Problem | undefined {
  for (const [i, turn] of turns.entries()) {
    const previous = turns[i - 1];
    const offered = new Set(previous?.role === 'assistant' ? idsOf(previous.blocks, 'tool_use', 'id') : []);
    for (const id of idsOf(turn.blocks, 'tool_result', 'tool_use_id')) {
      if (!offered.has(id)) {
        return invalid(
          `messages.${i}.content: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${id}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`,
        );
      }
    }
    const next = turns[i + 1];
    const answered = new Set(next ? idsOf(next.blocks, 'tool_result', 'tool_use_id') : []);
    const missing =
      turn.role === 'assistant' && next ? idsOf(turn.blocks, 'tool_use', 'id').filter((id) => !answered.has(id)) : [];
    if (missing.length > 0) {
      return invalid(
        `messages.${i}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`,
      );
    }
  }
  return undefined;
}

function idsOf(blocks: Block[], type: string, key: string): string[] {
  return blocks.filter((block) => block.type === type).map((block) => String(block[key]));
}

function invalid(message: string): Problem {
  return { status: 400, type: 'invalid_request_error', message };
}

// ---------------------------------------------------------------------------------------------
// Replies

function answer(
  reply: FakeAnthropicReply,
  request: RecordedRequest,
  res: ServerResponse,
  progress: StreamProgress,
): void {
  const body = request.body as Record<string, unknown>;
  switch (reply.kind) {
    case 'error':
      return sendJson(
        res,
        reply.status,
        reply.body ?? anthropicErrorBody('api_error', `fake ${reply.status}`),
        reply.headers,
      );
    case 'reset':
      res.socket?.destroy();
      return;
    case 'hang':
      return;
    case 'truncated': {
      const json = JSON.stringify(
        messageJson({ kind: 'message', content: [{ type: 'text', text: 'cut short' }] }, String(body.model)),
      );
      return sendRaw(res, 200, 'application/json', json.slice(0, Math.floor(json.length / 2)));
    }
    case 'sse':
      return void writeSse(
        res,
        reply.events.map(({ event, data }) => eventFrame(event, data)),
        reply,
        progress,
      );
    case 'message':
      if (body.stream === true) return void writeSse(res, messageFrames(reply, String(body.model)), reply, progress);
      return sendJson(res, 200, messageJson(reply, String(body.model)));
  }
}

function messageJson(reply: FakeMessage, requestedModel: string): unknown {
  return {
    id: 'msg_fake0001',
    type: 'message',
    role: 'assistant',
    model: reply.model ?? requestedModel,
    content: reply.content.map((block) =>
      block.type === 'text'
        ? { type: 'text', text: block.text, citations: null }
        : { type: 'tool_use', id: block.id, name: block.name, input: block.input ?? {} },
    ),
    stop_reason: stopReasonOf(reply),
    stop_sequence: null,
    usage: usageJson(reply, reply.usage?.outputTokens ?? 0),
  };
}

function stopReasonOf(reply: FakeMessage): string {
  return reply.stopReason ?? (reply.content.some((block) => block.type === 'tool_use') ? 'tool_use' : 'end_turn');
}

function usageJson(reply: FakeMessage, outputTokens: number): Record<string, unknown> {
  return {
    input_tokens: reply.usage?.inputTokens ?? 0,
    cache_creation_input_tokens: reply.usage?.cacheCreationInputTokens ?? 0,
    cache_read_input_tokens: reply.usage?.cacheReadInputTokens ?? 0,
    output_tokens: outputTokens,
    service_tier: 'standard',
  };
}

/** message_start, per block start/ping/deltas/stop, message_delta (stop_reason + cumulative usage), message_stop. */
function messageFrames(reply: FakeMessage, requestedModel: string): string[] {
  const frames = [
    eventFrame('message_start', {
      type: 'message_start',
      message: {
        id: 'msg_fake0001',
        type: 'message',
        role: 'assistant',
        model: reply.model ?? requestedModel,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        // output_tokens in message_start is a placeholder; the final count arrives in message_delta.
        usage: usageJson(reply, 1),
      },
    }),
  ];
  for (const [index, block] of reply.content.entries()) {
    frames.push(...blockFrames(block, index));
    if (index === 0) frames.push(eventFrame('ping', { type: 'ping' }));
  }
  frames.push(
    eventFrame('message_delta', {
      type: 'message_delta',
      delta: { stop_reason: stopReasonOf(reply), stop_sequence: null },
      usage: { output_tokens: reply.usage?.outputTokens ?? 0 },
    }),
    eventFrame('message_stop', { type: 'message_stop' }),
  );
  return frames;
}

function blockFrames(block: FakeBlock, index: number): string[] {
  const start =
    block.type === 'text'
      ? { type: 'text', text: '' }
      : { type: 'tool_use', id: block.id, name: block.name, input: {} };
  const deltas =
    block.type === 'text'
      ? splitWords(block.text).map((text) => ({ type: 'text_delta', text }))
      : splitInThree(block.rawInputJson ?? JSON.stringify(block.input ?? {})).map((partial_json) => ({
          type: 'input_json_delta',
          partial_json,
        }));
  return [
    eventFrame('content_block_start', { type: 'content_block_start', index, content_block: start }),
    ...deltas.map((delta) => eventFrame('content_block_delta', { type: 'content_block_delta', index, delta })),
    eventFrame('content_block_stop', { type: 'content_block_stop', index }),
  ];
}

function eventFrame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
