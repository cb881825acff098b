/**
 * Plumbing shared by the SDK-backed provider adapters: the `complete()` wrapper, deadlines, stream draining
 * and failure classification. Both adapters go through it so every provider retries the same way under Temporal.
 */
import {
  ProviderError,
  type CompleteOptions,
  type LlmProvider,
  type LlmRequest,
  type LlmResponse,
  type ProviderErrorKind,
} from './types';

/** What an adapter's request functions return; `complete()` adds the provider name. */
export type ProviderResult = Omit<LlmResponse, 'provider'>;

/**
 * The error classes both SDKs define under the same names and hierarchy (timeout and abort are
 * subclasses of the connection and API errors, so the order of the checks matters).
 */
export interface SdkErrorClasses<ApiError extends Error> {
  APIConnectionTimeoutError: abstract new (...args: never[]) => Error;
  APIUserAbortError: abstract new (...args: never[]) => Error;
  APIConnectionError: abstract new (...args: never[]) => Error;
  APIError: abstract new (...args: never[]) => ApiError;
}

/** The provider-specific parts of an SDK-backed adapter. */
export interface SdkAdapter<Params, ApiError extends Error> {
  name: string;
  defaultModel: string;
  timeoutMs: number;
  buildParams(request: LlmRequest, model: string): Params;
  single(params: Params, watchdog: Watchdog): Promise<ProviderResult>;
  stream(params: Params, watchdog: Watchdog, onToken: (delta: string) => void): Promise<ProviderResult>;
  sdkErrors: SdkErrorClasses<ApiError>;
  /** Maps an SDK API error (an HTTP failure, or an error event inside a stream) to a ProviderError. */
  classifyApiError(err: ApiError, provider: string): ProviderError;
}

export function createSdkProvider<Params, ApiError extends Error>(adapter: SdkAdapter<Params, ApiError>): LlmProvider {
  const { name, defaultModel } = adapter;
  const classify = (err: unknown, provider: string): unknown => classifySdkError(err, provider, adapter);

  async function complete(request: LlmRequest, options: CompleteOptions = {}): Promise<LlmResponse> {
    const model = request.model || defaultModel;
    const params = adapter.buildParams(request, model);
    const watchdog = startWatchdog(adapter.timeoutMs, options.signal);
    try {
      const { onToken } = options;
      const result = onToken ? await adapter.stream(params, watchdog, onToken) : await adapter.single(params, watchdog);
      return { ...result, provider: name, model: result.model || model };
    } catch (err) {
      throw settleFailure(err, { provider: name, watchdog, callerSignal: options.signal, classify });
    } finally {
      watchdog.dispose();
    }
  }

  return { name, defaultModel, complete };
}

function classifySdkError<ApiError extends Error>(
  err: unknown,
  provider: string,
  adapter: Pick<SdkAdapter<unknown, ApiError>, 'sdkErrors' | 'classifyApiError'>,
): unknown {
  const sdk = adapter.sdkErrors;
  if (err instanceof sdk.APIConnectionTimeoutError) return timeoutError(provider);
  if (err instanceof sdk.APIUserAbortError) return err;
  if (err instanceof sdk.APIConnectionError) return networkError(provider, err);
  if (err instanceof sdk.APIError) return adapter.classifyApiError(err, provider);
  return classifyTransportError(err, provider);
}

/** Folds a provider's stream events into a result; `add` returns the text delta an event carries, if any. */
export interface StreamAssembler<Event> {
  add(event: Event): string;
  finish(): ProviderResult;
}

export async function drainStream<Event>(
  stream: AsyncIterable<Event>,
  assembler: StreamAssembler<Event>,
  watchdog: Watchdog,
  onToken: (delta: string) => void,
): Promise<ProviderResult> {
  for await (const event of stream) {
    watchdog.touch();
    const text = assembler.add(event);
    if (text) emitToken(onToken, text);
  }
  // The SDK ends iteration silently when the request is aborted; surface the abort instead.
  watchdog.signal.throwIfAborted();
  return assembler.finish();
}

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

function emitToken(onToken: (delta: string) => void, text: string): void {
  try {
    onToken(text);
  } catch (err) {
    throw new CallbackError(err);
  }
}

interface SettleContext {
  provider: string;
  watchdog: Watchdog;
  callerSignal: AbortSignal | undefined;
  classify: (err: unknown, provider: string) => unknown;
}

/** Decides what a failed `complete` throws: the caller's own abort and callback errors pass through as-is. */
function settleFailure(err: unknown, ctx: SettleContext): unknown {
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

function timeoutError(provider: string): ProviderError {
  return new ProviderError('timeout', `${provider} did not answer in time`, { provider });
}

function networkError(provider: string, err: Error): ProviderError {
  return new ProviderError('network', `${provider} connection failed: ${describeCause(err)}`, { provider });
}

/** Errors raised outside the SDK's request phase: body reads cut by resets, truncated JSON bodies. */
function classifyTransportError(err: unknown, provider: string): unknown {
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
  return (
    typeof code === 'string' && /^(ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|UND_ERR_)/.test(code)
  );
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
