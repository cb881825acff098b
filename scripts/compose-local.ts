/**
 * Runs docker-compose.yml's start-up without Docker: the same services, in the waves that compose's
 * depends_on conditions give (read from the compose file), each waited on by the same kind of check, with
 * the environment compose gives them and the same files: temporal/cluster/setup-schema.sh with the pinned
 * temporal-sql-tool, the four Temporal services through temporal/cluster/start-service.sh with the pinned
 * temporal-server, temporal/cluster/create-namespace.sh and temporal/register-search-attributes.sh with
 * the pinned Temporal CLI, and the Web UI server. Only what a container network provides is replaced:
 * service names become 127.0.0.1, container ports become free ports, mount points become the repository's
 * paths.
 *
 *   npx tsx scripts/compose-local.ts          # then Ctrl-C stops everything it started
 *   npx tsx scripts/compose-local.ts --exit   # stop once every service is ready and `agentctl status` answers
 *
 * With TEMPORAL_ADDRESS and DATABASE_URL set it uses that server and database instead of starting them.
 */
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { migrate } from '../lib/db';
import { startEmbeddedPostgres } from '../lib/postgres';
import {
  CLUSTER_CONFIG_DIR,
  findClusterBinaries,
  freeMembershipPort,
  supervise,
  temporalDatabaseFromUrl,
  type ClusterBinaries,
} from '../temporal/cluster';
import { findTemporalCli, getFreePort } from '../temporal/dev-server';
import { checkCompose, parseComposeYaml } from './compose-check';
import { findJaeger, startJaeger } from './jaeger';

const ROOT = path.resolve(__dirname, '..');

interface Running {
  stop(): Promise<void>;
}

type Env = Record<string, string>;

async function main(): Promise<number> {
  const { values: flags } = parseArgs({ options: { exit: { type: 'boolean' } } });
  const report = checkCompose();
  if (report.problems.length) throw new Error(`docker-compose.yml has problems:\n  ${report.problems.join('\n  ')}`);
  const compose = parseComposeYaml(fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'));
  const composeServices = compose.services as Record<string, { environment?: Record<string, unknown> }>;
  /** A service's environment as compose gives it (`${VAR:-default}` filled in from this environment). */
  const composeEnv = (name: string): Env =>
    Object.fromEntries(
      Object.entries(composeServices[name]?.environment ?? {}).map(([k, v]) => [k, interpolate(String(v ?? ''), env)]),
    );

  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'compose-local-'));
  fs.chmodSync(dataDir, 0o755);
  const running: Running[] = [];
  let postgresHandle: Running | undefined;
  const children: ChildProcess[] = [];
  // The API needs a key, as in docker-compose.yml (API_KEY): the caller's, or one made for this run.
  const apiKey = process.env.API_KEY ?? `tao_${randomBytes(24).toString('base64url')}`;
  const env: Record<string, string | undefined> = {
    ...process.env,
    API_KEY: apiKey,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  };
  const externalTemporal = Boolean(process.env.TEMPORAL_ADDRESS);
  const cliPath = await findTemporalCli();
  const binaries: ClusterBinaries | undefined = externalTemporal ? undefined : await findClusterBinaries();
  const [apiPort, workerMetricsPort, uiPort] = await Promise.all([getFreePort(), getFreePort(), getFreePort()]);
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const uiUrl = `http://127.0.0.1:${uiPort}`;

  // The cluster's ports on this machine: in compose every container has the template's defaults.
  const taken = new Set<number>();
  const membership = async () => {
    const port = await freeMembershipPort('127.0.0.1', taken);
    taken.add(port);
    return String(port);
  };
  const ports: Env = {
    TEMPORAL_FRONTEND_PORT: String(await getFreePort()),
    TEMPORAL_FRONTEND_HTTP_PORT: String(await getFreePort()),
    TEMPORAL_HISTORY_PORT: String(await getFreePort()),
    TEMPORAL_MATCHING_PORT: String(await getFreePort()),
    TEMPORAL_WORKER_PORT: String(await getFreePort()),
    TEMPORAL_FRONTEND_MEMBERSHIP_PORT: await membership(),
    TEMPORAL_HISTORY_MEMBERSHIP_PORT: await membership(),
    TEMPORAL_MATCHING_MEMBERSHIP_PORT: await membership(),
    TEMPORAL_WORKER_MEMBERSHIP_PORT: await membership(),
  };
  if (!externalTemporal) env.TEMPORAL_ADDRESS = `127.0.0.1:${ports.TEMPORAL_FRONTEND_PORT}`;

  /** What the container network provides, for a service of the Temporal cluster. */
  const onThisMachine = (name: string, extra: Env = {}): Env => {
    const db = temporalDatabaseFromUrl(env.DATABASE_URL!);
    const own = composeEnv(name);
    return {
      ...own,
      TEMPORAL_DB_HOST: db.host,
      TEMPORAL_DB_PORT: String(db.port),
      TEMPORAL_DB_USER: db.user,
      TEMPORAL_DB_PASSWORD: db.password,
      TEMPORAL_BIND_IP: '127.0.0.1',
      TEMPORAL_BROADCAST_ADDRESS: '127.0.0.1',
      TEMPORAL_FRONTEND_ADDRESS: env.TEMPORAL_ADDRESS!,
      ...ports,
      ...(own.TEMPORAL_DYNAMIC_CONFIG
        ? { TEMPORAL_DYNAMIC_CONFIG: path.join(CLUSTER_CONFIG_DIR, path.basename(own.TEMPORAL_DYNAMIC_CONFIG)) }
        : {}),
      ...extra,
    };
  };

  const spawnNode = (entry: string, extra: Record<string, string>) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, entry)], {
      cwd: ROOT,
      env: { ...env, ...extra },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    children.push(child);
    return child;
  };

  const temporalService = (name: string) => async () => {
    if (externalTemporal) return 'not started (an existing Temporal server was given)';
    const metricsPort = String(await getFreePort());
    const service = supervise({
      name,
      command: 'sh',
      args: [path.join(CLUSTER_CONFIG_DIR, 'start-service.sh')],
      env: {
        ...process.env,
        ...onThisMachine(name, { TEMPORAL_METRICS_PORT: metricsPort, TEMPORAL_SERVER_BIN: binaries!.server }),
      },
      restart: true,
      log: () => undefined,
      announce: (msg) => console.log(`  ${msg}`),
    });
    running.push(service);
    // The compose health checks: the frontend's HTTP API, the others' /metrics.
    const url =
      composeEnv(name).TEMPORAL_SERVICE === 'frontend'
        ? `http://127.0.0.1:${ports.TEMPORAL_FRONTEND_HTTP_PORT}/api/v1/cluster-info`
        : `http://127.0.0.1:${metricsPort}/metrics`;
    await until(`${name} (${url})`, async () => (await fetch(url)).ok);
    return `healthy (${url}, pid ${service.pid})`;
  };

  /** Each compose service, as it runs here, resolving once it is what its dependants wait for. */
  const services: Record<string, () => Promise<string>> = {
    async postgresql() {
      if (!env.DATABASE_URL) {
        const postgres = await startEmbeddedPostgres({
          dataDir: path.join(dataDir, 'postgres'),
          port: await getFreePort(),
        });
        postgresHandle = postgres;
        env.DATABASE_URL = postgres.url;
      }
      await until('PostgreSQL to accept connections', async () => {
        const client = new pg.Client({ connectionString: env.DATABASE_URL });
        await client.connect();
        await client.query('SELECT 1').finally(() => client.end());
        return true;
      });
      // The compose image runs migrations in each process; here they run once up front, as npm start does.
      await migrate(env.DATABASE_URL!);
      return 'healthy (SELECT 1)';
    },
    async 'temporal-schema'() {
      if (externalTemporal) return 'not run (an existing Temporal server was given)';
      const output = await run('sh', [path.join(CLUSTER_CONFIG_DIR, 'setup-schema.sh')], {
        ...onThisMachine('temporal-schema'),
        SQL_TOOL: binaries!.sqlTool,
        SCHEMA_DIR: binaries!.schemaDir,
      });
      return `completed successfully: ${output.trim().split('\n').at(-1)}`;
    },
    async jaeger() {
      const jaeger = await startJaeger({ binary: await findJaeger((msg) => console.log(`  ${msg}`)) });
      running.push(jaeger);
      // As the compose app's environment: export to this Jaeger unless the caller sends traces elsewhere.
      env.OTEL_EXPORTER_OTLP_ENDPOINT ??= jaeger.otlpHttpUrl;
      env.TRACES_UI_URL ??= `${jaeger.uiUrl}/trace/{traceId}`;
      return `healthy (${jaeger.uiUrl}/api/services)`;
    },
    'temporal-history': temporalService('temporal-history'),
    'temporal-matching': temporalService('temporal-matching'),
    'temporal-frontend': temporalService('temporal-frontend'),
    'temporal-worker': temporalService('temporal-worker'),
    async 'temporal-admin-tools'() {
      const jobEnv = {
        ...composeEnv('temporal-admin-tools'),
        PATH: `${path.dirname(cliPath)}${path.delimiter}${process.env.PATH}`,
        TEMPORAL_ADDRESS: env.TEMPORAL_ADDRESS!,
      };
      await run('sh', [path.join(CLUSTER_CONFIG_DIR, 'create-namespace.sh')], jobEnv);
      const output = await run('sh', [path.join(ROOT, 'temporal/register-search-attributes.sh')], jobEnv);
      return `completed successfully: ${output.trim().split('\n').at(-1)}`;
    },
    async 'temporal-ui'() {
      if (externalTemporal) return 'not started (an existing Temporal server was given)';
      const ui = supervise({
        name: 'temporal-ui',
        command: binaries!.ui,
        args: [
          '--root',
          path.dirname(CLUSTER_CONFIG_DIR),
          '--config',
          path.basename(CLUSTER_CONFIG_DIR),
          '--env',
          'ui',
          'start',
        ],
        env: {
          ...process.env,
          ...composeEnv('temporal-ui'),
          TEMPORAL_ADDRESS: env.TEMPORAL_ADDRESS!,
          TEMPORAL_UI_PORT: String(uiPort),
        },
        restart: true,
        log: () => undefined,
        announce: (msg) => console.log(`  ${msg}`),
      });
      running.push(ui);
      await until('the Web UI', async () => (await fetch(uiUrl)).ok);
      return `healthy (${uiUrl})`;
    },
    async worker() {
      const child = spawnNode('workers/main.ts', { WORKER_METRICS_PORT: String(workerMetricsPort) });
      await until('the worker /health', async () => {
        if (child.exitCode !== null) throw new Error(`worker exited with ${child.exitCode}`);
        return (await fetch(`http://127.0.0.1:${workerMetricsPort}/health`)).ok;
      });
      return `healthy (http://127.0.0.1:${workerMetricsPort}/health)`;
    },
    async api() {
      const child = spawnNode('api/server.ts', { PORT: String(apiPort) });
      await until('the API /health', async () => {
        if (child.exitCode !== null) throw new Error(`API exited with ${child.exitCode}`);
        return (await fetch(`${apiUrl}/health`)).ok;
      });
      return `healthy (${apiUrl}/health)`;
    },
  };

  const stopAll = async () => {
    await Promise.all(children.map(terminate));
    await Promise.all(running.splice(0).map((r) => r.stop()));
    // Last: the Temporal services use it until they have stopped.
    await postgresHandle?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(0)));
  process.once('SIGTERM', () => void stopAll().then(() => process.exit(0)));

  try {
    for (const [i, wave] of report.startOrder.entries()) {
      console.log(`wave ${i + 1}: ${wave.join(', ')}`);
      await Promise.all(
        wave.map(async (name) => {
          const start = services[name];
          if (!start) throw new Error(`no local equivalent of compose service ${name}`);
          console.log(`  ${name}: ${await start()}`);
        }),
      );
    }
    const status = await run(process.execPath, [
      path.join(ROOT, 'cli/agentctl.cjs'),
      '--api-url',
      apiUrl,
      '--api-key',
      apiKey,
      'status',
    ]);
    console.log(`agentctl status:\n${status.replace(/^/gm, '  ')}`);
    if (flags.exit) {
      await stopAll();
      return 0;
    }
    console.log(`Running like docker compose up: API ${apiUrl}, Web UI ${uiUrl}. Ctrl-C stops everything.`);
    await new Promise(() => undefined);
    return 0;
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}` from `vars`; `$$` is a `$`. */
function interpolate(value: string, vars: Record<string, string | undefined>): string {
  return value
    .replace(/\$\{(\w+)(?:(:?[-?])([^}]*))?\}/g, (_, name: string, op: string | undefined, arg: string) => {
      const set = vars[name];
      if (op?.endsWith('-')) return set ? set : arg;
      if (op?.endsWith('?') && !set) throw new Error(`docker-compose.yml needs ${name}: ${arg}`);
      return set ?? '';
    })
    .replace(/\$\$/g, '$');
}

/** Runs a command to completion; rejects with its output when it fails. */
function run(command: string, args: string[], extraEnv: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: ROOT,
      env: { ...process.env, ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0
        ? resolve(output)
        : reject(new Error(`${path.basename(command)} ${args.join(' ')} exited ${code}:\n${output.slice(-4000)}`)),
    );
  });
}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (err) {
      last = err;
      if (String(err).includes('exited with')) break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`gave up waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
