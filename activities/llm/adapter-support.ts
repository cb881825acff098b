/** Plumbing shared by the provider adapters: deadlines, token emission and failure classification. */
import { ProviderError, type ProviderErrorKind } from './types';

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
