/**
 * OpenTelemetry tracing for the API and the workers: off unless OTEL_EXPORTER_OTLP_ENDPOINT (or the
 * traces-only variant) is set. Spans follow the GenAI semantic conventions at GENAI_SEMCONV_VERSION; those
 * conventions are still "development", so the attribute names we emit are listed here once and pinned.
 *
 * Library code: no Temporal imports. The workers add Temporal's interceptors on top (workers/tracing.ts).
 */
import * as otel from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { ClientInterceptors } from '@temporalio/client';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry/lib/client';
import type { Config } from './config';
import { scrubSecrets } from './logger';

/** The GenAI semantic conventions release whose names and attributes these spans follow. */
export const GENAI_SEMCONV_VERSION = '1.37.0';

/** Attribute names of the GenAI conventions (semconv 1.37.0) and of our own spans. */
export const GenAi = {
  operationName: 'gen_ai.operation.name',
  providerName: 'gen_ai.provider.name',
  agentName: 'gen_ai.agent.name',
  agentId: 'gen_ai.agent.id',
  conversationId: 'gen_ai.conversation.id',
  requestModel: 'gen_ai.request.model',
  responseModel: 'gen_ai.response.model',
  inputTokens: 'gen_ai.usage.input_tokens',
  outputTokens: 'gen_ai.usage.output_tokens',
  finishReasons: 'gen_ai.response.finish_reasons',
  toolName: 'gen_ai.tool.name',
  toolCallId: 'gen_ai.tool.call.id',
  toolType: 'gen_ai.tool.type',
  inputMessages: 'gen_ai.input.messages',
  outputMessages: 'gen_ai.output.messages',
  errorType: 'error.type',
} as const;

/** The tracer every span of this project is made with. */
export const TRACER_NAME = 'agent-orchestrator';

export function tracer(): otel.Tracer {
  return otel.trace.getTracer(TRACER_NAME);
}

export function tracingConfigured(config: Config): boolean {
  return Boolean(config.OTEL_EXPORTER_OTLP_ENDPOINT || config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

export interface Tracing {
  provider: NodeTracerProvider;
  /** The processor workflow spans (exported through a sink) are handed to. */
  spanProcessor: SpanProcessor;
  resource: Resource;
  /** Flushes what is buffered and stops exporting. */
  shutdown(): Promise<void>;
}

let installed: Tracing | undefined;

/**
 * Installs the process-wide tracer provider (once): OTLP over HTTP, W3C trace context, and the outgoing
 * fetch calls (the provider SDKs' HTTP requests) as client spans carrying `traceparent`. Undefined when
 * tracing is not configured: every span made through the API is then a no-op.
 */
export function startTracing(config: Config, role: 'api' | 'worker'): Tracing | undefined {
  if (installed) return installed;
  if (!tracingConfigured(config)) return undefined;
  const resource = new Resource({
    'service.name': `${config.OTEL_SERVICE_NAME}-${role}`,
    'service.namespace': config.OTEL_SERVICE_NAME,
  });
  // The exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS and _TIMEOUT itself.
  const spanProcessor = new BatchSpanProcessor(new OTLPTraceExporter());
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
  provider.register();
  registerInstrumentations({
    tracerProvider: provider,
    // The collector's own export requests use node:http, not fetch, so they are never traced themselves.
    instrumentations: [new UndiciInstrumentation()],
  });
  installed = {
    provider,
    spanProcessor,
    resource,
    shutdown: async () => {
      await provider.shutdown();
      installed = undefined;
    },
  };
  return installed;
}

/**
 * Interceptors for a Temporal client while tracing is on: every start, update, signal and query is a span
 * whose context travels to the workflow in the request's headers.
 */
export function clientTracingInterceptors(tracing: Tracing | undefined): ClientInterceptors | undefined {
  return tracing ? { workflow: [new OpenTelemetryWorkflowClientInterceptor()] } : undefined;
}

/** The active trace's id (32 hex digits), if a sampled span is active. */
export function activeTraceId(): string | null {
  const ctx = otel.trace.getActiveSpan()?.spanContext();
  return ctx && otel.isSpanContextValid(ctx) ? ctx.traceId : null;
}

/**
 * Runs `fn` inside an active span that ends with it; a thrown error marks the span failed (with
 * `error.type`) and is rethrown.
 */
export async function inSpan<T>(
  name: string,
  options: otel.SpanOptions,
  fn: (span: otel.Span) => Promise<T>,
): Promise<T> {
  return tracer().startActiveSpan(name, options, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.setStatus({ code: otel.SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      span.setAttribute(GenAi.errorType, errorType(err));
      throw err;
    } finally {
      span.end();
    }
  });
}

function errorType(err: unknown): string {
  if (err && typeof err === 'object') {
    const { type, name } = err as { type?: unknown; name?: unknown };
    if (typeof type === 'string' && type) return type;
    if (typeof name === 'string' && name) return name;
  }
  return '_OTHER';
}

/** Content for a span attribute: scrubbed of every value marked secret and of credential-looking tokens. */
export function spanContent(value: unknown): string {
  return scrubSecrets(typeof value === 'string' ? value : JSON.stringify(value));
}
