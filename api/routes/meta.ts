import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import { agentSettings } from '../../lib/config';
import { CreateMetaBody, ListMetaQuery, Uuid } from '../../lib/models';
import type { AppDeps } from '../deps';
import { HttpError, notFound, parse } from '../errors';

/**
 * The meta supervisor (META_AGENT_ENABLED): an objective posted here becomes a MetaSupervisorWorkflow that
 * designs a team of agents, creates them and runs them as a crew. Its workflow records team, crew and result.
 */
export function metaRoutes({ store, writes, gateway, config }: AppDeps): Router {
  const router = Router();

  router.use((_req, _res, next) => {
    if (!config.META_AGENT_ENABLED) {
      throw new HttpError(
        404,
        'not_found',
        'the meta supervisor is disabled; set META_AGENT_ENABLED=true to enable it',
      );
    }
    next();
  });

  /** The run with its team (each agent's current status) and its crew's status. */
  const view = async (orgId: string, id: string) => {
    const run = Uuid.safeParse(id).success ? await store.metaRun(orgId, id) : undefined;
    if (!run) throw notFound('meta run', id);
    const [agents, crew] = await Promise.all([
      Promise.all(run.team.map((m) => (m.agentId ? store.agent(orgId, m.agentId) : undefined))),
      run.crewId ? store.crew(orgId, run.crewId) : undefined,
    ]);
    const team = run.team.map((m, i) => ({ ...m, agentId: m.agentId ?? null, agentStatus: agents[i]?.status ?? null }));
    return { ...run, team, crew: crew ? { id: crew.id, status: crew.status } : null };
  };

  router.post('/', async (req, res) => {
    const body = parse(CreateMetaBody, req.body, 'body');
    const orgId: string = res.locals.orgId;
    const id = randomUUID();
    const name =
      body.name ?? `Meta: ${body.objective.length > 60 ? `${body.objective.slice(0, 59)}…` : body.objective}`;
    const { objective, maxAgents, keepAgents } = body;
    await writes.createMetaRun({ id, orgId, name, objective, maxAgents, keepAgents });
    await gateway.startMeta({
      metaId: id,
      orgId,
      name,
      objective,
      maxAgents,
      settings: agentSettings(config),
      consensusThreshold: config.CREW_CONSENSUS_THRESHOLD,
      archiveTeam: !keepAgents,
    });
    res.status(201).json(await view(orgId, id));
  });

  router.get('/', async (req, res) => {
    const query = parse(ListMetaQuery, req.query, 'query');
    const runs = await store.metaRuns(res.locals.orgId, query);
    res.json({ runs, limit: query.limit, offset: query.offset });
  });

  router.get('/:id', async (req, res) => {
    res.json(await view(res.locals.orgId, req.params.id));
  });

  return router;
}
