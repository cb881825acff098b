import { createHash } from 'node:crypto';
import { z } from 'zod';
import type pg from 'pg';
import { AgentRejectedError } from '../../lib/agent-gateway';
import { withTransaction } from '../../lib/db';
import { defineTool, ToolError, type ToolContext, type ToolDefinition, type ToolResult } from './registry';
import { checkAllowedUrl, safeGet, safePost, type HttpPolicy } from './safe-http';

const MAX_HTTP_BODY_CHARS = 4000;

/**
 * Applies a side effect at most once per idempotency key: the ledger row and the effect commit in one
 * transaction, so a retry after a crash either finds the ledger row (and returns the stored result) or
 * finds nothing applied at all.
 */
export async function applyOnce(
  ctx: ToolContext,
  tool: string,
  effect: (client: pg.PoolClient) => Promise<unknown>,
): Promise<{ result: unknown; replayed: boolean }> {
  return withTransaction(ctx.db, async (client) => {
    const claimed = await client.query(
      `INSERT INTO side_effects (idempotency_key, tool, task_id, result) VALUES ($1, $2, $3, 'null')
       ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key`,
      [ctx.idempotencyKey, tool, ctx.taskId],
    );
    if (!claimed.rowCount) {
      const prior = await client.query<{ result: unknown }>('SELECT result FROM side_effects WHERE idempotency_key = $1', [
        ctx.idempotencyKey,
      ]);
      return { result: prior.rows[0]?.result, replayed: true };
    }
    const result = await effect(client);
    await client.query('UPDATE side_effects SET result = $2 WHERE idempotency_key = $1', [
      ctx.idempotencyKey,
      JSON.stringify(result ?? null),
    ]);
    return { result, replayed: false };
  });
}

/** A stable UUID derived from a string (for ids that must be the same on every retry). */
export function stableUuid(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const memoryScope = (ctx: ToolContext, shared: boolean | undefined) => (shared ? 'org' : ctx.agentId);

const httpPolicy = (ctx: ToolContext): HttpPolicy => ({
  allowedHosts: ctx.config.HTTP_ALLOWED_HOSTS,
  privateHosts: ctx.config.HTTP_ALLOW_PRIVATE_HOSTS,
});

const requestSignal = (ctx: ToolContext) => AbortSignal.any([AbortSignal.timeout(10_000), ...(ctx.signal ? [ctx.signal] : [])]);

const truncate = (body: string) => (body.length > MAX_HTTP_BODY_CHARS ? `${body.slice(0, MAX_HTTP_BODY_CHARS)}…[truncated]` : body);

export const httpGet = defineTool({
  name: 'http_get',
  description:
    'Fetch a URL with HTTP GET (redirects followed). Only hosts on the allowlist (HTTP_ALLOWED_HOSTS) can be reached; private and loopback addresses are refused.',
  input: z.object({ url: z.string().url().describe('Absolute http(s) URL') }),
  sideEffect: false,
  async run({ url }, ctx): Promise<ToolResult> {
    const res = await safeGet(url, httpPolicy(ctx), requestSignal(ctx));
    return {
      content: {
        status: res.status,
        contentType: res.contentType,
        body: truncate(res.body),
        ...(res.url !== new URL(url).href ? { url: res.url } : {}),
      },
    };
  },
});

export const httpPost = defineTool({
  name: 'http_post',
  description: 'POST a JSON body to a URL on the allowlist (HTTP_ALLOWED_HOSTS). Always needs a human approval.',
  input: z.object({ url: z.string().url(), body: z.record(z.string(), z.unknown()) }),
  sideEffect: true,
  requiresApproval: true,
  async run({ url, body }, ctx) {
    // Refuse before claiming: a URL that can never be sent must not leave an "unknown outcome" claim behind.
    checkAllowedUrl(url, httpPolicy(ctx));
    // The claim commits before the request goes out: a retry after a crash finds it and does not send
    // again (at most once), reporting the unknown outcome instead.
    const claim = await ctx.db.query(
      `INSERT INTO side_effects (idempotency_key, tool, task_id, result) VALUES ($1, 'http_post', $2, 'null')
       ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key`,
      [ctx.idempotencyKey, ctx.taskId],
    );
    if (!claim.rowCount) {
      const prior = await ctx.db.query<{ result: unknown }>('SELECT result FROM side_effects WHERE idempotency_key = $1', [ctx.idempotencyKey]);
      if (prior.rows[0]?.result !== null) return { content: { ...(prior.rows[0]!.result as object), replayed: true } };
      throw new ToolError('a previous attempt may already have sent this request; not sending it again');
    }
    const headers = { 'content-type': 'application/json', 'idempotency-key': ctx.idempotencyKey };
    const res = await safePost(url, JSON.stringify(body), headers, httpPolicy(ctx), requestSignal(ctx));
    const result = { status: res.status, body: truncate(res.body), ...(res.location ? { location: res.location } : {}) };
    await ctx.db.query('UPDATE side_effects SET result = $2 WHERE idempotency_key = $1', [ctx.idempotencyKey, JSON.stringify(result)]);
    return { content: result };
  },
});

export const memoryRead = defineTool({
  name: 'memory_read',
  description: "Read a value from memory: the agent's private memory, or the organisation's shared memory with shared=true.",
  input: z.object({ key: z.string().min(1).max(200), shared: z.boolean().optional() }),
  sideEffect: false,
  async run({ key, shared }, ctx) {
    const { rows } = await ctx.db.query<{ value: unknown; version: number }>(
      'SELECT value, version FROM memory WHERE org_id = $1 AND scope = $2 AND key = $3',
      [ctx.orgId, memoryScope(ctx, shared), key],
    );
    return { content: rows[0] ? { key, value: rows[0].value, version: rows[0].version } : { key, value: null } };
  },
});

/** Each operation is one SQL statement, so concurrent writers never lose an update. */
const MEMORY_WRITE_SQL: Record<'set' | 'increment' | 'append' | 'merge', string> = {
  set: 'EXCLUDED.value',
  increment: "to_jsonb(COALESCE((memory.value #>> '{}')::numeric, 0) + (EXCLUDED.value #>> '{}')::numeric)",
  append:
    "CASE WHEN jsonb_typeof(memory.value) = 'array' THEN memory.value || jsonb_build_array(EXCLUDED.value #> '{0}') ELSE jsonb_build_array(memory.value, EXCLUDED.value #> '{0}') END",
  merge:
    "CASE WHEN jsonb_typeof(memory.value) = 'object' AND jsonb_typeof(EXCLUDED.value) = 'object' THEN memory.value || EXCLUDED.value ELSE EXCLUDED.value END",
};

export const memoryWrite = defineTool({
  name: 'memory_write',
  description:
    'Write to memory atomically. op: set (default) replaces, increment adds a number, append adds to a list, merge merges objects.',
  input: z.object({
    key: z.string().min(1).max(200),
    value: z.unknown().optional(),
    op: z.enum(['set', 'increment', 'append', 'merge']).default('set'),
    shared: z.boolean().optional(),
  }),
  sideEffect: true,
  async run({ key, value, op, shared }, ctx) {
    if (op === 'increment' && typeof value !== 'number' && value !== undefined) throw new ToolError('increment needs a numeric value');
    const initial = op === 'increment' ? (value ?? 1) : op === 'append' ? [value ?? null] : (value ?? null);
    // For append the inserted row holds the one-element list; on conflict its first element is appended.
    const { result, replayed } = await applyOnce(ctx, 'memory_write', async (client) => {
      const { rows } = await client.query<{ value: unknown; version: number }>(
        `INSERT INTO memory (org_id, scope, key, value, updated_by) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (org_id, scope, key) DO UPDATE SET value = ${MEMORY_WRITE_SQL[op]}, version = memory.version + 1,
           updated_by = EXCLUDED.updated_by, updated_at = now()
         RETURNING value, version`,
        [ctx.orgId, memoryScope(ctx, shared), key, JSON.stringify(initial), ctx.agentId],
      );
      return { key, value: rows[0]!.value, version: rows[0]!.version };
    });
    return { content: replayed ? { ...(result as object), replayed: true } : result };
  },
});

export const sendMessage = defineTool({
  name: 'send_message',
  description: 'Send a message to another agent of the same organisation.',
  input: z.object({ toAgentId: z.string().uuid(), content: z.string().min(1).max(10_000) }),
  sideEffect: true,
  async run({ toAgentId, content }, ctx) {
    const target = await ctx.db.query('SELECT 1 FROM agents WHERE id = $1 AND org_id = $2 AND status <> $3', [
      toAgentId,
      ctx.orgId,
      'ARCHIVED',
    ]);
    if (!target.rowCount) throw new ToolError(`no active agent ${toAgentId} in this organisation`);
    const { result } = await applyOnce(ctx, 'send_message', async (client) => {
      const { rows } = await client.query<{ id: string }>(
        `INSERT INTO agent_messages (org_id, from_agent_id, to_agent_id, task_id, content, idempotency_key)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
        [ctx.orgId, ctx.agentId, toAgentId, ctx.taskId, content, ctx.idempotencyKey],
      );
      return { messageId: rows[0]!.id, delivered: true };
    });
    return { content: result };
  },
});

export const createTask = defineTool({
  name: 'create_task',
  description: 'Delegate a task to another agent of the same organisation. The task joins that agent\'s goal queue.',
  input: z.object({
    agentId: z.string().uuid(),
    title: z.string().min(1).max(500),
    input: z.record(z.string(), z.unknown()).optional(),
    priority: z.number().int().min(1).max(10).optional(),
  }),
  sideEffect: true,
  async run(args, ctx) {
    const depth = ctx.delegationDepth + 1;
    if (depth > ctx.maxDelegationDepth) {
      throw new ToolError(`delegation refused: depth ${depth} exceeds the fuse of ${ctx.maxDelegationDepth}`);
    }
    const target = await ctx.db.query('SELECT 1 FROM agents WHERE id = $1 AND org_id = $2 AND status <> $3', [
      args.agentId,
      ctx.orgId,
      'ARCHIVED',
    ]);
    if (!target.rowCount) throw new ToolError(`no active agent ${args.agentId} in this organisation`);
    // The task id derives from the idempotency key: a retried call submits the same task, which the
    // target agent recognises and does not queue twice.
    try {
      const receipt = await ctx.submitGoal(args.agentId, {
        taskId: stableUuid(ctx.idempotencyKey),
        title: args.title,
        input: args.input ?? {},
        priority: args.priority,
        delegationDepth: depth,
        parentTaskId: ctx.taskId,
      });
      return { content: receipt, decisionType: 'delegate' };
    } catch (err) {
      // The target refused (archived meanwhile): the model should hear it; anything else is retried.
      if (err instanceof AgentRejectedError) throw new ToolError(`agent ${args.agentId} refused the task: ${err.message}`);
      throw err;
    }
  },
});

export const BUILTIN_TOOLS: ToolDefinition<never>[] = [httpGet, httpPost, memoryRead, memoryWrite, sendMessage, createTask] as never[];
