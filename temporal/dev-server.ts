/**
 * Finds (or builds) the Temporal CLI pinned to v1.5.1 / Temporal Server 1.29.1 and runs
 * `temporal server start-dev` with the project's search attributes and tuning flags.
 *
 * Library code: never prints. Progress and server output go through the optional `log` callback.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, promises as fs, statSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import type { SearchAttributeType } from '@temporalio/common';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { SEARCH_ATTRIBUTES } from '../contract/search-attributes';

export { SEARCH_ATTRIBUTES, SEARCH_ATTRIBUTE_KEYS, type SearchAttributeName } from '../contract/search-attributes';

export type Log = (msg: string) => void;

/** CLI release we pin; `go install` uses this tag and the SDK download fallback this version. */
export const TEMPORAL_CLI_VERSION = 'v1.5.1';
/** Server version embedded in that CLI. Source builds print `0.0.0-DEV`, so we match on this instead. */
export const TEMPORAL_SERVER_VERSION = '1.29.1';

const CLI_GO_PACKAGE = 'github.com/temporalio/cli/cmd/temporal';
const EXE = process.platform === 'win32' ? '.exe' : '';
const REPO_ROOT = path.resolve(__dirname, '..');

export const DEFAULT_DB_FILENAME = path.join(REPO_ROOT, '.data', 'temporal.sqlite');

const noop: Log = () => {};

// ---------------------------------------------------------------------------------------------
// Finding the CLI
// ---------------------------------------------------------------------------------------------

export interface FindTemporalCliOptions {
  log?: Log;
  /**
   * What a person should see even when `log` is quiet: that a multi-minute build or a download is
   * under way and how long it takes. Defaults to `log`.
   */
  announce?: Log;
}

/** Where `go install` (GOBIN) and the SDK download put the binary. */
export function temporalCliCacheDir(): string {
  return process.env.TEMPORAL_CLI_CACHE_DIR || path.join(os.homedir(), '.cache', 'agent-orchestrator', 'temporal-cli');
}

/**
 * Returns the path of a usable Temporal CLI. Order: TEMPORAL_CLI_PATH, `temporal` on PATH (if it
 * embeds Server 1.29.1), a cached build, `go install`, the @temporalio/testing download.
 */
export async function findTemporalCli(opts: FindTemporalCliOptions = {}): Promise<string> {
  const log = opts.log ?? noop;
  const announce = opts.announce ?? log;
  const tried: string[] = [];

  const fromEnv = await cliFromEnv(log);
  if (fromEnv) return fromEnv;
  tried.push('no TEMPORAL_CLI_PATH');

  const onPath = findOnPath('temporal');
  if (onPath) {
    const version = await cliVersion(onPath);
    if (embedsPinnedServer(version)) {
      log(`Using temporal on PATH: ${onPath} (${version})`);
      return onPath;
    }
    tried.push(`temporal on PATH (${onPath}) reports "${version ?? 'nothing'}", not Server ${TEMPORAL_SERVER_VERSION}`);
  } else {
    tried.push(`no temporal ${TEMPORAL_CLI_VERSION} on PATH`);
  }

  const cacheDir = temporalCliCacheDir();
  const cached = await findCachedCli(cacheDir);
  if (cached) {
    log(`Using cached Temporal CLI: ${cached}`);
    return cached;
  }
  tried.push(`no cached build in ${cacheDir}`);

  const go = findOnPath('go');
  if (go) {
    try {
      return await goInstallCli(go, cacheDir, log, announce);
    } catch (err) {
      tried.push(`go install failed: ${errorMessage(err)}`);
    }
  } else {
    tried.push('go not found on PATH');
  }

  try {
    return await downloadCliViaSdk(cacheDir, announce);
  } catch (err) {
    tried.push(`download failed: ${errorMessage(err)}`);
  }

  throw new Error(
    `Cannot find or build Temporal CLI ${TEMPORAL_CLI_VERSION} (Server ${TEMPORAL_SERVER_VERSION}): ` +
      `${tried.join('; ')}. Set TEMPORAL_CLI_PATH to a temporal binary, or install Go so it can be built.`,
  );
}

/** An explicit TEMPORAL_CLI_PATH wins; a broken one is an error rather than a silent fallback. */
async function cliFromEnv(log: Log): Promise<string | undefined> {
  const envPath = process.env.TEMPORAL_CLI_PATH;
  if (!envPath) return undefined;
  const problem = await whyNotExecutable(envPath);
  if (problem) throw new Error(`TEMPORAL_CLI_PATH is set to "${envPath}", but it ${problem}`);
  const version = await cliVersion(envPath);
  if (!embedsPinnedServer(version)) {
    log(
      `Warning: TEMPORAL_CLI_PATH=${envPath} reports "${version ?? 'nothing'}", expected Server ` +
        `${TEMPORAL_SERVER_VERSION}; using it anyway because it was set explicitly`,
    );
  } else {
    log(`Using TEMPORAL_CLI_PATH: ${envPath} (${version})`);
  }
  return envPath;
}

/** `go install` names it `temporal`; the SDK download names it `temporal-<version>`. */
async function findCachedCli(cacheDir: string): Promise<string | undefined> {
  for (const name of [`temporal${EXE}`, `temporal-${TEMPORAL_CLI_VERSION}${EXE}`]) {
    const candidate = path.join(cacheDir, name);
    if (embedsPinnedServer(await cliVersion(candidate))) return candidate;
  }
  return undefined;
}

async function whyNotExecutable(file: string): Promise<string | undefined> {
  let stat;
  try {
    stat = await fs.stat(file);
  } catch {
    return 'does not exist';
  }
  if (!stat.isFile()) return 'is not a file';
  try {
    await fs.access(file, fsConstants.X_OK);
  } catch {
    return 'is not executable';
  }
  return undefined;
}

export function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name + EXE);
    try {
      // Sync is fine: a handful of stat calls, once per lookup.
      accessSync(candidate, fsConstants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** `temporal --version` output, or undefined if the binary is missing or fails. */
function cliVersion(cliPath: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(cliPath, ['--version'], { timeout: 15_000 }, (err, stdout) => {
      resolve(err ? undefined : stdout.trim());
    });
  });
}

function embedsPinnedServer(version: string | undefined): boolean {
  // `(?![\d.])` so that e.g. "Server 1.29.10" does not count as 1.29.1.
  const pattern = new RegExp(`\\bServer ${TEMPORAL_SERVER_VERSION.replace(/\./g, '\\.')}(?![\\d.])`);
  return version !== undefined && pattern.test(version);
}

// --- go install ------------------------------------------------------------------------------

async function goInstallCli(go: string, cacheDir: string, log: Log, announce: Log): Promise<string> {
  await fs.mkdir(cacheDir, { recursive: true });
  const release = await acquireInstallLock(cacheDir, announce, 'the Temporal CLI');
  try {
    // Another process may have finished the same build while we waited for the lock.
    const cached = await findCachedCli(cacheDir);
    if (cached) return cached;
    announce(
      `Building Temporal CLI ${TEMPORAL_CLI_VERSION} (go install into ${cacheDir}). This happens once and takes ` +
        'about 5 minutes (under a minute when Go has built it before).',
    );
    await runGoInstall({ go, pkg: `${CLI_GO_PACKAGE}@${TEMPORAL_CLI_VERSION}`, gobin: cacheDir, log, announce });
    const built = path.join(cacheDir, `temporal${EXE}`);
    const version = await cliVersion(built);
    if (!embedsPinnedServer(version)) {
      throw new Error(`built ${built}, but it reports "${version ?? 'nothing'}"`);
    }
    log(`Built ${built} (${version})`);
    return built;
  } finally {
    await release();
  }
}

/**
 * `GOBIN=<gobin> go install <pkg>@<version>`. Go's output goes to `log`; a heartbeat every 30 s goes
 * to `announce`, since compiling prints nothing for minutes.
 */
export function runGoInstall(opts: { go: string; pkg: string; gobin: string; log: Log; announce: Log }): Promise<void> {
  const { go, pkg, gobin, log, announce } = opts;
  return new Promise((resolve, reject) => {
    const started = Date.now();
    // cwd outside the repo so no surrounding go.mod/go.work can influence `go install pkg@version`.
    const child = spawn(go, ['install', pkg], {
      cwd: os.tmpdir(),
      env: { ...process.env, GOBIN: gobin },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tail = createTail(30);
    for (const stream of [child.stdout, child.stderr]) {
      readline.createInterface({ input: stream }).on('line', (line) => {
        tail.push(line);
        log(line);
      });
    }
    const heartbeat = setInterval(() => {
      announce(`  still building ${pkg} (${Math.round((Date.now() - started) / 1000)} s)…`);
    }, 30_000);
    const finish = (err?: Error) => {
      clearInterval(heartbeat);
      if (err) reject(err);
      else resolve();
    };
    child.once('error', finish);
    child.once('exit', (code, signal) => {
      if (code === 0) finish();
      else finish(new Error(`go install exited with ${signal ?? `code ${code}`}: ${tail.text() || '(no output)'}`));
    });
  });
}

/**
 * Cross-process lock so parallel test runs or terminals do not build the same multi-minute binary
 * twice. Stale locks (holder process gone) are taken over.
 */
export async function acquireInstallLock(cacheDir: string, log: Log, what: string): Promise<() => Promise<void>> {
  const lockPath = path.join(cacheDir, '.go-install.lock');
  let announced = false;
  for (;;) {
    try {
      await fs.writeFile(lockPath, String(process.pid), { flag: 'wx' });
      return () => fs.rm(lockPath, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (!(await lockHolderAlive(lockPath))) {
      await fs.rm(lockPath, { force: true });
      continue;
    }
    if (!announced) {
      log(`Another process is already building ${what} (${lockPath}); waiting for it`);
      announced = true;
    }
    await sleep(2_000);
  }
}

async function lockHolderAlive(lockPath: string): Promise<boolean> {
  let content: string;
  let mtimeMs: number;
  try {
    content = await fs.readFile(lockPath, 'utf8');
    mtimeMs = (await fs.stat(lockPath)).mtimeMs;
  } catch {
    return false; // vanished: the holder finished
  }
  const pid = Number(content);
  // An empty file is a holder between create and write; only stale if it stays empty.
  if (!pid) return Date.now() - mtimeMs < 10_000;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// --- SDK download ----------------------------------------------------------------------------

/**
 * The SDK exposes no download-only API: the native bridge downloads the CLI as part of starting an
 * ephemeral server. So we start one (in-memory, headless), stop it, and pick the binary it left in
 * `cacheDir` as `temporal-<version>`. Needs internet access to temporal.download. Note that this
 * creates the SDK's process-wide `Runtime`, so do not call it from a worker that installs its own.
 */
async function downloadCliViaSdk(cacheDir: string, log: Log): Promise<string> {
  log(`Downloading Temporal CLI ${TEMPORAL_CLI_VERSION} via @temporalio/testing into ${cacheDir}...`);
  await fs.mkdir(cacheDir, { recursive: true });
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'cached-download', version: TEMPORAL_CLI_VERSION, downloadDir: cacheDir },
    },
  });
  await env.teardown();
  const downloaded = path.join(cacheDir, `temporal-${TEMPORAL_CLI_VERSION}${EXE}`);
  const version = await cliVersion(downloaded);
  if (!embedsPinnedServer(version)) {
    throw new Error(`the SDK started a server, but ${downloaded} reports "${version ?? 'nothing'}"`);
  }
  return downloaded;
}

// ---------------------------------------------------------------------------------------------
// Running the dev server
// ---------------------------------------------------------------------------------------------

export interface DevServerOptions {
  /** Defaults to `findTemporalCli()`. */
  cliPath?: string;
  /** SQLite file (its directory is created). Default `<repo>/.data/temporal.sqlite`. */
  dbFilename?: string;
  /** No persistence: nothing is written to disk and `dbFilename` is ignored. */
  inMemory?: boolean;
  /** Default 127.0.0.1. */
  ip?: string;
  /** Frontend gRPC port. Default 7233; 0 picks a free port. */
  port?: number;
  /** Web UI port. Default 8233; 0 picks a free port. */
  uiPort?: number;
  /** Disable the Web UI. */
  headless?: boolean;
  /** Prometheus `/metrics` port. Default 0: a free port, chosen here so the handle can report it. */
  metricsPort?: number;
  /** Default 'default'. Other names are created at startup in addition to 'default'. */
  namespace?: string;
  /** Server log level: debug, info, warn, error, never. Default 'warn'. */
  logLevel?: string;
  /** Remote codec endpoint for the Web UI. */
  codecEndpoint?: string;
  /** Default SEARCH_ATTRIBUTES. */
  searchAttributes?: Readonly<Record<string, SearchAttributeType>>;
  /** Appended verbatim to the `start-dev` command line. */
  extraArgs?: string[];
  /** How long to wait for the frontend to answer. Default 30 s. */
  readyTimeoutMs?: number;
  log?: Log;
}

export interface DevServerHandle {
  /** host:port for `Connection.connect({ address })`, e.g. '127.0.0.1:7233'. */
  address: string;
  uiUrl?: string;
  namespace: string;
  pid: number;
  metricsPort?: number;
  /** undefined when in-memory. */
  dbFilename?: string;
  /** Resolves when the server process exits, whether stopped or crashed. */
  exited: Promise<ExitInfo>;
  /** SIGTERM, then SIGKILL after 10 s. Safe to call more than once. */
  stop(): Promise<void>;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** The performance/behaviour flags added on top of ports, db and search attributes. */
const SQLITE_PRAGMAS = ['journal_mode=wal', 'synchronous=normal'];
const DYNAMIC_CONFIG = [
  // Activities scheduled by a workflow task go straight back to the same worker: one round trip less per tool call.
  'system.enableActivityEagerExecution=true',
  // The dev server otherwise phones home to check for newer versions; pointless (and slow offline) for a pinned build.
  'frontend.enableServerVersionCheck=false',
];

/** Type names as `--search-attribute Name=Type` spells them (KEYWORD_LIST is not a case variant). */
const CLI_SEARCH_ATTRIBUTE_TYPE: Record<SearchAttributeType, string> = {
  TEXT: 'Text',
  KEYWORD: 'Keyword',
  INT: 'Int',
  DOUBLE: 'Double',
  BOOL: 'Bool',
  DATETIME: 'Datetime',
  KEYWORD_LIST: 'KeywordList',
};

interface ResolvedConfig {
  ip: string;
  port: number;
  uiPort?: number;
  metricsPort: number;
  dbFilename?: string;
  namespace: string;
  logLevel: string;
  codecEndpoint?: string;
  searchAttributes: Readonly<Record<string, SearchAttributeType>>;
  extraArgs: string[];
}

export async function startDevServer(opts: DevServerOptions = {}): Promise<DevServerHandle> {
  const log = opts.log ?? noop;
  const cliPath = opts.cliPath ?? (await findTemporalCli({ log }));
  const config = await resolveConfig(opts);
  // Without this, a second server on a busy port would exit while our readiness probe happily
  // talks to the *first* one, and we would return a handle to a server we do not own.
  await assertPortFree(config.ip, config.port, 'frontend');
  if (config.uiPort !== undefined) await assertPortFree(config.ip, config.uiPort, 'Web UI');
  if (config.dbFilename) await fs.mkdir(path.dirname(config.dbFilename), { recursive: true });

  const args = buildStartDevArgs(config);
  log(`Starting: ${[cliPath, ...args].map(shellQuote).join(' ')}`);
  const server = spawnServer(cliPath, args, log);
  const address = `${urlHost(config.ip)}:${config.port}`;

  try {
    const connection = await waitForFrontend(address, config.namespace, server, opts.readyTimeoutMs ?? 30_000);
    try {
      if (server.hasExited()) throw new Error(`Temporal dev server exited during startup:\n${server.outputTail()}`);
      await ensureSearchAttributes(connection, config.namespace, config.searchAttributes, log);
    } finally {
      await connection.close();
    }
  } catch (err) {
    await server.stop();
    throw err;
  }

  return {
    address,
    uiUrl: config.uiPort === undefined ? undefined : `http://${urlHost(config.ip)}:${config.uiPort}`,
    namespace: config.namespace,
    pid: server.child.pid!,
    metricsPort: config.metricsPort,
    dbFilename: config.dbFilename,
    exited: server.exited,
    stop: server.stop,
  };
}

async function resolveConfig(opts: DevServerOptions): Promise<ResolvedConfig> {
  const ip = opts.ip ?? '127.0.0.1';
  const pick = async (port: number) => (port === 0 ? getFreePort(connectHost(ip)) : port);
  return {
    ip,
    port: await pick(opts.port ?? 7233),
    uiPort: opts.headless ? undefined : await pick(opts.uiPort ?? 8233),
    metricsPort: await pick(opts.metricsPort ?? 0),
    dbFilename: opts.inMemory ? undefined : path.resolve(opts.dbFilename ?? DEFAULT_DB_FILENAME),
    namespace: opts.namespace ?? 'default',
    logLevel: opts.logLevel ?? 'warn',
    codecEndpoint: opts.codecEndpoint,
    searchAttributes: opts.searchAttributes ?? SEARCH_ATTRIBUTES,
    extraArgs: opts.extraArgs ?? [],
  };
}

function buildStartDevArgs(c: ResolvedConfig): string[] {
  const args = ['server', 'start-dev', '--ip', c.ip, '--port', String(c.port)];
  if (c.uiPort === undefined) args.push('--headless');
  else args.push('--ui-port', String(c.uiPort));
  args.push('--metrics-port', String(c.metricsPort));
  if (c.dbFilename) {
    args.push('--db-filename', c.dbFilename);
    // WAL + synchronous=normal: far fewer fsyncs per workflow task; safe against process crashes,
    // may lose the last transactions on OS crash, which is acceptable for a dev store.
    for (const pragma of SQLITE_PRAGMAS) args.push('--sqlite-pragma', pragma);
  }
  // 'default' always exists; --namespace adds more.
  if (c.namespace !== 'default') args.push('--namespace', c.namespace);
  args.push('--log-level', c.logLevel);
  for (const [name, type] of Object.entries(c.searchAttributes)) {
    args.push('--search-attribute', `${name}=${CLI_SEARCH_ATTRIBUTE_TYPE[type]}`);
  }
  for (const value of DYNAMIC_CONFIG) args.push('--dynamic-config-value', value);
  if (c.codecEndpoint && c.uiPort !== undefined) args.push('--ui-codec-endpoint', c.codecEndpoint);
  args.push(...c.extraArgs);
  return args;
}

interface SpawnedServer {
  child: ChildProcess;
  exited: Promise<ExitInfo>;
  hasExited(): boolean;
  outputTail(): string;
  stop(): Promise<void>;
}

function spawnServer(cliPath: string, args: string[], log: Log): SpawnedServer {
  // Not detached: it stays in our process group, so a terminal Ctrl-C reaches it too.
  const child = spawn(cliPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const tail = createTail(40);
  let stopping = false;
  for (const stream of [child.stdout!, child.stderr!]) {
    readline.createInterface({ input: stream }).on('line', (line) => {
      tail.push(line);
      // Shutdown always produces a burst of "connection refused" warnings; they are noise.
      if (!stopping) log(`[temporal] ${line}`);
    });
  }

  let exitedFlag = false;
  // A parent that exits normally (or via process.exit) takes the server down with it. A parent
  // killed by SIGKILL cannot run this hook; the server is then left running.
  const killOnExit = () => {
    if (!exitedFlag) child.kill('SIGTERM');
  };
  process.on('exit', killOnExit);

  const exited = new Promise<ExitInfo>((resolve) => {
    const done = (info: ExitInfo) => {
      if (exitedFlag) return;
      exitedFlag = true;
      process.off('exit', killOnExit);
      resolve(info);
    };
    child.once('exit', (code, signal) => done({ code, signal }));
    child.once('error', (error) => done({ code: null, signal: null, error }));
  });

  let stopPromise: Promise<void> | undefined;
  const stop = () => {
    stopPromise ??= (async () => {
      stopping = true;
      if (exitedFlag) return;
      child.kill('SIGTERM');
      const killTimer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killTimer);
    })();
    return stopPromise;
  };

  return { child, exited, hasExited: () => exitedFlag, outputTail: tail.text, stop };
}

/** Polls until the frontend serves the namespace; fails fast with the output if the server dies. */
async function waitForFrontend(
  address: string,
  namespace: string,
  server: SpawnedServer,
  timeoutMs: number,
): Promise<Connection> {
  const deadline = Date.now() + timeoutMs;
  const earlyExit = server.exited.then((info) => {
    const how = info.error ? info.error.message : info.signal ? `signal ${info.signal}` : `code ${info.code}`;
    return new Error(
      `Temporal dev server exited (${how}) before answering on ${address}. Output:\n${server.outputTail() || '(none)'}`,
    );
  });
  let lastError: unknown;
  // grpc-js backs off ~1 s after a refused connection, so first wait for the port with cheap TCP
  // probes; otherwise a probe sent just before the server binds costs a whole second.
  while (Date.now() < deadline && !(await tcpAccepts(address))) {
    if (server.hasExited()) throw await earlyExit;
    await sleep(50);
  }
  while (Date.now() < deadline) {
    const attempt = connectAndDescribe(address, namespace);
    const outcome = await Promise.race([
      attempt.then(
        (connection) => ({ connection }),
        (error: unknown) => ({ error }),
      ),
      earlyExit.then((exitError) => ({ exitError })),
    ]);
    if ('connection' in outcome) return outcome.connection;
    if ('exitError' in outcome) {
      attempt.then(
        (c) => c.close(),
        () => {},
      );
      throw outcome.exitError;
    }
    lastError = outcome.error;
    if (server.hasExited()) throw await earlyExit;
    await sleep(100);
  }
  throw new Error(
    `Temporal dev server did not answer on ${address} within ${timeoutMs} ms: ${errorMessage(lastError)}. ` +
      `Output:\n${server.outputTail() || '(none)'}`,
  );
}

export function tcpAccepts(address: string): Promise<boolean> {
  const { host, port } = splitAddress(address);
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(1_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}

async function connectAndDescribe(address: string, namespace: string): Promise<Connection> {
  // Not Connection.connect(): when its GetSystemInfo check fails it drops the connection without
  // closing it, and the leaked gRPC channel keeps retrying and keeps the process alive.
  const connection = Connection.lazy({ address, connectTimeout: '2s' });
  try {
    await connection.ensureConnected(); // GetSystemInfo
    // The frontend can answer before the namespace registry is loaded; this proves it is served.
    await connection.workflowService.describeNamespace({ namespace });
    return connection;
  } catch (err) {
    await connection.close();
    throw err;
  }
}

/**
 * start-dev registers `--search-attribute`s only when it creates the namespace. With an existing
 * database file it silently skips them, so attributes added to SEARCH_ATTRIBUTES later would be
 * missing. Top them up through the operator API.
 */
export async function ensureSearchAttributes(
  connection: Connection,
  namespace: string,
  wanted: Readonly<Record<string, SearchAttributeType>>,
  log: Log,
): Promise<void> {
  const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
  const existing = customAttributes ?? {};
  const missing: Record<string, number> = {};
  for (const [name, type] of Object.entries(wanted)) {
    const encoded = encodeSearchAttributeIndexedValueType(type)!;
    if (!(name in existing)) missing[name] = encoded;
    else if (existing[name] !== encoded) {
      // Changing a type is not possible in place; say so instead of failing startup.
      log(`Warning: search attribute ${name} exists with another type than ${type}; leaving it unchanged`);
    }
  }
  if (Object.keys(missing).length === 0) return;
  log(`Registering search attributes missing from the existing database: ${Object.keys(missing).join(', ')}`);
  await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: missing });
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/**
 * A free TCP port. Linux may hand a just-released port straight back to the next bind(0), including
 * the ones start-dev picks for its internal services, so we leave the port in TIME_WAIT (by closing
 * an accepted connection from the server side) the way the CLI's own freeport.go does: bind(0) then
 * avoids it, while an explicit bind (SO_REUSEADDR) still succeeds.
 */
export function getFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((socket) => socket.destroy());
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as AddressInfo;
      const client = net.connect({ host, port });
      client.once('error', reject);
      // The server side destroys first, so the TIME_WAIT lands on `port`; then release the listener.
      client.once('close', () => server.close(() => resolve(port)));
      client.resume();
    });
  });
}

/** Fails fast when something (often another dev server) already listens on a port we must bind. */
async function assertPortFree(host: string, port: number, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `Cannot start Temporal dev server: ${what} port ${port} on ${host} is not available ` +
            `(${err.code ?? err.message}). Is another Temporal server running? Pick another port or stop it.`,
        ),
      ),
    );
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

/** Wildcard binds are reachable on loopback. */
function connectHost(ip: string): string {
  if (ip === '0.0.0.0') return '127.0.0.1';
  if (ip === '::') return '::1';
  return ip;
}

function urlHost(ip: string): string {
  const host = connectHost(ip);
  return host.includes(':') ? `[${host}]` : host;
}

export function createTail(maxLines: number) {
  const lines: string[] = [];
  return {
    push(line: string) {
      lines.push(line);
      if (lines.length > maxLines) lines.shift();
    },
    text: () => lines.join('\n'),
  };
}

export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
