import { randomUUID } from 'node:crypto';
import { Router, type Request } from 'express';
import { CreateReminderBody, Uuid } from '../../lib/models';
import { describeReminder } from '../../lib/reminders';
import type { AppDeps } from '../deps';
import { conflict, HttpError, notFound, parse } from '../errors';

/**
 * `/agents/:id/reminders`: recurring and one-shot goals. Each reminder is a Temporal schedule; creating
 * and removing one runs ReminderChangeWorkflow (row and schedule together), reads describe the schedule
 * for the next fire time.
 */
export function reminderRoutes({ store, gateway, config }: AppDeps): Router {
  const router = Router({ mergeParams: true });

  // Mounted under /agents/:id/reminders; the parent's :id arrives through mergeParams.
  const agentIdOf = (req: Request) => (req.params as Record<string, string>).id!;

  const loadAgent = async (orgId: string, id: string) => {
    const agent = Uuid.safeParse(id).success ? await store.agent(orgId, id) : undefined;
    if (!agent) throw notFound('agent', id);
    return agent;
  };

  router.post('/', async (req, res) => {
    const orgId: string = res.locals.orgId;
    const agent = await loadAgent(orgId, agentIdOf(req));
    const body = parse(CreateReminderBody, req.body, 'body');
    if (agent.status === 'ARCHIVED') throw conflict('agent is archived; it takes no reminders');
    if ((await store.reminders(orgId, agent.id)).length >= config.MAX_REMINDERS_PER_AGENT) {
      throw conflict(
        `reminder limit reached: MAX_REMINDERS_PER_AGENT is ${config.MAX_REMINDERS_PER_AGENT}; delete a reminder first`,
      );
    }
    const reminder = await gateway.changeReminder({
      op: 'create',
      reminder: {
        reminderId: randomUUID(),
        orgId,
        agentId: agent.id,
        title: body.title,
        taskType: body.taskType,
        input: body.input,
        priority: body.priority ?? null,
        delegationDepth: 0,
        schedule: body.schedule,
        createdBy: 'api',
      },
    });
    if (!reminder) throw new HttpError(500, 'internal_error', 'the reminder was not created');
    res.status(201).json(reminder);
  });

  router.get('/', async (req, res) => {
    const orgId: string = res.locals.orgId;
    const agent = await loadAgent(orgId, agentIdOf(req));
    const rows = await store.reminders(orgId, agent.id);
    res.json({ reminders: await Promise.all(rows.map((row) => describeReminder(gateway, row))) });
  });

  router.get('/:reminderId', async (req, res) => {
    const orgId: string = res.locals.orgId;
    const agent = await loadAgent(orgId, agentIdOf(req));
    const row = Uuid.safeParse(req.params.reminderId).success
      ? await store.reminder(orgId, agent.id, req.params.reminderId)
      : undefined;
    if (!row) throw notFound('reminder', req.params.reminderId);
    res.json(await describeReminder(gateway, row));
  });

  router.delete('/:reminderId', async (req, res) => {
    const orgId: string = res.locals.orgId;
    const agent = await loadAgent(orgId, agentIdOf(req));
    const row = Uuid.safeParse(req.params.reminderId).success
      ? await store.reminder(orgId, agent.id, req.params.reminderId)
      : undefined;
    if (!row || row.status === 'removed') throw notFound('reminder', req.params.reminderId);
    await gateway.changeReminder({ op: 'remove', reminderId: row.id });
    res.status(204).end();
  });

  return router;
}
