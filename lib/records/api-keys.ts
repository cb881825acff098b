import type { Db } from '../db';

/** SQL of `api_keys`: the SHA-256 of each key (never the key), its organisation, name and display prefix. */

export interface ApiKeyRecord {
  id: string;
  orgId: string;
  name: string;
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
}

const KEY_COLUMNS = `id, org_id AS "orgId", name, prefix, created_at AS "createdAt", revoked_at AS "revokedAt"`;

export async function insertApiKey(
  db: Db,
  k: { orgId: string; name: string; prefix: string; keyHash: string },
): Promise<ApiKeyRecord> {
  const { rows } = await db.query<ApiKeyRecord>(
    `INSERT INTO api_keys (org_id, name, prefix, key_hash) VALUES ($1, $2, $3, $4) RETURNING ${KEY_COLUMNS}`,
    [k.orgId, k.name, k.prefix, k.keyHash],
  );
  return rows[0]!;
}

/** Every key, or an organisation's, by organisation and age. */
export async function listApiKeys(db: Db, orgId?: string): Promise<ApiKeyRecord[]> {
  const { rows } = await db.query<ApiKeyRecord>(
    `SELECT ${KEY_COLUMNS} FROM api_keys WHERE $1::text IS NULL OR org_id = $1 ORDER BY org_id, created_at`,
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

/** The live key with this hash. */
export async function liveKeyByHash(db: Db, keyHash: string): Promise<{ id: string; orgId: string } | undefined> {
  const { rows } = await db.query<{ id: string; org_id: string }>(
    'SELECT id, org_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL',
    [keyHash],
  );
  return rows[0] ? { id: rows[0].id, orgId: rows[0].org_id } : undefined;
}
