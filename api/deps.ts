import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { TemporalGateway } from '../client/gateway';
import type { Config } from '../lib/config';
import type { KeyVerifier } from './auth';
import type { ChatEventHub } from './chat-events';
import type { Store } from './store';

/** What the API's routes are built from (api/app.ts wires them). */
export interface AppDeps {
  store: Store;
  chatEvents: ChatEventHub;
  gateway: TemporalGateway;
  config: Config;
  logger: Logger;
  /** Served at GET /metrics (lib/metrics.ts createApiMetrics). */
  metrics?: Registry;
  /** Resolves `Authorization: Bearer <key>` to an organisation (lib/api-keys apiKeyVerifier). */
  apiKeys: KeyVerifier;
}
