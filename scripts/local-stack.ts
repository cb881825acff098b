import path from 'node:path';
import { migrate } from '../lib/db';
import { startEmbeddedPostgres, type PostgresHandle } from '../lib/postgres';
import { findTemporalCli, getFreePort, startDevServer, type DevServerHandle } from '../temporal/dev-server';

export interface LocalStack {
  /** The Temporal CLI binary that runs the server (also usable for `temporal workflow …` commands). */
  cliPath: string;
  temporal: DevServerHandle;
  postgres: PostgresHandle;
  databaseUrl: string;
  stop(): Promise<void>;
}

export interface LocalStackOptions {
  dataDir: string;
  temporalPort: number;
  uiPort: number;
  /** Used when DATABASE_URL is not set. */
  postgresPort: number;
  databaseUrl?: string;
  /** The API's codec server, for the Web UI (`--ui-codec-endpoint`). */
  codecEndpoint?: string;
  log: (msg: string) => void;
}

/**
 * Starts the real components a local run needs: the pinned Temporal dev server (persisted in SQLite
 * under dataDir) and PostgreSQL (DATABASE_URL, else an embedded server under dataDir), then applies
 * the migrations. Used by `npm start` and by the test runner.
 */
export async function startLocalStack(opts: LocalStackOptions): Promise<LocalStack> {
  const cliPath = await findTemporalCli({ log: opts.log });
  const [temporal, postgres] = await Promise.all([
    startDevServer({
      cliPath,
      dbFilename: path.join(opts.dataDir, 'temporal.sqlite'),
      port: opts.temporalPort,
      uiPort: opts.uiPort,
      codecEndpoint: opts.codecEndpoint,
      log: opts.log,
    }),
    opts.databaseUrl
      ? Promise.resolve<PostgresHandle>({ url: opts.databaseUrl, stop: async () => undefined })
      : startEmbeddedPostgres({ dataDir: path.join(opts.dataDir, 'postgres'), port: opts.postgresPort }),
  ]);
  await migrate(postgres.url);
  return {
    cliPath,
    temporal,
    postgres,
    databaseUrl: postgres.url,
    async stop() {
      await Promise.allSettled([temporal.stop(), postgres.stop()]);
    },
  };
}

export { getFreePort };
