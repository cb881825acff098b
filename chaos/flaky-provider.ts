/**
 * A loopback model server for the chaos run: it speaks the OpenAI Chat Completions wire format (the
 * worker reaches it with AI_PROVIDER=openai and OPENAI_BASE_URL) and fails a configurable share of
 * requests the ways real providers do. Requests that are not failed are answered by the offline
 * provider's rules, so each task's `script` input decides its tool calls exactly as in the other tests.
 */
import type { ServerResponse } from 'node:http';
import { createOfflineProvider } from '../activities/llm/offline';
import type { LlmMessage, LlmResponse, ToolSpec } from '../activities/llm/types';
import { isObject, sendJson, sendRaw, startLoopback } from '../test/helpers/fake-openai-server';

export const FAULT_KINDS = ['rate_limit', 'server_error', 'timeout', 'malformed'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FlakyProviderOptions {
  /** Share of requests that fail, 0..1; each failure picks one of `kinds` at random. */
  faultRate: number;
  kinds?: readonly FaultKind[];
  /** Seed of the fault sequence, so a run's mix of faults can be repeated. */
  seed?: number;
  /**
   * A task whose request carries this string (in its task input) gets its first answer, then a 500 for
   * every later request: an outage that outlasts any retry policy. The error message names the marker.
   */
  outageMarker?: string;
}

export interface FlakyProvider {
  /** Base URL for OPENAI_BASE_URL, ending in /v1. */
  url: string;
  /** Requests answered normally. */
  answered(): number;
  /** Faults injected so far, by kind. */
  faults(): Record<FaultKind, number>;
  /** Requests failed by the outage of `outageMarker`. */
  outages(): number;
  close(): Promise<void>;
}

export async function startFlakyProvider(opts: FlakyProviderOptions): Promise<FlakyProvider> {
  const kinds = opts.kinds?.length ? opts.kinds : FAULT_KINDS;
  const random = mulberry32(opts.seed ?? 1);
  const faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  const offline = createOfflineProvider({ tokenDelayMs: 0 });
  let answered = 0;
  let outages = 0;

  const core = await startLoopback((request, res) => {
    const body = isObject(request.body) ? request.body : undefined;
    if (request.path !== '/v1/chat/completions' || !body || !Array.isArray(body.messages)) {
      return sendJson(
        res,
        400,
        errorBody('flaky provider: expected a chat completion request', 'invalid_request_error'),
      );
    }
    if (
      opts.outageMarker &&
      body.messages.some((m) => isObject(m) && m.role === 'tool') &&
      JSON.stringify(body.messages).includes(opts.outageMarker)
    ) {
      outages += 1;
      return sendJson(res, 500, errorBody(`${opts.outageMarker}: the provider is down for this task`, 'server_error'));
    }
    if (random() < opts.faultRate) {
      const kind = kinds[Math.floor(random() * kinds.length)]!;
      faults[kind] += 1;
      return fail(kind, res);
    }
    const model = typeof body.model === 'string' ? body.model : 'flaky-v1';
    offline
      .complete({ model, messages: toLlmMessages(body.messages), tools: toToolSpecs(body.tools) })
      .then((reply) => {
        answered += 1;
        sendJson(res, 200, completionJson(reply));
      })
      .catch((err: unknown) => sendJson(res, 500, errorBody(`flaky provider: ${String(err)}`, 'server_error')));
  });

  return {
    url: `${core.origin}/v1`,
    answered: () => answered,
    faults: () => ({ ...faults }),
    outages: () => outages,
    close: core.close,
  };
}

function fail(kind: FaultKind, res: ServerResponse): void {
  switch (kind) {
    case 'rate_limit':
      return sendJson(res, 429, errorBody('Rate limit reached, retry shortly', 'rate_limit_exceeded'), {
        'retry-after': '1',
      });
    case 'server_error':
      return sendJson(res, 500, errorBody('The server had an error while processing your request', 'server_error'));
    case 'timeout':
      // Never answers: the adapter's LLM_TIMEOUT_SECONDS gives up, and closing the server ends the socket.
      return;
    case 'malformed':
      // Well-framed HTTP 200 whose JSON body is cut in half.
      return sendRaw(
        res,
        200,
        'application/json',
        '{"id":"chatcmpl-chaos","object":"chat.completion","choices":[{"index":0,"mess',
      );
  }
}

/** OpenAI messages back into the provider-neutral form the offline rules read. */
function toLlmMessages(messages: unknown[]): LlmMessage[] {
  const toolNames = new Map<string, string>();
  const out: LlmMessage[] = [];
  for (const m of messages) {
    if (!isObject(m)) continue;
    const content = typeof m.content === 'string' ? m.content : '';
    if (m.role === 'assistant') {
      const calls = Array.isArray(m.tool_calls) ? m.tool_calls.filter(isObject) : [];
      const toolCalls = calls.map((c) => {
        const fn = isObject(c.function) ? c.function : {};
        const call = { id: String(c.id), name: String(fn.name), arguments: String(fn.arguments ?? '') };
        toolNames.set(call.id, call.name);
        return call;
      });
      out.push({ role: 'assistant', content, toolCalls });
    } else if (m.role === 'tool') {
      const toolCallId = String(m.tool_call_id);
      out.push({ role: 'tool', toolCallId, name: toolNames.get(toolCallId) ?? 'tool', content });
    } else {
      out.push({ role: m.role === 'user' ? 'user' : 'system', content });
    }
  }
  return out;
}

function toToolSpecs(tools: unknown): ToolSpec[] {
  if (!Array.isArray(tools)) return [];
  return tools.filter(isObject).map((t) => {
    const fn = isObject(t.function) ? t.function : {};
    return {
      name: String(fn.name),
      description: String(fn.description ?? ''),
      parameters: isObject(fn.parameters) ? fn.parameters : {},
    };
  });
}

function completionJson(reply: LlmResponse): unknown {
  const message: Record<string, unknown> = { role: 'assistant', content: reply.content, refusal: null };
  if (reply.toolCalls.length > 0) {
    message.tool_calls = reply.toolCalls.map((c) => ({
      id: c.id,
      type: 'function',
      function: { name: c.name, arguments: c.arguments },
    }));
  }
  return {
    id: 'chatcmpl-chaos',
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: reply.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: reply.toolCalls.length > 0 ? 'tool_calls' : 'stop' }],
    usage: {
      prompt_tokens: reply.usage.inputTokens,
      completion_tokens: reply.usage.outputTokens,
      total_tokens: reply.usage.inputTokens + reply.usage.outputTokens,
    },
  };
}

function errorBody(message: string, type: string): unknown {
  return { error: { message, type, param: null, code: type } };
}

/** A small seeded PRNG (mulberry32): the same seed gives the same fault sequence. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
