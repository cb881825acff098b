import type { Db } from '../db';

/** SQL of `decisions`, the reasoning trace of each task. */

export interface DecisionInput {
  taskId: string;
  step: number;
  seq: number;
  type: string;
  reasoning: string;
  action: unknown;
  result: unknown;
  confidence: number | null;
}

/**
 * Data-modifying CTEs (`name AS (UPDATE …)`) with parameters $1…$n that run in the same statement as a
 * record's own write: a step's writes land together, atomically and in one round trip.
 */
export interface Alongside {
  ctes: string;
  params: unknown[];
}

/** Runs `write` (placeholders from `p`, numbered after the CTEs') with the CTEs in front of it. */
export async function queryAlongside(
  db: Db,
  alongside: Alongside | undefined,
  write: (p: (i: number) => string) => string,
  own: unknown[],
): Promise<void> {
  const params = alongside?.params ?? [];
  const sql = write((i) => `$${params.length + i}`);
  await db.query(alongside ? `WITH ${alongside.ctes}\n${sql}` : sql, [...params, ...own]);
}

/** Appends one decision to a task's reasoning trace; unique per (task, step, seq), so retries write it once. */
export async function insertDecision(db: Db, d: DecisionInput, alongside?: Alongside): Promise<void> {
  await queryAlongside(
    db,
    alongside,
    (p) => `INSERT INTO decisions (task_id, step, seq, decision_type, reasoning, action, result, confidence)
     VALUES (${[1, 2, 3, 4, 5, 6, 7, 8].map(p).join(',')}) ON CONFLICT (task_id, step, seq) DO NOTHING`,
    [
      d.taskId,
      d.step,
      d.seq,
      d.type,
      d.reasoning,
      JSON.stringify(d.action ?? {}),
      JSON.stringify(d.result ?? null),
      d.confidence,
    ],
  );
}

export interface DecisionRecord {
  step: number;
  decisionType: string;
  reasoning: string;
  action: unknown;
  result: unknown;
  confidence: number | null;
  createdAt: string;
}

/** A task's reasoning trace, in order. */
export async function reasoningTrace(db: Db, taskId: string): Promise<DecisionRecord[]> {
  const { rows } = await db.query<DecisionRecord>(
    `SELECT step, decision_type AS "decisionType", reasoning, action, result, confidence, created_at AS "createdAt"
     FROM decisions WHERE task_id = $1 ORDER BY step, seq`,
    [taskId],
  );
  return rows;
}

/** The result of a task's decision at (step, seq) when it has that type; undefined when there is none. */
export async function decisionResult(
  db: Db,
  at: { taskId: string; step: number; seq: number; type: string },
): Promise<unknown> {
  const { rows } = await db.query<{ result: unknown }>(
    'SELECT result FROM decisions WHERE task_id = $1 AND step = $2 AND seq = $3 AND decision_type = $4',
    [at.taskId, at.step, at.seq, at.type],
  );
  return rows[0]?.result;
}
