/**
 * Runs docker-compose.yml's start-up order without Docker, against the Temporal dev server: the same
 * services, in the waves that compose's depends_on conditions give (read from the compose file), each
 * waited on by the same kind of check, and the same search-attribute job
 * (temporal/register-search-attributes.sh with the pinned Temporal CLI).
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
import { findTemporalCli, getFreePort, startDevServer } from '../temporal/dev-server';
import { checkCompose } from './compose-check';

const ROOT = path.resolve(__dirname, '..');

interface Running {
  stop(): Promise<void>;
}

async function main(): Promise<number> {
  const { values: flags } = parseArgs({ options: { exit: { type: 'boolean' } } });
  const report = checkCompose();
  if (report.problems.length) throw new Error(`docker-compose.yml has problems:\n  ${report.problems.join('\n  ')}`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'compose-local-'));
  fs.chmodSync(dataDir, 0o755);
  const running: Running[] = [];
  const children: ChildProcess[] = [];
  // The API needs a key, as in docker-compose.yml (API_KEY): the caller's, or one made for this run.
  const apiKey = process.env.API_KEY ?? `tao_${randomBytes(24).toString('base64url')}`;
  const env: Record<string, string | undefined> = {
    ...process.env,
    API_KEY: apiKey,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  };
  const cliPath = await findTemporalCli();
  const [apiPort, workerMetricsPort] = await Promise.all([getFreePort(), getFreePort()]);
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  let uiUrl: string | undefined;

  const spawnNode = (entry: string, extra: Record<string, string>) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, entry)], {
      cwd: ROOT,
      env: { ...env, ...extra },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    children.push(child);
    return child;
  };

  /** Each compose service, as it runs here, resolving once it is what its dependants wait for. */
  const services: Record<string, () => Promise<string>> = {
    async postgresql() {
      if (!env.DATABASE_URL) {
        const postgres = await startEmbeddedPostgres({
          dataDir: path.join(dataDir, 'postgres'),
          port: await getFreePort(),
        });
        running.push(postgres);
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
    async temporal() {
      if (!process.env.TEMPORAL_ADDRESS) {
        const server = await startDevServer({
          cliPath,
          dbFilename: path.join(dataDir, 'temporal.sqlite'),
          port: 0,
          uiPort: 0,
        });
        running.push(server);
        env.TEMPORAL_ADDRESS = server.address;
        uiUrl = server.uiUrl;
      }
      await run(cliPath, ['operator', 'cluster', 'health', '--address', env.TEMPORAL_ADDRESS!]);
      return `healthy (temporal operator cluster health, ${env.TEMPORAL_ADDRESS})`;
    },
    async 'temporal-admin-tools'() {
      const output = await run('sh', [path.join(ROOT, 'temporal/register-search-attributes.sh')], {
        PATH: `${path.dirname(cliPath)}${path.delimiter}${process.env.PATH}`,
        TEMPORAL_ADDRESS: env.TEMPORAL_ADDRESS!,
        TEMPORAL_NAMESPACE: env.TEMPORAL_NAMESPACE ?? 'default',
      });
      return `completed successfully: ${output.trim().split('\n').at(-1)}`;
    },
    async 'temporal-ui'() {
      if (!uiUrl) return 'not started (an existing Temporal server was given)';
      await until('the Web UI', async () => (await fetch(uiUrl!)).ok);
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
    for (const r of running.reverse()) await r.stop();
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
    console.log(`Running like docker compose up: API ${apiUrl}. Ctrl-C stops everything.`);
    await new Promise(() => undefined);
    return 0;
  } catch (err) {
    await stopAll();
    throw err;
  }
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
        : reject(new Error(`${path.basename(command)} ${args.join(' ')} exited ${code}:\n${output}`)),
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
