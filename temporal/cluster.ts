/**
 * A self-hosted Temporal cluster on PostgreSQL, run as processes on this machine the way a deployment
 * runs it: the pinned temporal-server 1.29.1 as four processes (frontend, history, matching, worker),
 * each restarted when it dies, the schemas created or upgraded with temporal-sql-tool, the namespace and
 * the project's search attributes registered, and the standalone Web UI server.
 *
 * Configuration comes from temporal/cluster/ (server config template, dynamic config, UI config, schema
 * script), the same files docker-compose.yml mounts; this module only sets their environment variables.
 *
 * Library code: never prints. Server output goes to `log`; what a person should see (a build under way,
 * a service restarted) goes to `announce`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import type { SearchAttributeType } from '@temporalio/common';
import { msToTs } from '@temporalio/common/lib/time';
import pg from 'pg';
import { SEARCH_ATTRIBUTES } from '../contract/search-attributes';
import {
  acquireInstallLock,
  createTail,
  ensureSearchAttributes,
  errorMessage,
  findOnPath,
  getFreePort,
  runGoInstall,
  tcpAccepts,
  TEMPORAL_SERVER_VERSION,
  type ExitInfo,
  type Log,
} from './dev-server';

/** The Web UI inside Temporal CLI 1.5.1, run here as its own server. */
export const TEMPORAL_UI_VERSION = '2.42.1';

/** temporal/cluster/: cluster.yaml (server config template), dynamicconfig.yaml, ui.yaml and the scripts. */
export const CLUSTER_CONFIG_DIR = path.join(__dirname, 'cluster');
/** `--env` of the UI server: it loads `<config dir>/ui.yaml`. */
const UI_ENV = 'ui';

/** In start order: on a new database the first one writes the cluster's metadata record alone. */
export const CLUSTER_SERVICES = ['history', 'matching', 'frontend', 'worker'] as const;
export type ClusterService = (typeof CLUSTER_SERVICES)[number];

export interface ClusterPorts {
  frontend: number;
  frontendHttp: number;
  history: number;
  matching: number;
  worker: number;
  frontendMembership: number;
  historyMembership: number;
  matchingMembership: number;
  workerMembership: number;
  /** Web UI. */
  ui: number;
}

/** The ports of Temporal's own development configuration (and of the temporalio/server image). */
export const DEFAULT_CLUSTER_PORTS: Readonly<ClusterPorts> = {
  frontend: 7233,
  frontendHttp: 7243,
  history: 7234,
  matching: 7235,
  worker: 7239,
  frontendMembership: 6933,
  historyMembership: 6934,
  matchingMembership: 6935,
  workerMembership: 6939,
  ui: 8233,
};

const EXE = process.platform === 'win32' ? '.exe' : '';
const noop: Log = () => {};

// ---------------------------------------------------------------------------------------------
// Binaries: pinned, built once with `go install` into their own directories (each is called `server`
// or `sql` by go install, so they cannot share one GOBIN).
// ---------------------------------------------------------------------------------------------

interface PinnedBinary {
  what: string;
  pkg: string;
  dirName: string;
  file: string;
  /** Use this binary instead of the cached build. */
  envVar: string;
  /** What `--version` prints. */
  version: RegExp;
  buildTime: string;
}

const escape = (v: string) => v.replace(/\./g, '\\.');

export const CLUSTER_BINARIES = {
  server: {
    what: `Temporal Server ${TEMPORAL_SERVER_VERSION}`,
    pkg: `go.temporal.io/server/cmd/server@v${TEMPORAL_SERVER_VERSION}`,
    dirName: `temporal-server-${TEMPORAL_SERVER_VERSION}`,
    file: 'server',
    envVar: 'TEMPORAL_SERVER_PATH',
    version: new RegExp(`^temporal version ${escape(TEMPORAL_SERVER_VERSION)}$`, 'm'),
    buildTime: '2 to 5 minutes (under 30 s when Go has built it before)',
  },
  sqlTool: {
    what: `temporal-sql-tool ${TEMPORAL_SERVER_VERSION}`,
    pkg: `go.temporal.io/server/cmd/tools/sql@v${TEMPORAL_SERVER_VERSION}`,
    dirName: `temporal-sql-tool-${TEMPORAL_SERVER_VERSION}`,
    file: 'sql',
    envVar: 'TEMPORAL_SQL_TOOL_PATH',
    version: new RegExp(`^temporal-sql-tool version ${escape(TEMPORAL_SERVER_VERSION)}$`, 'm'),
    buildTime: 'about a minute (seconds right after the server)',
  },
  ui: {
    what: `Temporal UI server ${TEMPORAL_UI_VERSION}`,
    pkg: `github.com/temporalio/ui-server/v2/cmd/server@v${TEMPORAL_UI_VERSION}`,
    dirName: `temporal-ui-server-${TEMPORAL_UI_VERSION}`,
    file: 'server',
    envVar: 'TEMPORAL_UI_SERVER_PATH',
    version: new RegExp(`^Temporal UI version ${escape(TEMPORAL_UI_VERSION)}$`, 'm'),
    buildTime: 'about a minute (seconds when Go has built it before)',
  },
} as const satisfies Record<string, PinnedBinary>;

export interface ClusterBinaries {
  server: string;
  sqlTool: string;
  ui: string;
  /** schema/postgresql/v12 of the server module: temporal/versioned and visibility/versioned. */
  schemaDir: string;
}

/** Parent of the per-binary directories (by default the same as the Temporal CLI cache's). */
export function clusterCacheDir(): string {
  return process.env.TEMPORAL_CLUSTER_CACHE_DIR || path.join(os.homedir(), '.cache', 'agent-orchestrator');
}

/**
 * The three binaries and the schema files, built or copied on first use. An explicit
 * TEMPORAL_SERVER_PATH / TEMPORAL_SQL_TOOL_PATH / TEMPORAL_UI_SERVER_PATH / TEMPORAL_SCHEMA_DIR wins.
 */
export async function findClusterBinaries(opts: { log?: Log; announce?: Log } = {}): Promise<ClusterBinaries> {
  const log = opts.log ?? noop;
  const announce = opts.announce ?? log;
  // One after the other: each build already uses every core.
  const server = await findBinary(CLUSTER_BINARIES.server, log, announce);
  const sqlTool = await findBinary(CLUSTER_BINARIES.sqlTool, log, announce);
  const ui = await findBinary(CLUSTER_BINARIES.ui, log, announce);
  return { server, sqlTool, ui, schemaDir: await findSchemaDir(log) };
}

async function findBinary(bin: PinnedBinary, log: Log, announce: Log): Promise<string> {
  const explicit = process.env[bin.envVar];
  if (explicit) {
    const version = await versionOf(explicit);
    if (version === undefined) throw new Error(`${bin.envVar}=${explicit} does not run (\`--version\` failed)`);
    if (!bin.version.test(version))
      log(`Warning: ${bin.envVar}=${explicit} reports "${version}", not ${bin.what}; using it as it was set`);
    return explicit;
  }
  const dir = path.join(clusterCacheDir(), bin.dirName);
  const file = path.join(dir, bin.file + EXE);
  if (bin.version.test((await versionOf(file)) ?? '')) return file;

  const go = findOnPath('go');
  if (!go) {
    throw new Error(
      `${bin.what} is not built yet (${file}) and go is not on PATH to build it. ` +
        `Install Go, or set ${bin.envVar} to a ${bin.what} binary.`,
    );
  }
  await fs.mkdir(dir, { recursive: true });
  const release = await acquireInstallLock(dir, announce, bin.what);
  try {
    // Another process may have finished the same build while we waited for the lock.
    if (bin.version.test((await versionOf(file)) ?? '')) return file;
    const started = Date.now();
    announce(`Building ${bin.what} (go install ${bin.pkg} into ${dir}). This happens once and takes ${bin.buildTime}.`);
    await runGoInstall({ go, pkg: bin.pkg, gobin: dir, log, announce });
    const version = await versionOf(file);
    if (!bin.version.test(version ?? '')) throw new Error(`built ${file}, but it reports "${version ?? 'nothing'}"`);
    announce(`  built ${bin.what} in ${Math.round((Date.now() - started) / 1000)} s`);
    return file;
  } finally {
    await release();
  }
}

function versionOf(file: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(file, ['--version'], { timeout: 15_000 }, (err, stdout) => resolve(err ? undefined : stdout.trim()));
  });
}

/**
 * The schema files ship in the server's Go module, not in the binaries. They are copied next to the
 * sql tool so that clearing Go's module cache later does not break the next start.
 */
async function findSchemaDir(log: Log): Promise<string> {
  const explicit = process.env.TEMPORAL_SCHEMA_DIR;
  if (explicit) return explicit;
  const cached = path.join(clusterCacheDir(), CLUSTER_BINARIES.sqlTool.dirName, 'schema', 'postgresql', 'v12');
  if (await isDir(path.join(cached, 'visibility', 'versioned'))) return cached;
  const go = findOnPath('go');
  if (!go) throw new Error(`no Temporal schema files in ${cached} and no go to fetch them; set TEMPORAL_SCHEMA_DIR`);
  const module = `go.temporal.io/server@v${TEMPORAL_SERVER_VERSION}`;
  log(`Fetching the schema files of ${module} (go mod download)`);
  const stdout = await new Promise<string>((resolve, reject) =>
    // cwd outside the repo so no surrounding go.mod/go.work takes part.
    execFile(go, ['mod', 'download', '-json', module], { cwd: os.tmpdir(), maxBuffer: 1 << 20 }, (err, out) =>
      err ? reject(new Error(`go mod download ${module} failed: ${err.message}`)) : resolve(out),
    ),
  );
  const source = path.join((JSON.parse(stdout) as { Dir: string }).Dir, 'schema', 'postgresql', 'v12');
  await fs.cp(source, cached, { recursive: true });
  // The module cache is read-only; the copy should not be, so that the cache can be cleared normally.
  await makeWritable(cached);
  return cached;
}

async function makeWritable(dir: string): Promise<void> {
  await fs.chmod(dir, 0o755);
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await makeWritable(full);
    else await fs.chmod(full, 0o644);
  }
}

async function isDir(dir: string): Promise<boolean> {
  try {
    return (await fs.stat(dir)).isDirectory();
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

/** The PostgreSQL server and the two databases Temporal uses on it. */
export interface TemporalDatabase {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Default 'temporal'. */
  name?: string;
  /** Default 'temporal_visibility'. */
  visibilityName?: string;
  tls?: boolean;
}

/** The server of a `postgres://` URL (its database is ignored: Temporal gets databases of its own). */
export function temporalDatabaseFromUrl(url: string, names: { name?: string; visibilityName?: string } = {}) {
  const u = new URL(url);
  const tls = ['require', 'verify-ca', 'verify-full'].includes(u.searchParams.get('sslmode') ?? '');
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username || 'postgres'),
    password: decodeURIComponent(u.password),
    tls,
    ...names,
  } satisfies TemporalDatabase;
}

/** The variables cluster.yaml and setup-schema.sh read for the database. */
function databaseEnv(db: TemporalDatabase): Record<string, string> {
  return {
    TEMPORAL_DB_HOST: db.host,
    TEMPORAL_DB_PORT: String(db.port),
    TEMPORAL_DB_USER: db.user,
    TEMPORAL_DB_PASSWORD: db.password,
    TEMPORAL_DB_NAME: db.name ?? 'temporal',
    TEMPORAL_VISIBILITY_DB_NAME: db.visibilityName ?? 'temporal_visibility',
    TEMPORAL_DB_TLS: String(db.tls ?? false),
  };
}

export interface SchemaVersions {
  /** Schema version before the run; null when the database or its schema did not exist. */
  before: string | null;
  after: string;
}

export interface SchemaReport {
  temporal: SchemaVersions;
  visibility: SchemaVersions;
  /** False when both databases were already at the newest version. */
  changed: boolean;
}

/**
 * Creates or upgrades both databases with temporal/cluster/setup-schema.sh (create-database,
 * setup-schema, update-schema; each idempotent) and reports the versions before and after.
 */
export async function setupSchemas(opts: {
  sqlTool: string;
  schemaDir: string;
  db: TemporalDatabase;
  log?: Log;
}): Promise<SchemaReport> {
  const log = opts.log ?? noop;
  const env = databaseEnv(opts.db);
  const names = { temporal: env.TEMPORAL_DB_NAME!, visibility: env.TEMPORAL_VISIBILITY_DB_NAME! };
  const before = {
    temporal: await schemaVersion(opts.db, names.temporal),
    visibility: await schemaVersion(opts.db, names.visibility),
  };
  const tail = createTail(30);
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('sh', [path.join(CLUSTER_CONFIG_DIR, 'setup-schema.sh')], {
      env: { ...process.env, ...env, SQL_TOOL: opts.sqlTool, SCHEMA_DIR: opts.schemaDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const stream of [child.stdout, child.stderr]) {
      readline.createInterface({ input: stream }).on('line', (line) => {
        tail.push(line);
        log(`[schema] ${line}`);
      });
    }
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (code !== 0) throw new Error(`setting up the Temporal schemas failed (exit ${code}):\n${tail.text()}`);
  const after = {
    temporal: await schemaVersion(opts.db, names.temporal),
    visibility: await schemaVersion(opts.db, names.visibility),
  };
  if (!after.temporal || !after.visibility) throw new Error('the Temporal schemas report no version after setup');
  return {
    temporal: { before: before.temporal, after: after.temporal },
    visibility: { before: before.visibility, after: after.visibility },
    changed: before.temporal !== after.temporal || before.visibility !== after.visibility,
  };
}

/** What `temporal-sql-tool` records in the database's schema_version table; null if there is none. */
async function schemaVersion(db: TemporalDatabase, database: string): Promise<string | null> {
  const client = new pg.Client({ ...pgConnection(db), database });
  try {
    await client.connect();
  } catch (err) {
    if ((err as { code?: string }).code === '3D000') return null; // no such database yet
    throw err;
  }
  try {
    const { rows } = await client.query<{ curr_version: string }>(
      `SELECT curr_version FROM schema_version WHERE version_partition = 0 AND db_name = $1`,
      [database],
    );
    return rows[0]?.curr_version ?? null;
  } catch (err) {
    if ((err as { code?: string }).code === '42P01') return null; // no schema_version table yet
    throw err;
  } finally {
    await client.end();
  }
}

async function clusterMetadataExists(db: TemporalDatabase): Promise<boolean> {
  const client = new pg.Client({ ...pgConnection(db), database: db.name ?? 'temporal' });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM cluster_metadata_info LIMIT 1');
    return (rowCount ?? 0) > 0;
  } finally {
    await client.end();
  }
}

async function waitForClusterMetadata(
  db: TemporalDatabase,
  services: Partial<Record<ClusterService, SupervisedProcess>>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    failIfCrashLooping(services);
    if (await clusterMetadataExists(db)) return;
    await sleep(100);
  }
  throw new Error(`Temporal did not write its cluster metadata within ${timeoutMs} ms`);
}

function pgConnection(db: TemporalDatabase): pg.ClientConfig {
  return {
    host: db.host,
    port: db.port,
    user: db.user,
    password: db.password,
    ssl: db.tls ? { rejectUnauthorized: false } : undefined,
  };
}

/** One line for people: "temporal 1.18, temporal_visibility 1.9 (up to date)", or what changed. */
export function describeSchemaReport(report: SchemaReport, db: TemporalDatabase): string {
  const one = (name: string, v: SchemaVersions) =>
    v.before === v.after ? `${name} ${v.after}` : `${name} ${v.before ? `${v.before} → ` : 'created at '}${v.after}`;
  const text = [
    one(db.name ?? 'temporal', report.temporal),
    one(db.visibilityName ?? 'temporal_visibility', report.visibility),
  ].join(', ');
  return report.changed ? text : `${text} (up to date)`;
}

// ---------------------------------------------------------------------------------------------
// Supervised processes
// ---------------------------------------------------------------------------------------------

export interface SupervisedProcess {
  readonly name: string;
  /** The current process; changes when it is restarted. */
  readonly pid: number | undefined;
  /** Restarts after unexpected exits so far. */
  readonly restarts: number;
  /** Sends a signal to the current process (a test kills it to watch the restart). */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves once the process has been started again after an unexpected exit (counting from `restarts`). */
  restarted(after: number): Promise<void>;
  /** SIGTERM, SIGKILL after 10 s; no restart afterwards. */
  stop(): Promise<void>;
  outputTail(): string;
}

export interface SuperviseOptions {
  name: string;
  command: string;
  args: string[];
  env: Record<string, string | undefined>;
  cwd?: string;
  restart: boolean;
  log: Log;
  announce: Log;
}

/**
 * Runs a process and starts it again when it exits without being asked to, like a pod's restart policy:
 * after 1 s, doubling up to 30 s while it keeps dying within a minute of starting.
 *
 * Its own process group, so that a Ctrl-C in the terminal reaches only the launcher, which then stops
 * everything in order. A launcher that exits (normally, by an exception or process.exit) takes it down;
 * one killed by SIGKILL cannot, and leaves it running.
 */
export function supervise(opts: SuperviseOptions): SupervisedProcess {
  const tail = createTail(40);
  let child: ChildProcess | undefined;
  let stopping = false;
  let restarts = 0;
  let delayMs = 1_000;
  let startedAt = 0;
  let restartTimer: NodeJS.Timeout | undefined;
  const waiters: { after: number; resolve: () => void }[] = [];
  let exitedCurrent: Promise<void> = Promise.resolve();

  // Asks it to stop; the launcher cannot wait for that while it exits.
  const killOnExit = () => child?.kill('SIGTERM');
  process.on('exit', killOnExit);

  const start = () => {
    startedAt = Date.now();
    const proc = spawn(opts.command, opts.args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    child = proc;
    for (const stream of [proc.stdout, proc.stderr]) {
      readline.createInterface({ input: stream }).on('line', (line) => {
        tail.push(line);
        if (!stopping) opts.log(`[${opts.name}] ${line}`);
      });
    }
    exitedCurrent = new Promise((resolve) => {
      const onExit = (info: ExitInfo) => {
        if (child === proc) child = undefined;
        resolve();
        if (stopping) return;
        const how = info.error ? info.error.message : info.signal ? `signal ${info.signal}` : `code ${info.code}`;
        if (!opts.restart) {
          opts.announce(`${opts.name} exited (${how})`);
          return;
        }
        delayMs = restarts === 0 || Date.now() - startedAt > 60_000 ? 1_000 : Math.min(delayMs * 2, 30_000);
        opts.announce(`${opts.name} exited (${how}); restarting it in ${delayMs / 1000} s`);
        restartTimer = setTimeout(() => {
          restartTimer = undefined;
          if (stopping) return;
          restarts++;
          start();
          opts.announce(`${opts.name} restarted (pid ${child?.pid}, restart ${restarts})`);
          for (const w of waiters.splice(0)) {
            if (restarts > w.after) w.resolve();
            else waiters.push(w);
          }
        }, delayMs);
      };
      proc.once('exit', (code, signal) => onExit({ code, signal }));
      proc.once('error', (error) => onExit({ code: null, signal: null, error }));
    });
  };
  start();

  let stopPromise: Promise<void> | undefined;
  return {
    name: opts.name,
    get pid() {
      return child?.pid;
    },
    get restarts() {
      return restarts;
    },
    kill(signal: NodeJS.Signals = 'SIGKILL') {
      child?.kill(signal);
    },
    restarted(after: number) {
      if (restarts > after) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ after, resolve }));
    },
    outputTail: tail.text,
    stop() {
      stopPromise ??= (async () => {
        stopping = true;
        if (restartTimer) clearTimeout(restartTimer);
        const current = child;
        if (current) {
          current.kill('SIGTERM');
          const force = setTimeout(() => current.kill('SIGKILL'), 10_000);
          await exitedCurrent;
          clearTimeout(force);
        }
        process.off('exit', killOnExit);
      })();
      return stopPromise;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

export interface ClusterOptions {
  /** Found or built with findClusterBinaries() when not given. */
  binaries?: ClusterBinaries;
  db: TemporalDatabase;
  /** Defaults: DEFAULT_CLUSTER_PORTS; 0 picks a free port. */
  ports?: Partial<ClusterPorts>;
  /** Address every service binds and advertises. Default 127.0.0.1. */
  ip?: string;
  /** Default 4. Fixed once the cluster has history data. */
  historyShards?: number;
  /** Created when missing. Default 'default'. */
  namespace?: string;
  /** Retention of a namespace created here, in hours. Default 72. */
  retentionHours?: number;
  /** Default SEARCH_ATTRIBUTES. */
  searchAttributes?: Readonly<Record<string, SearchAttributeType>>;
  /** No Web UI server. */
  headless?: boolean;
  /** The API's codec server, for the Web UI. */
  codecEndpoint?: string;
  /** Server log level: debug, info, warn, error. Default 'warn'. */
  logLevel?: string;
  /** Connections per process to each store (four processes share the server's max_connections). Default 8. */
  dbMaxConnections?: number;
  /** First of four consecutive Prometheus ports (frontend, history, matching, worker); none by default. */
  metricsPort?: number;
  /** Restart a service process that exits unexpectedly. Default true. */
  restart?: boolean;
  /** How long to wait for the cluster to serve the namespace. Default 60 s. */
  readyTimeoutMs?: number;
  log?: Log;
  announce?: Log;
}

export interface ClusterHandle {
  /** Frontend host:port. */
  address: string;
  uiUrl?: string;
  namespace: string;
  ports: ClusterPorts;
  schema: SchemaReport;
  services: Record<ClusterService, SupervisedProcess>;
  ui?: SupervisedProcess;
  /** The environment each service process gets (the template's variables), for reference and tests. */
  serviceEnv: Record<string, string>;
  /** Stops the Web UI and the four services; `onStopped` is called once per part as it stops. */
  stop(onStopped?: (part: string) => void): Promise<void>;
}

/** Human names of the parts, as `stop()` reports them. */
export const CLUSTER_PART_NAMES: Record<ClusterService | 'ui', string> = {
  frontend: 'Temporal frontend',
  history: 'Temporal history',
  matching: 'Temporal matching',
  worker: 'Temporal worker service',
  ui: 'Temporal Web UI',
};

/**
 * Starts the cluster: schemas, the four services, namespace and search attributes, then the Web UI.
 * Resolves once the frontend serves the namespace and history and matching answer through it.
 */
export async function startCluster(opts: ClusterOptions): Promise<ClusterHandle> {
  const log = opts.log ?? noop;
  const announce = opts.announce ?? log;
  const ip = opts.ip ?? '127.0.0.1';
  const namespace = opts.namespace ?? 'default';
  const binaries = opts.binaries ?? (await findClusterBinaries({ log, announce }));
  const ports = await resolvePorts(ip, { ...DEFAULT_CLUSTER_PORTS, ...opts.ports }, opts.headless ?? false);
  await assertPortsFree(ip, ports, opts.headless ?? false);

  const schema = await setupSchemas({ sqlTool: binaries.sqlTool, schemaDir: binaries.schemaDir, db: opts.db, log });
  log(`Temporal schemas: ${describeSchemaReport(schema, opts.db)}`);

  const address = `${hostForUrl(ip)}:${ports.frontend}`;
  const serviceEnv = clusterServiceEnv({ ...opts, ip, ports });
  const metricsOffset: Record<ClusterService, number> = { frontend: 0, history: 1, matching: 2, worker: 3 };
  const services = {} as Record<ClusterService, SupervisedProcess>;
  let ui: SupervisedProcess | undefined;
  const stopAll = (onStopped?: (part: string) => void) =>
    Promise.all(
      [ui, ...Object.values(services)]
        .filter((p): p is SupervisedProcess => p !== undefined)
        .map((p) => p.stop().then(() => onStopped?.(p.name))),
    ).then(() => undefined);

  // On a new database every process would try to write the cluster's metadata record at once, and
  // the losers exit (duplicate key). The first process writes it alone; the others follow.
  let metadataWritten = await clusterMetadataExists(opts.db);
  for (const service of CLUSTER_SERVICES) {
    if (!metadataWritten && service !== CLUSTER_SERVICES[0]) {
      await waitForClusterMetadata(opts.db, services, opts.readyTimeoutMs ?? 60_000).catch(async (err: unknown) => {
        await stopAll();
        throw err;
      });
      metadataWritten = true;
    }
    services[service] = supervise({
      name: CLUSTER_PART_NAMES[service],
      // The entry point the temporal-* services of docker-compose.yml run; it execs the server.
      command: 'sh',
      args: [path.join(CLUSTER_CONFIG_DIR, 'start-service.sh')],
      env: {
        ...process.env,
        ...serviceEnv,
        TEMPORAL_SERVICE: service,
        TEMPORAL_SERVER_BIN: binaries.server,
        TEMPORAL_METRICS_PORT: opts.metricsPort === undefined ? '' : String(opts.metricsPort + metricsOffset[service]),
      },
      restart: opts.restart ?? true,
      log,
      announce,
    });
  }

  try {
    const connection = await waitForCluster(address, namespace, services, opts.readyTimeoutMs ?? 60_000);
    try {
      await ensureNamespace(connection, namespace, opts.retentionHours ?? 72, log);
      // Once the services have the new namespace in their caches, the attributes can be added to it.
      await waitForServices(connection, namespace, services, opts.readyTimeoutMs ?? 60_000);
      await ensureSearchAttributes(connection, namespace, opts.searchAttributes ?? SEARCH_ATTRIBUTES, log);
    } finally {
      await connection.close();
    }
    if (!opts.headless) {
      ui = supervise({
        name: CLUSTER_PART_NAMES.ui,
        command: binaries.ui,
        args: [
          '--root',
          path.dirname(CLUSTER_CONFIG_DIR),
          '--config',
          path.basename(CLUSTER_CONFIG_DIR),
          '--env',
          UI_ENV,
          'start',
        ],
        env: {
          ...process.env,
          TEMPORAL_ADDRESS: address,
          TEMPORAL_UI_IP: ip,
          TEMPORAL_UI_PORT: String(ports.ui),
          TEMPORAL_DEFAULT_NAMESPACE: namespace,
          TEMPORAL_CODEC_ENDPOINT: opts.codecEndpoint ?? '',
        },
        restart: opts.restart ?? true,
        log,
        announce,
      });
      await waitForHttp(`http://${hostForUrl(ip)}:${ports.ui}/`, ui, 30_000);
    }
  } catch (err) {
    await stopAll();
    throw err;
  }

  return {
    address,
    uiUrl: opts.headless ? undefined : `http://${hostForUrl(ip)}:${ports.ui}`,
    namespace,
    ports,
    schema,
    services,
    ui,
    serviceEnv,
    stop: stopAll,
  };
}

/**
 * The variables of cluster.yaml for every service process (each also gets TEMPORAL_SERVICE and, with
 * metrics, TEMPORAL_METRICS_PORT). docker-compose.yml sets the same names; scripts/compose-check.ts
 * compares the two.
 */
export function clusterServiceEnv(opts: {
  db: TemporalDatabase;
  ports: ClusterPorts;
  ip: string;
  historyShards?: number;
  logLevel?: string;
  dbMaxConnections?: number;
}): Record<string, string> {
  const { ports, ip } = opts;
  return {
    ...databaseEnv(opts.db),
    TEMPORAL_DB_MAX_CONNS: String(opts.dbMaxConnections ?? 8),
    TEMPORAL_HISTORY_SHARDS: String(opts.historyShards ?? 4),
    TEMPORAL_LOG_LEVEL: opts.logLevel ?? 'warn',
    TEMPORAL_BIND_IP: ip,
    TEMPORAL_BROADCAST_ADDRESS: connectHost(ip),
    TEMPORAL_FRONTEND_ADDRESS: `${hostForUrl(ip)}:${ports.frontend}`,
    TEMPORAL_DYNAMIC_CONFIG: path.join(CLUSTER_CONFIG_DIR, 'dynamicconfig.yaml'),
    TEMPORAL_FRONTEND_PORT: String(ports.frontend),
    TEMPORAL_FRONTEND_HTTP_PORT: String(ports.frontendHttp),
    TEMPORAL_HISTORY_PORT: String(ports.history),
    TEMPORAL_MATCHING_PORT: String(ports.matching),
    TEMPORAL_WORKER_PORT: String(ports.worker),
    TEMPORAL_FRONTEND_MEMBERSHIP_PORT: String(ports.frontendMembership),
    TEMPORAL_HISTORY_MEMBERSHIP_PORT: String(ports.historyMembership),
    TEMPORAL_MATCHING_MEMBERSHIP_PORT: String(ports.matchingMembership),
    TEMPORAL_WORKER_MEMBERSHIP_PORT: String(ports.workerMembership),
  };
}

/** The variables of cluster.yaml that name a port, by launcher port (the frontend's comes from TEMPORAL_ADDRESS). */
const PORT_VARIABLES: Partial<Record<keyof ClusterPorts, string>> = {
  frontendHttp: 'TEMPORAL_FRONTEND_HTTP_PORT',
  history: 'TEMPORAL_HISTORY_PORT',
  matching: 'TEMPORAL_MATCHING_PORT',
  worker: 'TEMPORAL_WORKER_PORT',
  frontendMembership: 'TEMPORAL_FRONTEND_MEMBERSHIP_PORT',
  historyMembership: 'TEMPORAL_HISTORY_MEMBERSHIP_PORT',
  matchingMembership: 'TEMPORAL_MATCHING_MEMBERSHIP_PORT',
  workerMembership: 'TEMPORAL_WORKER_MEMBERSHIP_PORT',
};

/**
 * Launcher settings from the same variables cluster.yaml reads, so `TEMPORAL_HISTORY_SHARDS=8 npm start --
 * --cluster` means what it means in docker-compose.yml.
 */
export function clusterSettingsFromEnv(env: NodeJS.ProcessEnv): {
  historyShards?: number;
  ports: Partial<ClusterPorts>;
} {
  const int = (name: string, min: number, max: number) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return undefined;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new Error(`${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
    return n;
  };
  const ports: Partial<ClusterPorts> = {};
  for (const [key, name] of Object.entries(PORT_VARIABLES) as [keyof ClusterPorts, string][]) {
    const port = int(name, 0, 65535);
    if (port !== undefined) ports[key] = port;
  }
  return { historyShards: int('TEMPORAL_HISTORY_SHARDS', 1, 16384), ports };
}

const MEMBERSHIP_PORTS = ['frontendMembership', 'historyMembership', 'matchingMembership', 'workerMembership'] as const;

async function resolvePorts(ip: string, wanted: ClusterPorts, headless: boolean): Promise<ClusterPorts> {
  const resolved = { ...wanted };
  const taken = new Set(Object.values(resolved));
  for (const key of Object.keys(resolved) as (keyof ClusterPorts)[]) {
    if (key === 'ui' && headless) continue;
    if (resolved[key] !== 0) continue;
    resolved[key] = (MEMBERSHIP_PORTS as readonly string[]).includes(key)
      ? await freeMembershipPort(connectHost(ip), taken)
      : await getFreePort(connectHost(ip));
    taken.add(resolved[key]);
  }
  for (const key of MEMBERSHIP_PORTS) {
    if (resolved[key] > MAX_MEMBERSHIP_PORT)
      throw new Error(`${key} port ${resolved[key]} is above ${MAX_MEMBERSHIP_PORT}, which Temporal cannot store`);
  }
  return resolved;
}

/** cluster_membership.rpc_port is a smallint in Temporal's PostgreSQL schema. */
const MAX_MEMBERSHIP_PORT = 32767;

/**
 * A free port for a membership listener. The kernel's ephemeral range (bind to port 0) lies above
 * 32767, so pick at random below it and check that it binds.
 */
export async function freeMembershipPort(host: string, taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * (MAX_MEMBERSHIP_PORT - 20_000));
    if (taken.has(port)) continue;
    if (await canBind(host, port)) return port;
  }
  throw new Error(`no free port between 20000 and ${MAX_MEMBERSHIP_PORT} on ${host}`);
}

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** Fails fast, naming every busy port: otherwise a service would die at bind and be restarted forever. */
async function assertPortsFree(ip: string, ports: ClusterPorts, headless: boolean): Promise<void> {
  const busy: string[] = [];
  for (const [key, port] of Object.entries(ports)) {
    if (key === 'ui' && headless) continue;
    if (!(await canBind(ip, port))) busy.push(`${key} ${port}`);
  }
  if (busy.length) {
    throw new Error(
      `Cannot start the Temporal cluster: ports in use on ${ip}: ${busy.join(', ')}. ` +
        'Is another Temporal server (npm start, a dev server, a cluster) running? Stop it or choose other ports.',
    );
  }
}

/** Waits for the frontend to answer GetSystemInfo; fails fast with a service's output if one keeps dying. */
async function waitForCluster(
  address: string,
  namespace: string,
  services: Record<ClusterService, SupervisedProcess>,
  timeoutMs: number,
): Promise<Connection> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    failIfCrashLooping(services);
    if (await tcpAccepts(address)) {
      const connection = Connection.lazy({ address, connectTimeout: '2s' });
      try {
        await connection.ensureConnected();
        return connection;
      } catch (err) {
        lastError = err;
        await connection.close();
      }
    }
    await sleep(200);
  }
  throw new Error(
    `The Temporal frontend did not answer on ${address} within ${timeoutMs} ms (namespace ${namespace}): ` +
      `${errorMessage(lastError)}. Frontend output:\n${lastMessages(services.frontend)}`,
  );
}

function failIfCrashLooping(services: Partial<Record<string, SupervisedProcess>>): void {
  for (const p of Object.values(services)) {
    if (!p) continue;
    if (p.restarts >= 3) throw new Error(`${p.name} keeps exiting. Its last messages:\n${lastMessages(p)}`);
  }
}

/** The server logs JSON lines with stack traces; level, message and error are what tells why. */
export function lastMessages(p: SupervisedProcess, count = 8): string {
  const lines = p
    .outputTail()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      try {
        const entry = JSON.parse(line) as { level?: string; msg?: string; error?: string };
        return `${entry.level ?? '?'}: ${entry.msg ?? ''}${entry.error ? `: ${entry.error}` : ''}`;
      } catch {
        return line.slice(0, 300);
      }
    });
  return lines.slice(-count).join('\n') || '(none)';
}

/** Registers the namespace unless it exists (the server does not create one). */
async function ensureNamespace(connection: Connection, namespace: string, retentionHours: number, log: Log) {
  try {
    await connection.workflowService.describeNamespace({ namespace });
    return;
  } catch (err) {
    if (grpcCode(err) !== 5) throw err; // 5 NOT_FOUND
  }
  log(`Creating namespace ${namespace} (retention ${retentionHours} h)`);
  try {
    await connection.workflowService.registerNamespace({
      namespace,
      workflowExecutionRetentionPeriod: msToTs(retentionHours * 3_600_000),
    });
  } catch (err) {
    if (grpcCode(err) !== 6) throw err; // 6 ALREADY_EXISTS: another launcher was faster
  }
}

/**
 * Proves the namespace is served end to end: a history read for a workflow that does not exist is
 * answered NOT_FOUND by the history service, a task-queue description by matching, a listing by visibility.
 * Each call fails with UNAVAILABLE or NOT_FOUND(namespace) while the ring or the namespace cache is not ready.
 */
async function waitForServices(
  connection: Connection,
  namespace: string,
  services: Record<ClusterService, SupervisedProcess>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    failIfCrashLooping(services);
    try {
      const history = await connection.workflowService
        .getWorkflowExecutionHistory({ namespace, execution: { workflowId: 'cluster-readiness-probe' } })
        .then(
          () => true,
          (err: unknown) => {
            if (grpcCode(err) === 5 && !/namespace/i.test(errorMessage(err))) return true;
            throw err;
          },
        );
      await connection.workflowService.describeTaskQueue({
        namespace,
        taskQueue: { name: 'cluster-readiness-probe' },
        taskQueueType: 1, // WORKFLOW
      });
      await connection.workflowService.listWorkflowExecutions({ namespace, pageSize: 1 });
      if (history) return;
    } catch (err) {
      lastError = err;
    }
    await sleep(250);
  }
  throw new Error(
    `The Temporal cluster did not serve namespace ${namespace} within ${timeoutMs} ms: ${errorMessage(lastError)}`,
  );
}

async function waitForHttp(url: string, proc: SupervisedProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(2_000) })).ok) return;
    } catch {
      // not listening yet
    }
    if (proc.restarts >= 3) break;
    await sleep(200);
  }
  throw new Error(`${proc.name} did not answer on ${url} within ${timeoutMs} ms. Output:\n${lastMessages(proc)}`);
}

function grpcCode(err: unknown): number | undefined {
  return (err as { code?: number })?.code;
}

function connectHost(ip: string): string {
  if (ip === '0.0.0.0') return '127.0.0.1';
  if (ip === '::') return '::1';
  return ip;
}

function hostForUrl(ip: string): string {
  const host = connectHost(ip);
  return host.includes(':') ? `[${host}]` : host;
}
