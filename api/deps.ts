import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { TemporalGateway } from '../client/gateway';
import type { Config } from '../lib/config';
import type { KeyVerifier } from './auth';
import type { ChatEventHub } from './chat-events';
import type { Store } from './store';
import type { ApiWrites } from './writes';

/** What the API's routes are built from (api/app.ts wires them). */
export interface AppDeps {
  /** Reads (api/store.ts). */
  store: Store;
  /** The rows the API writes before their workflow exists (api/writes.ts). */
  writes: ApiWrites;
  chatEvents: ChatEventHub;
  gateway: TemporalGateway;
  config: Config;
  logger: Logger;
  /** Served at GET /metrics (lib/metrics.ts createApiMetrics). */
  metrics?: Registry;
  /** Resolves `Authorization: Bearer <key>` to an organisation (lib/api-keys apiKeyVerifier). */
  apiKeys: KeyVerifier;
}
