import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import { CancelTaskBody, CreateTaskBody, ListTasksQuery, Uuid } from '../../lib/models';
import { TERMINAL_TASK_STATUSES, type TaskStatus } from '../../contract/definitions';
import type { AppDeps } from '../deps';
import { conflict, HttpError, notFound, parse } from '../errors';

export function taskRoutes({ store, gateway, config }: AppDeps): Router {
  const router = Router();

  const loadTask = async (orgId: string, id: string) => {
    const task = Uuid.safeParse(id).success ? await store.task(orgId, id) : undefined;
    if (!task) throw notFound('task', id);
    return task;
  };

  router.post('/', async (req, res) => {
    const body = parse(CreateTaskBody, req.body, 'body');
    const orgId: string = res.locals.orgId;
    const agent = await store.agent(orgId, body.agentId);
    if (!agent) throw notFound('agent', body.agentId);
    if (agent.status === 'ARCHIVED') throw conflict('agent is archived; it takes no new tasks');
    const refusal = await store.pendingTasksRefusal(orgId, config.MAX_PENDING_TASKS_PER_ORG);
    if (refusal) throw new HttpError(429, 'pending_task_limit', refusal);
    const receipt = await gateway.submitGoal(agent.id, { taskId: randomUUID(), ...body });
    const task = await store.task(orgId, receipt.taskId);
    res.status(201).json({ ...task, status: receipt.status, position: receipt.position });
  });

  router.get('/', async (req, res) => {
    const query = parse(ListTasksQuery, req.query, 'query');
    const tasks = await store.tasks(res.locals.orgId, query);
    res.json({ tasks, limit: query.limit, offset: query.offset });
  });

  router.get('/:id', async (req, res) => {
    const task = await loadTask(res.locals.orgId, req.params.id);
    res.json({ ...task, reasoningTrace: await store.reasoningTrace(task.id) });
  });

  router.post('/:id/cancel', async (req, res) => {
    const task = await loadTask(res.locals.orgId, req.params.id);
    const { reason } = parse(CancelTaskBody, req.body, 'body');
    if (TERMINAL_TASK_STATUSES.includes(task.status as TaskStatus)) {
      throw conflict(`task is already ${task.status}; it cannot be cancelled`);
    }
    const receipt = await gateway.cancelGoal(task.agentId, task.id, reason);
    res.json({ ...(await store.task(res.locals.orgId, task.id)), status: receipt.status });
  });

  return router;
}
