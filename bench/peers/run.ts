/**
 * `npm run bench:peers` (`--quick` for a smoke check): the same agent task (a model call that asks for one
 * tool, the tool writing to PostgreSQL, a model call that answers) on the orchestrator (through its API and
 * through TemporalGateway), Temporal's AI SDK integration, LangGraph.js and DBOS, one after the other on
 * one Temporal dev server, one embedded PostgreSQL and one loopback model. Writes bench/peers/results.json,
 * RESULTS.md and a line in history.jsonl (bench/peers/tmp/ for --quick).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { agentSettings, loadConfig } from '../../lib/config';
import { createPool } from '../../lib/db';
import { getFreePort, startLocalStack } from '../../scripts/local-stack';
import { keepRun } from '../keep-run';
import { cpuSeconds, log, ROOT, round, summarize, type Summary } from '../lib';
import { portOf, startProc } from './procs';
import { renderMarkdown, type PeerResult, type PeersResults } from './report';
import { dbos, langGraph, NODE22, orchestrator, PEERS_DIR, temporalAiSdk, type Shared, type System } from './systems';
import { writeWorkflowBundle } from '../../workers/bundle';

const QUICK = process.argv.includes('--quick');
const ONLY = process.argv
  .find((a) => a.startsWith('--only='))
  ?.slice('--only='.length)
  .split(',');
const SIZES = QUICK
  ? { concurrency: 10, warmupSeconds: 2, windowSeconds: 5, rate: 2, rateSeconds: 5, crashTasks: 20, kills: 3, hitl: 3 }
  : {
      concurrency: 50,
      warmupSeconds: 10,
      windowSeconds: 30,
      rate: 2,
      rateSeconds: 30,
      crashTasks: 200,
      kills: 20,
      hitl: 50,
    };
const SLOW_MODEL_MS = 200;

/** Installs the peers' own dependencies on first use, apart from the project's. */
function ensureInstalled(): void {
  if (fs.existsSync(NODE22) && fs.existsSync(path.join(PEERS_DIR, 'node_modules', '@dbos-inc'))) return;
  log('installing the peers (bench/peers/systems, npm ci)…');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: PEERS_DIR, stdio: ['ignore', 'inherit', 'inherit'] });
}

async function setLatency(modelBase: string, ms: number): Promise<void> {
  await fetch(`${modelBase}/latency`, { method: 'POST', body: JSON.stringify({ ms }) });
}

/** CPU seconds of the processes that count for a system: its own, Temporal, PostgreSQL, the model, this one. */
function cpuOf(named: Map<number, string>): Record<string, number> {
  const all = cpuSeconds(named);
  const { other: _other, esbuild = 0, ...ours } = all;
  // tsx's esbuild service compiles for this process: its time is the benchmark's own.
  ours.bench = (ours.bench ?? 0) + esbuild;
  return ours;
}

/** Closed loop: `concurrency` lanes run tasks back to back; counts those that finish inside the window. */
async function closedLoop(
  sys: System,
  named: () => Map<number, string>,
  opts: { concurrency: number; warmupSeconds: number; windowSeconds: number },
): Promise<{
  perSecond: number;
  completed: number;
  failed: number;
  cpuMsPerTask: Record<string, number>;
  taskIds: string[];
}> {
  const t0 = Date.now();
  const from = t0 + opts.warmupSeconds * 1000;
  const to = from + opts.windowSeconds * 1000;
  let completed = 0;
  let failed = 0;
  const taskIds: string[] = [];
  let cpuStart: Record<string, number> = {};
  let cpuEnd: Record<string, number> = {};
  const marks = [
    sleep(from - Date.now()).then(() => (cpuStart = cpuOf(named()))),
    sleep(to - Date.now()).then(() => (cpuEnd = cpuOf(named()))),
  ];
  await Promise.all([
    ...marks,
    ...Array.from({ length: opts.concurrency }, async (_, lane) => {
      while (Date.now() < to) {
        const id = randomUUID();
        try {
          await sys.runTask(id, lane);
          const now = Date.now();
          if (now >= from && now <= to) {
            completed++;
            taskIds.push(id);
          }
        } catch (err) {
          failed++;
          log(`${sys.name}: ${describe(err)}`);
        }
      }
    }),
  ]);
  const cpuMsPerTask: Record<string, number> = {};
  for (const k of Object.keys(cpuEnd))
    cpuMsPerTask[k] = round(((cpuEnd[k] - (cpuStart[k] ?? 0)) * 1000) / (completed || NaN));
  // An idle Temporal server is not part of a system that does not use it.
  if (!sys.historyEventsPerTask) delete cpuMsPerTask.temporal;
  cpuMsPerTask.total = round(Object.values(cpuMsPerTask).reduce((a, b) => a + b, 0));
  return { perSecond: round(completed / opts.windowSeconds, 2), completed, failed, cpuMsPerTask, taskIds };
}

/** Open loop at a fixed rate: each task timed from when it was due. */
async function fixedRate(sys: System, rate: number, seconds: number): Promise<{ latencyMs: Summary; failed: number }> {
  const n = Math.round(rate * seconds);
  const t0 = Date.now() + 100;
  const latencies: number[] = [];
  let failed = 0;
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const due = t0 + (i * 1000) / rate;
      await sleep(Math.max(0, due - Date.now()));
      try {
        await sys.runTask(randomUUID(), i);
        latencies.push(Date.now() - due);
      } catch (err) {
        failed++;
        log(`${sys.name}: ${describe(err)}`);
      }
    }),
  );
  return { latencyMs: summarize(latencies), failed };
}

/** Storage written: PostgreSQL WAL bytes and rows inserted/updated (all databases), the dev server's SQLite files. */
async function storage(s: Shared, sqlite: string): Promise<{ walBytes: number; rows: number; sqliteBytes: number }> {
  // Table statistics are flushed to the cumulative view about once a second.
  await sleep(1500);
  const { rows } = await s.db.query<{ wal: string; rows: string }>(
    `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint AS wal,
            (SELECT sum(tup_inserted + tup_updated) FROM pg_stat_database)::bigint AS rows`,
  );
  const size = (f: string) => (fs.existsSync(f) ? fs.statSync(f).size : 0);
  return {
    walBytes: Number(rows[0].wal),
    rows: Number(rows[0].rows),
    sqliteBytes: size(sqlite) + size(`${sqlite}-wal`),
  };
}

/** SIGKILL the worker `kills` times at random points while `tasks` tasks run, restarting it each time. */
async function crashTest(
  sys: System,
  modelBase: string,
  opts: { tasks: number; kills: number; concurrency: number },
): Promise<PeerResult['crash']> {
  const ids = Array.from({ length: opts.tasks }, () => randomUUID());
  const finished = new Set<string>();
  const failedIds: string[] = [];
  let next = 0;
  let killing = true;
  let kills = 0;
  const lanes = Array.from({ length: opts.concurrency }, async (_, lane) => {
    while (next < ids.length) {
      const i = next++;
      const id = ids[i];
      // Tasks are spread over the kills (task i starts once kill ⌊i × kills / tasks⌋ has happened), so a
      // fast system cannot finish them all before the first kill and every kill meets tasks in flight.
      while (killing && kills < Math.floor((i * opts.kills) / opts.tasks)) await sleep(50);
      try {
        await sys.runTask(id, lane);
        finished.add(id);
      } catch (err) {
        failedIds.push(id);
        log(`${sys.name} crash test: ${describe(err)}`);
      }
    }
  });
  let killsWithTasksInFlight = 0;
  // Every kill happens even when the tasks finish early (a fast system can finish the last ones between two
  // kills); killsWithTasksInFlight says how many met work. Only the overall time limit stops the killer.
  let timedOut = false;
  const killer = (async () => {
    while (!timedOut && kills < opts.kills) {
      await sleep(300 + Math.random() * 1700);
      if (timedOut) break;
      if (finished.size + failedIds.length < ids.length) killsWithTasksInFlight++;
      await sys.crash();
      kills++;
      log(`${sys.name}: kill ${kills}/${opts.kills}, ${finished.size}/${ids.length} finished`);
    }
  })();
  const all = Promise.all(lanes);
  await Promise.race([all, sleep(1_200_000).then(() => (timedOut = true))]);
  killing = false;
  await killer;
  await Promise.race([all, sleep(60_000)]);
  const calls = (await (await fetch(`${modelBase}/calls`)).json()) as {
    perTask: Record<string, { tool: number; answer: number }>;
  };
  // A task's final answer given twice means its last step ran twice (a task finished twice).
  const finishedTwice = ids.filter((id) => (calls.perTask[id]?.answer ?? 0) > 1).length;
  const modelCallsRepeated = ids.reduce(
    (sum, id) =>
      sum + Math.max(0, (calls.perTask[id]?.tool ?? 0) - 1) + Math.max(0, (calls.perTask[id]?.answer ?? 0) - 1),
    0,
  );
  const dup = await sys.duplicateWrites(ids);
  return {
    tasks: ids.length,
    kills,
    killsWithTasksInFlight,
    lost: ids.length - finished.size,
    failed: failedIds.length,
    finishedTwice,
    modelCallsRepeated,
    toolWritesDuplicated: dup.duplicated,
    toolRetriesAbsorbedByKey: dup.absorbedRetries,
  };
}

async function humanWait(sys: System, samples: number): Promise<PeerResult['humanWait']> {
  const w = sys.humanWait;
  if (!w) return undefined;
  const delays: number[] = [];
  for (let i = 0; i < samples; i++) {
    const id = randomUUID();
    await w.park(id);
    const sentAt = Date.now();
    await w.decide(id);
    // Read once the task has finished: right after the decision, its next step may not exist yet.
    await w.finish(id);
    delays.push((await w.nextStepStartedAt(id, sentAt)) - sentAt);
  }
  return { how: w.how, decisionToNextStepMs: summarize(delays) };
}

async function main(): Promise<number> {
  ensureInstalled();
  const outDir = QUICK || ONLY ? path.join(__dirname, 'tmp') : __dirname;
  fs.mkdirSync(outDir, { recursive: true });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agents-peers-'));
  fs.chmodSync(dataDir, 0o755);
  const results: PeersResults = {
    mode: QUICK ? 'quick' : ONLY ? 'partial' : 'full',
    startedAt: new Date().toISOString(),
    ...gitState(),
    loadAverage: { start: os.loadavg().map((l) => round(l, 2)) },
    machine: { cpuModel: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length },
    settings: { ...SIZES, slowModelMs: SLOW_MODEL_MS, rateModelMs: 0 },
    systems: [],
  };
  const stops: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch((err) => log(`cleanup: ${String(err)}`));
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));
  try {
    const [temporalPort, uiPort, postgresPort] = await Promise.all([getFreePort(), getFreePort(), getFreePort()]);
    log(`${results.mode} run; load average ${results.loadAverage.start.join(' ')}; starting Temporal and PostgreSQL…`);
    const stack = await startLocalStack({
      dataDir,
      temporalPort,
      uiPort,
      postgresPort,
      handlesSignals: true,
      log: (m) => void (process.env.BENCH_VERBOSE && log(m)),
      announce: log,
    });
    stops.push(() => stack.stop());
    const db = createPool(stack.databaseUrl, 20);
    stops.push(() => db.end());
    for (const name of ['peer_langgraph', 'peer_dbos_sys']) await db.query(`CREATE DATABASE ${name}`);
    const databaseUrl = (name: string) => {
      if (!name) return stack.databaseUrl;
      const u = new URL(stack.databaseUrl);
      u.pathname = `/${name}`;
      return u.toString();
    };
    const model = startProc('model', 'bench/peers/model-server.ts', process.env, { args: ['0'] });
    stops.push(() => model.stop());
    const modelBase = `http://127.0.0.1:${await portOf(model)}`;
    const connection = await Connection.connect({ address: stack.temporal.address });
    stops.push(() => connection.close());
    const client = new Client({ connection });
    const bundlePath = await writeWorkflowBundle(path.join(dataDir, 'workflow-bundle.js'), { report: log });
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      TEMPORAL_ADDRESS: stack.temporal.address,
      DATABASE_URL: stack.databaseUrl,
      WORKFLOW_BUNDLE_PATH: bundlePath,
      AI_PROVIDER: 'openai',
      OPENAI_API_KEY: 'bench-loopback',
      OPENAI_BASE_URL: `${modelBase}/v1`,
      OPENAI_MODEL: 'loopback',
      AGENTS_MAX_ACTIVE: '100000',
      AGENTS_MAX_CONCURRENT_STEPS: '100000',
      AGENTS_GLOBAL_TOKEN_BUDGET_PER_MINUTE: '1000000000',
      AGENTS_CPU_THRESHOLD: '100',
      LOG_LEVEL: 'warn',
    };
    const named = new Map<number, string>([
      [stack.temporal.pid, 'temporal'],
      [model.pid, 'model'],
    ]);
    const shared: Shared = {
      client,
      db,
      settings: agentSettings(loadConfig(env)),
      temporalAddress: stack.temporal.address,
      databaseUrl,
      modelBaseUrl: `${modelBase}/v1`,
      env,
      named,
      quiet: !process.env.BENCH_VERBOSE,
      concurrency: SIZES.concurrency,
      dataDir,
    };
    const systems: System[] = [
      orchestrator(shared, 'gateway'),
      orchestrator(shared, 'api'),
      temporalAiSdk(shared),
      langGraph(shared, await getFreePort()),
      dbos(shared, await getFreePort()),
    ].filter((s) => !ONLY || ONLY.some((o) => s.name.toLowerCase().includes(o.toLowerCase())));
    const sqlite = path.join(dataDir, 'temporal.sqlite');

    for (const sys of systems) {
      log(`── ${sys.name}`);
      const r: PeerResult = { name: sys.name, versions: sys.versions, config: sys.config, lacks: sys.lacks };
      results.systems.push(r);
      try {
        await sys.start();
        const namedNow = () => new Map([...named, ...sys.pids()]);
        const loop = {
          concurrency: SIZES.concurrency,
          warmupSeconds: SIZES.warmupSeconds,
          windowSeconds: SIZES.windowSeconds,
        };
        await setLatency(modelBase, 0);
        // One task per lane first: code loaded, connections open, agents' first workflow tasks done.
        await Promise.all(Array.from({ length: SIZES.concurrency }, (_, lane) => sys.runTask(randomUUID(), lane)));
        const before = await storage(shared, sqlite);
        const fast = await closedLoop(sys, namedNow, loop);
        const after = await storage(shared, sqlite);
        const tasksRun = fast.completed || NaN;
        r.throughput0ms = { perSecond: fast.perSecond, completed: fast.completed, failed: fast.failed };
        r.cpuMsPerTask = fast.cpuMsPerTask;
        // Everything the loop ran (warm-up and window) wrote; divided by the tasks of the window, so approximate.
        r.storagePerTask = {
          walBytes: Math.round((after.walBytes - before.walBytes) / tasksRun),
          rows: round((after.rows - before.rows) / tasksRun),
          sqliteBytes: Math.round((after.sqliteBytes - before.sqliteBytes) / tasksRun),
        };
        if (sys.historyEventsPerTask) r.historyEventsPerTask = round(await sys.historyEventsPerTask(fast.taskIds));
        log(`${sys.name}: ${fast.perSecond} tasks/s at 0 ms, CPU ${fast.cpuMsPerTask.total} ms/task`);
        await setLatency(modelBase, SLOW_MODEL_MS);
        const slow = await closedLoop(sys, namedNow, loop);
        r.throughput200ms = { perSecond: slow.perSecond, completed: slow.completed, failed: slow.failed };
        log(`${sys.name}: ${slow.perSecond} tasks/s at ${SLOW_MODEL_MS} ms`);
        await setLatency(modelBase, 0);
        r.latencyAtRate = { rate: SIZES.rate, ...(await fixedRate(sys, SIZES.rate, SIZES.rateSeconds)) };
        log(
          `${sys.name}: at ${SIZES.rate}/s p50 ${r.latencyAtRate.latencyMs.p50} ms, p99 ${r.latencyAtRate.latencyMs.p99} ms`,
        );
        // A failed human wait does not stop the crash test after it: its error is kept beside the numbers.
        r.humanWait = await humanWait(sys, SIZES.hitl).catch((err: Error) => {
          r.error = `human wait: ${err.message.slice(0, 1000)}`;
          log(`${sys.name} human wait failed: ${r.error}`);
          return undefined;
        });
        if (r.humanWait)
          log(
            `${sys.name}: decision → next step p50 ${r.humanWait.decisionToNextStepMs.p50} ms, p99 ${r.humanWait.decisionToNextStepMs.p99} ms`,
          );
        await setLatency(modelBase, SLOW_MODEL_MS);
        r.crash = await crashTest(sys, modelBase, {
          tasks: SIZES.crashTasks,
          kills: SIZES.kills,
          concurrency: Math.min(10, SIZES.concurrency),
        });
        log(`${sys.name}: crash test ${JSON.stringify(r.crash)}`);
      } catch (err) {
        r.error = (err as Error).message.slice(0, 2000);
        log(`${sys.name} failed: ${r.error}`);
      } finally {
        await sys.stop().catch(() => undefined);
      }
    }
  } catch (err) {
    results.error = (err as Error).stack ?? String(err);
    log(`failed: ${results.error}`);
  } finally {
    await cleanup();
  }
  results.loadAverage.end = os.loadavg().map((l) => round(l, 2));
  results.finishedAt = new Date().toISOString();
  keepRun(outDir, results, results, (history) => renderMarkdown(results, history));
  log(`wrote ${path.relative(ROOT, outDir)}/results.json and RESULTS.md`);
  return results.error || results.systems.some((s) => s.error) ? 1 : 0;
}

/** An error with its causes, one line. */
function describe(err: unknown): string {
  const parts: string[] = [];
  for (
    let e = err as { message?: string; cause?: unknown; type?: string } | undefined;
    e && parts.length < 4;
    e = e.cause as typeof e
  )
    parts.push(`${e.type ? `${e.type}: ` : ''}${String(e.message ?? e).slice(0, 300)}`);
  return parts.join(' ← ');
}

function gitState(): { commit: string; dirty?: boolean } {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, maxBuffer: 64 * 2 ** 20 }).toString();
    return { commit: git('rev-parse', '--short=10', 'HEAD').trim(), dirty: git('status', '--porcelain').length > 0 };
  } catch {
    return { commit: 'unknown' };
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
