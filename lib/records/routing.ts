import type { Db, Queryable } from '../db';
import type { RoutedTaskEnd, TaskRoute, TaskStatus, TaskValidation } from '../../contract/definitions';

/**
 * SQL of routed tasks: choosing the agent a route names, the route columns of `tasks` and the round-robin
 * counters of `route_turns`. An agent can take routed work when it is neither archived, paused nor stopped
 * on an error, its type is not disabled for the organisation, and it has every required capability.
 */

interface Candidate {
  id: string;
  capabilities: string[];
  /** Queued and running tasks. */
  queueDepth: number;
  /** Mean seconds from start to end of its completed tasks; 0 with none yet. */
  meanTaskSeconds: number;
}

/** The key of a round-robin counter: the required capabilities, sorted and comma-joined. */
export const capabilityKey = (capabilities: string[]): string => [...new Set(capabilities)].sort().join(',');

const byLoad = (a: Candidate, b: Candidate) => a.queueDepth - b.queueDepth || a.meanTaskSeconds - b.meanTaskSeconds;

/**
 * The agent of the organisation a route picks, or null when none can take it. `capability`: the closest
 * match (fewest capabilities beyond the required ones), then the least loaded; `least_loaded`: the
 * shortest queue, then the shortest mean task time; `round_robin`: the next capable agent in creation
 * order, by a counter kept per organisation and capability set. Ties go to the agent created first.
 * `exclude` leaves out agents already tried.
 */
export async function pickRouteAgent(
  db: Db,
  orgId: string,
  route: TaskRoute,
  exclude: string[] = [],
): Promise<string | null> {
  const { rows } = await db.query<Candidate>(
    `SELECT a.id, a.capabilities,
            (SELECT count(*)::int FROM tasks t WHERE t.agent_id = a.id
               AND t.status NOT IN ('completed', 'failed', 'cancelled')) AS "queueDepth",
            COALESCE((SELECT extract(epoch FROM avg(t.completed_at - t.started_at))::float8 FROM tasks t
               WHERE t.agent_id = a.id AND t.status = 'completed' AND t.started_at IS NOT NULL), 0) AS "meanTaskSeconds"
     FROM agents a
     WHERE a.org_id = $1 AND a.status NOT IN ('ARCHIVED', 'PAUSED', 'ERROR')
       AND a.capabilities @> $2::text[] AND NOT (a.id = ANY($3::uuid[]))
       AND NOT EXISTS (SELECT 1 FROM agent_types ty
                        WHERE ty.org_id = a.org_id AND ty.agent_type = a.type AND NOT ty.is_enabled)
     ORDER BY a.created_at, a.id`,
    [orgId, route.capabilities, exclude],
  );
  if (rows.length === 0) return null;
  if (route.strategy === 'round_robin') {
    const turn = await db.query<{ turn: string }>(
      `INSERT INTO route_turns (org_id, capability_key, turn) VALUES ($1, $2, 1)
       ON CONFLICT (org_id, capability_key) DO UPDATE SET turn = route_turns.turn + 1 RETURNING turn`,
      [orgId, capabilityKey(route.capabilities)],
    );
    return rows[(Number(turn.rows[0]!.turn) - 1) % rows.length]!.id;
  }
  const extra = (c: Candidate) => c.capabilities.length - route.capabilities.length;
  const ranked = [...rows].sort(
    route.strategy === 'capability' ? (a, b) => extra(a) - extra(b) || byLoad(a, b) : byLoad,
  );
  return ranked[0]!.id;
}

/** Marks a just-submitted task as routed: its route, and that the route is under way. */
export async function setTaskRoute(db: Db, taskId: string, route: TaskRoute): Promise<void> {
  await db.query(`UPDATE tasks SET route = $2, route_status = COALESCE(route_status, 'routing') WHERE id = $1`, [
    taskId,
    JSON.stringify(route),
  ]);
}

/** Links a retry or reassignment to the routed task it is an attempt of. */
export async function linkRouteAttempt(db: Db, taskId: string, routedFrom: string, attempt: number): Promise<void> {
  await db.query('UPDATE tasks SET routed_from = $2, attempt = $3 WHERE id = $1', [taskId, routedFrom, attempt]);
}

/** The original routed task a task belongs to (itself, or the one it is an attempt of); null when not routed. */
export async function routeOwner(db: Queryable, taskId: string): Promise<string | null> {
  const { rows } = await db.query<{ owner: string | null }>(
    `SELECT CASE WHEN route IS NOT NULL THEN id ELSE routed_from END AS owner FROM tasks WHERE id = $1`,
    [taskId],
  );
  return rows[0]?.owner ?? null;
}

/** How a task ended, or null while it has not. */
export async function taskEnd(db: Db, taskId: string): Promise<RoutedTaskEnd | null> {
  const { rows } = await db.query<{ status: TaskStatus; error: string | null }>(
    `SELECT status, error FROM tasks WHERE id = $1 AND status IN ('completed', 'failed', 'cancelled')`,
    [taskId],
  );
  return rows[0] ? { taskId, ...rows[0] } : null;
}

/** An agent's recorded status (IDLE, RUNNING, PAUSED, ERROR, ARCHIVED), or null when there is no such agent. */
export async function routeAgentStatus(db: Db, agentId: string): Promise<string | null> {
  const { rows } = await db.query<{ status: string }>('SELECT status FROM agents WHERE id = $1', [agentId]);
  return rows[0]?.status ?? null;
}

/** The title, type, input and priority of a routed task, for its next attempt. */
export async function routedGoal(
  db: Db,
  taskId: string,
): Promise<{
  title: string;
  taskType: string;
  input: Record<string, unknown>;
  priority: number;
  skillId?: string;
  validation?: TaskValidation;
}> {
  const { rows } = await db.query(
    `SELECT title, task_type AS "taskType", input, priority, skill_id AS "skillId", validation FROM tasks WHERE id = $1`,
    [taskId],
  );
  if (!rows[0]) throw new Error(`routed task ${taskId} has no row`);
  // Absent rather than null: a goal names only what it has.
  const { skillId, validation, ...goal } = rows[0];
  return { ...goal, ...(skillId ? { skillId } : {}), ...(validation ? { validation } : {}) };
}

/**
 * Records where a route ended. A failed route also puts every attempt's reason on the original task (its
 * own status stays that of its first attempt: a terminal status is never overwritten).
 */
export async function finishRoute(
  db: Db,
  taskId: string,
  status: 'completed' | 'failed' | 'cancelled',
  error: string | null,
): Promise<void> {
  await db.query(
    `UPDATE tasks SET route_status = $2, error = CASE WHEN $2 = 'failed' THEN $3 ELSE error END, updated_at = now()
     WHERE id = $1 AND route_status = 'routing'`,
    [taskId, status, error],
  );
}

export interface RoutingView {
  capabilities: string[];
  strategy: string;
  /** routing, completed, failed or cancelled: the outcome across attempts. */
  status: string;
  /** The attempt that ran last (or runs now). */
  routedTo: { taskId: string; agentId: string; status: string };
  attempts: { taskId: string; agentId: string; attempt: number; status: string; error: string | null }[];
}

/** The route of a routed task and its attempts, oldest first; null for a task submitted to an agent. */
export async function routingView(db: Db, orgId: string, taskId: string): Promise<RoutingView | null> {
  const { rows } = await db.query<{ route: TaskRoute | null; routeStatus: string | null }>(
    'SELECT route, route_status AS "routeStatus" FROM tasks WHERE org_id = $1 AND id = $2',
    [orgId, taskId],
  );
  const head = rows[0];
  if (!head?.route) return null;
  const attempts = await db.query<RoutingView['attempts'][number]>(
    `SELECT id AS "taskId", agent_id AS "agentId", attempt, status, error FROM tasks
     WHERE org_id = $1 AND (id = $2 OR routed_from = $2) ORDER BY attempt, created_at, id`,
    [orgId, taskId],
  );
  const last = attempts.rows[attempts.rows.length - 1]!;
  return {
    capabilities: head.route.capabilities,
    strategy: head.route.strategy,
    status: head.routeStatus ?? 'routing',
    routedTo: { taskId: last.taskId, agentId: last.agentId, status: last.status },
    attempts: attempts.rows,
  };
}
