import { Router, type Request } from 'express';
import { ListMessagesQuery, SubscribeBody, TopicName, Uuid } from '../../lib/models';
import type { AppDeps } from '../deps';
import { conflict, notFound, parse } from '../errors';

/** Loads an agent of the caller's org or answers 404 (other organisations' agents do not exist). */
async function loadAgent({ store }: AppDeps, orgId: string, id: string) {
  const agent = Uuid.safeParse(id).success ? await store.agent(orgId, id) : undefined;
  if (!agent) throw notFound('agent', id);
  return agent;
}

/** `/agents/:id/messages`: the messages an agent received or sent (send_message, publish, responses). */
export function agentMessageRoutes(deps: AppDeps): Router {
  const router = Router({ mergeParams: true });

  router.get('/', async (req: Request, res) => {
    const orgId: string = res.locals.orgId;
    const agent = await loadAgent(deps, orgId, (req.params as Record<string, string>).id!);
    const query = parse(ListMessagesQuery, req.query, 'query');
    const rows = await deps.store.agentMessages(orgId, agent.id, query);
    const messages = rows.map((m) => ({
      id: m.id,
      fromAgentId: m.fromAgentId,
      toAgentId: m.toAgentId,
      topic: m.topic,
      type: m.type,
      content: m.content,
      replyTo: m.replyTo,
      status: m.status,
      taskId: m.taskId,
      createdAt: m.createdAt,
      readAt: m.readAt,
    }));
    res.json({ messages, direction: query.direction, limit: query.limit, offset: query.offset });
  });

  return router;
}

/** `/topics/:topic/subscribers`: who receives what agents publish to a topic in the organisation. */
export function topicRoutes(deps: AppDeps): Router {
  const router = Router();

  const topicOf = (req: Request) => parse(TopicName, req.params.topic, 'query');

  router.get('/:topic/subscribers', async (req, res) => {
    const topic = topicOf(req);
    res.json({ topic, subscribers: await deps.store.topicSubscribers(res.locals.orgId, topic) });
  });

  router.post('/:topic/subscribers', async (req, res) => {
    const orgId: string = res.locals.orgId;
    const topic = topicOf(req);
    const { agentId } = parse(SubscribeBody, req.body, 'body');
    const agent = await loadAgent(deps, orgId, agentId);
    if (agent.status === 'ARCHIVED') throw conflict('agent is archived; it cannot subscribe');
    await deps.writes.subscribe(orgId, topic, agent.id);
    res.status(201).json({ topic, agentId: agent.id, subscribed: true });
  });

  router.delete('/:topic/subscribers/:agentId', async (req, res) => {
    const orgId: string = res.locals.orgId;
    const topic = topicOf(req);
    const agent = await loadAgent(deps, orgId, req.params.agentId);
    if (!(await deps.writes.unsubscribe(orgId, topic, agent.id))) throw notFound('subscription of agent', agent.id);
    res.status(204).end();
  });

  return router;
}
