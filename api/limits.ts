import type { RequestHandler } from 'express';
import { rateLimit } from 'express-rate-limit';
import { bindToLogScope, registerSecretsIn, runInLogScope } from '../lib/logger';
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
      next(
        new HttpError(
          429,
          'rate_limited',
          `rate limit of ${perMinute} requests per minute per API key exceeded; retry after ${retryAfter} s`,
        ),
      );
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
      res
        .status(503)
        .set('Retry-After', '1')
        .json({
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
 * than MAX_JSON_DEPTH, NUL characters (Postgres text and jsonb reject U+0000) and lone UTF-16 surrogates
 * (not Unicode: jsonb refuses them, and a record that can never be written must not reach a workflow).
 * The error names the field. Iterative, so a hostile body cannot exhaust the stack here.
 */
export const rejectUnstorableInput: RequestHandler = (req, _res, next) => {
  for (const [where, value] of [
    ['body', req.body],
    ['query', req.query],
  ] as const) {
    const problem = unstorable(value);
    if (problem) throw new HttpError(400, 'invalid_input', `invalid ${where}: ${problem}`, { path: problem.path });
  }
  next();
};

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function unstorableText(text: string): string | undefined {
  if (text.includes('\u0000')) return 'may not contain NUL characters (\\u0000)';
  if (LONE_SURROGATE.test(text)) return 'may not contain lone UTF-16 surrogates (\\ud800-\\udfff without their pair)';
  return undefined;
}

function unstorable(root: unknown): (string & { path: string }) | undefined {
  const stack: { value: unknown; path: string; depth: number }[] = [{ value: root, path: '', depth: 0 }];
  const found = (path: string, what: string) =>
    Object.assign(`${path || '(root)'} ${what}`, { path: path || '(root)' });
  while (stack.length > 0) {
    const { value, path, depth } = stack.pop()!;
    if (typeof value === 'string') {
      const problem = unstorableText(value);
      if (problem) return found(path, problem);
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    if (depth >= MAX_JSON_DEPTH)
      return found(path, `nests deeper than ${MAX_JSON_DEPTH} levels, which is not accepted`);
    for (const [key, child] of Object.entries(value)) {
      const childPath = path ? `${path}.${key}` : key;
      const problem = unstorableText(key);
      if (problem) return found(path, `has a key that ${problem}`);
      stack.push({ value: child, path: childPath, depth: depth + 1 });
    }
  }
  return undefined;
}

/**
 * Values a request marks secret (`secrets` in a task's input) are scrubbed from this process's log lines
 * of the same organisation: the rest of the request runs in the org's log scope, so a tenant cannot
 * blank strings in other organisations' lines.
 */
export const rememberSecrets: RequestHandler = (req, res, next) => {
  runInLogScope(String(res.locals.orgId), () => {
    bindToLogScope(res);
    registerSecretsIn(req.body);
    next();
  });
};
