import type { RequestHandler } from 'express';
import type { VerifiedKey } from '../lib/api-keys';
import { HttpError } from './errors';

/** Resolves a presented API key to its organisation (lib/api-keys verifyApiKey, bound to the database). */
export type KeyVerifier = (presented: string) => Promise<VerifiedKey | undefined>;

const unauthorized = (message: string) => new HttpError(401, 'unauthorized', message);

/**
 * Every /api/v1 request needs `Authorization: Bearer <key>`. The key decides the organisation the
 * request acts in (`res.locals.orgId`): every query and signal is scoped to it, so another org's
 * resources are simply not found.
 */
export function requireApiKey(verify: KeyVerifier): RequestHandler {
  return async (req, res, next) => {
    const header = req.headers.authorization;
    if (!header) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      throw unauthorized(
        'missing API key: send the header "Authorization: Bearer <key>" (create a key with: npm run keys -- create --org <org>)',
      );
    }
    const match = /^Bearer[ ]+([\x21-\x7e]{1,200})[ ]*$/i.exec(header);
    if (!match) {
      res.setHeader('WWW-Authenticate', 'Bearer error="invalid_request"');
      throw unauthorized('malformed Authorization header: use "Authorization: Bearer <key>"');
    }
    const key = await verify(match[1]!);
    if (!key) {
      res.setHeader('WWW-Authenticate', 'Bearer error="invalid_token"');
      throw unauthorized('invalid or revoked API key');
    }
    res.locals.orgId = key.orgId;
    res.locals.apiKeyId = key.keyId;
    next();
  };
}
