/**
 * Temporal codec server (the protocol the Web UI and the `temporal` CLI speak): `POST /encode` and
 * `POST /decode` take `{ "payloads": [{ "metadata": { key: base64 }, "data": base64 }] }` (Payloads in
 * proto3 JSON, so every bytes field is base64) and answer the same shape run through the codec.
 * Malformed input and payloads the codec cannot decode (unknown key id, altered data) answer 400, as the
 * protocol asks. Only the last path segment counts, so `/<namespace>/decode` works too (the CLI's
 * `{namespace}` endpoint templating).
 *
 * Every request needs an API key, like /api/v1 (`Authorization: Bearer <key>`): a key of the operators'
 * organisation (ADMIN_ORG_ID) decodes every payload, any other key only payloads bound to its own
 * organisation (lib/codec.ts); the rest come back still encrypted.
 *
 * The Web UI calls this from the browser, so it answers CORS, preflight included, for the configured
 * origins. Mount it before the API's own JSON parser: payloads are larger than API bodies.
 */
import express, { Router, type RequestHandler } from 'express';
import type { Payload } from '@temporalio/common';
import { z } from 'zod';
import { PayloadCodecError, type CodecCaller, type OrgPayloadCodec } from '../../lib/codec';
import { requireApiKey, type KeyVerifier } from '../auth';
import { errorHandler, HttpError, parse } from '../errors';

/** The dev server's Web UI (`temporal server start-dev`, port 8233). */
export const DEFAULT_CODEC_CORS_ORIGINS = ['http://127.0.0.1:8233', 'http://localhost:8233'];
const ALLOWED_HEADERS = 'X-Namespace, Content-Type, Authorization';
/** A payload may be up to 2 MB (the server's default blob limit), base64 grows it by a third. */
const BODY_LIMIT = '8mb';

export interface CodecRoutesOptions {
  /** Resolves the bearer key to its organisation: the same verifier as /api/v1. */
  apiKeys: KeyVerifier;
  /** The operators' organisation (ADMIN_ORG_ID): its keys decode every payload. */
  adminOrgId: string;
  /**
   * CODEC_ALLOW_UNAUTHENTICATED: a request without an Authorization header acts as the operators'
   * organisation (for a Web UI that cannot send a key). A header that is present is still checked.
   */
  allowUnauthenticated?: boolean;
  /** Browser origins allowed to call (CODEC_CORS_ORIGINS); `*` allows any, without credentials. Default: the dev server's Web UI. */
  allowedOrigins?: readonly string[];
}

const Base64 = z.string().regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'must be base64');
const PayloadsBody = z.strictObject({
  // Proto3 JSON leaves out an empty list: `{}` is a message with no payloads (the CLI sends it for an
  // update or signal without arguments) and gets `{"payloads": []}`.
  payloads: z
    .array(
      z.object({
        metadata: z.record(z.string(), Base64).nullish(),
        data: Base64.nullish(),
      }),
    )
    .default([]),
});
type JsonPayload = z.infer<typeof PayloadsBody>['payloads'][number];

export function codecRoutes(codec: OrgPayloadCodec, opts: CodecRoutesOptions): Router {
  const router = Router();
  router.use(cors(opts.allowedOrigins ?? DEFAULT_CODEC_CORS_ORIGINS));
  // Before the body is read, as for /api/v1: an anonymous client costs one header check.
  const authenticate = requireApiKey(opts.apiKeys);
  router.use((req, res, next) => {
    if (opts.allowUnauthenticated && req.headers.authorization === undefined) {
      res.locals.orgId = opts.adminOrgId;
      return next();
    }
    return authenticate(req, res, next);
  });
  router.use(express.json({ limit: BODY_LIMIT }));

  const handler =
    (direction: 'encode' | 'decode'): RequestHandler =>
    async (req, res) => {
      const { payloads } = parse(PayloadsBody, req.body, 'body');
      const orgId: string = res.locals.orgId;
      const caller: CodecCaller = { orgId, admin: orgId === opts.adminOrgId };
      let result: Payload[];
      try {
        const input = payloads.map(fromJson);
        result = direction === 'decode' ? await codec.decodeFor(input, caller) : await codec.encodeFor(input, orgId);
      } catch (err) {
        if (err instanceof PayloadCodecError) throw new HttpError(400, err.code, err.message);
        throw err;
      }
      res.json({ payloads: result.map(toJson) });
    };
  router.post(['/encode', '/:namespace/encode'], handler('encode'));
  router.post(['/decode', '/:namespace/decode'], handler('decode'));
  // Errors become the API's JSON error body here too, with the CORS headers already set.
  router.use(errorHandler);
  return router;
}

/** CODEC_CORS_ORIGINS plus the origin of the configured Web UI (TEMPORAL_UI_URL), without duplicates. */
export function codecCorsOrigins(config: {
  readonly CODEC_CORS_ORIGINS: readonly string[];
  readonly TEMPORAL_UI_URL?: string;
}): string[] {
  const origins = new Set(config.CODEC_CORS_ORIGINS.map((o) => o.replace(/\/+$/, '')));
  try {
    if (config.TEMPORAL_UI_URL) origins.add(new URL(config.TEMPORAL_UI_URL).origin);
  } catch {
    // Not a URL: nothing to add.
  }
  return [...origins];
}

function cors(allowedOrigins: readonly string[]): RequestHandler {
  const anyOrigin = allowedOrigins.includes('*');
  const allowed = new Set(allowedOrigins.filter((o) => o !== '*').map((o) => o.replace(/\/+$/, '')));
  return (req, res, next) => {
    const origin = req.headers.origin;
    res.vary('Origin');
    const listed = origin !== undefined && allowed.has(origin);
    const permitted = origin !== undefined && (anyOrigin || listed);
    if (listed) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      // The Web UI's "Include cross-origin credentials" setting; only ever for origins named one by one.
      res.setHeader('Access-Control-Allow-Credentials', 'true');
    } else if (permitted) {
      // `*` without credentials: the browser then sends no cookies and may not read a credentialed answer.
      res.setHeader('Access-Control-Allow-Origin', '*');
    }
    if (req.method !== 'OPTIONS') return next();
    if (permitted) {
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', ALLOWED_HEADERS);
      res.setHeader('Access-Control-Max-Age', '600');
      // Chrome's Private Network Access preflight (a UI on a public host calling a codec on loopback).
      if (req.headers['access-control-request-private-network'] === 'true') {
        res.setHeader('Access-Control-Allow-Private-Network', 'true');
      }
    }
    // Without the Allow-* headers the browser refuses the real request; nothing more to say.
    res.status(204).end();
  };
}

function fromJson({ metadata, data }: JsonPayload): Payload {
  return {
    metadata: Object.fromEntries(Object.entries(metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: Buffer.from(data ?? '', 'base64'),
  };
}

/** proto3 JSON: bytes as standard base64; empty data is left out, as protobuf JSON encoders do. */
function toJson({ metadata, data }: Payload): JsonPayload {
  const json: JsonPayload = {
    metadata: Object.fromEntries(
      Object.entries(metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('base64')]),
    ),
  };
  if (data && data.length > 0) json.data = Buffer.from(data).toString('base64');
  return json;
}
