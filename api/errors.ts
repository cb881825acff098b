import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { z } from 'zod';
import { AgentRejectedError } from '../client/gateway';

/** An error with an HTTP status and a message a person can act on. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export const notFound = (what: string, id: string) => new HttpError(404, 'not_found', `no ${what} with id "${id}"`);
export const conflict = (message: string) => new HttpError(409, 'conflict', message);

/** Parses with a zod schema or throws a 400 listing every issue. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, where: 'body' | 'query'): z.output<S> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => ({ path: i.path.join('.') || '(root)', message: i.message }));
  const summary = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  throw new HttpError(400, 'validation_failed', `invalid ${where}: ${summary}`, { issues });
}

export const unknownRoute: RequestHandler = (req, _res, next) => {
  next(new HttpError(404, 'route_not_found', `no route ${req.method} ${req.path}`));
};

/** Every error becomes a JSON body; only our own faults are 5xx. */
export const errorHandler: ErrorRequestHandler = (err, req, res, _next) => {
  const e = toHttpError(err);
  // A response already sent (request time limit, a stream) cannot change; only log our own faults.
  if (res.headersSent) {
    if (e.status >= 500) req.log?.warn({ err }, 'error after the response was sent');
    return;
  }
  if (e.status >= 500) req.log?.error({ err }, 'request failed');
  res
    .status(e.status)
    .json({ error: { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) } });
};

function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof AgentRejectedError)
    return new HttpError(err.reason === 'limit_reached' ? 429 : 409, err.reason, err.message);
  const e = err as { type?: string; status?: number; message?: string };
  // body-parser's errors carry a type and a 4xx status.
  if (e.type === 'entity.parse.failed') return new HttpError(400, 'invalid_json', `malformed JSON body: ${e.message}`);
  if (e.type === 'entity.too.large') return new HttpError(413, 'body_too_large', 'request body is too large');
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    return new HttpError(e.status, e.type ?? 'bad_request', e.message ?? 'bad request');
  }
  return new HttpError(500, 'internal_error', 'internal error; see the server logs for the request id');
}
