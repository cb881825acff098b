import net from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import { DEFAULT_TASK_QUEUE, PROVIDER_NAMES, type AgentSettings, type ProviderName } from '../contract/definitions';

/** Repository root, for default data paths. */
export const ROOT_DIR = path.resolve(__dirname, '..');

const intFromEnv = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);
const list = z
  .string()
  .default('')
  .transform((v) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

const ResourceBucketsSchema = z.record(
  z.string().regex(/^[\w.:-]{1,100}$/),
  z.object({ capacity: z.number().positive(), refillPerSecond: z.number().positive() }).strict(),
);

/** A JSON-valued variable (default `{}`) parsed with `schema`; an invalid value names an example of a valid one. */
function jsonFromEnv<S extends z.ZodType>(schema: S, example: string) {
  return z
    .string()
    .default('{}')
    .transform((v, ctx): z.output<S> => {
      try {
        return schema.parse(JSON.parse(v));
      } catch (err) {
        ctx.addIssue({
          code: 'custom',
          message: `must be JSON like ${example} (${(err as Error).message.split('\n')[0]})`,
        });
        return z.NEVER;
      }
    });
}

/** One operator-defined stdio MCP server: tenants pick it by name and cannot change what it runs. */
const McpStdioServerSchema = z
  .object({
    command: z.string().min(1),
    args: z.array(z.string()).optional(),
    env: z.record(z.string(), z.string()).optional(),
    cwd: z.string().min(1).optional(),
    /** Tools without side effects: their calls may be repeated after an unknown outcome (no at-most-once ledger). */
    readOnlyTools: z.array(z.string().min(1)).optional(),
  })
  .strict();
export type McpStdioServer = z.infer<typeof McpStdioServerSchema>;
const McpStdioServersSchema = z.record(
  z.string().regex(/^[a-zA-Z0-9-]{1,32}$/, 'use 1-32 letters, digits or "-"'),
  McpStdioServerSchema,
);

/** `host`, `host:port`, `[v6]:port` or a CIDR (`10.0.0.0/8`, `fd00::/8`). */
const outboundEntry = (entry: string) => {
  const slash = entry.indexOf('/');
  if (slash < 0) return /^(\[[0-9a-fA-F:.]+\]|[^\s/:[\]]+)(:\d{1,5})?$/.test(entry);
  const prefix = Number(entry.slice(slash + 1));
  const family = net.isIP(entry.slice(0, slash));
  return family !== 0 && Number.isInteger(prefix) && prefix >= 0 && prefix <= (family === 4 ? 32 : 128);
};

const EnvSchema = z.object({
  NODE_ENV: z.string().default('development'),
  /** Any case: `INFO` (as other services write it) is `info`. */
  LOG_LEVEL: z.preprocess(
    (v) => (typeof v === 'string' ? v.toLowerCase() : v),
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ),
  PORT: intFromEnv(3300),
  /** Interface the API (and its /codec and /metrics) listens on; loopback unless a deployment opens it (docker-compose: 0.0.0.0). */
  API_HOST: z.string().default('127.0.0.1'),
  DATA_DIR: z.string().default(path.join(ROOT_DIR, '.data')),

  TEMPORAL_ADDRESS: z.string().default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().default('default'),
  TEMPORAL_TASK_QUEUE: z.string().default(DEFAULT_TASK_QUEUE),
  TEMPORAL_UI_URL: z.string().default('http://127.0.0.1:8233'),
  /** TLS to the Temporal frontend (lib/temporal-connection.ts); implied by the other TLS settings and by an API key. */
  TEMPORAL_TLS: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional(),
  /** mTLS client certificate and key (PEM files), e.g. for a self-hosted cluster or Temporal Cloud with mTLS. */
  TEMPORAL_TLS_CERT_PATH: z.string().optional(),
  TEMPORAL_TLS_KEY_PATH: z.string().optional(),
  /** CA bundle (PEM) that signed the server's certificate, when not a public CA. */
  TEMPORAL_TLS_CA_PATH: z.string().optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().optional(),
  /** Temporal Cloud API key, sent as a bearer token (sensitive). */
  TEMPORAL_API_KEY: z.string().optional(),
  /**
   * Threads a worker runs workflow code on (the SDK's workflowThreadPoolSize, whose own default is 1). All
   * workflow code runs there; with tracing on, one thread is busy enough to cap a worker's tasks per second.
   */
  WORKFLOW_THREADS: z.coerce.number().int().min(1).max(16).default(2),
  /**
   * Workflow tasks a worker runs at once (the SDK's maxConcurrentWorkflowTaskExecutions, default 40). Tasks
   * of one thread share it in turns, so when many evicted agents must replay at once each replay takes as
   * long as all of them together (AGENT_WORKFLOW_TASK_TIMEOUT_SECONDS must cover that). Fewer slots shorten
   * such a burst but cost throughput: an agent's workflow task keeps its slot while its local activities run.
   */
  WORKER_MAX_WORKFLOW_TASKS: z.coerce.number().int().min(2).max(1000).default(40),
  /**
   * Workflows a worker keeps in its cache (the SDK's maxCachedWorkflows). Unset: two per MiB of heap (an idle
   * agent measured about 226 KiB). An agent pushed out replays its whole history before its next task.
   */
  WORKER_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(2).max(1_000_000).optional(),
  /** Port of the worker's own Prometheus /metrics (step durations, provider errors, circuits, SDK metrics); unset: none. */
  WORKER_METRICS_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  /** host:port where the Temporal SDK exports its worker metrics (appended to the worker's /metrics); unset: not exported. */
  TEMPORAL_SDK_METRICS_ADDRESS: z
    .string()
    .regex(/^[^\s:]+:\d+$/, 'use host:port, e.g. 127.0.0.1:9465')
    .optional(),

  /**
   * OTLP collector base URL (e.g. http://127.0.0.1:4318); unset: no traces at all. The exporter also reads
   * the other standard OTEL_EXPORTER_OTLP_* variables (headers, timeout, a traces-only endpoint).
   */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.string().url().optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.string().url().optional(),
  /** `service.name` of the spans; each process appends its role (`-api`, `-worker`). */
  OTEL_SERVICE_NAME: z.string().default('agent-orchestrator'),
  /** Records prompts and completions on `chat` spans (secret-marked values scrubbed). Off by default. */
  OTEL_GENAI_CAPTURE_CONTENT: z
    .enum(['true', 'false', '1', '0'])
    .default('false')
    .transform((v) => v === 'true' || v === '1'),
  /**
   * Where people open a task's trace: a URL with `{traceId}` where the id goes, e.g.
   * http://127.0.0.1:16686/trace/{traceId} for Jaeger's UI. GET /api/v1/tasks/:id then returns `traceUrl`
   * and the console links to it.
   */
  TRACES_UI_URL: z
    .string()
    .url()
    .refine(
      (v) => v.includes('{traceId}'),
      'put {traceId} where the trace id goes, e.g. http://127.0.0.1:16686/trace/{traceId}',
    )
    .optional(),

  DATABASE_URL: z.string().optional(),
  EMBEDDED_PG_PORT: intFromEnv(5433, 1),

  AI_PROVIDER: z.enum(PROVIDER_NAMES).optional(),
  OPENAI_API_KEY: z.string().optional(),
  OPENAI_BASE_URL: z.string().optional(),
  OPENAI_MODEL: z.string().default('gpt-4o-mini'),
  ANTHROPIC_API_KEY: z.string().optional(),
  ANTHROPIC_BASE_URL: z.string().optional(),
  ANTHROPIC_MODEL: z.string().default('claude-sonnet-5-5'),
  OLLAMA_BASE_URL: z.string().default('http://127.0.0.1:11434'),
  OLLAMA_MODEL: z.string().default('llama3.1'),
  /** Key for OLLAMA_BASE_URL when it wants one (a proxy, vLLM with --api-key); never OPENAI_API_KEY. */
  OLLAMA_API_KEY: z.string().optional(),
  LLM_TIMEOUT_SECONDS: intFromEnv(60, 1),
  /** Consecutive availability failures after which a provider's circuit opens (per worker process). */
  CIRCUIT_FAILURE_THRESHOLD: intFromEnv(5, 1),
  /** How long an open circuit skips its provider before one trial call. */
  CIRCUIT_RECOVERY_SECONDS: intFromEnv(30, 1),

  MAX_AGENTS: intFromEnv(100, 1),
  MAX_STEPS: intFromEnv(10, 1),
  MAX_RETRIES: intFromEnv(3, 0),
  AGENT_TIMEOUT_SECONDS: intFromEnv(300, 1),
  MAX_DELEGATION_DEPTH: intFromEnv(5, 0),
  /** Active reminders per agent, so an agent that schedules its own goals cannot flood itself. */
  MAX_REMINDERS_PER_AGENT: intFromEnv(20, 1),
  APPROVAL_TIMEOUT_HOURS: z.coerce.number().positive().default(24),
  /**
   * How long an approve/reject request keeps resending a decision for a request that is pending in its
   * row but not yet waited on by its task (a worker crashed right after opening it; the task re-runs that
   * step elsewhere). The default covers a workflow task's timeout and a worker taking over.
   */
  APPROVAL_DECISION_WAIT_SECONDS: intFromEnv(30, 0),
  HTTP_ALLOWED_HOSTS: list,
  /** Hosts of HTTP_ALLOWED_HOSTS that may resolve to loopback, private or link-local addresses (refused otherwise). */
  HTTP_ALLOW_PRIVATE_HOSTS: list,
  /**
   * Hosts (`host`, `host:port`) or CIDRs that outbound connections made for tenants (http tools, MCP HTTP
   * servers, webhooks) may reach although they are or resolve to loopback, private, link-local or metadata
   * addresses; everything else non-public is refused. HTTP_ALLOW_PRIVATE_HOSTS is an older name merged in.
   */
  OUTBOUND_ALLOW_HOSTS: list.refine((entries) => entries.every(outboundEntry), {
    message: 'use comma-separated host, host:port or CIDR entries, e.g. 127.0.0.1:8080,10.1.0.0/16',
  }),
  /** The stdio MCP servers tenants may use, by name: `{"files": {"command": "...", "args": [], "env": {}, "cwd": "...", "readOnlyTools": []}}`. */
  MCP_STDIO_SERVERS: jsonFromEnv(
    McpStdioServersSchema,
    '{"files":{"command":"/usr/bin/mcp-files","args":["--root","/srv"]}}',
  ),
  /** An MCP connection unused this long is closed (per worker). */
  MCP_IDLE_SECONDS: intFromEnv(300, 1),
  /** Open MCP connections per worker; beyond it the least recently used idle one is closed. */
  MCP_MAX_CONNECTIONS: intFromEnv(32, 1),
  DEFAULT_ORG_ID: z.string().default('default'),
  /** Crews: the most members one crew may have. */
  CREW_MAX_MEMBERS: intFromEnv(5, 1),
  /** Crews: the confidence-weighted share a consensus decision needs to count as reached. */
  CREW_CONSENSUS_THRESHOLD: z.coerce.number().min(0).max(1).default(0.6),
  /** A key accepted for DEFAULT_ORG_ID without a database row (`npm start` generates one when unset). */
  API_KEY: z.string().min(16, 'use at least 16 characters (npm run keys -- generate prints a random one)').optional(),
  /** Requests per minute per API key; beyond it the API answers 429 with Retry-After. */
  API_RATE_LIMIT_PER_MINUTE: intFromEnv(600, 1),
  /** Largest JSON request body. */
  API_BODY_LIMIT_KB: intFromEnv(256, 1),
  /** A JSON request that has not answered after this long gets 503 (chat turns are bounded by LLM_TIMEOUT_SECONDS). */
  API_REQUEST_TIMEOUT_SECONDS: intFromEnv(30, 1),
  /** Meta supervisor: POST /api/v1/meta designs and runs a team of new agents for one objective. Off: 404. */
  META_AGENT_ENABLED: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
  /** Heartbeat timeout of LLM and tool activities: how fast a crashed worker's step is retried elsewhere. */
  ACTIVITY_HEARTBEAT_SECONDS: intFromEnv(10, 1),
  /**
   * Agent workflows continue-as-new once their history reaches this many events. It bounds what an agent pushed
   * out of a worker's cache replays before its next task: the workflow task slots times this many events must
   * replay well within AGENT_WORKFLOW_TASK_TIMEOUT_SECONDS (40 × 250 events at about 1 ms each: 10 s of 30;
   * with 2,000, 80 s). Workers with more agents than they cache should set 250.
   */
  AGENT_HISTORY_LIMIT: intFromEnv(2000, 100),
  /**
   * An agent with nothing running or queued continues as new once its history passes this many events (at most
   * AGENT_HISTORY_LIMIT), so an idle agent pushed out of a worker's cache replays a short history when its next
   * task, message or decision arrives, not everything it did since it last continued.
   */
  AGENT_IDLE_HISTORY_LIMIT: intFromEnv(100, 20),
  /**
   * Workflow task timeout of agents started from now on (Temporal's default is 10 s; its maximum 120 s). An
   * evicted agent replays its whole history inside one workflow task, and replays in flight share the
   * workflow threads: past the timeout each of them is lost and starts over. The price of a longer timeout:
   * a workflow task a crashed worker held is retried elsewhere only after it.
   */
  AGENT_WORKFLOW_TASK_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(120).default(30),
  /**
   * Fault injection for crash tests: a worker sleeps this long after a side effect committed and before
   * its activity reports completion, the window in which a crash forces a retry of an applied effect.
   */
  FAULT_DELAY_AFTER_SIDE_EFFECT_MS: intFromEnv(0),

  /** Tokens all agents together may use per budget window (reserved before each LLM call, settled after). */
  AGENTS_GLOBAL_TOKEN_BUDGET_PER_MINUTE: intFromEnv(100_000, 1),
  /** Optional budget per organisation per window; 0 means none beyond the global one. */
  ORG_TOKEN_BUDGET_PER_MINUTE: intFromEnv(0),
  /** Length of the sliding budget window. 60 makes the budgets "per minute"; tests shorten it. */
  TOKEN_BUDGET_WINDOW_SECONDS: intFromEnv(60, 1),
  /** Output tokens reserved per LLM call on top of the prompt's estimate (settled to the real usage after). */
  TOKEN_RESERVATION_OUTPUT_TOKENS: intFromEnv(512, 1),
  /**
   * Agents working on a task at once (running steps), across every worker; the rest wait by priority. An
   * agent waiting for approval, paused or waiting for budget gives its slot back.
   */
  AGENTS_MAX_ACTIVE: intFromEnv(10, 1),
  /** An agent waiting for an active slot is woken when one is released; it asks again by itself after this long. */
  AGENT_SLOT_RECHECK_SECONDS: intFromEnv(60, 1),
  /**
   * A step waiting for a step slot (or for budget held by calls in flight) is woken when one frees; its
   * fallback timer doubles from a few seconds up to this long.
   */
  ADMISSION_RECHECK_MAX_SECONDS: intFromEnv(300, 1),
  /** Goals one agent may have queued; a submission beyond it is refused with 429. */
  MAX_QUEUED_GOALS_PER_AGENT: intFromEnv(1000, 1),
  /** LLM and tool steps in flight at once across every worker, highest priority first. */
  AGENTS_MAX_CONCURRENT_STEPS: intFromEnv(5, 1),
  /** Host CPU % above which a worker starts no new activity until load drops (100 turns the gate off). */
  AGENTS_CPU_THRESHOLD: z.coerce.number().min(1).max(100).default(85),
  /** Named token buckets for shared resources: `{"name": {"capacity": 10, "refillPerSecond": 2}}`. */
  RESOURCE_BUCKETS: jsonFromEnv(ResourceBucketsSchema, '{"weather-api":{"capacity":10,"refillPerSecond":2}}'),
  /** Score queued tasks 0-1000 with the agent's model; off keeps the static 1-10 priority. */
  PRIORITY_SCORING: z.enum(['on', 'off']).default('on'),
  /** How long a score is reused for tasks with the same key concepts. */
  PRIORITY_CACHE_MINUTES: intFromEnv(30, 0),
  /** A scoring call slower than this falls back to the static priority. */
  PRIORITY_SCORING_TIMEOUT_SECONDS: intFromEnv(10, 1),
  /** Sub-tasks one task may create (create_task). */
  MAX_SUBTASKS_PER_TASK: intFromEnv(10, 0),
  /** Queued and running tasks one organisation may have; creation beyond it is refused. */
  MAX_PENDING_TASKS_PER_ORG: intFromEnv(1000, 1),

  /** Base64 of 32 bytes: encrypts every payload (AES-256-GCM) before it reaches Temporal. Unset: no encryption. */
  PAYLOAD_ENCRYPTION_KEY: z
    .string()
    .refine((v) => /^[A-Za-z0-9+/_-]+={0,2}$/.test(v) && Buffer.from(v, 'base64').length === 32, {
      message: `must be base64 of 32 bytes; generate one with: node -e "console.log(require('crypto').randomBytes(32).toString('base64'))"`,
    })
    .optional(),
  /** Written into each encrypted payload, so the key can be rotated. */
  PAYLOAD_ENCRYPTION_KEY_ID: z
    .string()
    .regex(/^[\w.-]{1,100}$/, "use 1-100 letters, digits, '_', '.' or '-'")
    .default('default'),
  /** Retired keys, decrypt only: `keyId:base64key,…`. Sensitive, like PAYLOAD_ENCRYPTION_KEY. */
  PAYLOAD_DECRYPTION_KEYS: list,
  /** Browser origins allowed to call the codec server (/codec): the Temporal Web UI. `*` allows any. */
  CODEC_CORS_ORIGINS: z
    .string()
    .default('http://127.0.0.1:8233,http://localhost:8233')
    .transform((v) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  /**
   * Organisation whose keys may decode every organisation's payloads at /codec and read /metrics
   * (the operators'); unset: DEFAULT_ORG_ID. Other organisations' keys decode only their own payloads.
   */
  ADMIN_ORG_ID: z.string().optional(),
  /**
   * Lets /codec answer requests without a key, as ADMIN_ORG_ID, for a Web UI that cannot send one (the dev
   * server's). Anyone who reaches the API then decrypts every payload: refused unless API_HOST is loopback.
   */
  CODEC_ALLOW_UNAUTHENTICATED: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
  /** A bearer token for /metrics only (Prometheus' `authorization` setting); keys of ADMIN_ORG_ID work too. */
  METRICS_TOKEN: z.string().min(16, 'use at least 16 characters').optional(),
  /** /metrics gauges are read from Postgres at most this often; scrapes in between get the cached text. */
  METRICS_CACHE_SECONDS: intFromEnv(15),
});

export type Config = Readonly<z.infer<typeof EnvSchema>> & { readonly aiProvider: ProviderName };

/** Parses the environment once. Throws one readable error listing every invalid variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable (`OPENAI_API_KEY=` in a .env file) means unset, not an empty value.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const parsed = EnvSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n');
    throw new Error(`Invalid configuration:\n${problems}`);
  }
  const c = parsed.data;
  if (c.CODEC_ALLOW_UNAUTHENTICATED && !isLoopbackHost(c.API_HOST)) {
    throw new Error(
      `Invalid configuration:\n  CODEC_ALLOW_UNAUTHENTICATED: only with a loopback API_HOST (is "${c.API_HOST}"): anyone reaching /codec could decrypt every payload`,
    );
  }
  // With no key and no explicit choice the offline provider is the default, so nothing needs network.
  const aiProvider: ProviderName =
    c.AI_PROVIDER ?? (c.OPENAI_API_KEY ? 'openai' : c.ANTHROPIC_API_KEY ? 'anthropic' : 'offline');
  return Object.freeze({ ...c, aiProvider });
}

/** 127.0.0.0/8, ::1 and localhost: interfaces other machines cannot reach. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The organisation of operators (ADMIN_ORG_ID, else DEFAULT_ORG_ID). */
export function adminOrgId(c: Pick<Config, 'ADMIN_ORG_ID' | 'DEFAULT_ORG_ID'>): string {
  return c.ADMIN_ORG_ID ?? c.DEFAULT_ORG_ID;
}

let cached: Config | undefined;
/** The process-wide configuration, parsed on first use. */
export function config(): Config {
  cached ??= loadConfig();
  return cached;
}

/** The limits every new agent workflow is started with (workflows receive them as arguments). */
export function agentSettings(c: Config): AgentSettings {
  return {
    maxSteps: c.MAX_STEPS,
    taskTimeoutSeconds: c.AGENT_TIMEOUT_SECONDS,
    maxRetries: c.MAX_RETRIES,
    heartbeatTimeoutSeconds: c.ACTIVITY_HEARTBEAT_SECONDS,
    llmTimeoutSeconds: c.LLM_TIMEOUT_SECONDS,
    maxDelegationDepth: c.MAX_DELEGATION_DEPTH,
    historyLimit: c.AGENT_HISTORY_LIMIT,
    idleHistoryLimit: Math.min(c.AGENT_IDLE_HISTORY_LIMIT, c.AGENT_HISTORY_LIMIT),
    workflowTaskTimeoutSeconds: c.AGENT_WORKFLOW_TASK_TIMEOUT_SECONDS,
    slotRecheckSeconds: c.AGENT_SLOT_RECHECK_SECONDS,
    admissionRecheckMaxSeconds: c.ADMISSION_RECHECK_MAX_SECONDS,
    maxQueuedGoals: c.MAX_QUEUED_GOALS_PER_AGENT,
    approvalTimeoutHours: c.APPROVAL_TIMEOUT_HOURS,
    priorityScoring: c.PRIORITY_SCORING === 'on',
    priorityScoringTimeoutSeconds: c.PRIORITY_SCORING_TIMEOUT_SECONDS,
    ...(c.TRACES_UI_URL ? { tracesUiUrl: c.TRACES_UI_URL } : {}),
  };
}

/** DATABASE_URL, or the embedded server that `npm start` / `npm run postgres` runs on EMBEDDED_PG_PORT. */
export function databaseUrl(c: Config): string {
  return c.DATABASE_URL ?? `postgres://postgres:postgres@127.0.0.1:${c.EMBEDDED_PG_PORT}/agents`;
}
