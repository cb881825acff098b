import { isDeepStrictEqual } from 'node:util';
import { stableUuid } from '../../lib/stable-uuid';
import { z } from 'zod';
import type pg from 'pg';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { AgentRejectedError, type TemporalGateway } from '../../client/gateway';
import { agentSettings } from '../../lib/config';
import { withTransaction } from '../../lib/db';
import { pendingTasksRefusal, subtasksRefusal } from '../../lib/fuses';
import {
  agentMessageById,
  insertAgentMessage,
  responseTo,
  subscribeToTopic,
  topicSubscribers,
  unsubscribeFromTopic,
} from '../../lib/records/agent-messages';
import { taskById } from '../../lib/records/tasks';
import { activeAgentSummaries, agentStatus, countActiveAgentsWith, isActiveAgent } from '../../lib/records/agents';
import { readMemory, writeMemory } from '../../lib/records/memory';
import { disabledTypeOf } from '../../lib/records/agent-types';
import { insertMetaRun, metaRunRequestedBy } from '../../lib/records/meta-runs';
import { claimSideEffect, settleSideEffect, sideEffectResult } from '../../lib/records/side-effects';
import { agentBodies, DEFAULT_TOOLS, TopicName } from '../../lib/models';
import { ReminderRefused, ReminderScheduleInput } from '../../lib/reminders';
import {
  AUTONOMY_LEVELS,
  MESSAGE_TYPES,
  toolAllowed,
  type AgentConfig,
  type MetaTeamLimits,
  type NewReminder,
  type ReminderView,
} from '../../contract/definitions';
import { defineTool, ToolError, type ToolContext, type ToolDefinition, type ToolResult } from './registry';
import { outboundAllowHosts } from '../../lib/outbound-policy';
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
    if (!(await claimSideEffect(client, ctx.idempotencyKey, tool, ctx.taskId))) {
      return { result: await sideEffectResult(client, ctx.idempotencyKey), replayed: true };
    }
    const result = await effect(client);
    await settleSideEffect(client, ctx.idempotencyKey, result);
    return { result, replayed: false };
  });
}

const memoryScope = (ctx: ToolContext, shared: boolean | undefined) => (shared ? 'org' : ctx.agentId);

const httpPolicy = (ctx: ToolContext): HttpPolicy => ({
  allowedHosts: ctx.config.HTTP_ALLOWED_HOSTS,
  privateHosts: outboundAllowHosts(ctx.config),
});

const requestSignal = (ctx: ToolContext) =>
  AbortSignal.any([AbortSignal.timeout(10_000), ...(ctx.signal ? [ctx.signal] : [])]);

const truncate = (body: string) =>
  body.length > MAX_HTTP_BODY_CHARS ? `${body.slice(0, MAX_HTTP_BODY_CHARS)}…[truncated]` : body;

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
    if (!(await claimSideEffect(ctx.db, ctx.idempotencyKey, 'http_post', ctx.taskId))) {
      const prior = await sideEffectResult(ctx.db, ctx.idempotencyKey);
      if (prior !== null) return { content: { ...(prior as object), replayed: true } };
      throw new ToolError('a previous attempt may already have sent this request; not sending it again');
    }
    const headers = { 'content-type': 'application/json', 'idempotency-key': ctx.idempotencyKey };
    const res = await safePost(url, JSON.stringify(body), headers, httpPolicy(ctx), requestSignal(ctx));
    const result = {
      status: res.status,
      body: truncate(res.body),
      ...(res.location ? { location: res.location } : {}),
    };
    await settleSideEffect(ctx.db, ctx.idempotencyKey, result);
    return { content: result };
  },
});

export const memoryRead = defineTool({
  name: 'memory_read',
  description:
    "Read a value from memory: the agent's private memory, or the organisation's shared memory with shared=true.",
  input: z.object({ key: z.string().min(1).max(200), shared: z.boolean().optional() }),
  sideEffect: false,
  local: true,
  async run({ key, shared }, ctx) {
    const stored = await readMemory(ctx.db, ctx.orgId, memoryScope(ctx, shared), key);
    return { content: stored ? { key, value: stored.value, version: stored.version } : { key, value: null } };
  },
});

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
    if (op === 'increment' && typeof value !== 'number' && value !== undefined)
      throw new ToolError('increment needs a numeric value');
    const initial = op === 'increment' ? (value ?? 1) : op === 'append' ? [value ?? null] : (value ?? null);
    // For append the inserted row holds the one-element list; on conflict its first element is appended.
    const { result, replayed } = await applyOnce(ctx, 'memory_write', async (client) => {
      const written = await writeMemory(client, {
        orgId: ctx.orgId,
        scope: memoryScope(ctx, shared),
        key,
        op,
        initial,
        updatedBy: ctx.agentId,
      });
      return { key, value: written.value, version: written.version };
    });
    return { content: replayed ? { ...(result as object), replayed: true } : result };
  },
});

/** How much of a message's content its recipient's inbox (and the recipient's prompt) carries. */
const INBOX_SUMMARY_CHARS = 500;

const summaryOf = (content: string) =>
  content.length > INBOX_SUMMARY_CHARS ? `${content.slice(0, INBOX_SUMMARY_CHARS)}…` : content;

/** A goal title from a message: its first line, cut to fit. */
const titleFrom = (content: string) => {
  const line = content.trim().split('\n')[0]!.trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
};

/** Puts a written message in its recipient's inbox; a recipient whose workflow is gone is the model's to hear of. */
async function deliver(
  ctx: ToolContext,
  toAgentId: string,
  message: {
    messageId: string;
    type: 'status' | 'response';
    content: string;
    replyTo?: string | null;
    topic?: string | null;
  },
): Promise<void> {
  if (!ctx.deliverMessage) throw unavailable('messaging');
  try {
    await ctx.deliverMessage(toAgentId, {
      messageId: message.messageId,
      fromAgentId: ctx.agentId,
      type: message.type,
      summary: summaryOf(message.content),
      replyTo: message.replyTo ?? null,
      topic: message.topic ?? null,
    });
  } catch (err) {
    if (err instanceof AgentRejectedError)
      throw new ToolError(`agent ${toAgentId} cannot receive messages: ${err.message}`);
    throw err;
  }
}

/** A goal for an agent whose type its organisation disabled is refused, as POST /api/v1/tasks refuses it. */
async function checkTypeEnabled(ctx: ToolContext, agentId: string, what: string): Promise<void> {
  const type = await disabledTypeOf(ctx.db, ctx.orgId, agentId);
  if (type) throw new ToolError(`${what} refused: agent type "${type}" is disabled in this organisation`);
}

/** A recipient other than the sender, active in the sender's organisation (others' agents do not exist). */
async function checkRecipient(ctx: ToolContext, toAgentId: string): Promise<void> {
  if (toAgentId === ctx.agentId) throw new ToolError('an agent cannot send a message to itself');
  const status = await agentStatus(ctx.db, toAgentId, ctx.orgId);
  if (status === undefined) throw new ToolError(`no agent ${toAgentId} in this organisation`);
  if (status === 'ARCHIVED') throw new ToolError(`agent ${toAgentId} is archived and receives no messages`);
}

export const sendMessage = defineTool({
  name: 'send_message',
  description:
    'Send a message to another agent of your organisation. type "status" (default) informs: the recipient sees it at its next step. "request" asks: it becomes a goal of the recipient, whose final answer comes back to you as a "response" message (replyTo = the request\'s messageId; wait for it with await_response). "response" answers a message (give replyTo). "handoff" transfers your current task, with its input and your note in content, to the recipient: your task ends, pointing to the new one.',
  input: z.object({
    toAgentId: z.string().uuid(),
    content: z.string().min(1).max(10_000),
    type: z.enum(MESSAGE_TYPES).default('status'),
    replyTo: z.string().uuid().optional().describe('The message this one answers'),
  }),
  sideEffect: true,
  async run({ toAgentId, content, type, replyTo }, ctx) {
    await checkRecipient(ctx, toAgentId);
    if (replyTo && !(await agentMessageById(ctx.db, ctx.orgId, replyTo)))
      throw new ToolError(`no message ${replyTo} in this organisation to reply to`);
    if (type === 'request' || type === 'handoff') {
      const depth = ctx.delegationDepth + 1;
      if (depth > ctx.maxDelegationDepth)
        throw new ToolError(`${type} refused: depth ${depth} exceeds the fuse of ${ctx.maxDelegationDepth}`);
      // Both become a goal of the recipient.
      await checkTypeEnabled(ctx, toAgentId, type);
    }
    const { result } = await applyOnce(ctx, 'send_message', async (client) => {
      const messageId = await insertAgentMessage(client, {
        orgId: ctx.orgId,
        fromAgentId: ctx.agentId,
        toAgentId,
        taskId: ctx.taskId,
        content,
        idempotencyKey: ctx.idempotencyKey,
        type,
        replyTo: replyTo ?? null,
      });
      return { messageId, type, delivered: true };
    });
    const { messageId } = result as { messageId: string };
    // Delivery follows the row's commit, on every attempt: the recipient keeps one copy per message id,
    // and a request's or handoff's goal id derives from the message, so the recipient queues it once.
    if (type === 'status' || type === 'response') {
      await deliver(ctx, toAgentId, { messageId, type, content, replyTo });
      return { content: result };
    }
    const goal =
      type === 'request'
        ? {
            taskId: stableUuid(`message:${messageId}`),
            title: titleFrom(content),
            taskType: 'message',
            input: { message: { id: messageId, type, fromAgentId: ctx.agentId, content } },
          }
        : await handoffGoal(ctx, messageId, content);
    try {
      const receipt = await ctx.submitGoal(toAgentId, {
        ...goal,
        delegationDepth: ctx.delegationDepth + 1,
        parentTaskId: ctx.taskId,
      });
      const content =
        type === 'request'
          ? { ...(result as object), taskId: receipt.taskId }
          : { ...(result as object), handoff: { agentId: toAgentId, taskId: receipt.taskId } };
      return { content, decisionType: 'delegate' };
    } catch (err) {
      if (err instanceof AgentRejectedError)
        throw new ToolError(`agent ${toAgentId} refused the ${type}: ${err.message}`);
      throw err;
    }
  },
});

/**
 * The goal a handoff gives the recipient: the sender's task (title, input and output check) with the sender's
 * note. The check goes with it: a checked task cannot end unchecked by being handed off.
 */
async function handoffGoal(ctx: ToolContext, messageId: string, note: string) {
  const task = await taskById(ctx.db, ctx.orgId, ctx.taskId);
  if (!task) throw new ToolError(`task ${ctx.taskId} not found; nothing to hand off`);
  return {
    taskId: stableUuid(`handoff:${messageId}`),
    title: task.title,
    taskType: 'handoff',
    input: {
      handoff: { messageId, fromAgentId: ctx.agentId, fromTaskId: ctx.taskId, note },
      context: task.input ?? {},
    },
    ...(task.validation ? { validation: task.validation } : {}),
  };
}

export const awaitResponse = defineTool({
  name: 'await_response',
  description:
    'Wait for the response to a request you sent with send_message (type "request"), or for the result of a meta_orchestrate run (its messageId), up to timeoutSeconds (default 300, at most 86400). Waiting holds no resources. Answers the response, or response null when none came in time.',
  input: z.object({
    messageId: z
      .string()
      .uuid()
      .optional()
      .describe('The messageId send_message returned for the request; defaults to your latest request in this task'),
    timeoutSeconds: z.number().int().min(1).max(86_400).default(300),
  }),
  sideEffect: false,
  local: true,
  async run({ messageId }, ctx) {
    if (!messageId) throw new ToolError('messageId is required: no request was sent in this task');
    const request = await agentMessageById(ctx.db, ctx.orgId, messageId);
    const asked =
      request?.fromAgentId === ctx.agentId && request.type === 'request'
        ? true
        : await metaRunRequestedBy(ctx.db, ctx.orgId, messageId, ctx.agentId);
    if (!asked) throw new ToolError(`no request ${messageId} sent by you, and no meta run you started`);
    const response = await responseTo(ctx.db, ctx.orgId, messageId);
    return {
      content: response
        ? {
            messageId,
            response: { id: response.id, fromAgentId: response.fromAgentId, content: response.content },
          }
        : { messageId, response: null, note: 'no response yet' },
    };
  },
});

export const subscribeTopic = defineTool({
  name: 'subscribe',
  description: 'Subscribe to a topic: every message published to it in your organisation reaches your inbox.',
  input: z.object({ topic: TopicName }),
  sideEffect: true,
  async run({ topic }, ctx) {
    await subscribeToTopic(ctx.db, ctx.orgId, topic, ctx.agentId);
    return { content: { topic, subscribed: true } };
  },
});

export const unsubscribeTopic = defineTool({
  name: 'unsubscribe',
  description: 'Stop receiving the messages published to a topic.',
  input: z.object({ topic: TopicName }),
  sideEffect: true,
  async run({ topic }, ctx) {
    const was = await unsubscribeFromTopic(ctx.db, ctx.orgId, topic, ctx.agentId);
    return { content: { topic, subscribed: false, wasSubscribed: was } };
  },
});

export const publishTopic = defineTool({
  name: 'publish',
  description:
    'Publish a status message to a topic: every other agent of your organisation subscribed to it receives one copy.',
  input: z.object({ topic: TopicName, content: z.string().min(1).max(10_000) }),
  sideEffect: true,
  async run({ topic, content }, ctx) {
    const { result } = await applyOnce(ctx, 'publish', async (client) => {
      const subscribers = (await topicSubscribers(client, ctx.orgId, topic)).filter((id) => id !== ctx.agentId);
      const messages: { messageId: string; toAgentId: string }[] = [];
      for (const toAgentId of subscribers) {
        const messageId = await insertAgentMessage(client, {
          orgId: ctx.orgId,
          fromAgentId: ctx.agentId,
          toAgentId,
          taskId: ctx.taskId,
          content,
          idempotencyKey: `${ctx.idempotencyKey}:${toAgentId}`,
          topic,
        });
        messages.push({ messageId, toAgentId });
      }
      return { topic, messages };
    });
    const { messages } = result as { messages: { messageId: string; toAgentId: string }[] };
    const undelivered: string[] = [];
    for (const m of messages) {
      // A subscriber archived meanwhile keeps its row; the others still get theirs.
      await deliver(ctx, m.toAgentId, { messageId: m.messageId, type: 'status', content, topic }).catch(
        (err: unknown) => {
          if (!(err instanceof ToolError)) throw err;
          undelivered.push(m.toAgentId);
        },
      );
    }
    return { content: { topic, delivered: messages.length - undelivered.length, messages, undelivered } };
  },
});

export const createTask = defineTool({
  name: 'create_task',
  description: "Delegate a task to another agent of the same organisation. The task joins that agent's goal queue.",
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
    if (!(await isActiveAgent(ctx.db, args.agentId, ctx.orgId)))
      throw new ToolError(`no active agent ${args.agentId} in this organisation`);
    await checkTypeEnabled(ctx, args.agentId, 'delegation');
    // The task id derives from the idempotency key: a retried call submits the same task, which the
    // target agent recognises and does not queue twice.
    const taskId = stableUuid(ctx.idempotencyKey);
    const refusal =
      (await subtasksRefusal(ctx.db, ctx.taskId, taskId, ctx.config.MAX_SUBTASKS_PER_TASK)) ??
      (await pendingTasksRefusal(ctx.db, ctx.orgId, ctx.config.MAX_PENDING_TASKS_PER_ORG));
    if (refusal) throw new ToolError(`delegation refused: ${refusal}`);
    try {
      const receipt = await ctx.submitGoal(args.agentId, {
        taskId,
        title: args.title,
        input: args.input ?? {},
        priority: args.priority,
        delegationDepth: depth,
        parentTaskId: ctx.taskId,
      });
      return { content: receipt, decisionType: 'delegate' };
    } catch (err) {
      // The target refused (archived meanwhile): the model should hear it; anything else is retried.
      if (err instanceof AgentRejectedError)
        throw new ToolError(`agent ${args.agentId} refused the task: ${err.message}`);
      throw err;
    }
  },
});

export const BUILTIN_TOOLS: ToolDefinition<never>[] = [
  httpGet,
  httpPost,
  memoryRead,
  memoryWrite,
  sendMessage,
  awaitResponse,
  subscribeTopic,
  unsubscribeTopic,
  publishTopic,
  createTask,
] as never[];

// ---- Reminders and agent management (wired with the worker's Temporal client; see tools/index.ts) ----

/** How create_reminder reaches Temporal schedules (ReminderBook in activities/reminders.ts). */
export interface ReminderPort {
  create(reminder: NewReminder): Promise<ReminderView>;
}

/** How agent_manager reaches other agents' workflows (TemporalGateway); `state` reads the caller's own configuration. */
export type AgentManagerPort = Pick<TemporalGateway, 'start' | 'pause' | 'resume' | 'archive' | 'state'>;

const unavailable = (tool: string) => new ToolError(`${tool} is not available in this process`);

export function createReminderTool(reminders?: ReminderPort) {
  return defineTool({
    name: 'create_reminder',
    description:
      "Schedule a goal for yourself (or another agent of your organisation): once at a time, every interval, or on a cron schedule in a time zone. Each time it fires, the goal joins the agent's queue.",
    input: z.object({
      title: z.string().trim().min(1).max(500).describe('The goal each fire adds'),
      schedule: ReminderScheduleInput.describe(
        'Exactly one of {"every": "30s" | "5m" | "1h" | "1d"}, {"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"}, {"at": "<ISO 8601 time in the future>"}',
      ),
      agentId: z.string().uuid().optional().describe('Defaults to yourself'),
      input: z.record(z.string(), z.unknown()).optional(),
      priority: z.number().int().min(1).max(10).optional(),
    }),
    sideEffect: true,
    async run(args, ctx) {
      if (!reminders) throw unavailable('create_reminder');
      // Reminders are delayed delegation: the same fuse applies to the goals they fire.
      const depth = ctx.delegationDepth + 1;
      if (depth > ctx.maxDelegationDepth) {
        throw new ToolError(`reminder refused: depth ${depth} exceeds the fuse of ${ctx.maxDelegationDepth}`);
      }
      try {
        // The id derives from the idempotency key: a retried call finds the reminder it already created.
        const reminder = await reminders.create({
          reminderId: stableUuid(`reminder:${ctx.idempotencyKey}`),
          orgId: ctx.orgId,
          agentId: args.agentId ?? ctx.agentId,
          title: args.title,
          taskType: 'reminder',
          input: args.input ?? {},
          priority: args.priority ?? null,
          delegationDepth: depth,
          schedule: args.schedule as Record<string, unknown>,
          createdBy: `agent ${ctx.agentId} (task ${ctx.taskId})`,
        });
        return { content: reminder };
      } catch (err) {
        if (err instanceof ReminderRefused) throw new ToolError(err.message);
        throw err;
      }
    },
  });
}

export function createAgentManagerTool(agents?: AgentManagerPort) {
  return defineTool({
    name: 'agent_manager',
    description:
      'Manage the agents of your organisation. action "create" (name, objective; optional type, priority, autonomy, allowedTools, approvalRequiredTools, tokenBudgetPerMinute, mcpServers) starts a new agent that never has more than you: only tools you have, an autonomy no higher than yours, a token budget no higher than yours, at least your approval requirements, and only your own MCP servers, named; it runs on your provider and model. "list" shows active agents; "pause", "resume" and "archive" (agentId) change one. You cannot pause or archive yourself, and you can resume only agents paused through this tool, not ones an operator paused.',
    input: z.object({
      action: z.enum(['create', 'list', 'pause', 'resume', 'archive']),
      agentId: z.string().uuid().optional().describe('The agent to pause, resume or archive'),
      name: z.string().trim().min(1).max(200).optional(),
      objective: z.string().trim().min(1).max(10_000).optional(),
      type: z.string().trim().min(1).max(100).optional(),
      priority: z.number().int().min(1).max(10).optional(),
      autonomy: z.enum(AUTONOMY_LEVELS).optional().describe('At most your own; defaults to yours'),
      allowedTools: z
        .array(z.string())
        .max(100)
        .optional()
        .describe('A subset of your tools; defaults to the default tools you have'),
      approvalRequiredTools: z
        .array(z.string())
        .max(100)
        .optional()
        .describe('Added to your own, which the new agent always keeps'),
      tokenBudgetPerMinute: z.number().int().positive().optional().describe('At most your own; defaults to yours'),
      mcpServers: z
        .array(z.string())
        .max(10)
        .optional()
        .describe('Names of your own MCP servers the new agent may use'),
    }),
    sideEffect: true,
    async run(args, ctx) {
      if (args.action === 'list') return { content: { agents: await activeAgents(ctx) } };
      if (!agents) throw unavailable('agent_manager');
      if (args.action === 'create') return { content: await createAgent(agents, args, ctx) };
      if (!args.agentId) throw new ToolError(`${args.action} needs agentId`);
      const action = args.action;
      const agentId = args.agentId;
      if (agentId === ctx.agentId && action !== 'resume') throw new ToolError(`an agent cannot ${action} itself`);
      if ((await agentStatus(ctx.db, agentId, ctx.orgId)) === undefined)
        throw new ToolError(`no agent ${agentId} in this organisation`);
      const { result, replayed } = await applyOnce(ctx, 'agent_manager', async () => {
        try {
          if (action === 'pause') return await pauseAgent(agents, agentId, ctx);
          if (action === 'resume') return await resumeAgent(agents, agentId, ctx);
          const live = await agents.archive(agentId);
          return { agentId, action, status: live.status };
        } catch (err) {
          // Refused (archived, not running): the model should hear it, and nothing is recorded.
          if (err instanceof AgentRejectedError)
            throw new ToolError(`agent ${agentId} refused to ${action}: ${err.message}`);
          throw err;
        }
      });
      return { content: replayed ? { ...(result as object), replayed: true } : result };
    },
  });
}

/** How meta_orchestrate starts a meta run (TemporalGateway); `state` reads the caller's own configuration. */
export type MetaPort = Pick<TemporalGateway, 'startMeta' | 'state'>;

export function createMetaOrchestrateTool(meta?: MetaPort) {
  return defineTool({
    name: 'meta_orchestrate',
    description:
      "Hand an objective too big for you to a meta supervisor: it designs a team of up to maxAgents (1-5) new agents, splits the objective into sub-tasks for them, runs them and combines their answers. Each member has no more than you (your tools, autonomy, per-agent token budget, approvals, provider and model) and the team is archived when the run ends unless keepAgents. Answers at once with the run's messageId; the combined result comes back to you as a response: wait for it with await_response.",
    input: z.object({
      objective: z.string().trim().min(1).max(10_000),
      maxAgents: z.number().int().min(1).max(5).default(3),
      keepAgents: z.boolean().default(false).describe('Keep the team after the run (counts against MAX_AGENTS)'),
    }),
    sideEffect: true,
    async run({ objective, maxAgents, keepAgents }, ctx) {
      if (!ctx.config.META_AGENT_ENABLED)
        throw new ToolError('the meta supervisor is disabled in this deployment (META_AGENT_ENABLED=false)');
      if (!meta) throw unavailable('meta_orchestrate');
      // A team works below the task that asked for it: the delegation fuse applies as to a sub-task.
      if (ctx.delegationDepth + 1 > ctx.maxDelegationDepth) {
        throw new ToolError(
          `meta run refused: depth ${ctx.delegationDepth + 1} exceeds the fuse of ${ctx.maxDelegationDepth}`,
        );
      }
      const creator = (await meta.state(ctx.agentId))?.agent;
      if (!creator) throw new ToolError('meta run refused: your own configuration could not be read');
      const metaId = stableUuid(`meta:${ctx.idempotencyKey}`);
      const name = `Meta of ${creator.name}: ${objective.length > 50 ? `${objective.slice(0, 49)}…` : objective}`;
      const requestedBy = { agentId: ctx.agentId, taskId: ctx.taskId };
      // The run's row and the ledger entry commit together; the run starts after, so it always finds its row.
      const { result, replayed } = await applyOnce(ctx, 'meta_orchestrate', async (client) => {
        const active = await countActiveAgentsWith(client, ctx.orgId, ctx.agentId);
        if (active.n + maxAgents > ctx.config.MAX_AGENTS) {
          throw new ToolError(
            `meta run refused: a team of ${maxAgents} would pass MAX_AGENTS (${ctx.config.MAX_AGENTS}; ${active.n} active); ask for fewer agents or archive some`,
          );
        }
        await insertMetaRun(client, {
          id: metaId,
          orgId: ctx.orgId,
          name,
          objective,
          maxAgents,
          keepAgents,
          requestedBy,
        });
        return {
          messageId: metaId,
          type: 'request',
          metaId,
          status: 'planning',
          note: 'call await_response to wait for the combined result',
        };
      });
      // Also on a replayed call: a crash between the commit and the start leaves the run to start here. The
      // workflow id refuses a second run, even after the first has closed.
      try {
        await meta.startMeta({
          metaId,
          orgId: ctx.orgId,
          name,
          objective,
          maxAgents,
          settings: agentSettings(ctx.config),
          consensusThreshold: ctx.config.CREW_CONSENSUS_THRESHOLD,
          requestedBy: { ...requestedBy, delegationDepth: ctx.delegationDepth, limits: metaTeamLimits(creator) },
          archiveTeam: !keepAgents,
        });
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      }
      return { content: replayed ? { ...(result as object), replayed: true } : result };
    },
  });
}

/** What every agent an agent creates takes from it as it is: its model and where its approvals go. */
function modelAndRouting(creator: AgentConfig) {
  return {
    provider: creator.provider,
    model: creator.model,
    fallbackProviders: creator.fallbackProviders ?? [],
    approvalTimeoutHours: creator.approvalTimeoutHours ?? null,
    onApprovalTimeout: creator.onApprovalTimeout ?? 'fail',
    notify: creator.notify ?? { type: 'log' as const },
  };
}

/** What a team an agent starts takes from it (see MetaTeamLimits). */
function metaTeamLimits(creator: AgentConfig): MetaTeamLimits {
  return {
    autonomy: creator.autonomy,
    allowedTools: creator.allowedTools,
    approvalRequiredTools: creator.approvalRequiredTools ?? [],
    tokenBudgetPerMinute: creator.tokenBudgetPerMinute ?? null,
    ...modelAndRouting(creator),
  };
}

/** Pauses an agent as this agent: the pause is then one an agent may lift (see resumeAgentUpdate). */
async function pauseAgent(agents: AgentManagerPort, agentId: string, ctx: ToolContext) {
  const live = await agents.pause(agentId, { byAgentId: ctx.agentId });
  return { agentId, action: 'pause', status: live.status };
}

/** Resumes an agent as this agent: its workflow refuses when an operator paused it or an error stopped it. */
async function resumeAgent(agents: AgentManagerPort, agentId: string, ctx: ToolContext) {
  const live = await agents.resume(agentId, { byAgentId: ctx.agentId });
  return { agentId, action: 'resume', status: live.status };
}

async function activeAgents(ctx: ToolContext) {
  return activeAgentSummaries(ctx.db, ctx.orgId);
}

interface CreateArgs {
  name?: string;
  objective?: string;
  type?: string;
  priority?: number;
  autonomy?: AgentConfig['autonomy'];
  allowedTools?: string[];
  approvalRequiredTools?: string[];
  tokenBudgetPerMinute?: number;
  mcpServers?: string[];
}

const autonomyRank = (level: AgentConfig['autonomy']) => AUTONOMY_LEVELS.indexOf(level);

/** A server entry without its absent optional fields, so parsed and stored entries compare equal. */
const definedOnly = (value: object) => Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined));

/** Whether `entry` of a new agent's allowlist grants nothing beyond `creator`'s: a pattern only if held as such. */
const toolCovered = (creator: readonly string[], entry: string) =>
  entry.endsWith('__*') ? creator.includes(entry) : toolAllowed(creator, entry);

/**
 * The new agent's fields: what the model asked for, with every privilege it left out taken from its
 * creator rather than from the API's defaults (which are generous: autopilot, no budget, default tools).
 * Provider, model and approval routing are always the creator's.
 */
function childFields(args: CreateArgs, creator: AgentConfig): Record<string, unknown> {
  const unknownServers = (args.mcpServers ?? []).filter(
    (name) => !(creator.mcpServers ?? []).some((s) => s.name === name),
  );
  if (unknownServers.length) {
    const yours = (creator.mcpServers ?? []).map((s) => s.name).join(', ') || 'none';
    throw new ToolError(
      `agent creation refused: you have no MCP server ${unknownServers.map((n) => `"${n}"`).join(', ')} (yours: ${yours}); nothing was created`,
    );
  }
  return {
    name: args.name,
    objective: args.objective,
    ...(args.type !== undefined ? { type: args.type } : {}),
    ...(args.priority !== undefined ? { priority: args.priority } : {}),
    autonomy: args.autonomy ?? creator.autonomy,
    allowedTools: args.allowedTools ?? DEFAULT_TOOLS.filter((tool) => toolAllowed(creator.allowedTools, tool)),
    approvalRequiredTools: [
      ...new Set([...(creator.approvalRequiredTools ?? []), ...(args.approvalRequiredTools ?? [])]),
    ],
    tokenBudgetPerMinute: args.tokenBudgetPerMinute ?? creator.tokenBudgetPerMinute ?? null,
    // By name: the creator's own entries are copied (headers included) without the model ever seeing them.
    mcpServers: (creator.mcpServers ?? []).filter((s) => args.mcpServers?.includes(s.name)),
    ...modelAndRouting(creator),
  };
}

/** Everything in which `child` would exceed `creator`, as the model should read it; empty when nothing does. */
function escalations(child: Omit<AgentConfig, 'id' | 'orgId' | 'createdAt'>, creator: AgentConfig): string[] {
  const found: string[] = [];
  const extraTools = child.allowedTools.filter((tool) => !toolCovered(creator.allowedTools, tool));
  if (extraTools.length)
    found.push(`allowedTools ${extraTools.join(', ')} (yours: ${creator.allowedTools.join(', ') || 'none'})`);
  if (autonomyRank(child.autonomy) > autonomyRank(creator.autonomy))
    found.push(`autonomy ${child.autonomy} (yours: ${creator.autonomy})`);
  const budget = creator.tokenBudgetPerMinute ?? null;
  // A creator without a budget of its own is bounded only by the organisation's and the global budgets,
  // which bound the new agent as well: any agent budget (or none) grants nothing more.
  if (budget !== null && (child.tokenBudgetPerMinute ?? null) === null)
    found.push(`tokenBudgetPerMinute none (yours: ${budget})`);
  else if (budget !== null && child.tokenBudgetPerMinute! > budget)
    found.push(`tokenBudgetPerMinute ${child.tokenBudgetPerMinute} (yours: ${budget})`);
  const missing = (creator.approvalRequiredTools ?? []).filter((tool) => !child.approvalRequiredTools.includes(tool));
  if (missing.length) found.push(`approvalRequiredTools without ${missing.join(', ')}`);
  const foreign = child.mcpServers.filter(
    (s) => !(creator.mcpServers ?? []).some((mine) => isDeepStrictEqual(definedOnly(mine), definedOnly(s))),
  );
  if (foreign.length) found.push(`mcpServers ${foreign.map((s) => s.name).join(', ')}`);
  return found;
}

/**
 * Starts a new agent in the caller's organisation, at most once per call: its id derives from the
 * idempotency key and its workflow id refuses a second start, so a retry finds the agent it created.
 * The new agent never has more than its creator (see `escalations`); the creator's configuration is read
 * from its own workflow, the source of truth (it is running this very task).
 */
async function createAgent(agents: AgentManagerPort, args: CreateArgs, ctx: ToolContext) {
  if (ctx.delegationDepth >= ctx.maxDelegationDepth) {
    throw new ToolError(
      `agent creation refused: this task is at delegation depth ${ctx.delegationDepth}, the fuse is ${ctx.maxDelegationDepth}`,
    );
  }
  const creator = (await agents.state(ctx.agentId))?.agent;
  if (!creator) throw new ToolError('agent creation refused: your own configuration could not be read');
  // Checked against this worker's operator settings (outbound allowlist, stdio MCP servers).
  const body = agentBodies(() => ctx.config).CreateAgentBody.safeParse(childFields(args, creator));
  if (!body.success)
    throw new ToolError(
      `invalid agent: ${body.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  const exceeded = escalations(body.data, creator);
  if (exceeded.length) {
    throw new ToolError(
      `agent creation refused: a new agent may not have more than you; exceeded: ${exceeded.join('; ')}. Nothing was created`,
    );
  }
  const agent: AgentConfig = {
    id: stableUuid(`agent:${ctx.idempotencyKey}`),
    orgId: ctx.orgId,
    ...body.data,
    createdAt: new Date().toISOString(),
  };
  const { result, replayed } = await applyOnce(ctx, 'agent_manager', async (client) => {
    // An earlier attempt may have started this very agent: it counts against the limit already.
    const active = await countActiveAgentsWith(client, ctx.orgId, agent.id);
    if (!active.mine && active.n >= ctx.config.MAX_AGENTS) {
      throw new ToolError(`agent limit reached: MAX_AGENTS is ${ctx.config.MAX_AGENTS}; archive an agent first`);
    }
    try {
      await agents.start(agent, agentSettings(ctx.config));
    } catch (err) {
      // A retry after the start went through but before the ledger committed: the agent exists.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    return { agentId: agent.id, name: agent.name, action: 'create', status: 'IDLE' };
  });
  return replayed ? { ...(result as object), replayed: true } : result;
}
