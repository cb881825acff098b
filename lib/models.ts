/**
 * Request schemas of the HTTP API (zod, validated at the boundary). Workflows use the plain types in
 * contract/definitions.ts; these schemas produce exactly those shapes.
 */
import { z } from 'zod';
import {
  AGENT_STATUSES,
  APPROVAL_STATUSES,
  APPROVAL_TIMEOUT_ACTIONS,
  AUTONOMY_LEVELS,
  CREW_ASSIGNMENTS,
  CREW_MESSAGE_TYPES,
  CREW_PROCESSES,
  CREW_STATUSES,
  META_STATUSES,
  PROVIDER_NAMES,
  ROUTE_STRATEGIES,
  TASK_STATUSES,
  type TaskValidation,
} from '../contract/definitions';
import { configuredUrlRefusal, outboundAllowHosts } from './outbound-policy';
import { config as processConfig, type Config } from './config';
import { McpServerConfigSchema } from './mcp-servers';
import { ReminderScheduleInput } from './reminders';
import { compileExpectedOutput, MAX_EXPECTED_OUTPUT_CHARS } from './output-check';

export const DEFAULT_TOOLS = ['memory_read', 'memory_write', 'send_message', 'create_task'];

const name = z.string().trim().min(1).max(200);
const toolName = z
  .string()
  .regex(
    /^[a-zA-Z0-9_.-]{1,64}$|^mcp__[a-zA-Z0-9-]+(?:_[a-zA-Z0-9-]+)*__\*$/,
    'tool names are letters, digits, _ . - (or mcp__<server>__*)',
  );
const label = z.string().trim().min(1).max(100);
/** An agent's or agent type's free configuration: a JSON object of bounded size. */
const agentConfigJson = z
  .record(z.string(), z.unknown())
  .refine((v) => JSON.stringify(v).length <= 20_000, { message: 'config is at most 20,000 characters of JSON' });
type UnwrapDefault<T> = T extends z.ZodDefault<infer Inner> ? Inner : T;

export const NotifyTarget = z.discriminatedUnion('type', [
  z.object({ type: z.literal('log') }).strict(),
  z
    .object({
      type: z.literal('webhook'),
      url: z
        .string()
        .url()
        .regex(/^https?:\/\//, 'webhook URLs are http(s)'),
    })
    .strict(),
]);

/** The operator settings an agent's outbound URLs and stdio MCP servers are checked against. */
export type OutboundSettings = Pick<Config, 'OUTBOUND_ALLOW_HOSTS' | 'HTTP_ALLOW_PRIVATE_HOSTS' | 'MCP_STDIO_SERVERS'>;

/**
 * The agent bodies checked against `settings` (read when a body is validated): MCP server and webhook URLs
 * that are non-public without a lookup (IP literals, localhost, metadata names) are refused unless on
 * OUTBOUND_ALLOW_HOSTS (names are checked again after resolution, when connecting), and a stdio MCP server
 * must name one of MCP_STDIO_SERVERS. Each refusal names its field.
 */
export function agentBodies(settings: () => OutboundSettings) {
  const mcpServers = z
    .array(McpServerConfigSchema)
    .max(10)
    .refine((servers) => new Set(servers.map((s) => s.name)).size === servers.length, {
      message: 'MCP server names must be unique',
    })
    .superRefine((servers, ctx) => {
      servers.forEach((server, i) => {
        if (server.transport === 'http') {
          const refused = configuredUrlRefusal(server.url, outboundAllowHosts(settings()));
          if (refused)
            ctx.addIssue({ code: 'custom', path: [i, 'url'], message: `MCP server URL refused: ${refused}` });
        } else if (!Object.hasOwn(settings().MCP_STDIO_SERVERS, server.server)) {
          ctx.addIssue({
            code: 'custom',
            path: [i, 'server'],
            message: `no stdio MCP server "${server.server}" is defined by the operator (MCP_STDIO_SERVERS)`,
          });
        }
      });
    });
  const notify = NotifyTarget.superRefine((target, ctx) => {
    if (target.type !== 'webhook') return;
    const refused = configuredUrlRefusal(target.url, outboundAllowHosts(settings()));
    if (refused) ctx.addIssue({ code: 'custom', path: ['url'], message: `webhook URL refused: ${refused}` });
  });
  const create = z
    .object({
      name,
      objective: z.string().trim().min(1).max(10_000),
      type: label.default('general'),
      capabilities: z.array(label).max(50).default([]),
      autonomy: z.enum(AUTONOMY_LEVELS).default('autopilot'),
      priority: z.number().int().min(1).max(10).default(6),
      allowedTools: z.array(toolName).max(100).default(DEFAULT_TOOLS),
      systemPrompt: z.string().max(20_000).nullable().default(null),
      provider: z.enum(PROVIDER_NAMES).nullable().default(null),
      model: z.string().trim().min(1).max(200).nullable().default(null),
      fallbackProviders: z.array(z.enum(PROVIDER_NAMES)).max(5).default([]),
      mcpServers: mcpServers.default([]),
      approvalRequiredTools: z.array(toolName).max(100).default([]),
      approvalTimeoutHours: z
        .number()
        .positive()
        .max(24 * 365)
        .nullable()
        .default(null),
      onApprovalTimeout: z.enum(APPROVAL_TIMEOUT_ACTIONS).default('fail'),
      notify: notify.default({ type: 'log' }),
      /** The agent's own token budget per budget window (on top of the org and global budgets). */
      tokenBudgetPerMinute: z.number().int().positive().max(100_000_000).nullable().default(null),
      /** Free JSON shown to the model in the agent's system prompt (an agent type's `config` when not given). */
      config: agentConfigJson.nullable().default(null),
    })
    .strict();
  // Without the defaults: zod 4 fills a default in even where a field is optional, and a PATCH naming one
  // field would then reset every other to its default.
  const withoutDefaults = Object.fromEntries(
    Object.entries(create.shape).map(([key, schema]) => [
      key,
      schema instanceof z.ZodDefault ? schema.unwrap() : schema,
    ]),
  ) as { [K in keyof typeof create.shape]: UnwrapDefault<(typeof create.shape)[K]> };
  const update = z
    .object(withoutDefaults)
    .partial()
    .strict()
    .refine((v) => Object.keys(v).length > 0, { message: 'send at least one field to change' });
  return { CreateAgentBody: create, UpdateAgentBody: update };
}

/** Checked against the process configuration; code holding its own `Config` uses `agentBodies(() => config)`. */
export const { CreateAgentBody, UpdateAgentBody } = agentBodies(processConfig);

export const ListAgentsQuery = z
  .object({
    status: z.enum(AGENT_STATUSES).optional(),
    type: label.optional(),
    limit: z.coerce.number().int().min(1).max(500).default(100),
    offset: z.coerce.number().int().min(0).default(0),
  })
  .strict();

/** How a task without an agent id finds its agent (docs/agents.md "Routing"). */
export const TaskRouteBody = z
  .object({
    capabilities: z.array(label).max(50).default([]),
    strategy: z.enum(ROUTE_STRATEGIES).default('capability'),
  })
  .strict();

export const CreateTaskBody = z
  .object({
    /** The agent to run it; or `route`, to let the capabilities and strategy pick one (exactly one of the two). */
    agentId: z.string().uuid().optional(),
    route: TaskRouteBody.optional(),
    title: z.string().trim().min(1).max(1000),
    taskType: label.default('general'),
    input: z.record(z.string(), z.unknown()).default({}),
    priority: z.number().int().min(1).max(10).optional(),
    /** The skill (tool) the task is meant to be executed with; stored on the task. */
    skillId: label.optional(),
    /** A JSON Schema the final answer's JSON must match before the task completes. */
    expectedOutput: z
      .record(z.string(), z.unknown())
      .superRefine((schema, ctx) => {
        if (JSON.stringify(schema).length > MAX_EXPECTED_OUTPUT_CHARS) {
          ctx.addIssue({ code: 'custom', message: `at most ${MAX_EXPECTED_OUTPUT_CHARS} characters of JSON` });
          return;
        }
        try {
          compileExpectedOutput(schema);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: `not a usable JSON Schema: ${(err as Error).message}` });
        }
      })
      .optional(),
    /** What the answer must meet, in words; a model call judges it before the task completes. */
    acceptanceCriteria: z.string().trim().min(1).max(4000).optional(),
    /** How many checks the answers get in all (the first included) before the task fails. */
    maxValidationAttempts: z.number().int().min(1).max(10).optional(),
  })
  .strict()
  .refine((b) => (b.agentId === undefined) !== (b.route === undefined), {
    message: 'give exactly one of agentId and route',
    path: ['agentId'],
  })
  .refine((b) => b.maxValidationAttempts === undefined || b.expectedOutput || b.acceptanceCriteria, {
    message: 'maxValidationAttempts needs expectedOutput or acceptanceCriteria',
    path: ['maxValidationAttempts'],
  });

/** A task body split into where it goes and the goal the agent's workflow takes (its checks as `validation`). */
export function taskSubmission(body: z.infer<typeof CreateTaskBody>) {
  const { agentId, route, expectedOutput, acceptanceCriteria, maxValidationAttempts, ...fields } = body;
  const validation: TaskValidation | undefined =
    expectedOutput || acceptanceCriteria
      ? {
          ...(expectedOutput ? { expectedOutput } : {}),
          ...(acceptanceCriteria ? { acceptanceCriteria } : {}),
          maxAttempts: maxValidationAttempts ?? DEFAULT_VALIDATION_ATTEMPTS,
        }
      : undefined;
  return { agentId, route, goal: { ...fields, ...(validation ? { validation } : {}) } };
}

/** Checks per task unless it says otherwise: the first answer and two corrections. */
export const DEFAULT_VALIDATION_ATTEMPTS = 3;

export const ListTasksQuery = z
  .object({
    agentId: z.string().uuid().optional(),
    status: z.enum(TASK_STATUSES).optional(),
    limit: z.coerce.number().int().min(1).max(500).default(100),
    offset: z.coerce.number().int().min(0).default(0),
  })
  .strict();

export const ListApprovalsQuery = z
  .object({
    /** Pending ones unless asked otherwise; `all` for every status. */
    status: z.enum([...APPROVAL_STATUSES, 'all']).default('pending'),
    agentId: z.string().uuid().optional(),
    taskId: z.string().uuid().optional(),
    limit: z.coerce.number().int().min(1).max(500).default(100),
    offset: z.coerce.number().int().min(0).default(0),
  })
  .strict();

const decidedBy = z.string().trim().min(1).max(200).optional();

export const ApproveBody = z
  .object({
    editedAction: z.record(z.string(), z.unknown()).optional(),
    reason: z.string().max(2000).optional(),
    decidedBy,
  })
  .strict();

export const RejectBody = z.object({ reason: z.string().max(2000).optional(), decidedBy }).strict();

export const ChatBody = z
  .object({
    message: z.string().trim().min(1).max(20_000),
    sessionId: z.string().uuid().optional(),
    agentId: z.string().uuid().optional(),
    agentType: label.optional(),
    stream: z.boolean().default(true),
  })
  .strict()
  .refine((v) => Boolean(v.agentId) !== Boolean(v.agentType), { message: 'send exactly one of agentId or agentType' });

export const CancelTaskBody = z.object({ reason: z.string().max(1000).optional() }).strict();

export const Uuid = z.string().uuid();

/** `GET /agents/:id/messages`: received (`in`, the default) or sent (`out`), newest first, paged. */
export const ListMessagesQuery = z
  .object({
    direction: z.enum(['in', 'out']).default('in'),
    limit: z.coerce.number().int().min(1).max(200).default(50),
    offset: z.coerce.number().int().min(0).max(100_000).default(0),
  })
  .strict();

/** A topic name in a path: letters, digits and . : - _ / (as the publish tool takes it). */
export const TopicName = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[\w.:\-/]+$/, 'letters, digits and . : - _ / only');

export const SubscribeBody = z.object({ agentId: z.string().uuid() }).strict();

// ---- Crews ----

const CrewMemberEntry = z.union([
  z
    .string()
    .uuid()
    .transform((agentId) => ({ agentId, role: null, input: {} })),
  z
    .object({
      agentId: z.string().uuid(),
      role: label.nullable().default(null),
      input: z.record(z.string(), z.unknown()).default({}),
    })
    .strict(),
]);

/** The crew body; the member limit is CREW_MAX_MEMBERS, so the schema is built from the configuration. */
export const createCrewBody = (maxMembers: number) =>
  z
    .object({
      name,
      goal: z.string().trim().min(1).max(10_000),
      process: z.enum(CREW_PROCESSES),
      members: z
        .array(CrewMemberEntry)
        .min(1)
        .max(maxMembers, `a crew has at most ${maxMembers} members (CREW_MAX_MEMBERS)`)
        .refine((ms) => new Set(ms.map((m) => m.agentId)).size === ms.length, {
          message: 'each agent may be a member once',
        }),
      assignment: z.enum(CREW_ASSIGNMENTS).default('capability'),
      input: z.record(z.string(), z.unknown()).default({}),
    })
    .strict();

export const ListCrewsQuery = z
  .object({
    status: z.enum(CREW_STATUSES).optional(),
    limit: z.coerce.number().int().min(1).max(500).default(100),
    offset: z.coerce.number().int().min(0).default(0),
  })
  .strict();

export const CrewMessageBody = z
  .object({
    fromAgentId: z.string().uuid().nullable().default(null),
    toAgentId: z.string().uuid().nullable().default(null),
    type: z.enum(CREW_MESSAGE_TYPES),
    content: z.string().trim().min(1).max(20_000),
    /** Sending the same messageId again stores the message once. */
    messageId: z.string().uuid().optional(),
  })
  .strict();

export const CreateReminderBody = z
  .object({
    title: z.string().trim().min(1).max(1000),
    schedule: ReminderScheduleInput,
    taskType: label.default('reminder'),
    input: z.record(z.string(), z.unknown()).default({}),
    priority: z.number().int().min(1).max(10).optional(),
  })
  .strict();

// ---- Meta supervisor ----

export const CreateMetaBody = z
  .object({
    objective: z.string().trim().min(1).max(10_000),
    maxAgents: z.number().int().min(1).max(5).default(5),
    name: name.optional(),
    /** Keep the team's agents when the run ends; by default they are archived. */
    keepAgents: z.boolean().default(false),
  })
  .strict();

export const ListMetaQuery = z
  .object({
    status: z.enum(META_STATUSES).optional(),
    limit: z.coerce.number().int().min(1).max(500).default(100),
    offset: z.coerce.number().int().min(0).default(0),
  })
  .strict();

// ---- Agent types ----

/** A change to an agent type of the catalogue (lib/agent-types.ts): the fields given, the others kept. */
export const UpdateAgentTypeBody = z
  .object({
    name: name.optional(),
    autonomyLevel: z.enum(AUTONOMY_LEVELS).optional(),
    isEnabled: z.boolean().optional(),
    allowedSkills: z.array(toolName).max(100).optional(),
    config: agentConfigJson.optional(),
    systemPrompt: z.string().max(20_000).nullable().optional(),
  })
  .strict()
  .refine((v) => Object.keys(v).length > 0, { message: 'send at least one field to change' });
