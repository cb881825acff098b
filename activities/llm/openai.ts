/**
 * OpenAI Chat Completions adapter. Also serves OpenAI-compatible servers (Ollama, vLLM, LM Studio)
 * through `baseURL` with `name: 'openai-compatible'`. The `complete()` wrapper, deadline watchdog and
 * failure classification are shared with the Anthropic adapter (adapter-support.ts).
 */
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import {
  ProviderError,
  type FinishReason,
  type LlmMessage,
  type LlmProvider,
  type LlmRequest,
  type ToolCall,
  type ToolSpec,
} from './types';
import {
  classifyHttpFailure,
  createSdkProvider,
  drainStream,
  isRecord,
  type ProviderResult,
  type StreamAssembler,
} from './adapter-support';

type ChatParams = OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming;
type WireMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;
type WireTool = OpenAI.Chat.Completions.ChatCompletionFunctionTool;
type Completion = OpenAI.Chat.Completions.ChatCompletion;
type Chunk = OpenAI.Chat.Completions.ChatCompletionChunk;
type ToolCallDelta = OpenAI.Chat.Completions.ChatCompletionChunk.Choice.Delta.ToolCall;

export interface OpenAiProviderOptions {
  /** null: send no Authorization header at all (a local OpenAI-compatible server without a key). */
  apiKey: string | null;
  baseURL?: string;
  defaultModel: string;
  timeoutMs: number;
  name?: 'openai' | 'openai-compatible';
}

export function createOpenAiProvider(opts: OpenAiProviderOptions): LlmProvider {
  const name = opts.name ?? 'openai';
  // Retries belong to the Temporal activity retry policy, never to the SDK.
  // The SDK falls back to process.env.OPENAI_API_KEY (and OPENAI_ORG_ID, OPENAI_PROJECT_ID) when given
  // nothing: an OpenAI-compatible server gets a placeholder with the header stripped, and no OpenAI ids.
  const client = new OpenAiClient({
    apiKey: opts.apiKey ?? 'unused',
    baseURL: opts.baseURL,
    maxRetries: 0,
    timeout: opts.timeoutMs,
    ...(name === 'openai-compatible' ? { organization: null, project: null } : {}),
    ...(opts.apiKey === null ? { defaultHeaders: { authorization: null } } : {}),
  });

  return createSdkProvider({
    name,
    defaultModel: opts.defaultModel,
    timeoutMs: opts.timeoutMs,
    buildParams: (request, model) => buildChatParams(request, model, name),
    single: async (params, watchdog) =>
      readCompletion(await client.chat.completions.create(params, { signal: watchdog.signal })),
    stream: async (params, watchdog, onToken) => {
      const stream = await client.chat.completions.create(
        { ...params, stream: true, stream_options: { include_usage: true } },
        { signal: watchdog.signal },
      );
      return drainStream(stream, new ChunkAssembler(), watchdog, onToken);
    },
    sdkErrors: { APIConnectionTimeoutError, APIUserAbortError, APIConnectionError, APIError },
    classifyApiError: classifyOpenAiApiError,
  });
}

/**
 * vLLM and some proxies answer errors as `{message, type, code}` without OpenAI's `error` envelope; the
 * SDK would then drop the message (and with it the context-length signal), so wrap such bodies first.
 */
class OpenAiClient extends OpenAI {
  protected override makeStatusError(
    status: number,
    error: object,
    message: string | undefined,
    headers: Headers,
  ): APIError {
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
  return {
    type: 'function',
    function: { name: tool.name, description: tool.description, parameters: tool.parameters },
  };
}

// ---------------------------------------------------------------------------------------------
// Non-streaming

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
    return [
      { id: call.id || `call_${index}`, name: call.function.name, arguments: rawArguments(call.function.arguments) },
    ];
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

interface PartialToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** Folds chat.completion.chunk deltas into one result; tool call fragments are keyed by their index. */
class ChunkAssembler implements StreamAssembler<Chunk> {
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
