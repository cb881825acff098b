import { randomUUID } from 'node:crypto';
import express from 'express';
import helmet from 'helmet';
import { pinoHttp } from 'pino-http';
import { payloadCodecFor } from '../lib/codec';
import { adminOrgId } from '../lib/config';
import { requireApiKey } from './auth';
import { errorHandler, unknownRoute } from './errors';
import { rateLimitPerKey, rejectUnstorableInput, rememberSecrets, requestTimeLimit } from './limits';
import { createToolRegistry } from '../activities/tools';
import { agentRoutes } from './routes/agents';
import { agentTypeAliasRoutes, agentTypeRoutes } from './routes/agent-types';
import { chatRoutes } from './routes/chat';
import { approvalRoutes } from './routes/approvals';
import { reminderRoutes } from './routes/reminders';
import { codecCorsOrigins, codecRoutes } from './routes/codec';
import { governanceRoutes } from './routes/governance';
import { crewRoutes } from './routes/crews';
import { metaRoutes } from './routes/meta';
import { agentMessageRoutes, topicRoutes } from './routes/messages';
import { taskRoutes } from './routes/tasks';
import { toolRoutes } from './routes/tools';
import { consoleRoutes } from './routes/console';
import { healthRoute, metricsRoute } from './routes/metrics';
import { openApiDocument } from './openapi';
import type { AppDeps } from './deps';

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
      customLogLevel: (_req, res, err) =>
        err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info',
    }),
  );
  // Temporal codec server for the Web UI and CLI; before the API's JSON parser (its own allows larger bodies).
  const codec = payloadCodecFor(deps.config);
  // It needs an API key like /api/v1; a key decodes only its own organisation's payloads (ADMIN_ORG_ID's: all).
  if (codec) {
    app.use(
      '/codec',
      codecRoutes(codec, {
        apiKeys: deps.apiKeys,
        adminOrgId: adminOrgId(deps.config),
        allowUnauthenticated: deps.config.CODEC_ALLOW_UNAUTHENTICATED,
        allowedOrigins: codecCorsOrigins(deps.config),
      }),
    );
  }
  app.use(helmet());

  // Open to anyone, so it must stay cheap: two trivial round trips shared by every caller within a second,
  // no aggregates and no internals (provider errors and circuits are on the authenticated /metrics).
  app.get('/health', healthRoute(deps));
  // The web console's static page; it calls /api/v1 with the key a person signs in with.
  app.use('/console', consoleRoutes(deps.config));

  if (deps.metrics) {
    app.get(
      '/metrics',
      metricsRoute(deps.metrics, {
        apiKeys: deps.apiKeys,
        adminOrgId: adminOrgId(deps.config),
        token: deps.config.METRICS_TOKEN,
        cacheSeconds: deps.config.METRICS_CACHE_SECONDS,
      }),
    );
  }

  // Authenticate before reading a body: an anonymous client costs one header check. The key sets the org.
  const v1 = express.Router();
  // The contract, public like /health so clients and tools can read it before they have a key.
  v1.get('/openapi.json', (_req, res) => void res.json(openApiDocument()));
  v1.use(requireApiKey(deps.apiKeys), rateLimitPerKey(deps.config.API_RATE_LIMIT_PER_MINUTE));
  v1.use(
    express.json({ limit: `${deps.config.API_BODY_LIMIT_KB}kb`, strict: false }),
    rejectUnstorableInput,
    rememberSecrets,
  );
  // Chat turns stream or wait for the model, bounded by LLM_TIMEOUT_SECONDS, so they have no request time limit.
  const timeLimit = requestTimeLimit(deps.config.API_REQUEST_TIMEOUT_SECONDS);
  const tools = createToolRegistry();
  v1.use('/agents/:id/reminders', timeLimit, reminderRoutes(deps));
  v1.use('/agents/:id/messages', timeLimit, agentMessageRoutes(deps));
  v1.use('/topics', timeLimit, topicRoutes(deps));
  v1.use('/agent-types', timeLimit, agentTypeRoutes(deps));
  // The catalogue also at /agents/:agentType; agent ids go on to the agent routes.
  v1.use('/agents', timeLimit, agentTypeAliasRoutes(deps), agentRoutes(deps));
  v1.use('/tasks', timeLimit, taskRoutes(deps));
  v1.use('/chat', chatRoutes(deps));
  v1.use('/governance', timeLimit, governanceRoutes(deps));
  v1.use('/approvals', timeLimit, approvalRoutes({ ...deps, tools }));
  v1.use('/tools', timeLimit, toolRoutes(tools));
  v1.use('/crews', timeLimit, crewRoutes(deps));
  v1.use('/meta', timeLimit, metaRoutes(deps));
  app.use('/api/v1', v1);

  app.use(unknownRoute);
  app.use(errorHandler);
  return app;
}
