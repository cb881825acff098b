import { Router } from 'express';
import type { AppDeps } from '../deps';

/** Read-only view of the limits and how much of them is in use; the limits themselves are settings. */
export function governanceRoutes({ store, config }: AppDeps): Router {
  const router = Router();
  router.get('/', async (_req, res) => {
    const usage = await store.governance(
      res.locals.orgId,
      config.TOKEN_BUDGET_WINDOW_SECONDS,
      config.TEMPORAL_TASK_QUEUE,
    );
    res.json({
      limits: {
        globalTokenBudget: config.AGENTS_GLOBAL_TOKEN_BUDGET_PER_MINUTE,
        orgTokenBudget: config.ORG_TOKEN_BUDGET_PER_MINUTE || null,
        tokenBudgetWindowSeconds: config.TOKEN_BUDGET_WINDOW_SECONDS,
        maxActiveAgents: config.AGENTS_MAX_ACTIVE,
        maxConcurrentSteps: config.AGENTS_MAX_CONCURRENT_STEPS,
        cpuThresholdPercent: config.AGENTS_CPU_THRESHOLD,
        maxDelegationDepth: config.MAX_DELEGATION_DEPTH,
        maxSubtasksPerTask: config.MAX_SUBTASKS_PER_TASK,
        maxPendingTasksPerOrg: config.MAX_PENDING_TASKS_PER_ORG,
        priorityScoring: config.PRIORITY_SCORING,
        priorityCacheMinutes: config.PRIORITY_CACHE_MINUTES,
      },
      usage,
    });
  });
  return router;
}
