import { randomUUID } from 'node:crypto';
import { context, propagation, SpanKind } from '@opentelemetry/api';
import { Router } from 'express';
import { inSpan } from '../../lib/tracing';
import { stableUuid } from '../../lib/stable-uuid';
import { CancelTaskBody, CreateTaskBody, ListTasksQuery, taskSubmission, Uuid } from '../../lib/models';
import { TERMINAL_TASK_STATUSES, type TaskStatus } from '../../contract/definitions';
import type { AppDeps } from '../deps';
import { conflict, HttpError, notFound, parse } from '../errors';

/** Printable ASCII, as in the IETF Idempotency-Key draft; long enough for a UUID with a prefix. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

function idempotencyKeyOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (!IDEMPOTENCY_KEY.test(header))
    throw new HttpError(
      400,
      'validation_failed',
      'invalid header: Idempotency-Key must be 1 to 255 printable ASCII characters without spaces',
    );
  return header;
}

export function taskRoutes({ store, writes, gateway, config }: AppDeps): Router {
  const router = Router();

  const loadTask = async (orgId: string, id: string) => {
    const task = Uuid.safeParse(id).success ? await store.task(orgId, id) : undefined;
    if (!task) throw notFound('task', id);
    return task;
  };

  router.post('/', async (req, res) => {
    const body = parse(CreateTaskBody, req.body, 'body');
    const orgId: string = res.locals.orgId;
    const { agentId: namedAgentId, route, goal } = taskSubmission(body);
    // A routed task with an Idempotency-Key is looked up before the route picks (a repeat must not pick again).
    const routedKey = route ? idempotencyKeyOf(req.get('idempotency-key')) : undefined;
    if (routedKey) {
      const existing = await store.task(orgId, stableUuid(`task:${orgId}:route:${routedKey}`));
      if (existing) {
        // The first request may have stopped between submitting and starting the route: finish that here.
        if (!(await store.routing(orgId, existing.id))) {
          await writes.setTaskRoute(existing.id, route!);
          await gateway.startRoutedTask({ orgId, taskId: existing.id, agentId: existing.agentId, route: route! });
        }
        res.status(200).json({ ...existing, routing: await store.routing(orgId, existing.id) });
        return;
      }
    }
    const agentId = route ? await writes.pickRouteAgent(orgId, route) : namedAgentId!;
    if (!agentId) {
      throw new HttpError(
        422,
        'no_capable_agent',
        `no enabled agent of this organisation has the capabilities [${route!.capabilities.join(', ')}]`,
        { capabilities: route!.capabilities },
      );
    }
    const agent = await store.agent(orgId, agentId);
    if (!agent) throw notFound('agent', agentId);
    if (agent.status === 'ARCHIVED') throw conflict('agent is archived; it takes no new tasks');
    if (!(await store.agentTypeEnabled(orgId, agent.type))) {
      throw conflict(
        `agent type "${agent.type}" is disabled for this organisation; enable it with PUT /api/v1/agent-types/${agent.type}`,
      );
    }
    // With an Idempotency-Key the task id derives from it, so a retried request (say after a 503 that "may
    // still take effect") names the same task: the agent's workflow accepts a task id once.
    const idempotencyKey = idempotencyKeyOf(req.get('idempotency-key'));
    const taskId = idempotencyKey
      ? stableUuid(route ? `task:${orgId}:route:${idempotencyKey}` : `task:${orgId}:${agent.id}:${idempotencyKey}`)
      : randomUUID();
    if (idempotencyKey) {
      const existing = await store.task(orgId, taskId);
      if (existing) {
        res.status(200).json(existing);
        return;
      }
    }
    const refusal = await store.pendingTasksRefusal(orgId, config.MAX_PENDING_TASKS_PER_ORG);
    if (refusal) throw new HttpError(429, 'pending_task_limit', refusal);
    // The task's trace begins here (continuing the caller's, when it sent `traceparent`): the submit update
    // carries it to the agent's workflow, and the task row records its id.
    const receipt = await context.with(propagation.extract(context.active(), req.headers), () =>
      inSpan(
        'POST /api/v1/tasks',
        {
          kind: SpanKind.SERVER,
          attributes: { 'http.request.method': 'POST', 'http.route': '/api/v1/tasks', 'agents.task.id': taskId },
        },
        () => gateway.submitGoal(agent.id, { taskId, ...goal, orgId }),
      ),
    );
    if (route) {
      // Recorded before the route's workflow starts, which reads the row for the task's end.
      await writes.setTaskRoute(taskId, route);
      await gateway.startRoutedTask({ orgId, taskId, agentId: agent.id, route });
    }
    const task = await store.task(orgId, receipt.taskId);
    const routing = route ? { routing: await store.routing(orgId, taskId) } : {};
    res.status(201).json({ ...task, status: receipt.status, position: receipt.position, ...routing });
  });

  router.get('/', async (req, res) => {
    const query = parse(ListTasksQuery, req.query, 'query');
    const tasks = await store.tasks(res.locals.orgId, query);
    res.json({ tasks, limit: query.limit, offset: query.offset });
  });

  router.get('/:id', async (req, res) => {
    const task = await loadTask(res.locals.orgId, req.params.id);
    const traceUrl =
      task.traceId && config.TRACES_UI_URL ? config.TRACES_UI_URL.replace('{traceId}', task.traceId) : undefined;
    const routing = await store.routing(res.locals.orgId, task.id);
    res.json({
      ...task,
      ...(traceUrl ? { traceUrl } : {}),
      ...(routing ? { routing } : {}),
      reasoningTrace: await store.reasoningTrace(task.id),
    });
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
