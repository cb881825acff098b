import type { QueryResultRow } from 'pg';
import type { Queryable } from '../db';

/**
 * The readers every organisation-owned table shares. `table` and `columns` are the module's own constants,
 * never input: only the values travel as parameters.
 */

/** The row with this id, read within its organisation: another org's id reads as missing, not forbidden. */
export async function orgRowById<T extends QueryResultRow>(
  db: Queryable,
  table: string,
  columns: string,
  orgId: string,
  id: string,
): Promise<T | undefined> {
  const { rows } = await db.query<T>(`SELECT ${columns} FROM ${table} WHERE org_id = $1 AND id = $2`, [orgId, id]);
  return rows[0];
}

/** One page of an organisation's rows, newest first, of one status when asked. */
export async function orgPageByStatus<T extends QueryResultRow>(
  db: Queryable,
  table: string,
  columns: string,
  orgId: string,
  f: { status?: string; limit: number; offset: number },
): Promise<T[]> {
  const { rows } = await db.query<T>(
    `SELECT ${columns} FROM ${table} WHERE org_id = $1 AND ($2::text IS NULL OR status = $2)
     ORDER BY created_at DESC, id LIMIT $3 OFFSET $4`,
    [orgId, f.status ?? null, f.limit, f.offset],
  );
  return rows;
}
