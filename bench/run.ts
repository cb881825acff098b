/**
 * `npm run bench` (`--quick` for a smoke check of a few minutes): starts its own Temporal dev server and
 * PostgreSQL on free ports with data in a temporary directory, the agent worker and a reference worker
 * as child processes, runs the scenarios in bench/scenarios one after the other against that one
 * stack, writes bench/results.json and bench/RESULTS.md (bench/tmp/ for --quick) and stops everything.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode } from '@temporalio/worker';
import { TemporalGateway } from '../client/gateway';
import { agentSettings, loadConfig, type Config } from '../lib/config';
import { createPool, type Db } from '../lib/db';
import { getFreePort, startLocalStack, type LocalStack } from '../scripts/local-stack';
import { snapshot, usageBetween, type Bench } from './context';
import { childCrashed, log, ROOT, round, spawnNode, type Child } from './lib';
import { renderMarkdown, type Baseline, type Results } from './report';
import { apiLatency } from './scenarios/api';
import { approvalResume } from './scenarios/approvals';
import { historyEfficiency } from './scenarios/history';
import { parkedAgents } from './scenarios/parked';
import { budgetAndPriorities } from './scenarios/budget';
import { agentTasks, ceiling, shapeTasks } from './scenarios/throughput';

const QUICK = process.argv.includes('--quick');
/**
 * `--only=1,2,3`: just those scenarios (full size unless --quick), written to bench/tmp/ like --quick, for
 * iterating on one number. 4 and 5 use what 2 measured and ran, so they need 2 as well.
 * `--budget-only` is `--only=7`.
 */
const ONLY = process.argv.includes('--budget-only')
  ? ['7']
  : process.argv
      .find((a) => a.startsWith('--only='))
      ?.slice('--only='.length)
      .split(',');
const wanted = (scenario: string): boolean => !ONLY || ONLY.includes(scenario);
const AGENT_QUEUE = 'bench-agents';
const BUDGET_QUEUE = 'bench-budget';
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
    };
const PARKED = Number(process.env.BENCH_PARKED_AGENTS ?? SIZES.parked);
const SETTINGS = {
  ceilingConcurrency: 100,
  agents: 50,
  tasksInFlightPerAgent: 2,
  parkedAgents: PARKED,
  parkedStartConcurrency: 50,
  wakes: Math.max(1, Math.min(1000, Math.round(PARKED / 10))),
  // A steady rate well below what waking evicted agents can sustain here (each wake-up replays the agent,
  // takes an active slot, scores the goal and gives the slot back: more than twice the work of a goal run
  // right after another), so the delay measured is the wake-up, not a queue. Fixed, so runs compare.
  wakesPerSecond: 5,
  approvals: SIZES.approvals,
  apiConnections: 10,
  apiSeconds: SIZES.apiSeconds,
  historySample: 100,
  // Well below what the worker can use on a 2-core machine, so demand exceeds the budget throughout.
  budgetTokens: QUICK ? 1500 : 6000,
  budgetAgents: 20,
  workerLogLevel: 'warn',
};

async function main(): Promise<number> {
  const outDir = QUICK || ONLY ? path.join(__dirname, 'tmp') : __dirname;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agents-bench-'));
  // As root, embedded PostgreSQL runs as its own user, which must be able to enter this directory.
  fs.chmodSync(dataDir, 0o755);
  const started = Date.now();
  const results: Results = {
    mode: QUICK ? 'quick' : 'full',
    startedAt: new Date().toISOString(),
    loadAverage: { start: os.loadavg().map((l) => round(l, 2)) },
    machine: machine(),
    versions: {},
    server: {},
    worker: {},
    settings: { ...SETTINGS },
    scenarios: {},
    usage: {},
  };
  log(`${results.mode} run; data in ${dataDir}; load average ${results.loadAverage.start.join(' ')}`);

  const stopAll: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const stop of stopAll.reverse()) await stop().catch((err) => log(`cleanup: ${String(err)}`));
    stopAll.length = 0;
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  const interrupted = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  // Once a scenario fails, its calls still in flight fail too as the stack stops ("Channel has been shut
  // down"); they must not end the process before the results so far are written.
  const late = (err: unknown) => log(`unhandled: ${err instanceof Error ? err.message : String(err)}`);
  process.on('unhandledRejection', late);
  process.on('uncaughtException', late);

  try {
    const [temporalPort, uiPort, postgresPort] = await Promise.all([getFreePort(), getFreePort(), getFreePort()]);
    log('starting Temporal dev server and PostgreSQL…');
    const stack = await startLocalStack({
      dataDir,
      temporalPort,
      uiPort,
      postgresPort,
      log: (m) => process.env.BENCH_VERBOSE && log(m),
    });
    stopAll.push(() => stack.stop());
    const bundlePath = path.join(dataDir, 'workflow-bundle.js');
    fs.writeFileSync(
      bundlePath,
      (await bundleWorkflowCode({ workflowsPath: path.join(ROOT, 'workflows'), logger: quietLogger })).code,
    );

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
      // Limits high enough never to bind: scenarios 1-6 measure the orchestration with governance's
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
    for (const child of children) stopAll.push(() => child.stop());
    const connection = await Connection.connect({ address: stack.temporal.address });
    stopAll.push(() => connection.close());
    const client = new Client({ connection });
    const db = createPool(stack.databaseUrl);
    stopAll.push(() => db.end());
    const config = loadConfig(env);
    const b: Bench = {
      client,
      gateway: new TemporalGateway(client, AGENT_QUEUE),
      db,
      settings: agentSettings(config),
      trivialQueue: TRIVIAL_QUEUE,
      env,
      named: new Map([
        [stack.temporal.pid, 'temporal'],
        [children[0].pid, 'agent worker'],
        [children[1].pid, 'trivial worker'],
      ]),
      workerPid: children[0].pid,
      serverPid: stack.temporal.pid,
      metricsPort: stack.temporal.metricsPort,
    };
    await Promise.race([
      Promise.all([waitForPollers(client, AGENT_QUEUE), waitForPollers(client, TRIVIAL_QUEUE)]),
      childCrashed,
    ]);
    Object.assign(results, await collectEnvironment(stack, db, config));
    log('workers are polling; starting the scenarios');

    /** Runs one scenario, records its result and the CPU each component used meanwhile. */
    const scenario = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
      log(`── ${name}`);
      const before = await snapshot(b);
      const result = await Promise.race([run(), childCrashed]);
      results.usage[name] = usageBetween(before, await snapshot(b));
      return result;
    };
    const { warmupSeconds, windowSeconds } = SIZES;
    const s = results.scenarios;

    if (wanted('1'))
      s.ceiling = await scenario('1 ceiling', () =>
        ceiling(b, { concurrency: SETTINGS.ceilingConcurrency, warmupSeconds, windowSeconds }),
      );
    let agentRun: Awaited<ReturnType<typeof agentTasks>> | undefined;
    if (wanted('2')) {
      agentRun = await scenario('2 agent tasks', () =>
        agentTasks(b, { agents: SETTINGS.agents, depth: SETTINGS.tasksInFlightPerAgent, warmupSeconds, windowSeconds }),
      );
      const { agentIds: _agentIds, taskIds: _taskIds, ...agentResult } = agentRun;
      s.agentTasks = agentResult;
    }
    if (wanted('1') && wanted('2')) {
      // The ceiling again, right after: the ratio compares 2 with the mean of the ceilings either side of it,
      // so the machine drifting (other work, a growing database) moves both sides alike.
      s.ceilingRecheck = await scenario('1b ceiling recheck', () =>
        ceiling(b, { concurrency: SETTINGS.ceilingConcurrency, warmupSeconds, windowSeconds: SIZES.recheckSeconds }),
      );
      const ceilingMean = (s.ceiling!.perSecond + s.ceilingRecheck.perSecond) / 2;
      s.agentToCeilingRatio = round(agentRun!.perSecond / ceilingMean, 2);
      log(`agent tasks / ceiling = ${s.agentToCeilingRatio}`);
    }
    if (agentRun) {
      const shape = { agents: SETTINGS.agents, depth: SETTINGS.tasksInFlightPerAgent, warmupSeconds, windowSeconds };
      s.shapeTasks = await scenario('2b same shape, no-op', () => shapeTasks(b, { ...shape, inline: false }));
      s.agentToShapeRatio = round(agentRun.perSecond / s.shapeTasks.perSecond, 2);
      log(`agent tasks / same shape = ${s.agentToShapeRatio}`);
      s.inlineShapeTasks = await scenario('2c same shape inline, no-op', () =>
        shapeTasks(b, { ...shape, inline: true }),
      );
    }

    let approvalAgentIds: string[] = [];
    if (wanted('3')) {
      const { approvalAgentIds: ids, ...approvals } = await scenario('3 approval resume', () =>
        approvalResume(b, SETTINGS.approvals),
      );
      s.approvalResume = approvals;
      approvalAgentIds = ids;
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
          (queue) => waitForPollers(client, queue),
        ),
      );
    }
    return 0;
  } catch (err) {
    // A ServiceError's own message is generic: the server's answer is its cause.
    const cause = err instanceof Error && err.cause instanceof Error ? `\ncaused by: ${err.cause.message}` : '';
    results.error = (err instanceof Error ? (err.stack ?? err.message) : String(err)) + cause;
    log(`failed: ${results.error}`);
    return 1;
  } finally {
    log('stopping everything…');
    await cleanup();
    results.loadAverage.end = os.loadavg().map((l) => round(l, 2));
    results.durationSeconds = Math.round((Date.now() - started) / 1000);
    Object.assign(results, headline(results));
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
    fs.writeFileSync(path.join(outDir, 'RESULTS.md'), renderMarkdown(results, readBaseline()));
    log(
      `wrote ${path.relative(ROOT, path.join(outDir, 'results.json'))} and RESULTS.md (load average at end ${results.loadAverage.end.join(' ')})`,
    );
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
  stack: LocalStack,
  db: Db,
  config: Config,
): Promise<Pick<Results, 'versions' | 'server' | 'worker'>> {
  const version = (pkg: string) =>
    (JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string })
      .version;
  const { rows } = await db.query<{ server_version: string }>('SHOW server_version');
  // The server's tuning flags as it was really started (temporal/dev-server.ts adds them).
  const args = fs.readFileSync(`/proc/${stack.temporal.pid}/cmdline`, 'utf8').split('\0');
  const flags = args.flatMap((a, i) =>
    ['--sqlite-pragma', '--dynamic-config-value', '--log-level'].includes(args[i - 1]) ? [`${args[i - 1]} ${a}`] : [],
  );
  const heapMiB = v8.getHeapStatistics().heap_size_limit / 2 ** 20;
  return {
    versions: {
      node: process.version,
      temporalCli: execFileSync(stack.cliPath, ['--version']).toString().trim(),
      temporalSdk: version('@temporalio/worker'),
      postgres: rows[0].server_version,
    },
    server: {
      persistence: args.includes('--db-filename') ? 'SQLite file' : 'in memory',
      webUi: !args.includes('--headless'),
      flags,
    },
    worker: {
      // Both workers run with the SDK's default options; these are the values it picks on this machine
      // (the cache size follows the heap limit, the same for the child processes as for this one).
      maxConcurrentWorkflowTaskExecutions: 40,
      maxConcurrentActivityTaskExecutions: 100,
      workflowTaskPollers: 10,
      activityTaskPollers: 10,
      maxCachedWorkflows: Math.max(Math.floor((Math.max(heapMiB - 200, 0) * 600) / 1024), 10),
      maxEagerActivityReservationsPerWorkflowTask: 3,
      agentHistoryLimit: config.AGENT_HISTORY_LIMIT,
      provider: config.aiProvider,
      logLevel: SETTINGS.workerLogLevel,
    },
  };
}

/** A worker is ready once the server sees its workflow pollers on the queue. */
async function waitForPollers(client: Client, taskQueue: string): Promise<void> {
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

const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (msg: string) => log(msg),
  error: (msg: string) => log(msg),
};

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);

/** The headline numbers at the top level of results.json, for scripts comparing runs. */
function headline(r: Results): Record<string, unknown> {
  const {
    ceiling,
    ceilingRecheck,
    agentTasks,
    approvalResume: ap,
    parkedAgents: pk,
    history: h,
    api,
    budget,
  } = r.scenarios;
  const p = (x?: { p50: number; p99: number }) => (x ? { p50: x.p50, p99: x.p99 } : undefined);
  return {
    ceilingPerSec:
      ceiling && ceilingRecheck ? round((ceiling.perSecond + ceilingRecheck.perSecond) / 2, 2) : ceiling?.perSecond,
    tasksPerSec: agentTasks?.perSecond,
    ratio: r.scenarios.agentToCeilingRatio,
    shapePerSec: r.scenarios.shapeTasks?.perSecond,
    inlineShapePerSec: r.scenarios.inlineShapeTasks?.perSecond,
    ratioToShape: r.scenarios.agentToShapeRatio,
    approvalResumeMs: p(ap?.approveToNextActivityMs),
    rawSignalMs: p(ap?.rawSignalToNextActivityMs),
    parkedAgents: pk && {
      count: pk.agents,
      startPerSec: pk.startsPerSecond,
      workerRssMb: pk.workerRssMiB.settled,
      wakeFirstStepMs: p(pk.wakeToFirstStepMs),
    },
    eventsPerTask: h?.totalPerTask,
    api:
      api &&
      Object.fromEntries(
        api.endpoints.map((e) => [e.endpoint, { p50: e.latencyMs.p50, p99: e.latencyMs.p99, rps: e.perSecond }]),
      ),
    budget: budget && {
      utilisation: budget.utilisation,
      overshootTokens: budget.overshootTokens,
      reservationTokens: budget.reservationTokens,
      prioritisationP50Ms: {
        cacheHit: budget.prioritisationMs.withCacheHit.p50,
        noCacheHit: budget.prioritisationMs.withoutCacheHit.p50,
      },
    },
  };
}
