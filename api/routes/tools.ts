import { Router } from 'express';
import type { ToolRegistry } from '../../activities/tools/registry';

/**
 * The built-in tools with their input JSON Schemas (the ones the model sees), so a client can check an
 * edited tool call before it approves it. Read-only and the same for every organisation.
 */
export function toolRoutes(tools: ToolRegistry): Router {
  const router = Router();
  router.get('/', (_req, res) => {
    const names = tools.names();
    const policies = tools.policies(names);
    res.json({
      tools: tools.specs(names).map((spec) => ({
        ...spec,
        sideEffect: policies[spec.name]!.sideEffect,
        requiresApproval: policies[spec.name]!.requiresApproval,
      })),
    });
  });
  return router;
}
