import type { RequestHandler } from 'express';
import { rateLimit } from 'express-rate-limit';
import { registerSecretsIn } from '../lib/logger';
import { HttpError } from './errors';

/** Deeper JSON than this is refused: nothing in the API needs it, and deep values break serialisers downstream. */
export const MAX_JSON_DEPTH = 32;

/**
 * Requests per minute per API key (runs after authentication; `res.locals.apiKeyId` is the key's id,
 * never the key). Answers 429 with Retry-After and the standard RateLimit headers.
 */
export function rateLimitPerKey(perMinute: number): RequestHandler {
  return rateLimit({
    windowMs: 60_000,
    limit: perMinute,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    keyGenerator: (_req, res) => `key:${res.locals.apiKeyId}`,
    handler: (_req, res, next) => {
      const retryAfter = res.getHeader('Retry-After');
      next(new HttpError(429, 'rate_limited', `rate limit of ${perMinute} requests per minute per API key exceeded; retry after ${retryAfter} s`));
    },
  });
}

/**
 * Answers 503 when a JSON request has not answered within `seconds` (a stuck dependency must not pin
 * connections). Only for routes that answer JSON at once: a streaming response has sent its headers and
 * is left alone. The work may still complete; the message says to check before retrying.
 */
export function requestTimeLimit(seconds: number): RequestHandler {
  return (req, res, next) => {
    const timer = setTimeout(() => {
      if (res.headersSent) return;
      res.status(503).set('Retry-After', '1').json({
        error: {
          code: 'request_timeout',
          message: `the request did not finish within ${seconds} s; it may still take effect, so read the resource before retrying`,
        },
      });
    }, seconds * 1000);
    res.once('close', () => clearTimeout(timer));
    res.once('finish', () => clearTimeout(timer));
    next();
  };
}

/**
 * Refuses JSON bodies and query strings that Postgres or the workflows could not hold: nesting deeper
 * than MAX_JSON_DEPTH and NUL characters (Postgres text and jsonb reject U+0000). Iterative, so a
 * hostile body cannot exhaust the stack here.
 */
export const rejectUnstorableInput: RequestHandler = (req, _res, next) => {
  for (const [where, value] of [['body', req.body], ['query', req.query]] as const) {
    const problem = unstorable(value);
    if (problem) throw new HttpError(400, 'invalid_input', `invalid ${where}: ${problem}`);
  }
  next();
};

function unstorable(root: unknown): string | undefined {
  const stack: { value: unknown; depth: number }[] = [{ value: root, depth: 0 }];
  while (stack.length > 0) {
    const { value, depth } = stack.pop()!;
    if (typeof value === 'string') {
      if (value.includes('\u0000')) return 'strings may not contain NUL characters (\\u0000)';
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    if (depth >= MAX_JSON_DEPTH) return `nesting deeper than ${MAX_JSON_DEPTH} levels is not accepted`;
    for (const [key, child] of Object.entries(value)) {
      if (key.includes('\u0000')) return 'keys may not contain NUL characters (\\u0000)';
      stack.push({ value: child, depth: depth + 1 });
    }
  }
  return undefined;
}

/** Values a request marks secret (`secrets` in a task's input) are scrubbed from this process's logs. */
export const rememberSecrets: RequestHandler = (req, _res, next) => {
  registerSecretsIn(req.body);
  next();
};
