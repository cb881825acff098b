import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from './db';
import { insertApiKey, liveKeyByHash, type ApiKeyRecord } from './records/api-keys';

export { listApiKeys, revokeApiKey, type ApiKeyRecord } from './records/api-keys';

/** Every key starts with this, so leaked keys are easy to recognise (and to scrub from logs). */
export const API_KEY_PREFIX = 'tao_';
/** How keys look: the prefix and 43 base64url characters (32 random bytes). */
export const API_KEY_PATTERN = /tao_[A-Za-z0-9_-]{43}/g;

const hashKey = (key: string) => createHash('sha256').update(key).digest('hex');

/** A new random key. It is shown once; only its hash is stored. */
export function generateApiKey(): string {
  return `${API_KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** The first characters of a key: enough to tell keys apart in a listing, useless to an attacker. */
const displayPrefix = (key: string) => key.slice(0, API_KEY_PREFIX.length + 6);

/** Creates a key for an organisation and returns it in clear text (the only time it is available). */
export async function createApiKey(db: Db, orgId: string, name = ''): Promise<{ key: string; record: ApiKeyRecord }> {
  const key = generateApiKey();
  const record = await insertApiKey(db, { orgId, name, prefix: displayPrefix(key), keyHash: hashKey(key) });
  return { key, record };
}

export interface VerifiedKey {
  /** Stable per key and not secret: used to rate-limit per key. */
  keyId: string;
  orgId: string;
}

/**
 * Resolves a presented key to its organisation, or undefined. `envKey` (API_KEY) belongs to `envOrgId`
 * without a database row; every other key is looked up by its hash, so the stored value never leaves
 * Postgres and a database leak reveals no usable key.
 */
export async function verifyApiKey(
  db: Db,
  presented: string,
  env: { envKey?: string; envOrgId: string },
): Promise<VerifiedKey | undefined> {
  const hash = hashKey(presented);
  if (env.envKey && timingSafeEqual(Buffer.from(hash), Buffer.from(hashKey(env.envKey)))) {
    return { keyId: 'env', orgId: env.envOrgId };
  }
  if (!presented.startsWith(API_KEY_PREFIX)) return undefined;
  const key = await liveKeyByHash(db, hash);
  return key ? { keyId: key.id, orgId: key.orgId } : undefined;
}

/** The verifier the API uses: database keys, plus API_KEY for DEFAULT_ORG_ID when it is set. */
export function apiKeyVerifier(db: Db, config: { readonly API_KEY?: string; readonly DEFAULT_ORG_ID: string }) {
  return (presented: string) =>
    verifyApiKey(db, presented, { envKey: config.API_KEY, envOrgId: config.DEFAULT_ORG_ID });
}
