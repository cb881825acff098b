/**
 * `npm start`: the whole stack on one machine with no Docker: the pinned Temporal dev server (with
 * its Web UI), PostgreSQL (DATABASE_URL or embedded), migrations, a worker and the API, then a demo
 * agent whose task completes with the offline provider. Ctrl-C stops everything it started.
 *
 * Flags: --no-demo (skip the demo), --exit-after-demo (stop once the demo task finished).
 *
 * The API needs a key: API_KEY when set, otherwise a key generated once for the default org and kept in
 * DATA_DIR/api-key (readable by the owner only), so the printed curl commands keep working across restarts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { generateApiKey } from '../lib/api-keys';
import { config, type Config } from '../lib/config';
import { agentWorkflowId } from '../workflows/definitions';
import { startLocalStack, type LocalStack } from './local-stack';

const ROOT = path.resolve(__dirname, '..');

async function main(): Promise<void> {
  const { values: flags } = parseArgs({
    options: { 'no-demo': { type: 'boolean' }, 'exit-after-demo': { type: 'boolean' } },
  });
  const cfg = config();
  const [host, port] = cfg.TEMPORAL_ADDRESS.split(':');
  const uiPort = Number(new URL(cfg.TEMPORAL_UI_URL).port || 8233);
  const children: ChildProcess[] = [];
  let stack: LocalStack | undefined;
  let stopping = false;

  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    console.log('\nStopping worker, API, Temporal and PostgreSQL…');
    await Promise.all(children.map(terminate));
    await stack?.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    console.log('Starting Temporal dev server (Web UI included) and PostgreSQL…');
    stack = await startLocalStack({
      dataDir: cfg.DATA_DIR,
      temporalPort: Number(port ?? 7233),
      uiPort,
      postgresPort: cfg.EMBEDDED_PG_PORT,
      databaseUrl: cfg.DATABASE_URL,
      // The Web UI decrypts payloads through the API's codec server when encryption is on.
      codecEndpoint:
        cfg.PAYLOAD_ENCRYPTION_KEY || cfg.PAYLOAD_DECRYPTION_KEYS.length
          ? `http://127.0.0.1:${cfg.PORT}/codec`
          : undefined,
      log: (msg) => process.env.LOG_LEVEL === 'debug' && console.log(`  ${msg}`),
    });
    console.log(`  Temporal ${stack.temporal.address} (host ${host}), PostgreSQL ready, migrations applied.`);

    // The processes log JSON; keep the terminal readable unless LOG_LEVEL asks for more.
    const apiKey = localApiKey(cfg);
    const env = {
      ...process.env,
      API_KEY: apiKey,
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      TEMPORAL_ADDRESS: stack.temporal.address,
      DATABASE_URL: stack.databaseUrl,
    };
    for (const entry of ['workers/main.ts', 'api/server.ts']) {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, entry)], {
        cwd: ROOT,
        env,
        stdio: 'inherit',
      });
      child.on('exit', (code, signal) => {
        if (!stopping) {
          console.error(`${entry} exited (${signal ?? code}); stopping.`);
          void stop(1);
        }
      });
      children.push(child);
    }

    const apiUrl = `http://127.0.0.1:${cfg.PORT}`;
    await waitForHealth(apiUrl);
    console.log(`\n  API:        ${apiUrl}  (health: ${apiUrl}/health)`);
    console.log(`  Web UI:     ${stack.temporal.uiUrl}/namespaces/${cfg.TEMPORAL_NAMESPACE}/workflows`);
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
  console.log(`  Or via the API:       curl -H 'Authorization: Bearer ${apiKey}' ${apiUrl}/api/v1/tasks/${task.id}\n`);
}

interface DemoRecord {
  id: string;
  name: string;
  status: string;
  output?: { answer?: string } | null;
  error?: string | null;
  reasoningTrace?: { step: number; decisionType: string; reasoning: string }[];
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

function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

void main();
