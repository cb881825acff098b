/**
 * The spans a task adds inside its workflow: `invoke_agent {agent}` around the whole goal and `wait {reason}`
 * around its durable waits (approval, token budget, admission, the agent's active slot).
 *
 * Only the OpenTelemetry API is used here. Without the tracing interceptors (workflows/tracing.ts) no
 * tracer provider is registered in the workflow and every span is a no-op; with them, spans are exported
 * through a sink, which is not called during replay, so a replayed or retried workflow task exports no
 * span twice. Span ids come from a seeded random stream of their own (spanIdStream): a run replayed on
 * another worker after a crash rebuilds the same ids and the spans it exports join the trace the first
 * worker began, and the workflow's own random numbers (uuid4()) are the same with tracing on or off.
 */
import * as otel from '@opentelemetry/api';
import { getRandomStream, workflowRandom, type WorkflowRandomStream } from '@temporalio/workflow';

/** The tracer name lib/tracing.ts uses too. */
const TRACER_NAME = 'agent-orchestrator';

/**
 * The trace context each goal was submitted in (the API request's), by task id. Filled by the tracing
 * interceptor from the submit update's headers, which history keeps, so a replay finds it again. Module
 * state is per workflow run: the worker loads workflow modules once per run.
 */
const submitContexts = new Map<string, otel.Context>();

export function rememberSubmitContext(taskId: string, context: otel.Context): void {
  submitContexts.set(taskId, context);
}

/** The random stream every workflow span id is drawn from; never the workflow's own (Math.random, uuid4). */
export function spanIdStream(): WorkflowRandomStream {
  return getRandomStream('opentelemetry-span-ids');
}

function tracer(): otel.Tracer {
  return otel.trace.getTracer(TRACER_NAME);
}

async function inSpan<T>(
  name: string,
  attributes: otel.Attributes,
  parent: otel.Context,
  fn: () => Promise<T>,
): Promise<T> {
  // The span's ids come from the span stream; the code inside runs on the workflow's own stream again.
  return spanIdStream().with(() =>
    tracer().startActiveSpan(name, { attributes }, parent, (span) =>
      workflowRandom.with(async () => {
        try {
          return await fn();
        } catch (err) {
          span.setStatus({
            code: otel.SpanStatusCode.ERROR,
            message: err instanceof Error ? err.message : String(err),
          });
          throw err;
        } finally {
          span.end();
        }
      }),
    ),
  );
}

/**
 * Runs a goal inside its `invoke_agent {agent}` span, a child of the request that submitted it when that is
 * known (the goal was submitted to this run), else of the workflow's own span.
 */
export function inTaskSpan<T>(
  task: { taskId: string; agentId: string; agentName: string },
  fn: () => Promise<T>,
): Promise<T> {
  const parent = submitContexts.get(task.taskId) ?? otel.context.active();
  submitContexts.delete(task.taskId);
  return inSpan(
    `invoke_agent ${task.agentName}`,
    {
      'gen_ai.operation.name': 'invoke_agent',
      'gen_ai.agent.name': task.agentName,
      'gen_ai.agent.id': task.agentId,
      'gen_ai.conversation.id': task.taskId,
    },
    parent,
    fn,
  );
}

/** What a task waits for: approval, token budget, a step slot or resource bucket, the agent's active slot. */
export type WaitReason =
  'approval' | 'token_budget' | 'step_slot' | 'resource' | 'provider_backoff' | 'active_slot' | 'paused' | 'response';

/** A durable wait of the current task as a `wait {reason}` span, so a slow task shows where its time went. */
export function inWaitSpan<T>(reason: WaitReason, fn: () => Promise<T>): Promise<T> {
  return inSpan(`wait ${reason}`, { 'agents.wait.reason': reason }, otel.context.active(), fn);
}

/** The trace id of the active span (the running goal's `invoke_agent`); null while tracing is off. */
export function activeTraceId(): string | null {
  const span = otel.trace.getActiveSpan()?.spanContext();
  return span && otel.isSpanContextValid(span) ? span.traceId : null;
}
