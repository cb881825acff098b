import type { Db, Queryable } from '../db';

/** SQL of `memory`: shared state per organisation and scope (`org`, or an agent's id for its private memory). */

export async function readMemory(
  db: Db,
  orgId: string,
  scope: string,
  key: string,
): Promise<{ value: unknown; version: number } | undefined> {
  const { rows } = await db.query<{ value: unknown; version: number }>(
    'SELECT value, version FROM memory WHERE org_id = $1 AND scope = $2 AND key = $3',
    [orgId, scope, key],
  );
  return rows[0];
}

export type MemoryWriteOp = 'set' | 'increment' | 'append' | 'merge';

/** Each operation is one SQL statement, so concurrent writers never lose an update. */
const MEMORY_WRITE_SQL: Record<MemoryWriteOp, string> = {
  set: 'EXCLUDED.value',
  increment: "to_jsonb(COALESCE((memory.value #>> '{}')::numeric, 0) + (EXCLUDED.value #>> '{}')::numeric)",
  append:
    "CASE WHEN jsonb_typeof(memory.value) = 'array' THEN memory.value || jsonb_build_array(EXCLUDED.value #> '{0}') ELSE jsonb_build_array(memory.value, EXCLUDED.value #> '{0}') END",
  merge:
    "CASE WHEN jsonb_typeof(memory.value) = 'object' AND jsonb_typeof(EXCLUDED.value) = 'object' THEN memory.value || EXCLUDED.value ELSE EXCLUDED.value END",
};

/**
 * Writes `initial` as a new key, or applies `op` to the stored value. For append, `initial` is the
 * one-element list; on conflict its first element is appended.
 */
export async function writeMemory(
  db: Queryable,
  w: { orgId: string; scope: string; key: string; op: MemoryWriteOp; initial: unknown; updatedBy: string },
): Promise<{ value: unknown; version: number }> {
  const { rows } = await db.query<{ value: unknown; version: number }>(
    `INSERT INTO memory (org_id, scope, key, value, updated_by) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (org_id, scope, key) DO UPDATE SET value = ${MEMORY_WRITE_SQL[w.op]}, version = memory.version + 1,
       updated_by = EXCLUDED.updated_by, updated_at = now()
     RETURNING value, version`,
    [w.orgId, w.scope, w.key, JSON.stringify(w.initial), w.updatedBy],
  );
  return rows[0]!;
}

/** Deletes a scope's memory (an archived agent's private memory). */
export async function deleteMemoryScope(db: Queryable, scope: string): Promise<void> {
  await db.query('DELETE FROM memory WHERE scope = $1', [scope]);
}
