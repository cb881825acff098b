/**
 * The provider interface every LLM adapter implements. Adapters are plain clients: they make one
 * request and classify failures as `ProviderError`; retries belong to Temporal activity retry policies,
 * so SDK clients are built with `maxRetries: 0`.
 */

export interface ToolCall {
  /** Provider-assigned id that the tool result must echo back. */
  id: string;
  name: string;
  /** Raw JSON text as produced by the model; may be malformed, the caller validates it. */
  arguments: string;
}

export type LlmMessage =
  | { role: 'system' | 'user'; content: string }
  | { role: 'assistant'; content: string; toolCalls?: ToolCall[] }
  | { role: 'tool'; toolCallId: string; name: string; content: string };

export interface ToolSpec {
  name: string;
  description: string;
  /** JSON Schema (draft 2020-12 / OpenAPI compatible object schema) of the tool's input. */
  parameters: Record<string, unknown>;
}

export interface LlmRequest {
  model: string;
  messages: LlmMessage[];
  tools: ToolSpec[];
  maxTokens?: number;
  temperature?: number;
}

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
}

export type FinishReason = 'stop' | 'tool_calls' | 'length' | 'refusal' | 'other';

export interface LlmResponse {
  content: string;
  toolCalls: ToolCall[];
  usage: TokenUsage;
  finishReason: FinishReason;
  provider: string;
  model: string;
}

export interface CompleteOptions {
  signal?: AbortSignal;
  /** Called with each text delta when the provider streams; adapters that cannot stream ignore it. */
  onToken?: (delta: string) => void;
}

export interface LlmProvider {
  /** Stable provider name: 'offline' | 'openai' | 'anthropic' | 'openai-compatible'. */
  readonly name: string;
  readonly defaultModel: string;
  complete(request: LlmRequest, options?: CompleteOptions): Promise<LlmResponse>;
}

export type ProviderErrorKind =
  'rate_limited' | 'unavailable' | 'timeout' | 'network' | 'auth' | 'invalid_request' | 'context_length' | 'refusal';

/** A classified provider failure. `retryable` tells the activity whether to let Temporal retry. */
export class ProviderError extends Error {
  constructor(
    readonly kind: ProviderErrorKind,
    message: string,
    readonly details: { status?: number; retryAfterMs?: number; provider?: string } = {},
  ) {
    super(message);
    this.name = 'ProviderError';
  }

  get retryable(): boolean {
    return (
      this.kind === 'rate_limited' || this.kind === 'unavailable' || this.kind === 'timeout' || this.kind === 'network'
    );
  }
}
