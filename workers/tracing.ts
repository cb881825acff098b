import path from 'node:path';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry/lib/worker';
import type { WorkerOptions } from '@temporalio/worker';
import type { Tracing } from '../lib/tracing';

/**
 * The workflow interceptor module for tracing (workflows/tracing.ts). A prebuilt workflow bundle must be
 * built with it in `workflowInterceptorModules` to trace workflows; `workflowsPath` bundles add it here.
 */
export const WORKFLOW_TRACING_MODULE = path.resolve(__dirname, '../workflows/tracing');

/**
 * What a worker adds while tracing is on: activity spans continuing the workflow's context (the
 * interceptor reads it from the activity's headers), the workflow interceptors, and the sink through which
 * workflow spans leave the sandbox. Sinks are not called during replay, so replays export nothing.
 */
export function workerTracingOptions(
  tracing: Tracing,
): Pick<WorkerOptions, 'sinks'> & { activityInterceptors: NonNullable<WorkerOptions['interceptors']>['activity'] } {
  return {
    activityInterceptors: [
      (ctx) => ({
        inbound: new OpenTelemetryActivityInboundInterceptor(ctx),
        outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
      }),
    ],
    sinks: { exporter: makeWorkflowExporter(tracing.spanProcessor, tracing.resource) },
  };
}
