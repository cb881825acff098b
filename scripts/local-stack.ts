import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
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
  /** Stops the Temporal dev server, waits `downMs`, and starts it again on the same port and SQLite file. */
  restartTemporal(downMs?: number): Promise<void>;
  /** Stops the embedded PostgreSQL, waits `downMs`, and starts it again on the same data directory and port. */
  restartPostgres(downMs?: number): Promise<void>;
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
  const startTemporal = () =>
    startDevServer({
      cliPath,
      dbFilename: path.join(opts.dataDir, 'temporal.sqlite'),
      port: opts.temporalPort,
      uiPort: opts.uiPort,
      codecEndpoint: opts.codecEndpoint,
      log: opts.log,
    });
  const startPostgres = () =>
    opts.databaseUrl
      ? Promise.resolve<PostgresHandle>({ url: opts.databaseUrl, stop: async () => undefined })
      : startEmbeddedPostgres({ dataDir: path.join(opts.dataDir, 'postgres'), port: opts.postgresPort });
  const [temporal, postgres] = await Promise.all([startTemporal(), startPostgres()]);
  await migrate(postgres.url);
  const stack: LocalStack = {
    cliPath,
    temporal,
    postgres,
    databaseUrl: postgres.url,
    async stop() {
      await Promise.allSettled([stack.temporal.stop(), stack.postgres.stop()]);
    },
    // Restarts keep ports and data, so every client reconnects to the same address and finds its state.
    async restartTemporal(downMs = 0) {
      await stack.temporal.stop();
      await sleep(downMs);
      stack.temporal = await startTemporal();
    },
    async restartPostgres(downMs = 0) {
      if (opts.databaseUrl) throw new Error('cannot restart an external DATABASE_URL');
      await stack.postgres.stop();
      await sleep(downMs);
      stack.postgres = await startPostgres();
    },
  };
  return stack;
}

export { getFreePort };
