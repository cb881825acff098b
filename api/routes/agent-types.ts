import { Router, type Request, type RequestHandler, type Response } from 'express';
import { catalogueType, type AgentTypeName } from '../../lib/agent-types';
import { UpdateAgentTypeBody, Uuid } from '../../lib/models';
import type { AppDeps } from '../deps';
import { HttpError, parse } from '../errors';

/**
 * The agent-type catalogue of the caller's organisation: the eight types of lib/agent-types.ts with the
 * organisation's changes. Served at /api/v1/agent-types, and at /api/v1/agents/:agentType as well
 * (agentTypeAliasRoutes), where a segment that is not an agent id names a type.
 */
export function agentTypeRoutes(deps: AppDeps): Router {
  const router = Router();
  const { get, put } = handlers(deps);
  router.get('/', async (_req, res) => {
    res.json({ agentTypes: await deps.store.agentTypes(res.locals.orgId) });
  });
  router.get('/:agentType', get);
  router.put('/:agentType', put);
  return router;
}

/** GET and PUT /api/v1/agents/:agentType for a known type; agent ids (and anything else) go on to the agent routes. */
export function agentTypeAliasRoutes(deps: AppDeps): Router {
  const router = Router();
  const { get, put } = handlers(deps);
  const onlyTypes =
    (handler: RequestHandler): RequestHandler =>
    (req, res, next) => {
      const segment = String(req.params.agentType);
      if (Uuid.safeParse(segment).success || !catalogueType(segment)) return next();
      return handler(req, res, next);
    };
  router.get('/:agentType', onlyTypes(get));
  router.put('/:agentType', onlyTypes(put));
  return router;
}

function handlers({ store, writes }: AppDeps) {
  const typeOf = (req: Request): AgentTypeName => {
    const segment = String(req.params.agentType);
    const type = catalogueType(segment);
    if (!type) throw new HttpError(404, 'not_found', `no agent type "${segment}"`);
    return type;
  };
  return {
    get: async (req: Request, res: Response) => {
      res.json(await store.agentType(res.locals.orgId, typeOf(req)));
    },
    put: async (req: Request, res: Response) => {
      const type = typeOf(req);
      const patch = parse(UpdateAgentTypeBody, req.body, 'body');
      res.json(await writes.updateAgentType(res.locals.orgId, type, patch));
    },
  };
}
