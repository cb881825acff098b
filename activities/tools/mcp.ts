/**
 * Tools from MCP servers (stdio and Streamable HTTP), through `@modelcontextprotocol/sdk`.
 *
 * One `McpToolSource` per worker process keeps one connected `Client` per server config, keyed by a
 * stable hash of the config. Connections are made lazily on first use, with a timeout, and are made
 * again when the previous one closed (stdio child died, HTTP session gone) or a call failed with a
 * transport error. Tool names exposed to models are qualified: `mcp__<server>__<tool>`.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import type { ToolSpec } from '../llm/types';

// ---------------------------------------------------------------------------------------------
// Config

const SERVER_NAME = /^[a-zA-Z0-9_-]{1,32}$/;

/** Server names must keep `mcp__<server>__<tool>` unambiguous: no `__` inside, no trailing `_`. */
const ServerNameSchema = z
  .string()
  .regex(SERVER_NAME, 'server name must match /^[a-zA-Z0-9_-]{1,32}$/')
  .refine((name) => !name.includes('__') && !name.endsWith('_'), {
    message: 'server name must not contain "__" nor end with "_" (it is embedded in mcp__<server>__<tool>)',
  });

export const McpServerConfigSchema = z.discriminatedUnion('transport', [
  z
    .object({
      name: ServerNameSchema,
      transport: z.literal('stdio'),
      command: z.string().min(1),
      args: z.array(z.string()).optional(),
      env: z.record(z.string(), z.string()).optional(),
      cwd: z.string().min(1).optional(),
    })
    .strict(),
  z
    .object({
      name: ServerNameSchema,
      transport: z.literal('http'),
      url: z.url({ protocol: /^https?$/ }),
      headers: z.record(z.string(), z.string()).optional(),
    })
    .strict(),
]);

export type McpServerConfig =
  | { name: string; transport: 'stdio'; command: string; args?: string[]; env?: Record<string, string>; cwd?: string }
  | { name: string; transport: 'http'; url: string; headers?: Record<string, string> };

// Compile-time check that the schema and the hand-written type agree both ways.
type _SchemaMatchesType = [z.infer<typeof McpServerConfigSchema>] extends [McpServerConfig]
  ? [McpServerConfig] extends [z.infer<typeof McpServerConfigSchema>]
    ? true
    : never
  : never;
const _schemaMatchesType: _SchemaMatchesType = true;
void _schemaMatchesType;

// ---------------------------------------------------------------------------------------------
// Names

const PREFIX = 'mcp__';

export function mcpToolName(server: string, tool: string): string {
  if (!ServerNameSchema.safeParse(server).success) throw new Error(`invalid MCP server name: ${JSON.stringify(server)}`);
  if (tool.length === 0) throw new Error('MCP tool name must not be empty');
  return `${PREFIX}${server}__${tool}`;
}

export function parseMcpToolName(name: string): { server: string; tool: string } | null {
  if (!name.startsWith(PREFIX)) return null;
  const rest = name.slice(PREFIX.length);
  // Server names never contain "__" nor end with "_", so the first "__" is the separator.
  const sep = rest.indexOf('__');
  if (sep <= 0) return null;
  const server = rest.slice(0, sep);
  const tool = rest.slice(sep + 2);
  if (tool.length === 0 || !ServerNameSchema.safeParse(server).success) return null;
  return { server, tool };
}

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * The MCP server could not be reached or the connection broke (not a tool-level failure).
 * `retryable` is true: the activity may retry, and the next use reconnects.
 */
export class McpConnectionError extends Error {
  readonly retryable = true;
  constructor(
    readonly server: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'McpConnectionError';
  }
}

// ---------------------------------------------------------------------------------------------
// Tool source

export interface McpCallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface McpCallResult {
  content: string;
  isError: boolean;
}

export interface McpToolSourceOptions {
  /** Timeout for spawning/connecting plus the initialize handshake. Default 10 s. */
  connectTimeoutMs?: number;
  /** Default per-request timeout (listTools, callTool without timeoutMs). Default 60 s. */
  requestTimeoutMs?: number;
  /** Client identity sent in initialize. */
  clientInfo?: { name: string; version: string };
}

interface Connection {
  key: string;
  server: string;
  client: Client;
  transport: StdioClientTransport | StreamableHTTPClientTransport;
  closed: boolean;
  tools?: Promise<ToolSpec[]>;
  /** Last stderr output of a stdio child (kept for error messages). */
  stderrTail: () => string;
}

const STDERR_TAIL_BYTES = 4096;

export class McpToolSource {
  private readonly connections = new Map<string, Promise<Connection>>();
  private readonly connectTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly clientInfo: { name: string; version: string };
  private closing = false;

  constructor(options: McpToolSourceOptions = {}) {
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
    this.clientInfo = options.clientInfo ?? { name: 'temporal-agent-orchestrator', version: '0.1.0' };
  }

  /** Tool specs of one server, names qualified with `mcpToolName`. Cached per connection. */
  async listTools(server: McpServerConfig): Promise<ToolSpec[]> {
    return this.withConnection(server, true, (conn) => {
      if (!conn.tools) {
        const tools = this.fetchTools(conn);
        conn.tools = tools;
        // Never cache a failure.
        tools.catch(() => {
          if (conn.tools === tools) conn.tools = undefined;
        });
      }
      return conn.tools;
    });
  }

  /** Calls one tool (unqualified name). Tool-level and protocol-level failures come back as `isError`. */
  async callTool(
    server: McpServerConfig,
    tool: string,
    args: Record<string, unknown>,
    opts: McpCallOptions = {},
  ): Promise<McpCallResult> {
    opts.signal?.throwIfAborted();
    return this.withConnection(server, false, async (conn) => {
      try {
        const result = await conn.client.callTool({ name: tool, arguments: args }, undefined, {
          signal: opts.signal,
          timeout: opts.timeoutMs ?? this.requestTimeoutMs,
        });
        return { content: renderContent(result), isError: result.isError === true };
      } catch (error) {
        // Errors the server answered with (unknown tool, invalid params, ...): the model reads them.
        if (error instanceof McpError && !isTransportError(error) && error.code !== ErrorCode.RequestTimeout) {
          return { content: error.message, isError: true };
        }
        throw error;
      }
    });
  }

  /** Closes every client; stdio children are terminated. The source can still be used afterwards. */
  async close(): Promise<void> {
    this.closing = true;
    try {
      const pending = [...this.connections.values()];
      this.connections.clear();
      await Promise.all(
        pending.map(async (p) => {
          const conn = await p.catch(() => undefined);
          if (conn) await this.disposeConnection(conn, true);
        }),
      );
    } finally {
      this.closing = false;
    }
  }

  /** Number of live (or connecting) clients; for diagnostics and tests. */
  get size(): number {
    return this.connections.size;
  }

  /** The pid of a server's stdio child, if connected; for diagnostics and tests. */
  async stdioPid(server: McpServerConfig): Promise<number | null> {
    const p = this.connections.get(configKey(parseConfig(server)));
    const conn = p ? await p.catch(() => undefined) : undefined;
    return conn && conn.transport instanceof StdioClientTransport ? conn.transport.pid : null;
  }

  // -------------------------------------------------------------------------------------------

  private async fetchTools(conn: Connection): Promise<ToolSpec[]> {
    const specs: ToolSpec[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 100; page++) {
      const res = await conn.client.listTools(cursor ? { cursor } : undefined, { timeout: this.requestTimeoutMs });
      for (const tool of res.tools) {
        const { $schema: _ignored, ...parameters } = tool.inputSchema as Record<string, unknown>;
        specs.push({
          name: mcpToolName(conn.server, tool.name),
          description: tool.description ?? tool.title ?? tool.annotations?.title ?? '',
          parameters,
        });
      }
      cursor = res.nextCursor;
      if (!cursor) break;
    }
    return specs;
  }

  /**
   * Runs `fn` on a live connection. On a transport error the connection is dropped (the next use
   * reconnects); the call is retried once on a fresh connection when it certainly did not reach the
   * server, or when `idempotent`.
   */
  private async withConnection<T>(
    server: McpServerConfig,
    idempotent: boolean,
    fn: (conn: Connection) => Promise<T>,
  ): Promise<T> {
    const config = parseConfig(server);
    for (let attempt = 0; ; attempt++) {
      const conn = await this.connection(config);
      try {
        return await fn(conn);
      } catch (error) {
        if (!isTransportError(error) && !conn.closed) throw error;
        conn.tools = undefined;
        await this.drop(conn);
        if (attempt === 0 && (idempotent || notDelivered(error))) continue;
        const tail = conn.stderrTail();
        throw new McpConnectionError(
          config.name,
          `MCP server "${config.name}" connection failed: ${errorMessage(error)}${tail ? `\nserver stderr:\n${tail}` : ''}`,
          { cause: error },
        );
      }
    }
  }

  private async connection(config: McpServerConfig): Promise<Connection> {
    const key = configKey(config);
    const existing = this.connections.get(key);
    if (existing) {
      const conn = await existing.catch(() => undefined);
      if (conn && !conn.closed) return conn;
      // Failed or closed: replace it (unless someone else already did).
      if (this.connections.get(key) === existing) this.connections.delete(key);
      else return this.connection(config);
    }
    const pending = this.connect(key, config);
    this.connections.set(key, pending);
    pending.catch(() => {
      if (this.connections.get(key) === pending) this.connections.delete(key);
    });
    return pending;
  }

  private async connect(key: string, config: McpServerConfig): Promise<Connection> {
    let stderrTail = '';
    let childPid: number | null = null;
    let transport: StdioClientTransport | StreamableHTTPClientTransport;
    if (config.transport === 'stdio') {
      const stdio = new StdioClientTransport({
        command: config.command,
        args: config.args,
        env: config.env,
        cwd: config.cwd,
        stderr: 'pipe',
      });
      // Keep draining stderr (a full pipe would block the child) and remember its tail for errors.
      stdio.stderr?.on('data', (chunk: Buffer) => {
        stderrTail = (stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
      });
      // Remember the child's pid: when the handshake fails, Client.connect() already starts a graceful
      // close in the background (stdin EOF, then SIGTERM after 2 s), after which `stdio.pid` is null.
      const start = stdio.start.bind(stdio);
      stdio.start = async () => {
        await start();
        childPid = stdio.pid;
      };
      transport = stdio;
    } else {
      transport = new StreamableHTTPClientTransport(new URL(config.url), {
        requestInit: config.headers ? { headers: config.headers } : undefined,
      });
    }

    const client = new Client(this.clientInfo, { capabilities: {} });
    const conn: Connection = {
      key,
      server: config.name,
      client,
      transport,
      closed: false,
      stderrTail: () => stderrTail.trim(),
    };
    client.onclose = () => {
      conn.closed = true;
      conn.tools = undefined;
    };
    // Transport errors also surface on the pending requests; keep them off the console.
    client.onerror = () => undefined;

    const describe = config.transport === 'stdio' ? `stdio: ${[config.command, ...(config.args ?? [])].join(' ')}` : `http: ${config.url}`;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.connectTimeoutMs);
    timer.unref?.();
    try {
      await client.connect(transport, { timeout: this.connectTimeoutMs, signal: controller.signal });
    } catch (error) {
      const timedOut = controller.signal.aborted || (error instanceof McpError && error.code === ErrorCode.RequestTimeout);
      conn.closed = true;
      await client.close().catch(() => undefined);
      // A child that never completed the handshake gets no grace period (and cannot outlive us).
      if (childPid !== null && timedOut) killQuietly(childPid);
      const reason = timedOut ? `timed out after ${this.connectTimeoutMs} ms` : errorMessage(error);
      const tail = stderrTail.trim();
      throw new McpConnectionError(
        config.name,
        `MCP server "${config.name}" (${describe}) failed to start: ${reason}${tail ? `\nserver stderr:\n${tail}` : ''}`,
        { cause: error },
      );
    } finally {
      clearTimeout(timer);
    }
    if (this.closing) {
      await this.disposeConnection(conn, true);
      throw new McpConnectionError(config.name, `MCP tool source is closing`);
    }
    return conn;
  }

  private async drop(conn: Connection): Promise<void> {
    const current = this.connections.get(conn.key);
    if (current) {
      const resolved = await current.catch(() => undefined);
      if (resolved === conn) this.connections.delete(conn.key);
    }
    await this.disposeConnection(conn, false);
  }

  private async disposeConnection(conn: Connection, terminateSession: boolean): Promise<void> {
    const wasClosed = conn.closed;
    conn.closed = true;
    conn.tools = undefined;
    if (terminateSession && !wasClosed && conn.transport instanceof StreamableHTTPClientTransport && conn.transport.sessionId) {
      // Polite DELETE so the server frees the session; never let it block shutdown.
      await withTimeout(conn.transport.terminateSession(), 2_000).catch(() => undefined);
    }
    await conn.client.close().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

function parseConfig(server: McpServerConfig): McpServerConfig {
  const parsed = McpServerConfigSchema.safeParse(server);
  if (!parsed.success) {
    throw new Error(`invalid MCP server config ${JSON.stringify((server as { name?: unknown })?.name)}: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

/** Stable over key order: sha256 of canonical JSON. */
function configKey(config: McpServerConfig): string {
  return createHash('sha256').update(canonicalJson(config)).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Text parts joined by newlines; any other part (image, audio, resource, ...) as JSON. */
function renderContent(result: Record<string, unknown>): string {
  const content = result.content;
  if (!Array.isArray(content)) {
    // Legacy `{ toolResult }` shape, or structured-only output.
    if ('toolResult' in result) return typeof result.toolResult === 'string' ? result.toolResult : JSON.stringify(result.toolResult);
    if (result.structuredContent !== undefined) return JSON.stringify(result.structuredContent);
    return '';
  }
  if (content.length === 0 && result.structuredContent !== undefined) return JSON.stringify(result.structuredContent);
  return content
    .map((part: unknown) =>
      part !== null && typeof part === 'object' && (part as { type?: unknown }).type === 'text' && typeof (part as { text?: unknown }).text === 'string'
        ? (part as { text: string }).text
        : JSON.stringify(part),
    )
    .join('\n');
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);

function errorCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** The connection, not the server's answer, failed. */
function isTransportError(error: unknown): boolean {
  if (error instanceof McpError) return error.code === ErrorCode.ConnectionClosed;
  if (error instanceof StreamableHTTPError) return true;
  if (error instanceof Error && error.message === 'Not connected') return true;
  if (error instanceof TypeError && error.message === 'fetch failed') return true;
  const code = errorCode(error);
  return code !== undefined && NETWORK_CODES.has(code);
}

/** The request certainly never reached a server that could have acted on it: safe to resend. */
function notDelivered(error: unknown): boolean {
  if (error instanceof StreamableHTTPError) return error.code === 404; // session unknown (server restarted)
  if (error instanceof Error && error.message === 'Not connected') return true;
  return errorCode(error) === 'ECONNREFUSED';
}

function errorMessage(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  let message = error.message;
  // undici's "fetch failed" hides the reason (ECONNREFUSED, bad port, ...) in `cause`.
  const cause = (error as { cause?: unknown }).cause;
  if (cause instanceof Error && cause.message && !message.includes(cause.message)) message += `: ${cause.message}`;
  const code = errorCode(error);
  return code && !message.includes(code) ? `${message} (${code})` : message;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    timer.unref?.();
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
