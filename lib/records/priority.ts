import type { Db } from '../db';

/**
 * SQL of `priority_scores` (every scoring of a task, with its source and time) and `priority_cache` (scores
 * per agent and concept hash, reused within PRIORITY_CACHE_MINUTES).
 */

export interface GoalScore {
  score: number;
  source: 'model' | 'cache' | 'fallback';
}

export interface ScoreKey {
  taskId: string;
  agentId: string;
  conceptHash: string;
  durationMs: number;
}

/**
 * Records the score `scored` selects (one row of score, source and error, or none; its parameters start
 * at $6) for the task, and copies it to the task's row, in one statement. A score recorded before stands
 * (a retried activity answers with it), so the queue order never flips. Null when `scored` found nothing.
 */
async function saveScore(db: Db, key: ScoreKey, scored: string, params: unknown[]): Promise<GoalScore | null> {
  const { rows } = await db.query<GoalScore>(
    `WITH scored AS (${scored}), saved AS (
       INSERT INTO priority_scores (task_id, agent_id, concept_hash, score, source, duration_ms, error)
       SELECT $1, $2, $3, score, source, $4, error FROM scored
       ON CONFLICT (task_id) DO UPDATE SET task_id = EXCLUDED.task_id RETURNING score, source
     ), copied AS (
       UPDATE tasks SET priority_score = saved.score FROM saved WHERE tasks.id = $5
     )
     SELECT score, source FROM saved`,
    [key.taskId, key.agentId, key.conceptHash, key.durationMs, key.taskId, ...params],
  );
  return rows[0] ?? null;
}

/** Records a score for the task (or answers the one recorded before). */
export async function recordScore(db: Db, key: ScoreKey, result: GoalScore, error?: string): Promise<GoalScore> {
  const scored = 'SELECT $6::int AS score, $7::text AS source, $8::text AS error';
  return (await saveScore(db, key, scored, [result.score, result.source, error ?? null]))!;
}

/**
 * The agent's cached score for the same key concepts within `cacheMinutes`, recorded for this task as a
 * `cache` scoring; null on a miss. The cache is per agent: the same task matters differently to agents
 * with different objectives.
 */
export async function recordCachedScore(db: Db, key: ScoreKey, cacheMinutes: number): Promise<GoalScore | null> {
  const cached = `SELECT score, 'cache'::text AS source, NULL::text AS error FROM priority_cache
                   WHERE agent_id = $2 AND concept_hash = $3 AND created_at > now() - make_interval(mins => $6)`;
  return saveScore(db, key, cached, [cacheMinutes]);
}

/** Caches a model's score for the agent and concepts (a newer score replaces an older one). */
export async function cacheScore(
  db: Db,
  c: { agentId: string; conceptHash: string; concepts: string; score: number },
): Promise<void> {
  await db.query(
    `INSERT INTO priority_cache (agent_id, concept_hash, concepts, score) VALUES ($1,$2,$3,$4)
     ON CONFLICT (agent_id, concept_hash) DO UPDATE SET score = EXCLUDED.score, concepts = EXCLUDED.concepts, created_at = now()`,
    [c.agentId, c.conceptHash, c.concepts, c.score],
  );
}

/** Scoring of an organisation's tasks: counts by source and median latency (all, and cache hits). */
export async function scoringStats(db: Db, orgId: string) {
  const { rows } = await db.query<{
    scored: number;
    cache: number;
    model: number;
    fallback: number;
    p50: number | null;
    p50Cached: number | null;
  }>(
    `SELECT count(*) AS scored, count(*) FILTER (WHERE s.source = 'cache') AS cache,
            count(*) FILTER (WHERE s.source = 'model') AS model, count(*) FILTER (WHERE s.source = 'fallback') AS fallback,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY s.duration_ms) AS p50,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY s.duration_ms) FILTER (WHERE s.source = 'cache') AS "p50Cached"
       FROM priority_scores s JOIN tasks t ON t.id::text = s.task_id WHERE t.org_id = $1`,
    [orgId],
  );
  return rows[0]!;
}
