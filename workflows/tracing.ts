/**
 * Workflow interceptors for tracing, registered through the bundle (`interceptors.workflowModules`) only
 * when tracing is configured. Temporal's OpenTelemetry interceptors make the workflow, update, signal and
 * activity-scheduling spans and carry the context to activities in headers; ours remembers the context a
 * goal was submitted in, so the goal's spans join the submitting request's trace (workflows/task-spans.ts).
 *
 * Interceptors issue no commands: histories replay the same with or without them.
 */
import type * as otel from '@opentelemetry/api';
import { extractContextFromHeaders } from '@temporalio/interceptors-opentelemetry/lib/instrumentation';
import {
  OpenTelemetryInboundInterceptor,
  OpenTelemetryInternalsInterceptor,
  OpenTelemetryOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry/lib/workflow';
import type {
  Next,
  QueryInput,
  UpdateInput,
  WorkflowInboundCallsInterceptor,
  WorkflowInterceptorsFactory,
} from '@temporalio/workflow';
import { submitGoalUpdate } from '../contract/definitions';
import { rememberSubmitContext } from './task-spans';

/**
 * Temporal's inbound spans without the ones for update validators and queries. Span ids come from the
 * workflow's seeded random, which `uuid4()` draws from too; validators and queries never run during replay,
 * so a span made in one would shift every later id and approval request id between a run and its replay
 * (found by test/traces.test.ts: a worker killed mid-task, and the replaying worker knew another approval id).
 */
class ReplaySafeInboundInterceptor extends OpenTelemetryInboundInterceptor {
  override validateUpdate(input: UpdateInput, next: Next<WorkflowInboundCallsInterceptor, 'validateUpdate'>): void {
    return next(input);
  }

  override handleQuery(
    input: QueryInput,
    next: Next<WorkflowInboundCallsInterceptor, 'handleQuery'>,
  ): Promise<unknown> {
    return next(input);
  }
}

/** Remembers the trace context of each goal submission, keyed by its task id. */
class SubmitContextInterceptor implements WorkflowInboundCallsInterceptor {
  handleUpdate(input: UpdateInput, next: Next<WorkflowInboundCallsInterceptor, 'handleUpdate'>): Promise<unknown> {
    if (input.name === submitGoalUpdate.name) {
      const taskId = (input.args[0] as { taskId?: unknown } | undefined)?.taskId;
      const context: otel.Context | undefined = extractContextFromHeaders(input.headers);
      if (typeof taskId === 'string' && context) rememberSubmitContext(taskId, context);
    }
    return next(input);
  }
}

export const interceptors: WorkflowInterceptorsFactory = () => ({
  inbound: [new ReplaySafeInboundInterceptor(), new SubmitContextInterceptor()],
  outbound: [new OpenTelemetryOutboundInterceptor()],
  internals: [new OpenTelemetryInternalsInterceptor()],
});
