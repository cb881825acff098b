/**
 * `npm start`: the whole stack on one machine with no Docker: Temporal with its Web UI, PostgreSQL
 * (DATABASE_URL or embedded), migrations, the worker(s) and the API, then a demo agent whose task
 * completes with the offline provider. Ctrl-C stops everything it started, one line per part.
 *
 * Temporal is the pinned dev server (one process, SQLite), or with --cluster a self-hosted cluster on
 * the same PostgreSQL: four Temporal services as separate processes, restarted when they die, and the
 * standalone Web UI (temporal/cluster.ts). Its settings come from the variables of
 * temporal/cluster/cluster.yaml when set (TEMPORAL_HISTORY_SHARDS, TEMPORAL_HISTORY_PORT, …).
 *
 * Flags: --cluster, --workers <n> (worker processes; 1, or 2 with --cluster), --no-demo (skip the demo),
 * --exit-after-demo (stop once the demo task finished), --traces (Jaeger with the stack, every part exporting
 * its spans to it; docs/observability.md "Traces").
 *
 * The API needs a key: API_KEY when set, otherwise a key generated once for the default org and kept in
 * DATA_DIR/api-key (readable by the owner only), so the printed curl commands keep working across restarts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { agentWorkflowId } from '../contract/definitions';
import { generateApiKey } from '../lib/api-keys';
import { config, type Config } from '../lib/config';
import { clusterSettingsFromEnv, describeSchemaReport, temporalDatabaseFromUrl } from '../temporal/cluster';
import { buildConsole } from './console-build';
import { findJaeger, JAEGER_VERSION, startJaeger, type RunningJaeger } from './jaeger';
import { startLocalStack, type AnyLocalStack } from './local-stack';

const ROOT = path.resolve(__dirname, '..');

interface Part {
  name: string;
  child: ChildProcess;
}

/** Set in the environment of the copy of this script that runs the stack in its own session. */
const IN_SESSION = 'AGENT_ORCHESTRATOR_START_SESSION';

/**
 * Runs the stack in a copy of this script in its own session (process group), so that a Ctrl-C in the
 * terminal reaches only this foreground process, which asks the copy to stop everything in order. A
 * terminal signal would otherwise hit every process at once: PostgreSQL would stop first, and the
 * workers and Temporal would log their lost connections while shutting down.
 */
function relay(): void {
  const child = spawn(process.execPath, [...process.execArgv, __filename, ...process.argv.slice(2)], {
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, [IN_SESSION]: '1' },
  });
  let asked = false;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (!asked) child.kill('SIGTERM');
      asked = true;
    });
  }
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

async function run(): Promise<void> {
  delete process.env[IN_SESSION];
  const { values: flags } = parseArgs({
    options: {
      'no-demo': { type: 'boolean' },
      'exit-after-demo': { type: 'boolean' },
      cluster: { type: 'boolean' },
      workers: { type: 'string' },
      traces: { type: 'boolean' },
    },
  });
  const cluster = flags.cluster ?? false;
  const workerCount = flags.workers === undefined ? (cluster ? 2 : 1) : Number(flags.workers);
  if (!Number.isInteger(workerCount) || workerCount < 1) throw new Error('--workers needs a whole number of 1 or more');
  const cfg = config();
  const [host, port] = cfg.TEMPORAL_ADDRESS.split(':');
  const uiPort = Number(new URL(cfg.TEMPORAL_UI_URL).port || 8233);
  const parts: Part[] = [];
  let stack: AnyLocalStack | undefined;
  let jaeger: RunningJaeger | undefined;
  let stopping = false;

  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    console.log('\nStopping…');
    // The API and workers first (they use Temporal and PostgreSQL), then Temporal, then PostgreSQL.
    const api = parts.filter((p) => p.name === 'API');
    await Promise.all(api.map(terminate));
    await Promise.all(parts.filter((p) => p.name !== 'API').map(terminate));
    if (jaeger) await jaeger.stop().then(() => console.log('  Jaeger stopped'));
    await stack?.stop((part) => console.log(`  ${part} stopped`));
    process.exit(code);
  };
  // SIGHUP: the terminal closed. The Temporal services run in their own process groups and would not see it.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(0));
  // The foreground process is gone (closed terminal, killed): nothing would stop the stack otherwise.
  process.on('disconnect', () => void stop(1));

  try {
    console.log(
      cluster
        ? 'Starting PostgreSQL and a Temporal cluster on it (frontend, history, matching and worker services, Web UI)…'
        : 'Starting Temporal dev server (Web UI included) and PostgreSQL…',
    );
    const settings = clusterSettingsFromEnv(process.env);
    stack = await startLocalStack({
      temporal: cluster ? 'cluster' : 'dev',
      // Each kind keeps its own embedded PostgreSQL: the application's records must match the Temporal
      // history they refer to (SQLite for the dev server, the cluster's databases next to them otherwise).
      dataDir: cluster ? path.join(cfg.DATA_DIR, 'cluster') : cfg.DATA_DIR,
      temporalPort: Number(port ?? 7233),
      uiPort,
      postgresPort: cfg.EMBEDDED_PG_PORT,
      databaseUrl: cfg.DATABASE_URL,
      // The Web UI decrypts payloads through the API's codec server when encryption is on.
      codecEndpoint:
        cfg.PAYLOAD_ENCRYPTION_KEY || cfg.PAYLOAD_DECRYPTION_KEYS.length
          ? `http://127.0.0.1:${cfg.PORT}/codec`
          : undefined,
      cluster: settings,
      handlesSignals: true,
      log: (msg) => process.env.LOG_LEVEL?.toLowerCase() === 'debug' && console.log(`  ${msg}`),
      // Builds of the pinned binaries (minutes, once) and restarts of a Temporal service.
      announce: (msg) => console.log(`  ${msg}`),
    });
    if (stack.kind === 'cluster') {
      const { temporal: t } = stack;
      const pids = Object.entries(t.services)
        .map(([name, p]) => `${name} ${p.pid}`)
        .join(', ');
      console.log(
        `  Temporal cluster ${t.address} (host ${host}): ${pids}; ${settings.historyShards ?? 4} history shards`,
      );
      console.log(
        `  PostgreSQL ready; Temporal schemas ${describeSchemaReport(t.schema, temporalDatabaseFromUrl(stack.databaseUrl))}; migrations applied.`,
      );
    } else {
      console.log(`  Temporal ${stack.temporal.address} (host ${host}), PostgreSQL ready, migrations applied.`);
    }

    // Traces: Jaeger (in memory, loopback only) receives every part's spans over OTLP/HTTP. This Jaeger is
    // built from the Go module proxy, which carries no UI pages: a task's trace is read from its query API.
    if (flags.traces) {
      jaeger = await startJaeger({ binary: await findJaeger((msg) => console.log(`  ${msg}`)) });
      console.log(`  Jaeger ${JAEGER_VERSION} receiving traces on ${jaeger.otlpHttpUrl} (OTLP/HTTP).`);
    }
    const tracing = jaeger
      ? {
          OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpHttpUrl,
          TRACES_UI_URL: process.env.TRACES_UI_URL ?? `${jaeger.uiUrl}/api/traces/{traceId}`,
        }
      : {};

    // The processes log JSON; keep the terminal readable unless LOG_LEVEL asks for more.
    const apiKey = localApiKey(cfg);
    const env = {
      ...process.env,
      ...tracing,
      API_KEY: apiKey,
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      TEMPORAL_ADDRESS: stack.temporal.address,
      DATABASE_URL: stack.databaseUrl,
    };
    const spawnPart = (name: string, entry: string, extraEnv: Record<string, string> = {}) => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, entry)], {
        cwd: ROOT,
        env: { ...env, ...extraEnv },
        stdio: 'inherit',
      });
      child.on('exit', (code, signal) => {
        if (!stopping) {
          console.error(`${name} exited (${signal ?? code}); stopping.`);
          void stop(1);
        }
      });
      parts.push({ name, child });
    };
    for (let i = 0; i < workerCount; i++) {
      spawnPart(workerCount === 1 ? 'worker' : `worker ${i + 1}`, 'workers/main.ts', workerPorts(cfg, i));
    }
    // The console's page and assets, bundled locally (well under a second) before the API serves them.
    await buildConsole();
    spawnPart('API', 'api/server.ts');
    const apiUrl = `http://127.0.0.1:${cfg.PORT}`;
    await waitForHealth(apiUrl);
    console.log(`\n  API:        ${apiUrl}  (health: ${apiUrl}/health)`);
    console.log(`  Console:    ${apiUrl}/console/  (sign in with the API key below)`);
    console.log(`  Web UI:     ${stack.temporal.uiUrl}/namespaces/${cfg.TEMPORAL_NAMESPACE}/workflows`);
    if (jaeger)
      console.log(
        `  Traces:     ${jaeger.uiUrl}/api/traces/<traceId>  (each task's traceUrl in GET /api/v1/tasks/:id)`,
      );
    console.log(
      `  Provider:   ${cfg.aiProvider}${cfg.aiProvider === 'offline' ? ' (deterministic, no network; set OPENAI_API_KEY or ANTHROPIC_API_KEY for a real model)' : ''}`,
    );
    console.log(
      `  API key:    ${apiKey}  (org "${cfg.DEFAULT_ORG_ID}"${cfg.API_KEY ? ', from API_KEY' : `, kept in ${path.join(cfg.DATA_DIR, 'api-key')}`})`,
    );
    console.log(`              curl -H 'Authorization: Bearer ${apiKey}' ${apiUrl}/api/v1/agents\n`);
    if ((cfg.PAYLOAD_ENCRYPTION_KEY || cfg.PAYLOAD_DECRYPTION_KEYS.length) && !cfg.CODEC_ALLOW_UNAUTHENTICATED) {
      // The dev server's Web UI cannot send an API key to /codec, which needs one.
      console.log(
        '  Payloads are encrypted; this Web UI shows them as ciphertext. To let it decrypt on this machine, start',
      );
      console.log('  with CODEC_ALLOW_UNAUTHENTICATED=true (loopback only; see docs/encryption.md).\n');
    }

    if (!flags['no-demo']) await runDemo(apiUrl, apiKey, stack.temporal.uiUrl ?? '', cfg.TEMPORAL_NAMESPACE);
    if (flags['exit-after-demo']) return await stop(0);
    console.log('Running. Press Ctrl-C to stop everything.');
  } catch (err) {
    console.error(`Start failed: ${err instanceof Error ? err.message : String(err)}`);
    await stop(1);
  }
}

/** API_KEY, or the key generated on the first start and kept in DATA_DIR (owner-only file). */
function localApiKey(cfg: Config): string {
  if (cfg.API_KEY) return cfg.API_KEY;
  const file = path.join(cfg.DATA_DIR, 'api-key');
  if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
  const key = generateApiKey();
  fs.mkdirSync(cfg.DATA_DIR, { recursive: true });
  fs.writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return key;
}

async function runDemo(apiUrl: string, apiKey: string, uiUrl: string, namespace: string): Promise<void> {
  const call = async <T = DemoRecord>(method: string, route: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${apiUrl}${route}`, {
      method,
      headers: { authorization: `Bearer ${apiKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const json = (await res.json()) as T;
    if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const existing = await call<{ agents: DemoRecord[] }>('GET', '/api/v1/agents?type=demo');
  const agent =
    existing.agents[0] ??
    (await call('POST', '/api/v1/agents', {
      name: 'Demo assistant',
      type: 'demo',
      objective: 'Keep the team launch checklist up to date',
      allowedTools: ['memory_read', 'memory_write'],
    }));
  const task = await call('POST', '/api/v1/tasks', {
    agentId: agent.id,
    title: 'Prepare the launch checklist',
    input: {
      script: [
        {
          call: 'memory_write',
          args: { key: 'launch-checklist', op: 'set', value: ['book the venue', 'send the invites'] },
        },
        { call: 'memory_read', args: { key: 'launch-checklist' } },
        { answer: 'The launch checklist has two items: book the venue, send the invites.' },
      ],
    },
  });
  console.log(`Demo: agent "${agent.name}" (${agent.id}) received task ${task.id}…`);
  const deadline = Date.now() + 60_000;
  let detail: DemoRecord;
  do {
    await new Promise((r) => setTimeout(r, 250));
    detail = await call('GET', `/api/v1/tasks/${task.id}`);
  } while (!['completed', 'failed', 'cancelled'].includes(detail.status) && Date.now() < deadline);
  console.log(`Demo task ${detail.status}: ${detail.output?.answer ?? detail.error ?? '(no output yet)'}`);
  for (const d of detail.reasoningTrace ?? [])
    console.log(`  step ${d.step} ${d.decisionType.padEnd(9)} ${d.reasoning}`);
  console.log(`  See it in the Web UI: ${uiUrl}/namespaces/${namespace}/workflows/${agentWorkflowId(agent.id)}`);
  console.log(`  Or via the API:       curl -H 'Authorization: Bearer ${apiKey}' ${apiUrl}/api/v1/tasks/${task.id}`);
  if (detail.traceUrl) console.log(`  Its trace:            ${detail.traceUrl}`);
  console.log('');
}

interface DemoRecord {
  id: string;
  name: string;
  status: string;
  output?: { answer?: string } | null;
  error?: string | null;
  reasoningTrace?: { step: number; decisionType: string; reasoning: string }[];
  traceUrl?: string;
}

async function waitForHealth(apiUrl: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${apiUrl}/health`)).ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the API did not become healthy at ${apiUrl}/health within 60 s`);
}

/** Per-process ports when several workers share one machine: each gets the configured port plus its index. */
function workerPorts(cfg: Config, index: number): Record<string, string> {
  const ports: Record<string, string> = {};
  if (cfg.WORKER_METRICS_PORT) ports.WORKER_METRICS_PORT = String(cfg.WORKER_METRICS_PORT + index);
  if (cfg.TEMPORAL_SDK_METRICS_ADDRESS) {
    const [metricsHost, metricsPort] = cfg.TEMPORAL_SDK_METRICS_ADDRESS.split(':');
    ports.TEMPORAL_SDK_METRICS_ADDRESS = `${metricsHost}:${Number(metricsPort) + index}`;
  }
  return ports;
}

/** SIGTERM (SIGKILL after 10 s), then one line. A process the terminal's Ctrl-C already stopped counts too. */
async function terminate({ name, child }: Part): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => {
        clearTimeout(force);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
  console.log(`  ${name} stopped`);
}

if (process.env[IN_SESSION]) {
  run().catch((err) => {
    console.error(`Start failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
} else {
  relay();
}
