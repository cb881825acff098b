import { randomUUID } from 'node:crypto';
import express from 'express';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import type { AgentGateway } from '../lib/agent-gateway';
import { payloadCodecFor } from '../lib/codec';
import type { Config } from '../lib/config';
import { errorHandler, unknownRoute } from './errors';
import { createToolRegistry } from '../activities/tools';
import type { ChatEventHub } from './chat-events';
import { agentRoutes } from './routes/agents';
import { chatRoutes } from './routes/chat';
import { approvalRoutes } from './routes/approvals';
import { codecCorsOrigins, codecRoutes } from './routes/codec';
import { governanceRoutes } from './routes/governance';
import { crewRoutes } from './routes/crews';
import { metaRoutes } from './routes/meta';
import { taskRoutes } from './routes/tasks';
import type { Store } from './store';

export interface AppDeps {
  store: Store;
  chatEvents: ChatEventHub;
  gateway: AgentGateway;
  config: Config;
  logger: Logger;
}

/** Builds the HTTP API. Listening and shutdown live in server.ts so tests can mount the app directly. */
export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.use(
    pinoHttp({
      logger: deps.logger,
      genReqId: (req, res) => {
        const incoming = req.headers['x-request-id'];
        const id = typeof incoming === 'string' && /^[\w.-]{1,100}$/.test(incoming) ? incoming : randomUUID();
        res.setHeader('X-Request-Id', id);
        return id;
      },
      serializers: {
        req: (req: { id: unknown; method: string; url: string }) => ({ id: req.id, method: req.method, url: req.url }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
      customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info'),
    }),
  );
  // Temporal codec server for the Web UI and CLI; before the API's JSON parser (its own allows larger bodies).
  const codec = payloadCodecFor(deps.config);
  if (codec) app.use('/codec', codecRoutes(codec, { allowedOrigins: codecCorsOrigins(deps.config) }));
  app.use(express.json({ limit: '256kb', strict: false }));

  app.get('/health', async (_req, res) => {
    const [postgres, temporal] = await Promise.allSettled([
      deps.store.ping(),
      deps.gateway.client.connection.workflowService.getSystemInfo({}),
    ]);
    const checks = {
      postgres: postgres.status === 'fulfilled' ? 'ok' : 'down',
      temporal: temporal.status === 'fulfilled' ? 'ok' : 'down',
    };
    const healthy = checks.postgres === 'ok' && checks.temporal === 'ok';
    // Open provider circuits degrade no check here (agents fall back), but operators should see them.
    const openCircuits = checks.postgres === 'ok' ? await deps.store.openCircuits().catch(() => []) : [];
    res.status(healthy ? 200 : 503).json({ status: healthy ? 'ok' : 'degraded', checks, providers: { openCircuits } });
  });

  const v1 = express.Router();
  v1.use((_req, res, next) => {
    // Every request acts inside one organisation; API keys scope it per org.
    res.locals.orgId = deps.config.DEFAULT_ORG_ID;
    next();
  });
  v1.use('/agents', agentRoutes(deps));
  v1.use('/tasks', taskRoutes(deps));
  v1.use('/chat', chatRoutes(deps));
  v1.use('/governance', governanceRoutes(deps));
  v1.use('/approvals', approvalRoutes({ ...deps, tools: createToolRegistry() }));
  v1.use('/crews', crewRoutes(deps));
  v1.use('/meta', metaRoutes(deps));
  app.use('/api/v1', v1);

  app.use(unknownRoute);
  app.use(errorHandler);
  return app;
}
