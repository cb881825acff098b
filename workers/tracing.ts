import path from 'node:path';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry/lib/worker';
import type { InjectedSink, WorkerOptions } from '@temporalio/worker';
import type { OpenTelemetryWorkflowExporter } from '@temporalio/interceptors-opentelemetry/lib/workflow/definitions';
import type { WorkflowInfo } from '@temporalio/workflow';
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
    sinks: { exporter: workflowSpanSink(tracing) },
  };
}

/**
 * The sink workflow spans leave the sandbox through. The SDK's copies the whole WorkflowInfo onto every span
 * as attributes (memo, search attributes, retry policy, start times…), which each export then encodes again;
 * only what names the run is kept.
 */
function workflowSpanSink(tracing: Tracing): InjectedSink<OpenTelemetryWorkflowExporter> {
  const sdk = makeWorkflowExporter(tracing.spanProcessor, tracing.resource);
  return {
    export: {
      fn: (info, spans) => {
        const { workflowId, runId, workflowType, taskQueue, namespace } = info;
        const naming = { workflowId, runId, workflowType, taskQueue, namespace } as WorkflowInfo;
        return sdk.export.fn(naming, spans);
      },
    },
  };
}
