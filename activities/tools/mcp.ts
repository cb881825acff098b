/**
 * Tools from MCP servers (stdio and Streamable HTTP), through `@modelcontextprotocol/sdk`.
 *
 * Tenants configure an agent's servers: an HTTP server by URL, or a stdio server by the name of an entry the
 * operator defined (MCP_STDIO_SERVERS): a tenant never chooses what a worker runs. HTTP servers go through
 * the outbound address policy of safe-http (OUTBOUND_ALLOW_HOSTS), checked after DNS resolution.
 *
 * One `McpToolSource` per worker process keeps one connected `Client` per organisation and server config.
 * Connections are made lazily on first use, with a timeout, and are made again when the previous one closed
 * (stdio child died, HTTP session gone) or a call failed with a transport error. A connection unused for
 * MCP_IDLE_SECONDS is closed, and beyond MCP_MAX_CONNECTIONS the least recently used idle one is. Tool
 * calls are at most once per idempotency key (the side_effects ledger), except the tools the operator
 * declared read-only. Tool names exposed to models are qualified: `mcp__<server>__<tool>`.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import { config as processConfig, type Config, type McpStdioServer } from '../../lib/config';
import type { Db } from '../../lib/db';
import { claimSideEffect, releaseSideEffect, settleSideEffect, sideEffectResult } from '../../lib/records/side-effects';
import { McpServerConfigSchema, ServerNameSchema, type McpServerConfig } from '../../lib/mcp-servers';
import type { ToolSpec } from '../llm/types';
import { outboundAllowHosts } from '../../lib/outbound-policy';
import { OutboundRefusedError, policedFetch } from './safe-http';

// The config schema lives in lib/ (the API validates with it too); users of the MCP client still find it here.
export { McpServerConfigSchema, type McpServerConfig } from '../../lib/mcp-servers';

// ---------------------------------------------------------------------------------------------
// Config

/** A tenant's config joined with the operator's: what a connection is actually made to. */
type ResolvedServer =
  | ({ name: string; transport: 'stdio'; server: string } & McpStdioServer)
  | { name: string; transport: 'http'; url: string; headers?: Record<string, string> };

// ---------------------------------------------------------------------------------------------
// Names

const PREFIX = 'mcp__';

export function mcpToolName(server: string, tool: string): string {
  if (!ServerNameSchema.safeParse(server).success)
    throw new Error(`invalid MCP server name: ${JSON.stringify(server)}`);
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
  /** True when the request certainly never reached the server (it may be sent again). */
  readonly notSent: boolean;
  constructor(
    readonly server: string,
    message: string,
    options?: { cause?: unknown; notSent?: boolean },
  ) {
    super(message, options);
    this.name = 'McpConnectionError';
    this.notSent = options?.notSent ?? false;
  }
}

/** A server config this worker will not connect to (unknown operator entry, old shape): permanent. */
export class McpConfigError extends Error {
  constructor(
    readonly server: string,
    message: string,
  ) {
    super(message);
    this.name = 'McpConfigError';
  }
}

// ---------------------------------------------------------------------------------------------
// Tool source

export interface McpCallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  /** The organisation the call is made for: organisations never share a connection. */
  orgId?: string;
  /**
   * At most once: the call is recorded as started under this key before it is sent, so a retry after an
   * unknown outcome (crash, timeout) reports that outcome instead of calling again. The key is also sent
   * to the server in the call's `_meta.idempotencyKey`. Tools the operator declared read-only skip it.
   */
  ledger?: { db: Db; idempotencyKey: string; taskId: string };
}

export interface McpListOptions {
  orgId?: string;
}

export interface McpCallResult {
  content: string;
  isError: boolean;
  /** The ledger already held this call's result: it was not sent again. */
  replayed?: boolean;
}

export interface McpToolSourceOptions {
  /** Timeout for spawning/connecting plus the initialize handshake. Default 10 s. */
  connectTimeoutMs?: number;
  /** Default per-request timeout (listTools, callTool without timeoutMs). Default 60 s. */
  requestTimeoutMs?: number;
  /** Client identity sent in initialize. */
  clientInfo?: { name: string; version: string };
  /** The operator's stdio servers (MCP_STDIO_SERVERS). Default: the process configuration's. */
  stdioServers?: Readonly<Record<string, McpStdioServer>>;
  /** Hosts and CIDRs exempt from the outbound address policy (OUTBOUND_ALLOW_HOSTS). Default: the process configuration's. */
  outboundAllowHosts?: readonly string[];
  /** A connection unused this long is closed (MCP_IDLE_SECONDS). Default: the process configuration's. */
  idleMs?: number;
  /** Open connections at most (MCP_MAX_CONNECTIONS). Default: the process configuration's. */
  maxConnections?: number;
}

interface Connection {
  key: string;
  server: string;
  client: Client;
  transport: StdioClientTransport | StreamableHTTPClientTransport;
  closed: boolean;
  tools?: Promise<ToolSpec[]>;
  /** Requests in flight on this connection; a busy connection is never evicted. */
  inUse: number;
  /** Last stderr output of a stdio child (kept for error messages). */
  stderrTail: () => string;
}

/** A connection, or one being made, with its last use (the map's order is least recently used first). */
interface Slot {
  pending: Promise<Connection>;
  conn?: Connection;
  lastUsed: number;
}

interface Settings {
  stdioServers: Readonly<Record<string, McpStdioServer>>;
  outboundAllowHosts: readonly string[];
  idleMs: number;
  maxConnections: number;
}

const STDERR_TAIL_BYTES = 4096;

export class McpToolSource {
  private readonly connections = new Map<string, Slot>();
  private readonly connectTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly clientInfo: { name: string; version: string };
  private readonly options: McpToolSourceOptions;
  private resolvedSettings?: Settings;
  private sweeper?: NodeJS.Timeout;
  private closing = false;

  constructor(options: McpToolSourceOptions = {}) {
    this.options = options;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
    this.clientInfo = options.clientInfo ?? { name: 'temporal-agent-orchestrator', version: '0.1.0' };
  }

  /** A source with the operator's MCP and outbound settings of `config`. */
  static fromConfig(config: Config, options: Omit<McpToolSourceOptions, keyof Settings> = {}): McpToolSource {
    return new McpToolSource({ ...options, ...settingsOf(config) });
  }

  /** Tool specs of one server, names qualified with `mcpToolName`. Cached per connection. */
  async listTools(server: McpServerConfig, opts: McpListOptions = {}): Promise<ToolSpec[]> {
    return this.withConnection(this.resolve(server), opts.orgId, true, (conn) => {
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

  /**
   * Calls one tool (unqualified name). Tool-level and protocol-level failures, a server config this worker
   * refuses and an address the outbound policy refuses come back as `isError`; connection failures throw
   * (the activity retries). With `ledger`, at most once per idempotency key (see McpCallOptions).
   */
  async callTool(
    server: McpServerConfig,
    tool: string,
    args: Record<string, unknown>,
    opts: McpCallOptions = {},
  ): Promise<McpCallResult> {
    opts.signal?.throwIfAborted();
    let resolved: ResolvedServer;
    try {
      resolved = this.resolve(server);
    } catch (error) {
      if (error instanceof McpConfigError) return { content: error.message, isError: true };
      throw error;
    }
    const readOnly = resolved.transport === 'stdio' && (resolved.readOnlyTools ?? []).includes(tool);
    const ledger = readOnly ? undefined : opts.ledger;
    if (ledger) {
      const prior = await claimCall(ledger, mcpToolName(resolved.name, tool));
      if (prior) return prior;
    }
    const key = opts.ledger?.idempotencyKey;
    try {
      const result = await this.withConnection(resolved, opts.orgId, readOnly, async (conn) => {
        try {
          const request = { name: tool, arguments: args, ...(key ? { _meta: { idempotencyKey: key } } : {}) };
          const result = await conn.client.callTool(request, undefined, {
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
      if (ledger) await settleCall(ledger, result);
      return result;
    } catch (error) {
      const refused = findCause(error, OutboundRefusedError);
      // Nothing reached the server: a retry may send it (the claim would otherwise read as "outcome unknown").
      if (ledger && (refused || (error instanceof McpConnectionError && error.notSent))) await releaseCall(ledger);
      if (refused) return { content: `MCP server "${resolved.name}": ${refused.message}`, isError: true };
      throw error;
    }
  }

  /** Closes every client; stdio children are terminated. The source can still be used afterwards. */
  async close(): Promise<void> {
    this.closing = true;
    try {
      const slots = [...this.connections.values()];
      this.connections.clear();
      this.stopSweeper();
      await Promise.all(
        slots.map(async (slot) => {
          const conn = await slot.pending.catch(() => undefined);
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
  async stdioPid(server: McpServerConfig, orgId?: string): Promise<number | null> {
    const slot = this.connections.get(connectionKey(orgId, this.resolve(server)));
    const conn = slot ? await slot.pending.catch(() => undefined) : undefined;
    return conn && conn.transport instanceof StdioClientTransport ? conn.transport.pid : null;
  }

  /** Closes connections idle for the idle time; runs on a timer, callable by tests. */
  async evictIdle(now = Date.now()): Promise<void> {
    const { idleMs } = this.settings();
    const idle = [...this.connections.entries()].filter(([, slot]) => !busy(slot) && now - slot.lastUsed >= idleMs);
    await Promise.all(idle.map(([key, slot]) => this.evict(key, slot)));
    if (this.connections.size === 0) this.stopSweeper();
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
    config: ResolvedServer,
    orgId: string | undefined,
    idempotent: boolean,
    fn: (conn: Connection) => Promise<T>,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const conn = await this.connection(config, connectionKey(orgId, config));
      conn.inUse += 1;
      try {
        return await fn(conn);
      } catch (error) {
        if (!isTransportError(error) && !conn.closed) throw error;
        conn.tools = undefined;
        await this.drop(conn);
        const notSent = notDelivered(error);
        if (attempt === 0 && (idempotent || notSent)) continue;
        const tail = conn.stderrTail();
        throw new McpConnectionError(
          config.name,
          `MCP server "${config.name}" connection failed: ${errorMessage(error)}${tail ? `\nserver stderr:\n${tail}` : ''}`,
          { cause: error, notSent },
        );
      } finally {
        conn.inUse -= 1;
        this.touch(conn.key);
      }
    }
  }

  private async connection(config: ResolvedServer, key: string): Promise<Connection> {
    const existing = this.connections.get(key);
    if (existing) {
      const conn = await existing.pending.catch(() => undefined);
      if (conn && !conn.closed) {
        this.touch(key);
        return conn;
      }
      // Failed or closed: replace it (unless someone else already did).
      if (this.connections.get(key) === existing) this.connections.delete(key);
      else return this.connection(config, key);
    }
    const pending = this.connect(key, config);
    const slot: Slot = { pending, lastUsed: Date.now() };
    this.connections.set(key, slot);
    pending.then(
      (conn) => (slot.conn = conn),
      () => {
        if (this.connections.get(key) === slot) this.connections.delete(key);
      },
    );
    this.startSweeper();
    await this.enforceCap(key);
    return pending;
  }

  /** Marks a connection as just used: it moves to the end of the least-recently-used order. */
  private touch(key: string): void {
    const slot = this.connections.get(key);
    if (!slot) return;
    slot.lastUsed = Date.now();
    this.connections.delete(key);
    this.connections.set(key, slot);
  }

  /** Beyond the cap, closes the least recently used connections that are not in use (never `keep`). */
  private async enforceCap(keep: string): Promise<void> {
    const { maxConnections } = this.settings();
    const evictions: Promise<void>[] = [];
    let excess = this.connections.size - maxConnections;
    for (const [key, slot] of this.connections) {
      if (excess <= 0) break;
      if (key === keep || busy(slot)) continue;
      evictions.push(this.evict(key, slot));
      excess -= 1;
    }
    await Promise.all(evictions);
  }

  private async evict(key: string, slot: Slot): Promise<void> {
    if (this.connections.get(key) !== slot) return;
    this.connections.delete(key);
    const conn = await slot.pending.catch(() => undefined);
    if (conn) await this.disposeConnection(conn, true);
  }

  private startSweeper(): void {
    if (this.sweeper) return;
    const { idleMs } = this.settings();
    this.sweeper = setInterval(
      () => void this.evictIdle().catch(() => undefined),
      Math.max(50, Math.min(idleMs / 2, 30_000)),
    );
    this.sweeper.unref();
  }

  private stopSweeper(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private settings(): Settings {
    this.resolvedSettings ??= (() => {
      const o = this.options;
      // Only what was not passed is read from the process configuration (workers built without options).
      const fallback =
        o.stdioServers && o.outboundAllowHosts && o.idleMs !== undefined && o.maxConnections !== undefined
          ? undefined
          : settingsOf(processConfig());
      return {
        stdioServers: o.stdioServers ?? fallback!.stdioServers,
        outboundAllowHosts: o.outboundAllowHosts ?? fallback!.outboundAllowHosts,
        idleMs: o.idleMs ?? fallback!.idleMs,
        maxConnections: o.maxConnections ?? fallback!.maxConnections,
      };
    })();
    return this.resolvedSettings;
  }

  /** A tenant's config checked and joined with the operator's stdio entry. */
  private resolve(server: McpServerConfig): ResolvedServer {
    const config = parseConfig(server);
    if (config.transport === 'http') return config;
    const entry = this.settings().stdioServers[config.server];
    if (!entry)
      throw new McpConfigError(
        config.name,
        `MCP server "${config.name}": no stdio MCP server "${config.server}" is defined by the operator (MCP_STDIO_SERVERS)`,
      );
    return { ...entry, name: config.name, transport: 'stdio', server: config.server };
  }

  private async connect(key: string, config: ResolvedServer): Promise<Connection> {
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
        // Every request (and every redirect hop the SDK follows) connects only where the address policy allows.
        fetch: policedFetch(this.settings().outboundAllowHosts),
      });
    }

    const client = new Client(this.clientInfo, { capabilities: {} });
    const conn: Connection = {
      key,
      server: config.name,
      client,
      transport,
      closed: false,
      inUse: 0,
      stderrTail: () => stderrTail.trim(),
    };
    client.onclose = () => {
      conn.closed = true;
      conn.tools = undefined;
    };
    // Transport errors also surface on the pending requests; keep them off the console.
    client.onerror = () => undefined;

    // The operator's command line stays out of messages tenants and models read.
    const describe = config.transport === 'stdio' ? `stdio: ${config.server}` : `http: ${config.url}`;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.connectTimeoutMs);
    timer.unref?.();
    try {
      await client.connect(transport, { timeout: this.connectTimeoutMs, signal: controller.signal });
    } catch (error) {
      const timedOut =
        controller.signal.aborted || (error instanceof McpError && error.code === ErrorCode.RequestTimeout);
      conn.closed = true;
      await client.close().catch(() => undefined);
      // A child that never completed the handshake gets no grace period (and cannot outlive us).
      if (childPid !== null && timedOut) killQuietly(childPid);
      const refused = findCause(error, OutboundRefusedError);
      if (refused) throw refused;
      const reason = timedOut ? `timed out after ${this.connectTimeoutMs} ms` : errorMessage(error);
      const tail = stderrTail.trim();
      throw new McpConnectionError(
        config.name,
        `MCP server "${config.name}" (${describe}) failed to start: ${reason}${tail ? `\nserver stderr:\n${tail}` : ''}`,
        { cause: error, notSent: true },
      );
    } finally {
      clearTimeout(timer);
    }
    if (this.closing) {
      await this.disposeConnection(conn, true);
      throw new McpConnectionError(config.name, `MCP tool source is closing`, { notSent: true });
    }
    return conn;
  }

  private async drop(conn: Connection): Promise<void> {
    const current = this.connections.get(conn.key);
    if (current) {
      const resolved = await current.pending.catch(() => undefined);
      if (resolved === conn && this.connections.get(conn.key) === current) this.connections.delete(conn.key);
    }
    await this.disposeConnection(conn, false);
  }

  private async disposeConnection(conn: Connection, terminateSession: boolean): Promise<void> {
    const wasClosed = conn.closed;
    conn.closed = true;
    conn.tools = undefined;
    if (
      terminateSession &&
      !wasClosed &&
      conn.transport instanceof StreamableHTTPClientTransport &&
      conn.transport.sessionId
    ) {
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
    const name = String((server as { name?: unknown })?.name);
    throw new McpConfigError(
      name,
      `invalid MCP server config ${JSON.stringify(name)}: ${z.prettifyError(parsed.error)}`,
    );
  }
  return parsed.data as McpServerConfig;
}

/** One connection per organisation and resolved config; stable over key order (sha256 of canonical JSON). */
function connectionKey(orgId: string | undefined, config: ResolvedServer): string {
  return createHash('sha256')
    .update(canonicalJson({ orgId: orgId ?? null, config }))
    .digest('hex');
}

function settingsOf(config: Config): Settings {
  return {
    stdioServers: config.MCP_STDIO_SERVERS,
    outboundAllowHosts: outboundAllowHosts(config),
    idleMs: config.MCP_IDLE_SECONDS * 1000,
    maxConnections: config.MCP_MAX_CONNECTIONS,
  };
}

/** Still connecting, or a request in flight: not to be evicted. */
const busy = (slot: Slot) => !slot.conn || slot.conn.inUse > 0;

function findCause<E extends Error>(error: unknown, type: new (...args: never[]) => E): E | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof type) return e;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// At-most-once ledger (side_effects, shared with the built-in side-effecting tools)

/**
 * Claims the call's idempotency key before the call is sent; the claim commits first, so a retry after a
 * crash finds it. Returns what the model reads instead of a new call when the key was claimed before: the
 * recorded result, or "outcome unknown" when the earlier attempt never recorded one.
 */
async function claimCall(
  ledger: NonNullable<McpCallOptions['ledger']>,
  name: string,
): Promise<McpCallResult | undefined> {
  if (await claimSideEffect(ledger.db, ledger.idempotencyKey, name, ledger.taskId)) return undefined;
  const result = await sideEffectResult<McpCallResult>(ledger.db, ledger.idempotencyKey);
  if (result) return { ...result, replayed: true };
  return {
    content: `outcome unknown: an earlier attempt of this ${name} call started but never reported back (idempotency key ${ledger.idempotencyKey}); it was not repeated. Check whether it took effect before calling it again.`,
    isError: true,
  };
}

async function settleCall(ledger: NonNullable<McpCallOptions['ledger']>, result: McpCallResult): Promise<void> {
  await settleSideEffect(ledger.db, ledger.idempotencyKey, result);
}

async function releaseCall(ledger: NonNullable<McpCallOptions['ledger']>): Promise<void> {
  await releaseSideEffect(ledger.db, ledger.idempotencyKey);
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
    if ('toolResult' in result)
      return typeof result.toolResult === 'string' ? result.toolResult : JSON.stringify(result.toolResult);
    if (result.structuredContent !== undefined) return JSON.stringify(result.structuredContent);
    return '';
  }
  if (content.length === 0 && result.structuredContent !== undefined) return JSON.stringify(result.structuredContent);
  return content
    .map((part: unknown) =>
      part !== null &&
      typeof part === 'object' &&
      (part as { type?: unknown }).type === 'text' &&
      typeof (part as { text?: unknown }).text === 'string'
        ? (part as { text: string }).text
        : JSON.stringify(part),
    )
    .join('\n');
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

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
