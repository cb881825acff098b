import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from './db';

/** Every key starts with this, so leaked keys are easy to recognise (and to scrub from logs). */
export const API_KEY_PREFIX = 'tao_';
/** How keys look: the prefix and 43 base64url characters (32 random bytes). */
export const API_KEY_PATTERN = /tao_[A-Za-z0-9_-]{43}/g;

export interface ApiKeyRecord {
  id: string;
  orgId: string;
  name: string;
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
}

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
  const { rows } = await db.query<ApiKeyRecord>(
    `INSERT INTO api_keys (org_id, name, prefix, key_hash) VALUES ($1, $2, $3, $4)
     RETURNING id, org_id AS "orgId", name, prefix, created_at AS "createdAt", revoked_at AS "revokedAt"`,
    [orgId, name, displayPrefix(key), hashKey(key)],
  );
  return { key, record: rows[0]! };
}

export async function listApiKeys(db: Db, orgId?: string): Promise<ApiKeyRecord[]> {
  const { rows } = await db.query<ApiKeyRecord>(
    `SELECT id, org_id AS "orgId", name, prefix, created_at AS "createdAt", revoked_at AS "revokedAt" FROM api_keys
     WHERE $1::text IS NULL OR org_id = $1 ORDER BY org_id, created_at`,
    [orgId ?? null],
  );
  return rows;
}

/** Revokes a key by id; true when a live key was revoked. */
export async function revokeApiKey(db: Db, id: string): Promise<boolean> {
  const { rowCount } = await db.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [
    id,
  ]);
  return (rowCount ?? 0) > 0;
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
  const { rows } = await db.query<{ id: string; org_id: string }>(
    'SELECT id, org_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL',
    [hash],
  );
  return rows[0] ? { keyId: rows[0].id, orgId: rows[0].org_id } : undefined;
}

/** The verifier the API uses: database keys, plus API_KEY for DEFAULT_ORG_ID when it is set. */
export function apiKeyVerifier(db: Db, config: { readonly API_KEY?: string; readonly DEFAULT_ORG_ID: string }) {
  return (presented: string) =>
    verifyApiKey(db, presented, { envKey: config.API_KEY, envOrgId: config.DEFAULT_ORG_ID });
}
