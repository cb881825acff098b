/**
 * OpenAI Chat Completions adapter. Also serves OpenAI-compatible servers (Ollama, vLLM, LM Studio)
 * through `baseURL` with `name: 'openai-compatible'`.
 *
 * The bottom half of this file holds the plumbing shared with `anthropic.ts` (deadline watchdog,
 * retry-after parsing, HTTP status classification), because both adapters must classify failures
 * identically for the activity's retry policy.
 */
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import {
  ProviderError,
  type CompleteOptions,
  type FinishReason,
  type LlmMessage,
  type LlmProvider,
  type LlmRequest,
  type LlmResponse,
  type ProviderErrorKind,
  type ToolCall,
  type ToolSpec,
} from './types';

type ChatParams = OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming;
type WireMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;
type WireTool = OpenAI.Chat.Completions.ChatCompletionFunctionTool;
type Completion = OpenAI.Chat.Completions.ChatCompletion;
type Chunk = OpenAI.Chat.Completions.ChatCompletionChunk;
type ToolCallDelta = OpenAI.Chat.Completions.ChatCompletionChunk.Choice.Delta.ToolCall;

export interface OpenAiProviderOptions {
  apiKey: string;
  baseURL?: string;
  defaultModel: string;
  timeoutMs: number;
  name?: 'openai' | 'openai-compatible';
}

export function createOpenAiProvider(opts: OpenAiProviderOptions): LlmProvider {
  const name = opts.name ?? 'openai';
  // Retries belong to the Temporal activity retry policy, never to the SDK.
  const client = new OpenAiClient({ apiKey: opts.apiKey, baseURL: opts.baseURL, maxRetries: 0, timeout: opts.timeoutMs });

  async function complete(request: LlmRequest, options: CompleteOptions = {}): Promise<LlmResponse> {
    const model = request.model || opts.defaultModel;
    const params = buildChatParams(request, model, name);
    const watchdog = startWatchdog(opts.timeoutMs, options.signal);
    try {
      const { onToken } = options;
      const result = onToken
        ? await streamCompletion(client, params, watchdog, onToken)
        : await singleCompletion(client, params, watchdog);
      return { ...result, provider: name, model: result.model || model };
    } catch (err) {
      throw settleFailure(err, { provider: name, watchdog, callerSignal: options.signal, classify: classifyOpenAiError });
    } finally {
      watchdog.dispose();
    }
  }

  return { name, defaultModel: opts.defaultModel, complete };
}

/**
 * vLLM and some proxies answer errors as `{message, type, code}` without OpenAI's `error` envelope; the
 * SDK would then drop the message (and with it the context-length signal), so wrap such bodies first.
 */
class OpenAiClient extends OpenAI {
  protected override makeStatusError(status: number, error: object, message: string | undefined, headers: Headers): APIError {
    const unwrapped = isRecord(error) && !('error' in error) && typeof error.message === 'string';
    return super.makeStatusError(status, unwrapped ? { error } : error, message, headers);
  }
}

// ---------------------------------------------------------------------------------------------
// Request mapping

function buildChatParams(request: LlmRequest, model: string, name: string): ChatParams {
  const params: ChatParams = { model, messages: request.messages.map(toWireMessage) };
  // OpenAI rejects an empty `tools` array, so omit it when the agent has no tools.
  if (request.tools.length > 0) params.tools = request.tools.map(toWireTool);
  if (request.maxTokens !== undefined) {
    // OpenAI deprecated `max_tokens` (reasoning models reject it); compatible servers mostly only know `max_tokens`.
    if (name === 'openai') params.max_completion_tokens = request.maxTokens;
    else params.max_tokens = request.maxTokens;
  }
  if (request.temperature !== undefined) params.temperature = request.temperature;
  return params;
}

function toWireMessage(message: LlmMessage): WireMessage {
  switch (message.role) {
    case 'system':
      return { role: 'system', content: message.content };
    case 'user':
      return { role: 'user', content: message.content };
    case 'tool':
      return { role: 'tool', tool_call_id: message.toolCallId, content: message.content };
    case 'assistant':
      return toWireAssistant(message.content, message.toolCalls ?? []);
  }
}

function toWireAssistant(content: string, toolCalls: ToolCall[]): WireMessage {
  if (toolCalls.length === 0) return { role: 'assistant', content };
  return {
    role: 'assistant',
    // The API itself returns null content next to tool calls; echo that rather than an empty string.
    content: content === '' ? null : content,
    tool_calls: toolCalls.map((call) => ({
      id: call.id,
      type: 'function' as const,
      function: { name: call.name, arguments: call.arguments },
    })),
  };
}

function toWireTool(tool: ToolSpec): WireTool {
  return { type: 'function', function: { name: tool.name, description: tool.description, parameters: tool.parameters } };
}

// ---------------------------------------------------------------------------------------------
// Non-streaming

type ProviderResult = Omit<LlmResponse, 'provider'>;

async function singleCompletion(client: OpenAI, params: ChatParams, watchdog: Watchdog): Promise<ProviderResult> {
  const completion: unknown = await client.chat.completions.create(params, { signal: watchdog.signal });
  return readCompletion(completion);
}

function readCompletion(completion: unknown): ProviderResult {
  // A proxy or compatible server may answer 200 with a non-JSON or choice-less body; that is a server fault.
  const choice = isRecord(completion) && Array.isArray(completion.choices) ? completion.choices[0] : undefined;
  if (!isRecord(choice) || !isRecord(choice.message)) {
    throw new ProviderError('unavailable', 'OpenAI response carried no choices (malformed body)', {});
  }
  const typed = completion as Completion;
  const message = (choice as unknown as Completion['choices'][number]).message;
  const toolCalls = (message.tool_calls ?? []).flatMap((call, index) => {
    if (call.type !== undefined && call.type !== 'function') return [];
    return [{ id: call.id || `call_${index}`, name: call.function.name, arguments: rawArguments(call.function.arguments) }];
  });
  return finishResult({
    content: message.content ?? '',
    refusal: message.refusal ?? '',
    toolCalls,
    rawFinishReason: choice.finish_reason as string | null | undefined,
    usage: typed.usage,
    model: typed.model,
  });
}

/** Arguments stay raw text; a few compatible servers send an object instead of a string. */
function rawArguments(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === undefined || value === null) return '';
  return JSON.stringify(value);
}

interface ResultParts {
  content: string;
  refusal: string;
  toolCalls: ToolCall[];
  rawFinishReason: string | null | undefined;
  usage: { prompt_tokens?: number; completion_tokens?: number } | null | undefined;
  model: string | undefined;
}

/** The single place both paths build their result, so streaming and non-streaming stay identical. */
function finishResult(parts: ResultParts): ProviderResult {
  const refused = parts.refusal !== '';
  return {
    // The refusal text is the answer the caller shows or logs; the caller decides what a refusal means.
    content: refused ? parts.refusal : parts.content,
    toolCalls: parts.toolCalls,
    usage: { inputTokens: parts.usage?.prompt_tokens ?? 0, outputTokens: parts.usage?.completion_tokens ?? 0 },
    finishReason: refused ? 'refusal' : mapFinishReason(parts.rawFinishReason, parts.toolCalls.length > 0),
    model: parts.model ?? '',
  };
}

function mapFinishReason(raw: string | null | undefined, hasToolCalls: boolean): FinishReason {
  switch (raw) {
    case 'tool_calls':
    case 'function_call':
      return 'tool_calls';
    case 'stop':
      // Some compatible servers (older Ollama) report 'stop' next to tool calls.
      return hasToolCalls ? 'tool_calls' : 'stop';
    case 'length':
      return 'length';
    case 'content_filter':
      return 'refusal';
    default:
      return hasToolCalls ? 'tool_calls' : 'other';
  }
}

// ---------------------------------------------------------------------------------------------
// Streaming

async function streamCompletion(
  client: OpenAI,
  params: ChatParams,
  watchdog: Watchdog,
  onToken: (delta: string) => void,
): Promise<ProviderResult> {
  const stream = await client.chat.completions.create(
    { ...params, stream: true, stream_options: { include_usage: true } },
    { signal: watchdog.signal },
  );
  const assembler = new ChunkAssembler();
  for await (const chunk of stream) {
    watchdog.touch();
    const text = assembler.add(chunk);
    if (text) emitToken(onToken, text);
  }
  // The SDK ends iteration silently when the request is aborted; surface the abort instead.
  watchdog.signal.throwIfAborted();
  return assembler.finish();
}

interface PartialToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** Folds chat.completion.chunk deltas into one result; tool call fragments are keyed by their index. */
class ChunkAssembler {
  private content = '';
  private refusal = '';
  private finishReason: string | undefined;
  private usage: Chunk['usage'];
  private model: string | undefined;
  private readonly calls = new Map<number, PartialToolCall>();
  private lastIndex = -1;

  /** Returns the text delta carried by this chunk, if any. */
  add(chunk: Chunk): string {
    this.model ??= chunk.model;
    if (chunk.usage) this.usage = chunk.usage;
    // vLLM sends its usage-only chunk with `choices: null`.
    const choice = (chunk.choices ?? [])[0];
    if (!choice) return '';
    if (choice.finish_reason) this.finishReason = choice.finish_reason;
    const delta = choice.delta ?? {};
    for (const fragment of delta.tool_calls ?? []) this.addToolFragment(fragment);
    if (delta.refusal) this.refusal += delta.refusal;
    if (!delta.content) return '';
    this.content += delta.content;
    return delta.content;
  }

  private addToolFragment(fragment: ToolCallDelta): void {
    const index = this.indexFor(fragment);
    const call = this.calls.get(index) ?? { id: '', name: '', arguments: '' };
    if (fragment.id && !call.id) call.id = fragment.id;
    if (fragment.function?.name && !call.name) call.name = fragment.function.name;
    if (fragment.function?.arguments) call.arguments += rawArguments(fragment.function.arguments);
    this.calls.set(index, call);
    this.lastIndex = index;
  }

  /** Older Ollama omits `index`: a new id starts a new call, anything else continues the last one. */
  private indexFor(fragment: ToolCallDelta): number {
    if (typeof fragment.index === 'number') return fragment.index;
    const last = this.calls.get(this.lastIndex);
    if (fragment.id && (!last || last.id !== fragment.id)) return this.calls.size;
    return Math.max(this.lastIndex, 0);
  }

  finish(): ProviderResult {
    if (this.finishReason === undefined) {
      // A clean close before any finish_reason means the answer is cut short; a retry is the remedy.
      throw new ProviderError('network', 'stream ended before the model finished its answer', {});
    }
    const toolCalls = [...this.calls.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, call]) => ({ id: call.id || `call_${index}`, name: call.name, arguments: call.arguments }));
    return finishResult({
      content: this.content,
      refusal: this.refusal,
      toolCalls,
      rawFinishReason: this.finishReason,
      usage: this.usage,
      model: this.model,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Error classification (OpenAI SDK)

function classifyOpenAiError(err: unknown, provider: string): unknown {
  if (err instanceof APIConnectionTimeoutError) return timeoutError(provider);
  if (err instanceof APIUserAbortError) return err;
  if (err instanceof APIConnectionError) return networkError(provider, err);
  if (err instanceof APIError) return classifyOpenAiApiError(err, provider);
  return classifyTransportError(err, provider);
}

function classifyOpenAiApiError(err: APIError, provider: string): ProviderError {
  const code = typeof err.code === 'string' ? err.code : undefined;
  const message = apiErrorMessage(err.error, err.message);
  if (err.status === undefined) {
    // An error event inside an otherwise successful stream: the server failed mid-answer.
    return new ProviderError('unavailable', `${provider} stream failed: ${message}`, { provider });
  }
  return classifyHttpFailure({ provider, status: err.status, headers: err.headers, code, message });
}

function apiErrorMessage(body: unknown, fallback: string): string {
  if (isRecord(body) && typeof body.message === 'string') return body.message;
  // Ollama sends `{"error": "model 'x' not found"}`.
  if (typeof body === 'string' && body !== '') return body;
  return fallback;
}

// =============================================================================================
// Shared adapter plumbing (also used by anthropic.ts)

export interface Watchdog {
  /** Aborts when the caller aborts or when the deadline passes. */
  readonly signal: AbortSignal;
  readonly expired: boolean;
  /** Re-arms the deadline: streams use it as an idle timeout between chunks. */
  touch(): void;
  dispose(): void;
}

/**
 * The SDK timeout only covers the wait for response headers, so a body or stream that stalls
 * afterwards would hang the activity until its heartbeat timeout. This deadline covers the rest.
 */
export function startWatchdog(timeoutMs: number, callerSignal: AbortSignal | undefined): Watchdog {
  const controller = new AbortController();
  let expired = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      expired = true;
      controller.abort(new Error(`no response within ${timeoutMs}ms`));
    }, timeoutMs);
  };
  arm();
  const signal = callerSignal ? AbortSignal.any([callerSignal, controller.signal]) : controller.signal;
  return {
    signal,
    get expired() {
      return expired;
    },
    touch: arm,
    dispose: () => clearTimeout(timer),
  };
}

/** Marks an exception thrown by the caller's onToken so it is rethrown untouched, never classified. */
class CallbackError extends Error {
  constructor(readonly original: unknown) {
    super('onToken callback failed');
  }
}

export function emitToken(onToken: (delta: string) => void, text: string): void {
  try {
    onToken(text);
  } catch (err) {
    throw new CallbackError(err);
  }
}

export interface SettleContext {
  provider: string;
  watchdog: Watchdog;
  callerSignal: AbortSignal | undefined;
  classify: (err: unknown, provider: string) => unknown;
}

/** Decides what a failed `complete` throws: the caller's own abort and callback errors pass through as-is. */
export function settleFailure(err: unknown, ctx: SettleContext): unknown {
  if (err instanceof CallbackError) return err.original;
  if (ctx.callerSignal?.aborted) return err;
  if (ctx.watchdog.expired) return timeoutError(ctx.provider);
  if (err instanceof ProviderError) return withProvider(err, ctx.provider);
  return ctx.classify(err, ctx.provider);
}

function withProvider(err: ProviderError, provider: string): ProviderError {
  if (err.details.provider) return err;
  return new ProviderError(err.kind, `${provider}: ${err.message}`, { ...err.details, provider });
}

export function timeoutError(provider: string): ProviderError {
  return new ProviderError('timeout', `${provider} did not answer in time`, { provider });
}

export function networkError(provider: string, err: Error): ProviderError {
  return new ProviderError('network', `${provider} connection failed: ${describeCause(err)}`, { provider });
}

/** Errors raised outside the SDK's request phase: body reads cut by resets, truncated JSON bodies. */
export function classifyTransportError(err: unknown, provider: string): unknown {
  if (err instanceof SyntaxError) {
    return new ProviderError('unavailable', `${provider} sent a malformed response body: ${err.message}`, { provider });
  }
  if (err instanceof Error && isSocketFailure(err)) return networkError(provider, err);
  // Anything else is a bug on our side; surface it unchanged.
  return err;
}

function isSocketFailure(err: Error): boolean {
  // undici reports a body cut mid-read as TypeError('terminated') with a socket error as cause.
  if (err instanceof TypeError && /terminated|fetch failed/i.test(err.message)) return true;
  const cause = (err as { cause?: unknown }).cause;
  const code = (err as { code?: unknown }).code ?? (isRecord(cause) ? cause.code : undefined);
  return typeof code === 'string' && /^(ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|UND_ERR_)/.test(code);
}

function describeCause(err: Error): string {
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return `${err.message} (${typeof code === 'string' ? `${code}: ` : ''}${cause.message})`;
  }
  return err.message;
}

export interface HttpFailure {
  provider: string;
  status: number;
  headers: Headers | undefined;
  /** Machine-readable error code from the body, when the provider sends one. */
  code?: string;
  message: string;
}

const CONTEXT_LENGTH_PATTERN =
  /context_length_exceeded|maximum context length|context length|context window|prompt is too long|exceeds? context limit|too many tokens/i;

/** Maps an HTTP failure to a ProviderError kind; shared so every adapter retries the same way. */
export function classifyHttpFailure(failure: HttpFailure): ProviderError {
  const { provider, status } = failure;
  const kind = kindForStatus(status, failure.code, failure.message);
  const details: ProviderError['details'] = { provider, status };
  if (kind === 'rate_limited') {
    const retryAfterMs = parseRetryAfterMs(failure.headers);
    if (retryAfterMs !== undefined) details.retryAfterMs = retryAfterMs;
  }
  return new ProviderError(kind, `${provider} ${describeKind(kind)} (HTTP ${status}): ${failure.message}`, details);
}

function kindForStatus(status: number, code: string | undefined, message: string): ProviderErrorKind {
  // An exhausted quota answers 429 but will not recover by waiting; do not let Temporal retry it.
  if (code === 'insufficient_quota') return 'auth';
  if (status === 429) return 'rate_limited';
  if (status === 401 || status === 402 || status === 403) return 'auth';
  if (status === 408) return 'timeout';
  if (status === 409 || status === 499 || status >= 500) return 'unavailable';
  if ((status === 400 || status === 413 || status === 422) && CONTEXT_LENGTH_PATTERN.test(`${code ?? ''} ${message}`)) {
    return 'context_length';
  }
  return 'invalid_request';
}

function describeKind(kind: ProviderErrorKind): string {
  const descriptions: Record<ProviderErrorKind, string> = {
    rate_limited: 'rate limited the request',
    unavailable: 'is unavailable',
    timeout: 'timed out',
    network: 'could not be reached',
    auth: 'rejected the credentials or account',
    invalid_request: 'rejected the request',
    context_length: 'rejected the prompt as too long for the context window',
    refusal: 'refused the request',
  };
  return descriptions[kind];
}

/** `retry-after-ms` (non-standard, OpenAI) wins over `retry-after` (seconds or an HTTP date). */
export function parseRetryAfterMs(headers: Headers | undefined, now: number = Date.now()): number | undefined {
  const millis = Number.parseFloat(headers?.get('retry-after-ms') ?? '');
  if (Number.isFinite(millis) && millis >= 0) return Math.round(millis);
  const value = headers?.get('retry-after')?.trim();
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number.parseFloat(value) * 1000);
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
