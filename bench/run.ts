/**
 * `npm run bench` (`--quick` for a smoke check of a few minutes): starts its own Temporal dev server and
 * PostgreSQL on free ports with data in a temporary directory, the agent worker and a reference worker
 * as child processes, runs the scenarios in bench/scenarios one after the other against that one
 * stack, writes bench/results.json and bench/RESULTS.md (bench/tmp/ for --quick) and stops everything.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { TemporalGateway } from '../client/gateway';
import { agentSettings, loadConfig, type Config } from '../lib/config';
import { createPool, type Db } from '../lib/db';
import { startPrivateStack, type AnyLocalStack } from '../scripts/local-stack';
import { CLUSTER_SERVICES, TEMPORAL_UI_VERSION } from '../temporal/cluster';
import { TEMPORAL_SERVER_VERSION } from '../temporal/dev-server';
import { snapshot, usageBetween, type Bench } from './context';
import { keepRun } from './keep-run';
import { childCrashed, log, ROOT, round, spawnNode, type Child } from './lib';
import {
  ceilings,
  headline,
  historyEntry,
  renderMarkdown,
  type Baseline,
  type ClusterResults,
  type Results,
  type Scenarios,
} from './report';
import { apiLatency, submitAtRate } from './scenarios/api';
import { chatFirstToken } from './scenarios/chat';
import { approvalResume } from './scenarios/approvals';
import { historyEfficiency } from './scenarios/history';
import { parkedAgents } from './scenarios/parked';
import { budgetAndPriorities } from './scenarios/budget';
import { agentTasks, ceiling, shapeTasks } from './scenarios/throughput';
import { writeWorkflowBundle } from '../workers/bundle';
import { cachedWorkflows } from '../workers/workflow-cache';
import { findJaeger, startJaeger } from '../scripts/jaeger';

const QUICK = process.argv.includes('--quick');
/** `--cluster`: scenarios 1–4 on the self-hosted cluster only (a full run does them after the dev server's). */
const CLUSTER = process.argv.includes('--cluster');
/**
 * `--only=1,2,3`: just those scenarios (full size unless --quick), written to bench/tmp/ like --quick, for
 * iterating on one number. 2 runs 2c with it (2b only when named); 4, 5, 6 and 9 use what 2 ran, so they
 * need 2 as well.
 * `--budget-only` is `--only=7`.
 */
const ONLY = process.argv.includes('--budget-only')
  ? ['7']
  : process.argv
      .find((a) => a.startsWith('--only='))
      ?.slice('--only='.length)
      .split(',');
/** A full run: every scenario on the dev server, then 1–4 on the cluster; the only kind kept in bench/. */
const FULL = !QUICK && !ONLY && !CLUSTER;
const AGENT_QUEUE = 'bench-agents';
const BUDGET_QUEUE = 'bench-budget';
const CHAT_QUEUE = 'bench-chat';
const TRIVIAL_QUEUE = 'bench-trivial';

/** Sizes of a full run and of a --quick smoke check. BENCH_PARKED_AGENTS scales scenario 4 either way. */
const SIZES = QUICK
  ? {
      warmupSeconds: 3,
      windowSeconds: 15,
      recheckSeconds: 10,
      approvals: 30,
      parked: 300,
      apiSeconds: 5,
      budgetWindows: 3,
      budgetWindowSeconds: 5,
      chatSamples: { 1: 10, 10: 3 },
      submitSeconds: 5,
    }
  : {
      warmupSeconds: 10,
      windowSeconds: 60,
      recheckSeconds: 30,
      approvals: 500,
      parked: 10_000,
      apiSeconds: 30,
      budgetWindows: 5,
      budgetWindowSeconds: 15,
      chatSamples: { 1: 100, 10: 30 },
      submitSeconds: 30,
    };
const PARKED = Number(process.env.BENCH_PARKED_AGENTS ?? SIZES.parked);
// The cluster's scenario 4 is smaller by default, so that a full run (both servers) stays near an hour.
const CLUSTER_PARKED = Number(process.env.BENCH_CLUSTER_PARKED_AGENTS ?? Math.min(PARKED, 2000));
const wakesFor = (parked: number) => Math.max(1, Math.min(1000, Math.round(parked / 10)));
const SETTINGS = {
  ceilingConcurrency: 100,
  agents: 50,
  tasksInFlightPerAgent: 2,
  parkedAgents: PARKED,
  clusterParkedAgents: CLUSTER_PARKED,
  parkedStartConcurrency: 50,
  wakes: wakesFor(PARKED),
  // A steady rate well below what waking evicted agents can sustain here (each wake-up replays the agent,
  // takes an active slot, scores the goal and gives the slot back: more than twice the work of a goal run
  // right after another), so the delay measured is the wake-up, not a queue. Fixed, so runs compare.
  wakesPerSecond: 5,
  approvals: SIZES.approvals,
  // The loopback provider's own first-token time, subtracted from what the chat client sees.
  chatProviderFirstTokenMs: 200,
  chatSamplesPerChat: `${SIZES.chatSamples[1]} at 1 concurrent, ${SIZES.chatSamples[10]} each at 10`,
  // The fixed rate, meant to be below saturation. Autocannon's closed loop (10 connections) reached about
  // 15/s at p50 ~630 ms in the 2026-12-02 run, so on a loaded machine 20/s may not be: the open loop shows it.
  submitRate: 20,
  submitSeconds: SIZES.submitSeconds,
  apiConnections: 10,
  apiSeconds: SIZES.apiSeconds,
  historySample: 100,
  // Well below what the worker can use on a 2-core machine, so demand exceeds the budget throughout.
  budgetTokens: QUICK ? 1500 : 6000,
  budgetAgents: 20,
  workerLogLevel: 'warn',
};

type Stops = (() => Promise<unknown>)[];

/** One Temporal (dev server or cluster) with PostgreSQL, both workers, and the benchmark's clients. */
interface Target {
  b: Bench;
  environment: Pick<Results, 'versions' | 'server' | 'worker'>;
  waitForPollers(queue: string): Promise<void>;
  /**
   * Runs `run` with the agent worker traced (a traced bundle, spans exported to Jaeger), then untraced again;
   * also answers the services Jaeger received spans from.
   */
  withTracing<T>(run: () => Promise<T>): Promise<{ result: T; services: string[] }>;
}

async function startTarget(kind: 'dev' | 'cluster', dataDir: string, stops: Stops): Promise<Target> {
  log(`starting ${kind === 'cluster' ? 'a Temporal cluster' : 'Temporal dev server'} and PostgreSQL…`);
  const quiet = (m: string) => void (process.env.BENCH_VERBOSE && log(m));
  const stack = await startPrivateStack({
    temporal: kind,
    dataDir,
    log: quiet,
    announce: log,
  });
  stops.push(() => stack.stop());
  const bundlePath = await writeWorkflowBundle(path.join(dataDir, 'workflow-bundle.js'), { report: log });

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TEMPORAL_ADDRESS: stack.temporal.address,
    TEMPORAL_UI_URL: stack.temporal.uiUrl ?? '',
    DATABASE_URL: stack.databaseUrl,
    WORKFLOW_BUNDLE_PATH: bundlePath,
    TEMPORAL_TASK_QUEUE: AGENT_QUEUE,
    BENCH_TRIVIAL_QUEUE: TRIVIAL_QUEUE,
    // Offline model with no delay: the benchmark measures the orchestration, not a provider.
    AI_PROVIDER: 'offline',
    // Limits high enough never to bind: scenarios 1-6, 8 and 9 measure the orchestration with governance's
    // bookkeeping (scoring, slots, reservations) in place; scenario 7 measures a binding budget.
    AGENTS_MAX_ACTIVE: '100000',
    AGENTS_MAX_CONCURRENT_STEPS: '100000',
    AGENTS_GLOBAL_TOKEN_BUDGET_PER_MINUTE: '1000000000',
    AGENTS_CPU_THRESHOLD: '100',
    LOG_LEVEL: SETTINGS.workerLogLevel,
  };
  const children: Child[] = [
    spawnNode('agent worker', 'workers/main.ts', env),
    spawnNode('trivial worker', 'bench/trivial-worker.ts', env),
  ];
  for (const child of children) stops.push(() => child.stop());
  let agentWorker = children[0]!;
  const connection = await Connection.connect({ address: stack.temporal.address });
  stops.push(() => connection.close());
  const client = new Client({ connection });
  const db = createPool(stack.databaseUrl);
  stops.push(() => db.end());
  const config = loadConfig(env);
  // The cluster's four services all count as `temporal`; its memory is read from history, which holds
  // the workflows' mutable state.
  const serverPids =
    stack.kind === 'dev'
      ? [stack.temporal.pid]
      : CLUSTER_SERVICES.map((s) => stack.temporal.services[s].pid).filter((p): p is number => p !== undefined);
  const b: Bench = {
    client,
    gateway: new TemporalGateway(client, AGENT_QUEUE),
    db,
    settings: agentSettings(config),
    trivialQueue: TRIVIAL_QUEUE,
    env,
    named: new Map([
      ...serverPids.map((pid) => [pid, 'temporal'] as const),
      [agentWorker.pid, 'agent worker'],
      [children[1]!.pid, 'trivial worker'],
    ]),
    workerPid: agentWorker.pid,
    serverPid: stack.kind === 'dev' ? stack.temporal.pid : (stack.temporal.services.history.pid ?? NaN),
    metricsPort: stack.kind === 'dev' ? stack.temporal.metricsPort : undefined,
  };
  const waitForPollers = (queue: string) => waitForQueuePollers(client, queue);
  await Promise.race([Promise.all([waitForPollers(AGENT_QUEUE), waitForPollers(TRIVIAL_QUEUE)]), childCrashed]);

  /** Replaces the agent worker by one with `workerEnv`; its CPU is measured under the same name. */
  const replaceAgentWorker = async (workerEnv: NodeJS.ProcessEnv) => {
    await agentWorker.stop();
    b.named.delete(agentWorker.pid);
    agentWorker = spawnNode('agent worker', 'workers/main.ts', workerEnv);
    stops.push(() => agentWorker.stop());
    b.named.set(agentWorker.pid, 'agent worker');
    b.workerPid = agentWorker.pid;
    // The stopped worker's poll may still be listed for a while; give the new one time to poll too.
    await sleep(5000);
    await Promise.race([waitForPollers(AGENT_QUEUE), childCrashed]);
  };
  const withTracing = async <T>(run: () => Promise<T>): Promise<{ result: T; services: string[] }> => {
    const jaeger = await startJaeger({ binary: await findJaeger(log) });
    stops.push(() => jaeger.stop());
    let traced = false;
    try {
      const tracedBundle = await writeWorkflowBundle(path.join(dataDir, 'workflow-bundle-traced.js'), {
        traced: true,
        report: log,
      });
      await replaceAgentWorker({
        ...env,
        WORKFLOW_BUNDLE_PATH: tracedBundle,
        OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpHttpUrl,
      });
      traced = true;
      const result = await run();
      // Spans go out in batches; the traced worker flushes the last ones as it stops.
      await replaceAgentWorker(env);
      traced = false;
      const services = ((await (await fetch(`${jaeger.uiUrl}/api/services`)).json()) as { data: string[] | null }).data;
      return { result, services: services ?? [] };
    } finally {
      if (traced) await replaceAgentWorker(env);
      await jaeger.stop();
    }
  };
  return { b, environment: await collectEnvironment(stack, db, config), waitForPollers, withTracing };
}

/** Runs one scenario, records its result and the CPU each component used meanwhile. */
function scenarioRunner(b: Bench, usage: Results['usage'], prefix = '') {
  return async <T>(name: string, run: () => Promise<T>): Promise<T> => {
    log(`── ${prefix}${name}`);
    const before = await snapshot(b);
    const result = await Promise.race([run(), childCrashed]);
    usage[name] = usageBetween(before, await snapshot(b));
    return result;
  };
}

/** Scenarios 1, 2, 2c, the ceiling again, 2b (unless `noShape`): the throughput block both servers run. */
async function throughputBlock(
  b: Bench,
  s: Scenarios,
  scenario: ReturnType<typeof scenarioRunner>,
  wanted: (x: string) => boolean,
  opts: { noShape?: boolean; withTracing?: Target['withTracing'] } = {},
): Promise<AgentRun | undefined> {
  const { warmupSeconds, windowSeconds } = SIZES;
  if (wanted('1'))
    s.ceiling = await scenario('1 ceiling', () =>
      ceiling(b, { concurrency: SETTINGS.ceilingConcurrency, warmupSeconds, windowSeconds }),
    );
  if (!wanted('2')) return undefined;
  const agentRun = await scenario('2 agent tasks', () =>
    agentTasks(b, { agents: SETTINGS.agents, depth: SETTINGS.tasksInFlightPerAgent, warmupSeconds, windowSeconds }),
  );
  const { agentIds: _agentIds, taskIds: _taskIds, ...agentResult } = agentRun;
  s.agentTasks = agentResult;
  const shape = { agents: SETTINGS.agents, depth: SETTINGS.tasksInFlightPerAgent, warmupSeconds, windowSeconds };
  // The floor right after the agent tasks, with the same settings, so both meet the same machine.
  s.inlineShapeTasks = await scenario('2c same shape inline, no-op', () => shapeTasks(b, { ...shape, inline: true }));
  s.floorRatio = round(agentRun.perSecond / s.inlineShapeTasks.perSecond, 2);
  log(`agent tasks / floor (2c) = ${s.floorRatio}`);
  const { withTracing } = opts;
  if (withTracing) {
    // Scenario 2 again with the worker traced (spans exported to Jaeger), right after the untraced run.
    // Measured inside: the worker swaps, the traced bundle and Jaeger's start are not part of the scenario.
    const { result: traced, services } = await withTracing(() =>
      scenario('2t agent tasks, tracing on', () =>
        agentTasks(b, { agents: SETTINGS.agents, depth: SETTINGS.tasksInFlightPerAgent, warmupSeconds, windowSeconds }),
      ),
    );
    const { agentIds: _ids, taskIds: _tasks, ...tracedResult } = traced;
    s.agentTasksTraced = { ...tracedResult, exportedServices: services };
    s.tracingOverhead = round(1 - traced.perSecond / agentRun.perSecond, 3);
    log(`tracing on: ${traced.perSecond}/s, ${round(s.tracingOverhead * 100, 1)} % below ${agentRun.perSecond}/s`);
  }
  if (wanted('1')) {
    // The ceiling again, after 2 and 2c: agent tasks are reported against the mean of both ceiling runs
    // and, conservatively, against the higher one.
    s.ceilingRecheck = await scenario('1b ceiling recheck', () =>
      ceiling(b, { concurrency: SETTINGS.ceilingConcurrency, warmupSeconds, windowSeconds: SIZES.recheckSeconds }),
    );
    const { mean, max } = ceilings(s)!;
    s.agentToCeilingRatio = round(agentRun.perSecond / mean, 2);
    s.ceilingRatioMin = round(agentRun.perSecond / max, 2);
    log(`agent tasks / ceiling = ${s.agentToCeilingRatio} (mean), ${s.ceilingRatioMin} (higher run)`);
  }
  if (!opts.noShape) {
    s.shapeTasks = await scenario('2b same shape, no-op', () => shapeTasks(b, { ...shape, inline: false }));
    s.agentToShapeRatio = round(agentRun.perSecond / s.shapeTasks.perSecond, 2);
    log(`agent tasks / same shape = ${s.agentToShapeRatio}`);
  }
  return agentRun;
}

type AgentRun = Awaited<ReturnType<typeof agentTasks>>;

/** Every scenario on the dev server (or those of --only). */
async function devScenarios(t: Target, results: Results): Promise<void> {
  const wanted = (scenario: string): boolean => !ONLY || ONLY.includes(scenario);
  const { b } = t;
  const s = results.scenarios;
  const scenario = scenarioRunner(b, results.usage);
  // --only names 2b explicitly; 2 alone runs 2 and 2c.
  const agentRun = await throughputBlock(b, s, scenario, wanted, {
    noShape: ONLY !== undefined && !wanted('2b'),
    // --only names 2t explicitly, like 2b.
    ...(ONLY === undefined || wanted('2t') ? { withTracing: t.withTracing } : {}),
  });

  let approvalAgentIds: string[] = [];
  if (wanted('3')) {
    const { approvalAgentIds: ids, ...approvals } = await scenario('3 approval resume', () =>
      approvalResume(b, SETTINGS.approvals),
    );
    s.approvalResume = approvals;
    approvalAgentIds = ids;
  }
  if (wanted('8')) {
    s.chatFirstToken = await scenario('8 chat first token', () =>
      chatFirstToken(
        b,
        {
          queue: CHAT_QUEUE,
          providerFirstTokenMs: SETTINGS.chatProviderFirstTokenMs,
          samplesPerChat: SIZES.chatSamples,
        },
        t.waitForPollers,
      ),
    );
  }
  if (agentRun && wanted('4') && wanted('5')) {
    const { idleAgentId, ...parked } = await scenario('4 parked agents', () =>
      parkedAgents(b, {
        count: PARKED,
        wakes: SETTINGS.wakes,
        wakesPerSecond: SETTINGS.wakesPerSecond,
        concurrency: SETTINGS.parkedStartConcurrency,
      }),
    );
    s.parkedAgents = parked;
    const { agentIds } = agentRun;
    s.history = await scenario('5 history', () =>
      historyEfficiency(b, { agentIds, approvalAgentIds, idleAgentId }, SETTINGS.historySample),
    );
  }
  if (agentRun && wanted('9')) {
    // Before scenario 6, whose saturating writes leave a queue of tasks behind.
    s.submitAtRate = await scenario('9 submission at a fixed rate', () =>
      submitAtRate(b, { rate: SETTINGS.submitRate, seconds: SETTINGS.submitSeconds, taskAgentIds: agentRun.agentIds }),
    );
  }
  if (agentRun && wanted('6')) {
    s.api = await scenario('6 api', () =>
      apiLatency(b, {
        seconds: SETTINGS.apiSeconds,
        connections: SETTINGS.apiConnections,
        taskAgentIds: agentRun.agentIds,
      }),
    );
    // Its own reading covers the API process and the load generators, which have exited by now.
    results.usage['6 api'] = s.api.usage;
  }
  if (wanted('7')) {
    s.budget = await scenario('7 budget and priorities', () =>
      budgetAndPriorities(
        b,
        {
          budgetTokens: SETTINGS.budgetTokens,
          windowSeconds: SIZES.budgetWindowSeconds,
          windows: SIZES.budgetWindows,
          agents: SETTINGS.budgetAgents,
          queue: BUDGET_QUEUE,
        },
        t.waitForPollers,
      ),
    );
  }
}

/** Scenarios 1–4 on the cluster (2b and 5–9 are the dev server's only). */
async function clusterScenarios(t: Target, c: ClusterResults): Promise<void> {
  const { b } = t;
  const s = c.scenarios;
  const scenario = scenarioRunner(b, c.usage, 'cluster: ');
  const agentRun = await throughputBlock(b, s, scenario, () => true, { noShape: true });
  const { approvalAgentIds: _ids, ...approvals } = await scenario('3 approval resume', () =>
    approvalResume(b, SETTINGS.approvals),
  );
  s.approvalResume = approvals;
  if (agentRun) {
    const { idleAgentId: _idle, ...parked } = await scenario('4 parked agents', () =>
      parkedAgents(b, {
        count: CLUSTER_PARKED,
        wakes: wakesFor(CLUSTER_PARKED),
        wakesPerSecond: SETTINGS.wakesPerSecond,
        concurrency: SETTINGS.parkedStartConcurrency,
      }),
    );
    s.parkedAgents = parked;
  }
}

async function main(): Promise<number> {
  const outDir = FULL ? __dirname : path.join(__dirname, 'tmp');
  const dataDirs: string[] = [];
  const newDataDir = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agents-bench-'));
    // As root, embedded PostgreSQL runs as its own user, which must be able to enter this directory.
    fs.chmodSync(dir, 0o755);
    dataDirs.push(dir);
    return dir;
  };
  const started = Date.now();
  const mode: Results['mode'] = QUICK ? 'quick' : FULL ? 'full' : 'partial';
  const results: Results = {
    mode,
    startedAt: new Date().toISOString(),
    ...gitState(),
    loadAverage: { start: os.loadavg().map((l) => round(l, 2)) },
    machine: machine(),
    versions: {},
    server: {},
    worker: {},
    settings: { ...SETTINGS },
    scenarios: {},
    usage: {},
  };
  log(`${mode} run${CLUSTER ? ' on the cluster' : ''}; load average ${results.loadAverage.start.join(' ')}`);

  const stops: Stops = [];
  const stopTarget = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch((err) => log(`cleanup: ${String(err)}`));
  };
  const cleanup = async () => {
    await stopTarget();
    for (const dir of dataDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  };
  const interrupted = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  // Once a scenario fails, its calls still in flight fail too as the stack stops ("Channel has been shut
  // down"); they must not end the process before the results so far are written.
  const late = (err: unknown) => log(`unhandled: ${err instanceof Error ? err.message : String(err)}`);
  process.on('unhandledRejection', late);
  process.on('uncaughtException', late);

  const fail = (err: unknown) => {
    // A ServiceError's own message is generic: the server's answer is its cause.
    const cause = err instanceof Error && err.cause instanceof Error ? `\ncaused by: ${err.cause.message}` : '';
    const message = (err instanceof Error ? (err.stack ?? err.message) : String(err)) + cause;
    log(`failed: ${message}`);
    return message;
  };
  try {
    if (!CLUSTER) {
      try {
        const dev = await startTarget('dev', newDataDir(), stops);
        Object.assign(results, dev.environment);
        log('workers are polling; starting the scenarios');
        await devScenarios(dev, results);
      } catch (err) {
        results.error = fail(err);
      } finally {
        await stopTarget();
      }
    }
    if (CLUSTER || FULL) {
      const c: ClusterResults = { server: {}, worker: {}, versions: {}, scenarios: {}, usage: {} };
      results.clusterRun = c;
      try {
        const cluster = await startTarget('cluster', newDataDir(), stops);
        Object.assign(c, cluster.environment);
        if (CLUSTER) Object.assign(results, cluster.environment);
        log('cluster: workers are polling; starting scenarios 1–4');
        await clusterScenarios(cluster, c);
      } catch (err) {
        c.error = fail(err);
      } finally {
        await stopTarget();
      }
    }
    return results.error || results.clusterRun?.error ? 1 : 0;
  } finally {
    log('stopping everything…');
    await cleanup();
    results.loadAverage.end = os.loadavg().map((l) => round(l, 2));
    results.durationSeconds = Math.round((Date.now() - started) / 1000);
    Object.assign(results, headline(results));
    // Every run of this kind is kept: a full run in bench/history.jsonl, the others in bench/tmp/.
    keepRun(outDir, results, historyEntry(results), (runs) => renderMarkdown(results, readBaseline(), runs));
    log(
      `wrote ${path.relative(ROOT, path.join(outDir, 'results.json'))}, RESULTS.md and a line in history.jsonl (load average at end ${results.loadAverage.end.join(' ')})`,
    );
  }
}

/** The commit the run measured, and whether the working tree differed from it (and how, as a hash). */
function gitState(): Pick<Results, 'commit' | 'dirty' | 'diffHash'> {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, maxBuffer: 64 * 2 ** 20 }).toString();
    const diff = git('diff', 'HEAD');
    return {
      commit: git('rev-parse', '--short=10', 'HEAD').trim(),
      dirty: diff.length > 0,
      diffHash: diff.length > 0 ? createHash('sha1').update(diff).digest('hex').slice(0, 10) : undefined,
    };
  } catch {
    return { commit: 'unknown', dirty: undefined };
  }
}

/** bench/baseline.json, the recorded run RESULTS.md compares with, if there is one. */
function readBaseline(): Baseline | undefined {
  const file = path.join(__dirname, 'baseline.json');
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Baseline) : undefined;
}

function machine(): Results['machine'] {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    ramGiB: round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
  };
}

async function collectEnvironment(
  stack: AnyLocalStack,
  db: Db,
  config: Config,
): Promise<Pick<Results, 'versions' | 'server' | 'worker'>> {
  const version = (pkg: string) =>
    (JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string })
      .version;
  const { rows } = await db.query<{ server_version: string }>('SHOW server_version');
  let server: Results['server'];
  let temporalVersion: string;
  if (stack.kind === 'dev') {
    // The server's tuning flags as it was really started (temporal/dev-server.ts adds them).
    const args = fs.readFileSync(`/proc/${stack.temporal.pid}/cmdline`, 'utf8').split('\0');
    const flags = args.flatMap((a, i) =>
      ['--sqlite-pragma', '--dynamic-config-value', '--log-level'].includes(args[i - 1]) ? [`${args[i - 1]} ${a}`] : [],
    );
    server = {
      kind: 'dev',
      persistence: args.includes('--db-filename') ? 'SQLite file' : 'in memory',
      webUi: !args.includes('--headless'),
      flags,
    };
    temporalVersion = execFileSync(stack.cliPath, ['--version']).toString().trim();
  } else {
    server = {
      kind: 'cluster',
      persistence: 'PostgreSQL (the same server as the application)',
      webUi: stack.temporal.ui !== undefined,
      flags: [`services ${CLUSTER_SERVICES.join(', ')}`, 'config temporal/cluster/'],
    };
    temporalVersion = `temporal-server ${TEMPORAL_SERVER_VERSION}, UI server ${TEMPORAL_UI_VERSION}`;
  }
  return {
    versions: {
      node: process.version,
      temporalCli: temporalVersion,
      temporalSdk: version('@temporalio/worker'),
      postgres: rows[0].server_version,
    },
    server,
    worker: {
      // Both workers run with the SDK's default options but for the agent worker's workflow threads
      // (WORKFLOW_THREADS), workflow task slots (WORKER_MAX_WORKFLOW_TASKS) and cache (workers/workflow-cache.ts);
      // these are the values it picks on this machine (the cache size follows the heap limit, the same for the
      // child processes as for this one).
      agentWorkflowThreads: config.WORKFLOW_THREADS,
      maxConcurrentWorkflowTaskExecutions: config.WORKER_MAX_WORKFLOW_TASKS,
      maxConcurrentActivityTaskExecutions: 100,
      workflowTaskPollers: 10,
      activityTaskPollers: 10,
      maxCachedWorkflows: cachedWorkflows(config),
      maxEagerActivityReservationsPerWorkflowTask: 3,
      agentHistoryLimit: config.AGENT_HISTORY_LIMIT,
      agentIdleHistoryLimit: agentSettings(config).idleHistoryLimit,
      provider: config.aiProvider,
      logLevel: SETTINGS.workerLogLevel,
    },
  };
}

/** A worker is ready once the server sees its workflow pollers on the queue. */
async function waitForQueuePollers(client: Client, taskQueue: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const { pollers } = await client.workflowService.describeTaskQueue({
      namespace: 'default',
      taskQueue: { name: taskQueue },
      taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    });
    if ((pollers?.length ?? 0) > 0) return;
    await sleep(250);
  }
  throw new Error(`no worker polled ${taskQueue} within 120 s`);
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
