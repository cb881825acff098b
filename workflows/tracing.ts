/**
 * Workflow interceptors for tracing, registered through the bundle (`interceptors.workflowModules`) only
 * when tracing is configured. Temporal's OpenTelemetry interceptors make the workflow, update, signal and
 * activity-scheduling spans and carry the context to activities in headers; ours remembers the context a
 * goal was submitted in, so the goal's spans join the submitting request's trace (workflows/task-spans.ts).
 *
 * Interceptors issue no commands: histories replay the same with or without them.
 */
import type * as otel from '@opentelemetry/api';
import {
  extractContextFromHeaders,
  headersWithContext,
} from '@temporalio/interceptors-opentelemetry/lib/instrumentation';
import {
  OpenTelemetryInboundInterceptor,
  OpenTelemetryInternalsInterceptor,
  OpenTelemetryOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry/lib/workflow';
import {
  type LocalActivityInput,
  type Next,
  type QueryInput,
  type UpdateInput,
  type WorkflowInboundCallsInterceptor,
  type WorkflowInterceptorsFactory,
  type WorkflowOutboundCallsInterceptor,
  type WorkflowRandomStream,
} from '@temporalio/workflow';
import { submitGoalUpdate } from '../contract/definitions';
import { rememberSubmitContext, spanIdStream } from './task-spans';

/**
 * Temporal's inbound spans without the ones for update validators and queries. Validators and queries do
 * not run during replay: a span made in one would move the span-id stream on in the first run only, so a
 * worker replaying after a crash would give the goal's spans other ids than the ones their children, already
 * exported, point to. Queries would also bury a task's spans: the console polls agent state every second.
 */
class InboundInterceptor extends OpenTelemetryInboundInterceptor {
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

/**
 * Temporal's outbound spans without a `StartActivity` span per local activity. Local activities are the
 * task's record writes and slot bookkeeping, several per step, run on the same worker within the workflow
 * task: a span each, made in the workflow sandbox, cost the busy workflow thread much of what tracing cost
 * and told nothing their `RunActivity` spans (made where they run) do not. Their headers still carry the
 * workflow's context, so those `RunActivity` spans stay children of the task's span.
 */
class OutboundInterceptor extends OpenTelemetryOutboundInterceptor {
  override scheduleLocalActivity(
    input: LocalActivityInput,
    next: Next<WorkflowOutboundCallsInterceptor, 'scheduleLocalActivity'>,
  ): Promise<unknown> {
    return next({ ...input, headers: headersWithContext(input.headers) });
  }
}

/**
 * Runs each method of a tracing interceptor with its span ids drawn from a random stream of their own.
 * The OpenTelemetry SDK draws span ids from `Math.random()`, the workflow's seeded stream that `uuid4()`
 * (message and crew child ids) draws from too: tracing switched on or off for a running workflow would
 * name another child than the one in its history. `next(...)` gives the workflow code back its own stream
 * (checked by test/replay.test.ts). Approval ids come from each task's own stream (workflows/task.ts).
 */
function onOwnRandomStream<T extends object>(interceptor: T, stream: WorkflowRandomStream): T {
  return new Proxy(interceptor, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => stream.with(() => (value as (...a: unknown[]) => unknown).apply(target, args));
    },
  });
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

export const interceptors: WorkflowInterceptorsFactory = () => {
  const spanIds = spanIdStream();
  return {
    inbound: [onOwnRandomStream(new InboundInterceptor(), spanIds), new SubmitContextInterceptor()],
    outbound: [onOwnRandomStream(new OutboundInterceptor(), spanIds)],
    internals: [onOwnRandomStream(new OpenTelemetryInternalsInterceptor(), spanIds)],
  };
};
