import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, makeTelemetryFilterString } from '@temporalio/worker';
import type { Logger } from 'pino';
import { createActivities } from '../activities';
import { createGovernance } from '../activities/governance';
import { UnstorableValueInterceptor } from '../activities/unstorable';
import { ReminderBook } from '../activities/reminders';
import { createProviderRegistry } from '../activities/llm';
import { ProviderCircuits } from '../activities/llm/circuits';
import { McpToolSource } from '../activities/tools/mcp';
import { createToolRegistry } from '../activities/tools';
import { TemporalGateway } from '../client/gateway';
import { dataConverterFor } from '../lib/codec';
import type { Config } from '../lib/config';
import { createPool } from '../lib/db';
import { saveCircuitState } from '../lib/records/provider-circuits';
import { temporalConnectionOptions } from '../lib/temporal-connection';
import { clientTracingInterceptors, startTracing } from '../lib/tracing';
import { CpuGatedActivitySlots, CpuSampler } from './cpu-gate';
import { WORKFLOW_TRACING_MODULE, workerTracingOptions } from './tracing';
import { cachedWorkflows } from './workflow-cache';

export interface AgentWorkerOptions {
  config: Config;
  databaseUrl: string;
  logger: Logger;
  /** A prebuilt workflow bundle (production, tests); otherwise workflows are bundled at start. */
  workflowBundlePath?: string;
  identity?: string;
}

export interface AgentWorker {
  worker: Worker;
  /** Runs until shutdown is requested, then releases every connection. */
  run(): Promise<void>;
  shutdown(): void;
}

let runtimeInstalled = false;
/**
 * Routes the SDK's own logs (worker lifecycle, workflow and activity loggers) into pino, once per
 * process. The SDK logs at WARN and above unless LOG_LEVEL asks for debug.
 */
function installRuntime(logger: Logger, sdkMetricsAddress: string | undefined): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const level = logger.isLevelEnabled('debug') ? 'DEBUG' : 'WARN';
  const sdkLogger = new DefaultLogger(level, ({ level: entryLevel, message, meta }) => {
    const method =
      entryLevel === 'TRACE' || entryLevel === 'DEBUG'
        ? 'debug'
        : entryLevel === 'INFO'
          ? 'info'
          : entryLevel === 'WARN'
            ? 'warn'
            : 'error';
    logger[method]({ sdk: meta }, message);
  });
  Runtime.install({
    logger: sdkLogger,
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: level }), forward: {} },
      // The SDK's worker metrics (poll latencies, slots, sticky cache, activity and workflow task counts).
      ...(sdkMetricsAddress ? { metrics: { prometheus: { bindAddress: sdkMetricsAddress } } } : {}),
    },
  });
}

/** Wires the worker: connections, activities with their dependencies, workflows. Nothing else. */
export async function createAgentWorker(opts: AgentWorkerOptions): Promise<AgentWorker> {
  const { config, logger } = opts;
  installRuntime(logger, config.TEMPORAL_SDK_METRICS_ADDRESS);
  // Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; then model, tool and wait spans join each task's trace.
  const tracing = startTracing(config, 'worker');
  const traced = tracing ? workerTracingOptions(tracing) : undefined;
  if (tracing && opts.workflowBundlePath) {
    logger.warn(
      { module: WORKFLOW_TRACING_MODULE },
      'tracing is on but workflows come from a prebuilt bundle: workflow spans need a bundle built with this interceptor module',
    );
  }
  const db = createPool(opts.databaseUrl);
  const connection = await NativeConnection.connect(temporalConnectionOptions(config));
  const clientConnection = await Connection.connect(temporalConnectionOptions(config));
  const dataConverter = dataConverterFor(config);
  const client = new Client({
    connection: clientConnection,
    namespace: config.TEMPORAL_NAMESPACE,
    dataConverter,
    interceptors: clientTracingInterceptors(tracing),
  });
  const gateway = new TemporalGateway(client, config.TEMPORAL_TASK_QUEUE);

  const workerName = opts.identity ?? `${os.hostname()}:${process.pid}`;
  const circuits = new ProviderCircuits({
    threshold: config.CIRCUIT_FAILURE_THRESHOLD,
    recoveryMs: config.CIRCUIT_RECOVERY_SECONDS * 1000,
    onStateChange: (provider, state, lastError) => {
      logger.warn({ provider, state, lastError }, `provider circuit ${state}`);
      // Recorded for /health; losing one write only delays what operators see.
      saveCircuitState(db, { worker: workerName, provider, state, lastError }).catch((err) =>
        logger.error({ err }, 'could not record circuit state'),
      );
    },
  });

  const mcp = McpToolSource.fromConfig(config);
  const activities = createActivities({
    db,
    config,
    logger,
    providers: createProviderRegistry(config),
    circuits,
    mcp,
    tools: createToolRegistry({
      agents: gateway,
      reminders: new ReminderBook({ db, config, gateway }),
    }),
    gateway,
  });

  // Resource buckets come from configuration; every worker applies it (idempotent upserts).
  await createGovernance(db, config).syncBuckets(config.RESOURCE_BUCKETS);
  const cpu = config.AGENTS_CPU_THRESHOLD < 100 ? new CpuSampler() : null;

  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    dataConverter,
    ...(opts.identity ? { identity: opts.identity } : {}),
    workflowThreadPoolSize: config.WORKFLOW_THREADS,
    maxCachedWorkflows: cachedWorkflows(config),
    ...(cpu ? {} : { maxConcurrentWorkflowTaskExecutions: config.WORKER_MAX_WORKFLOW_TASKS }),
    activities,
    interceptors: {
      activity: [() => ({ inbound: new UnstorableValueInterceptor() }), ...(traced?.activityInterceptors ?? [])],
      ...(traced ? { workflowModules: [WORKFLOW_TRACING_MODULE] } : {}),
    },
    ...(traced ? { sinks: traced.sinks } : {}),
    ...(cpu
      ? {
          tuner: {
            workflowTaskSlotSupplier: { type: 'fixed-size', numSlots: config.WORKER_MAX_WORKFLOW_TASKS },
            activityTaskSlotSupplier: new CpuGatedActivitySlots(cpu, {
              thresholdPercent: config.AGENTS_CPU_THRESHOLD,
              maxSlots: 100,
              minimumSlots: 2,
            }),
            localActivityTaskSlotSupplier: { type: 'fixed-size', numSlots: 100 },
            nexusTaskSlotSupplier: { type: 'fixed-size', numSlots: 10 },
          },
        }
      : {}),
    ...(opts.workflowBundlePath
      ? { workflowBundle: { codePath: opts.workflowBundlePath } }
      : { workflowsPath: path.resolve(__dirname, '../workflows') }),
  });

  return {
    worker,
    async run() {
      try {
        await worker.run();
      } finally {
        cpu?.stop();
        await Promise.allSettled([connection.close(), clientConnection.close(), db.end(), mcp.close()]);
        // Spans still buffered go out before the process ends.
        await tracing?.provider.forceFlush().catch(() => undefined);
      }
    },
    shutdown: () => worker.shutdown(),
  };
}
