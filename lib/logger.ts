import { AsyncLocalStorage } from 'node:async_hooks';
import type { EventEmitter } from 'node:events';
import { asyncLocalStorage as activityContext } from '@temporalio/activity';
import pino, { type Logger } from 'pino';

/**
 * Paths whose values never reach the logs: credentials, configuration secrets and the `secrets` of a
 * task's input (how a prompt marks values secret; see docs/security.md).
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers.authorization',
  '*.headers.authorization',
  'authorization',
  '*.authorization',
  '*.apiKey',
  '*.api_key',
  '*.password',
  '*.secret',
  'apiKey',
  'password',
  'secrets',
  '*.secrets',
  '*.*.secrets',
  '*.*.*.secrets',
  '*.API_KEY',
  '*.OPENAI_API_KEY',
  '*.ANTHROPIC_API_KEY',
  '*.PAYLOAD_ENCRYPTION_KEY',
  '*.PAYLOAD_DECRYPTION_KEYS',
];

/** Environment variables whose values are scrubbed from every log line, wherever they appear. */
const SECRET_ENV = [
  'API_KEY',
  'OPENAI_API_KEY',
  'ANTHROPIC_API_KEY',
  'PAYLOAD_ENCRYPTION_KEY',
  'PAYLOAD_DECRYPTION_KEYS',
];
/** Shorter values would blank out ordinary words; path redaction still hides them in structured fields. */
const MIN_SECRET_LENGTH = 6;
/** A long-lived worker sees many tasks; remember the most recent secrets only. */
const MAX_SECRETS = 10_000;
const CENSOR = '[redacted]';

/** Operators' secrets (environment, database password): scrubbed from every line. */
const secrets = new Set<string>();
/**
 * Values a tenant marked secret, each with the scopes it was marked in. A scope is the organisation of
 * an API request (`org:<id>`) or the workflow an activity runs for (`workflow:<id>`, which belongs to one
 * organisation). They are scrubbed only from lines of the same scope, so one tenant cannot blank words,
 * ids or whole log lines of other organisations by marking them secret.
 */
const tenantSecrets = new Map<string, Set<string>>();
/** Bearer credentials and keys in this project's format, even when nobody registered them. */
const CREDENTIAL_PATTERNS = [/(Bearer\s+)[\x21-\x7e]+/gi, /tao_[A-Za-z0-9_-]{20,}/g];

/** The scope of an API request, set by runInLogScope. */
const requestScope = new AsyncLocalStorage<string>();
/** The workflow of an SDK log line that carries one (workflow and activity loggers add `workflowId`). */
const WORKFLOW_ID_FIELD = /"workflowId":"((?:[^"\\]|\\.){1,300})"/;

/** The scope code runs in now: an API request's organisation, else the workflow of the running activity. */
function currentScope(): string | undefined {
  const request = requestScope.getStore();
  if (request !== undefined) return request;
  const workflowId = activityContext.getStore()?.info.workflowExecution?.workflowId;
  return workflowId === undefined ? undefined : `workflow:${workflowId}`;
}

/** Runs `fn` (and everything it starts) in the log scope of organisation `orgId`: what it marks secret stays scoped to it. */
export function runInLogScope<T>(orgId: string, fn: () => T): T {
  return requestScope.run(`org:${orgId}`, fn);
}

/**
 * Makes `emitter`'s listeners run in the current log scope. pino-http logs a request when its response
 * emits `finish`, outside the handlers' async context; bound, that line belongs to the request's org.
 */
export function bindToLogScope(emitter: EventEmitter): void {
  const scope = requestScope.getStore();
  if (scope === undefined) return;
  const emit = emitter.emit.bind(emitter);
  emitter.emit = (event: string | symbol, ...args: unknown[]) => requestScope.run(scope, () => emit(event, ...args));
}

/**
 * Remembers a value that must never be logged: every later log line of this process has it replaced,
 * in plain and in JSON-escaped form, even inside free text such as an error message. For operators'
 * secrets (configuration); values from tenants go through registerSecretsIn.
 */
export function registerSecret(value: string): void {
  if (value.length < MIN_SECRET_LENGTH || secrets.has(value)) return;
  secrets.add(value);
  if (secrets.size > MAX_SECRETS) secrets.delete(secrets.values().next().value!);
}

/** A tenant's value, scrubbed from the lines of the current scope only (everywhere when code runs in none). */
function registerTenantSecret(value: string): void {
  if (value.length < MIN_SECRET_LENGTH) return;
  const scope = currentScope();
  if (scope === undefined) return registerSecret(value);
  let scopes = tenantSecrets.get(value);
  if (!scopes) {
    scopes = new Set();
    tenantSecrets.set(value, scopes);
    if (tenantSecrets.size > MAX_SECRETS) tenantSecrets.delete(tenantSecrets.keys().next().value!);
  }
  if (scopes.size < 100) scopes.add(scope);
}

/** Registers every string under a `secrets` key of `value` (a task input: `{ "secrets": { "token": "…" } }`), in the current scope. */
export function registerSecretsIn(value: unknown): void {
  const stack: { value: unknown; secret: boolean; depth: number }[] = [{ value, secret: false, depth: 0 }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (typeof item.value === 'string') {
      if (item.secret) registerTenantSecret(item.value);
    } else if (item.value && typeof item.value === 'object' && item.depth < 64) {
      for (const [key, child] of Object.entries(item.value)) {
        stack.push({ value: child, secret: item.secret || key === 'secrets', depth: item.depth + 1 });
      }
    }
  }
}

/** Registers the secrets of a task prompt's JSON input block (the prompt workflows/task.ts builds). */
export function registerPromptSecrets(prompt: string): void {
  if (!prompt.includes('"secrets"')) return;
  const block = /```json\n([\s\S]*?)\n```/.exec(prompt)?.[1];
  try {
    if (block) registerSecretsIn(JSON.parse(block));
  } catch {
    // Not JSON: nothing marked.
  }
}

function replaceSecret(line: string, secret: string): string {
  let out = line;
  if (out.includes(secret)) out = out.replaceAll(secret, CENSOR);
  const escaped = JSON.stringify(secret).slice(1, -1);
  if (escaped !== secret && out.includes(escaped)) out = out.replaceAll(escaped, CENSOR);
  return out;
}

/**
 * Replaces every known secret and credential-looking token in one serialised log line. Tenants' values
 * apply to lines of their own scope: the current request or activity, else the workflow the line names.
 * A line with no scope at all (process start-up, shutdown) is scrubbed of every tenant's values, so
 * nothing marked secret can leak through it.
 */
export function scrubSecrets(line: string): string {
  let out = line;
  for (const pattern of CREDENTIAL_PATTERNS)
    out = out.replace(pattern, (_m, bearer?: string) => `${typeof bearer === 'string' ? bearer : ''}${CENSOR}`);
  for (const secret of secrets) out = replaceSecret(out, secret);
  if (tenantSecrets.size === 0) return out;
  const named = WORKFLOW_ID_FIELD.exec(line)?.[1];
  const scope = currentScope() ?? (named === undefined ? undefined : `workflow:${named}`);
  for (const [secret, scopes] of tenantSecrets) {
    if (scope === undefined || scopes.has(scope)) out = replaceSecret(out, secret);
  }
  return out;
}

function registerEnvSecrets(env: NodeJS.ProcessEnv): void {
  for (const name of SECRET_ENV) {
    for (const part of (env[name] ?? '').split(',')) {
      registerSecret(part.trim());
      // PAYLOAD_DECRYPTION_KEYS entries are `id:key`.
      if (part.includes(':')) registerSecret(part.slice(part.indexOf(':') + 1).trim());
    }
  }
  const dbPassword = env.DATABASE_URL && URL.canParse(env.DATABASE_URL) ? new URL(env.DATABASE_URL).password : '';
  if (dbPassword) registerSecret(decodeURIComponent(dbPassword));
}

/**
 * A JSON logger on stdout (or `destination`) that redacts secret fields by path and scrubs known secret
 * values from every line: API and provider keys from the environment, Bearer credentials, API keys and
 * values registered with registerSecret / registerSecretsIn.
 */
export function createLogger(
  name: string,
  level = process.env.LOG_LEVEL?.toLowerCase() ?? 'info',
  destination: { write(line: string): unknown } = process.stdout,
): Logger {
  registerEnvSecrets(process.env);
  return pino(
    { name, level, redact: { paths: REDACT_PATHS, censor: CENSOR } },
    { write: (line: string) => destination.write(scrubSecrets(line)) },
  );
}
