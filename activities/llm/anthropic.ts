/**
 * Anthropic Messages API adapter (tool_use). The `complete()` wrapper, deadline watchdog and failure
 * classification are shared with the OpenAI adapter (adapter-support.ts).
 */
import Anthropic, {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
} from '@anthropic-ai/sdk';
import {
  classifyHttpFailure,
  createSdkProvider,
  drainStream,
  isRecord,
  type ProviderResult,
  type StreamAssembler,
} from './adapter-support';
import {
  ProviderError,
  type FinishReason,
  type LlmMessage,
  type LlmProvider,
  type LlmRequest,
  type ProviderErrorKind,
  type ToolCall,
  type ToolSpec,
} from './types';

type CreateParams = Anthropic.Messages.MessageCreateParamsNonStreaming;
type MessageParam = Anthropic.Messages.MessageParam;
type ContentBlockParam = Anthropic.Messages.ContentBlockParam;
type WireTool = Anthropic.Messages.Tool;
type WireMessage = Anthropic.Messages.Message;
type StreamEvent = Anthropic.Messages.RawMessageStreamEvent;

/** The Messages API requires max_tokens; used when the request does not set one. */
export const DEFAULT_MAX_TOKENS = 1024;

export interface AnthropicProviderOptions {
  apiKey: string;
  baseURL?: string;
  defaultModel: string;
  timeoutMs: number;
}

export function createAnthropicProvider(opts: AnthropicProviderOptions): LlmProvider {
  const name = 'anthropic';
  // Retries belong to the Temporal activity retry policy, never to the SDK.
  const client = new Anthropic({ apiKey: opts.apiKey, baseURL: opts.baseURL, maxRetries: 0, timeout: opts.timeoutMs });

  return createSdkProvider({
    name,
    defaultModel: opts.defaultModel,
    timeoutMs: opts.timeoutMs,
    buildParams: buildCreateParams,
    single: async (params, watchdog) => readMessage(await client.messages.create(params, { signal: watchdog.signal })),
    stream: async (params, watchdog, onToken) => {
      const stream = await client.messages.create({ ...params, stream: true }, { signal: watchdog.signal });
      return drainStream(stream, new EventAssembler(), watchdog, onToken);
    },
    sdkErrors: { APIConnectionTimeoutError, APIUserAbortError, APIConnectionError, APIError },
    classifyApiError: classifyAnthropicApiError,
  });
}

// ---------------------------------------------------------------------------------------------
// Request mapping

function buildCreateParams(request: LlmRequest, model: string): CreateParams {
  const { system, messages } = toWireConversation(request.messages);
  const params: CreateParams = { model, max_tokens: request.maxTokens ?? DEFAULT_MAX_TOKENS, messages };
  if (system) params.system = system;
  if (request.tools.length > 0) params.tools = request.tools.map(toWireTool);
  // request.temperature is deliberately not sent: API version 2026-10-21 (the SDK's default) rejects
  // temperature/top_p/top_k with a 400, even at default values.
  return params;
}

/** System messages move to the `system` parameter; the rest become user/assistant turns. */
function toWireConversation(messages: LlmMessage[]): { system: string; messages: MessageParam[] } {
  const systemParts: string[] = [];
  const turns: MessageParam[] = [];
  for (const message of messages) {
    if (message.role === 'system') systemParts.push(message.content);
    else appendTurn(turns, toWireTurn(message));
  }
  return { system: systemParts.join('\n\n'), messages: turns };
}

/** Called for non-system messages only; system text goes to the `system` parameter. */
function toWireTurn(message: LlmMessage): { role: 'user' | 'assistant'; blocks: ContentBlockParam[] } {
  if (message.role === 'assistant') {
    return {
      role: 'assistant',
      blocks: [...textBlocks(message.content), ...(message.toolCalls ?? []).map(toToolUseBlock)],
    };
  }
  if (message.role === 'tool') {
    // Anthropic has no tool role: results travel in the next user turn.
    return {
      role: 'user',
      blocks: [{ type: 'tool_result', tool_use_id: message.toolCallId, content: message.content }],
    };
  }
  return { role: 'user', blocks: textBlocks(message.content) };
}

/** The API rejects empty text blocks, so an empty string contributes none. */
function textBlocks(text: string): ContentBlockParam[] {
  return text === '' ? [] : [{ type: 'text', text }];
}

function toToolUseBlock(call: ToolCall): ContentBlockParam {
  return { type: 'tool_use', id: call.id, name: call.name, input: parseToolInput(call.arguments) };
}

/** `input` must be a JSON object; a model's malformed arguments are replayed as `{}` rather than failing the turn. */
function parseToolInput(raw: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(raw);
    return isRecord(parsed) ? parsed : {};
  } catch {
    return {};
  }
}

/**
 * Consecutive turns of one role are merged: parallel tool results must share a single user turn, and
 * tool_result blocks must precede any text in that turn.
 */
function appendTurn(turns: MessageParam[], turn: { role: 'user' | 'assistant'; blocks: ContentBlockParam[] }): void {
  if (turn.blocks.length === 0) return;
  const last = turns[turns.length - 1];
  if (!last || last.role !== turn.role || !Array.isArray(last.content)) {
    turns.push({ role: turn.role, content: turn.blocks });
    return;
  }
  const merged = [...last.content, ...turn.blocks];
  last.content = [...merged.filter(isToolResult), ...merged.filter((block) => !isToolResult(block))];
}

function isToolResult(block: ContentBlockParam): boolean {
  return block.type === 'tool_result';
}

function toWireTool(tool: ToolSpec): WireTool {
  // The API insists on an object schema; specs normally carry `type: 'object'` already.
  return { name: tool.name, description: tool.description, input_schema: { type: 'object', ...tool.parameters } };
}

// ---------------------------------------------------------------------------------------------
// Response mapping

interface UsageFields {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

/** Cached prompt tokens are reported apart from input_tokens; count them so budgets see the whole prompt. */
function inputTokensOf(usage: UsageFields): number {
  return (usage.input_tokens ?? 0) + (usage.cache_creation_input_tokens ?? 0) + (usage.cache_read_input_tokens ?? 0);
}

function mapStopReason(reason: string | null | undefined): FinishReason {
  switch (reason) {
    case 'end_turn':
    case 'stop_sequence':
      return 'stop';
    case 'tool_use':
      return 'tool_calls';
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'refusal':
      return 'refusal';
    default:
      return 'other';
  }
}

function readMessage(raw: unknown): ProviderResult {
  if (!isRecord(raw) || !Array.isArray(raw.content)) {
    throw new ProviderError('unavailable', 'Anthropic response carried no content (malformed body)', {});
  }
  const message = raw as unknown as WireMessage;
  const toolCalls: ToolCall[] = [];
  let content = '';
  for (const block of message.content) {
    if (block.type === 'text') content += block.text;
    if (block.type === 'tool_use')
      toolCalls.push({ id: block.id, name: block.name, arguments: JSON.stringify(block.input ?? {}) });
  }
  return {
    content,
    toolCalls,
    usage: { inputTokens: inputTokensOf(message.usage ?? {}), outputTokens: message.usage?.output_tokens ?? 0 },
    finishReason: mapStopReason(message.stop_reason),
    model: message.model,
  };
}

// ---------------------------------------------------------------------------------------------
// Streaming

interface PartialBlock {
  type: string;
  text: string;
  id: string;
  name: string;
  json: string;
}

/** Folds the SSE event sequence into the same result the non-streaming path builds. */
class EventAssembler implements StreamAssembler<StreamEvent> {
  private readonly blocks = new Map<number, PartialBlock>();
  private usage: UsageFields = {};
  private stopReason: string | null = null;
  private model = '';
  private stopped = false;

  /** Returns the text delta carried by this event, if any. */
  add(event: StreamEvent): string {
    switch (event.type) {
      case 'message_start':
        this.model = event.message.model;
        this.usage = { ...event.message.usage };
        return '';
      case 'content_block_start':
        return this.startBlock(event.index, event.content_block);
      case 'content_block_delta':
        return this.applyDelta(event.index, event.delta);
      case 'message_delta':
        this.stopReason = event.delta.stop_reason ?? this.stopReason;
        this.mergeUsage(event.usage);
        return '';
      case 'message_stop':
        this.stopped = true;
        return '';
      default:
        return '';
    }
  }

  private startBlock(index: number, block: Anthropic.Messages.ContentBlock): string {
    const partial: PartialBlock = { type: block.type, text: '', id: '', name: '', json: '' };
    if (block.type === 'tool_use') Object.assign(partial, { id: block.id, name: block.name });
    this.blocks.set(index, partial);
    if (block.type !== 'text' || !block.text) return '';
    partial.text = block.text;
    return block.text;
  }

  private applyDelta(index: number, delta: Anthropic.Messages.RawContentBlockDelta): string {
    const block = this.blocks.get(index);
    if (!block) return '';
    if (delta.type === 'input_json_delta') block.json += delta.partial_json;
    if (delta.type !== 'text_delta') return '';
    block.text += delta.text;
    return delta.text;
  }

  /** message_delta usage is cumulative; null fields mean "unchanged since message_start". */
  private mergeUsage(delta: Anthropic.Messages.MessageDeltaUsage): void {
    for (const key of [
      'input_tokens',
      'output_tokens',
      'cache_creation_input_tokens',
      'cache_read_input_tokens',
    ] as const) {
      const value = delta[key];
      if (typeof value === 'number') this.usage[key] = value;
    }
  }

  finish(): ProviderResult {
    if (!this.stopped) {
      // A clean close before message_stop means the answer is cut short; a retry is the remedy.
      throw new ProviderError('network', 'stream ended before message_stop', {});
    }
    const ordered = [...this.blocks.entries()].sort(([a], [b]) => a - b).map(([, block]) => block);
    return {
      content: ordered
        .filter((block) => block.type === 'text')
        .map((block) => block.text)
        .join(''),
      toolCalls: ordered.filter((block) => block.type === 'tool_use').map(toStreamedToolCall),
      usage: { inputTokens: inputTokensOf(this.usage), outputTokens: this.usage.output_tokens ?? 0 },
      finishReason: mapStopReason(this.stopReason),
      model: this.model,
    };
  }
}

/**
 * Normalises complete JSON exactly like the non-streaming path (JSON.stringify of the parsed input),
 * and keeps fragments that do not parse (e.g. cut by max_tokens) raw for the caller to judge.
 */
function toStreamedToolCall(block: PartialBlock): ToolCall {
  const raw = block.json === '' ? '{}' : block.json;
  let normalised = raw;
  try {
    normalised = JSON.stringify(JSON.parse(raw));
  } catch {
    // Malformed arguments are data, not an adapter failure.
  }
  return { id: block.id, name: block.name, arguments: normalised };
}

// ---------------------------------------------------------------------------------------------
// Error classification (Anthropic SDK)

function classifyAnthropicApiError(err: APIError, provider: string): ProviderError {
  const message = err.apiMessage ?? err.message;
  if (err.status === undefined) return classifyStreamErrorEvent(err.type, message, provider);
  // 529 overloaded falls in the 5xx range and maps to unavailable.
  return classifyHttpFailure({
    provider,
    status: err.status,
    headers: err.headers,
    code: err.type ?? undefined,
    message,
  });
}

/** An `event: error` inside a 200 stream carries only the error type (e.g. overloaded_error). */
function classifyStreamErrorEvent(type: string | null, message: string, provider: string): ProviderError {
  const kinds: Record<string, ProviderErrorKind> = {
    rate_limit_error: 'rate_limited',
    overloaded_error: 'unavailable',
    api_error: 'unavailable',
    timeout_error: 'timeout',
    authentication_error: 'auth',
    permission_error: 'auth',
    billing_error: 'auth',
    invalid_request_error: 'invalid_request',
  };
  const kind = (type && kinds[type]) || 'unavailable';
  return new ProviderError(kind, `${provider} stream failed (${type ?? 'unknown error'}): ${message}`, { provider });
}
