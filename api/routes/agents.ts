import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import { catalogueType } from '../../lib/agent-types';
import { agentSettings } from '../../lib/config';
import { CreateAgentBody, ListAgentsQuery, UpdateAgentBody, Uuid } from '../../lib/models';
import type { AgentConfig } from '../../contract/definitions';
import type { AppDeps } from '../deps';
import { conflict, notFound, parse } from '../errors';

export function agentRoutes({ store, gateway, config }: AppDeps): Router {
  const router = Router();

  /** Loads an agent of the caller's org or answers 404 (malformed ids are simply unknown). */
  const loadAgent = async (orgId: string, id: string) => {
    const agent = Uuid.safeParse(id).success ? await store.agent(orgId, id) : undefined;
    if (!agent) throw notFound('agent', id);
    return agent;
  };

  const view = async (orgId: string, id: string) => {
    const agent = await loadAgent(orgId, id);
    const live = agent.status === 'ARCHIVED' ? null : await gateway.state(id).catch(() => null);
    return { ...agent, ...(live ? { status: live.status } : {}), live };
  };

  router.post('/', async (req, res) => {
    const body = parse(CreateAgentBody, req.body, 'body');
    const orgId: string = res.locals.orgId;
    if ((await store.activeAgentCount(orgId)) >= config.MAX_AGENTS) {
      throw conflict(`agent limit reached: MAX_AGENTS is ${config.MAX_AGENTS}; archive an agent first`);
    }
    // An agent of a catalogue type takes the type's autonomy, tools, prompt and config where the request is silent.
    const type = catalogueType(body.type);
    const given = (field: string) => Object.hasOwn(req.body as object, field);
    const defaults = type ? await store.agentType(orgId, type) : undefined;
    const agent: AgentConfig = {
      id: randomUUID(),
      orgId,
      ...body,
      ...(defaults && {
        autonomy: given('autonomy') ? body.autonomy : defaults.autonomyLevel,
        allowedTools: given('allowedTools') ? body.allowedTools : defaults.allowedSkills,
        systemPrompt: given('systemPrompt') ? body.systemPrompt : defaults.systemPrompt,
        config: given('config') ? body.config : defaults.config,
      }),
      createdAt: new Date().toISOString(),
    };
    const live = await gateway.start(agent, agentSettings(config));
    res.status(201).json({ ...(await store.agent(orgId, agent.id)), status: live.status, live });
  });

  router.get('/', async (req, res) => {
    const query = parse(ListAgentsQuery, req.query, 'query');
    const agents = await store.agents(res.locals.orgId, query);
    res.json({ agents, limit: query.limit, offset: query.offset });
  });

  router.get('/:id', async (req, res) => {
    res.json(await view(res.locals.orgId, req.params.id));
  });

  router.patch('/:id', async (req, res) => {
    const agent = await loadAgent(res.locals.orgId, req.params.id);
    const patch = parse(UpdateAgentBody, req.body, 'body');
    if (agent.status === 'ARCHIVED') throw conflict('agent is archived; it cannot be changed');
    await gateway.updateConfig(agent.id, patch);
    res.json(await view(res.locals.orgId, agent.id));
  });

  const transition = (action: 'pause' | 'resume' | 'archive') =>
    router.post(`/:id/${action}`, async (req, res) => {
      const agent = await loadAgent(res.locals.orgId, req.params.id);
      if (agent.status === 'ARCHIVED') throw conflict(`agent is archived; it cannot ${action}`);
      const live = await gateway[action](agent.id);
      res.json({ ...(await store.agent(res.locals.orgId, agent.id)), status: live.status, live });
    });
  transition('pause');
  transition('resume');
  transition('archive');

  return router;
}
