import type { Db } from '../db';
import type { ReminderRow } from '../reminders';

/**
 * SQL of `reminders`: one row per reminder, listing it; its Temporal schedule decides when it fires. A
 * removed reminder keeps its row as a tombstone.
 */

const REMINDER_COLUMNS = `id, org_id AS "orgId", agent_id AS "agentId", title, schedule, task_template AS "taskTemplate", status,
  created_at AS "createdAt"`;

export async function reminderById(db: Db, id: string): Promise<ReminderRow | undefined> {
  const { rows } = await db.query<ReminderRow>(`SELECT ${REMINDER_COLUMNS} FROM reminders WHERE id = $1`, [id]);
  return rows[0];
}

/** An organisation's reminder of one agent, in any status. */
export async function agentReminder(
  db: Db,
  orgId: string,
  agentId: string,
  id: string,
): Promise<ReminderRow | undefined> {
  const { rows } = await db.query<ReminderRow>(
    `SELECT ${REMINDER_COLUMNS} FROM reminders WHERE org_id = $1 AND agent_id = $2 AND id = $3`,
    [orgId, agentId, id],
  );
  return rows[0];
}

/** An agent's active reminders, oldest first; with `orgId`, only when the agent belongs to it. */
export async function activeReminders(db: Db, agentId: string, orgId?: string): Promise<ReminderRow[]> {
  const { rows } = orgId
    ? await db.query<ReminderRow>(
        `SELECT ${REMINDER_COLUMNS} FROM reminders WHERE org_id = $1 AND agent_id = $2 AND status = 'active' ORDER BY created_at, id`,
        [orgId, agentId],
      )
    : await db.query<ReminderRow>(
        `SELECT ${REMINDER_COLUMNS} FROM reminders WHERE agent_id = $1 AND status = 'active' ORDER BY created_at`,
        [agentId],
      );
  return rows;
}

export async function countActiveReminders(db: Db, agentId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM reminders WHERE agent_id = $1 AND status = 'active'`,
    [agentId],
  );
  return rows[0]!.n;
}

/** Records a reminder once per id. */
export async function insertReminder(
  db: Db,
  r: {
    id: string;
    orgId: string;
    agentId: string;
    title: string;
    schedule: unknown;
    taskTemplate: unknown;
    createdBy: string;
  },
): Promise<void> {
  await db.query(
    `INSERT INTO reminders (id, org_id, agent_id, title, schedule, task_template, created_by) VALUES ($1,$2,$3,$4,$5,$6,$7)
     ON CONFLICT (id) DO NOTHING`,
    [r.id, r.orgId, r.agentId, r.title, JSON.stringify(r.schedule), JSON.stringify(r.taskTemplate), r.createdBy],
  );
}

/** Marks a reminder removed (the first removal's time stands) and answers its row. */
export async function markReminderRemoved(db: Db, id: string): Promise<ReminderRow | undefined> {
  const { rows } = await db.query<ReminderRow>(
    `UPDATE reminders SET status = 'removed', removed_at = COALESCE(removed_at, now()) WHERE id = $1 RETURNING ${REMINDER_COLUMNS}`,
    [id],
  );
  return rows[0];
}
