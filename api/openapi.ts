/**
 * The API's OpenAPI 3.1 contract, generated from zod: request schemas from lib/models.ts, response
 * schemas below. Adding a route is one `route(...)` entry; `test/openapi.test.ts` validates real
 * responses of every entry against the document. Served at GET /api/v1/openapi.json.
 */
import { z } from 'zod';
import { loadConfig } from '../lib/config';
import {
  AGENT_STATUSES,
  APPROVAL_STATUSES,
  APPROVAL_TIMEOUT_ACTIONS,
  AUTONOMY_LEVELS,
  CREW_ASSIGNMENTS,
  CREW_MESSAGE_TYPES,
  MESSAGE_TYPES,
  CREW_PROCESSES,
  CREW_STATUSES,
  CREW_SUBTASK_STATUSES,
  META_STATUSES,
  REMINDER_STATUSES,
  ROUTE_STRATEGIES,
  TASK_STATUSES,
  TERMINAL_TASK_STATUSES,
} from '../contract/definitions';
import { PageQuery } from './paging';
import {
  ApproveBody,
  CancelTaskBody,
  ChatBody,
  CreateAgentBody,
  CreateMetaBody,
  CreateReminderBody,
  createCrewBody,
  CreateTaskBody,
  CrewMessageBody,
  ListAgentsQuery,
  ListApprovalsQuery,
  ListCrewsQuery,
  ListMessagesQuery,
  ListMetaQuery,
  ListTasksQuery,
  RejectBody,
  SubscribeBody,
  UpdateAgentBody,
  UpdateAgentTypeBody,
} from '../lib/models';

// The member limit is CREW_MAX_MEMBERS; the document shows its default.
const CreateCrewBody = createCrewBody(loadConfig({}).CREW_MAX_MEMBERS);

// ---------------------------------------------------------------------------------------------
// Response schemas. Loose objects: a client may rely on every listed field; new fields may appear.

const timestamp = z.iso.datetime({ offset: true });
const nullableTimestamp = timestamp.nullable();

export const ErrorResponse = z.object({
  error: z.looseObject({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
});

const QueuedGoal = z.looseObject({ taskId: z.string(), title: z.string(), priority: z.number().int() });

/** The agent workflow's live state (its `getState` query). */
export const AgentLive = z.looseObject({
  status: z.enum(AGENT_STATUSES),
  paused: z.boolean(),
  errorReason: z.string().nullable(),
  queue: z.array(QueuedGoal),
  current: QueuedGoal.nullable(),
  goalsCompleted: z.number().int(),
  goalsFailed: z.number().int(),
  goalsCancelled: z.number().int(),
  lastActive: nullableTimestamp,
});

export const Agent = z.looseObject({
  id: z.uuid(),
  orgId: z.string(),
  name: z.string(),
  objective: z.string(),
  type: z.string(),
  capabilities: z.array(z.string()),
  autonomy: z.enum(AUTONOMY_LEVELS),
  priority: z.number().int(),
  status: z.enum(AGENT_STATUSES),
  allowedTools: z.array(z.string()),
  systemPrompt: z.string().nullable(),
  provider: z.string().nullable(),
  model: z.string().nullable(),
  currentTaskId: z.uuid().nullable(),
  queueLength: z.number().int(),
  createdAt: timestamp,
  updatedAt: timestamp,
  lastActive: nullableTimestamp,
  archivedAt: nullableTimestamp,
  approvalRequiredTools: z.array(z.string()),
  approvalTimeoutHours: z.number().nullable(),
  onApprovalTimeout: z.enum(APPROVAL_TIMEOUT_ACTIONS),
  notify: z.looseObject({ type: z.enum(['log', 'webhook']) }),
});

export const AgentWithLive = Agent.extend({ live: AgentLive.nullable() });

export const Task = z.looseObject({
  id: z.uuid(),
  orgId: z.string(),
  agentId: z.uuid(),
  title: z.string(),
  taskType: z.string(),
  priority: z.number().int(),
  status: z.enum(TASK_STATUSES),
  input: z.unknown(),
  output: z.unknown(),
  error: z.string().nullable(),
  parentTaskId: z.uuid().nullable(),
  delegationDepth: z.number().int(),
  steps: z.number().int(),
  usage: z.object({ inputTokens: z.number().int(), outputTokens: z.number().int() }),
  createdAt: timestamp,
  startedAt: nullableTimestamp,
  completedAt: nullableTimestamp,
  /** The OpenTelemetry trace the task was submitted in (docs/observability.md "Traces"); null without tracing. */
  traceId: z.string().nullable().optional(),
  /** The trace in the tracing UI (TRACES_UI_URL with the trace id); only on GET /api/v1/tasks/:id, when both are known. */
  traceUrl: z.url().optional(),
  /** The skill named at submission; null when none was. */
  skillId: z.string().nullable().optional(),
  /** The output check the answer must pass (docs/agents.md "Checked output"); null when none. */
  validation: z
    .object({
      expectedOutput: z.record(z.string(), z.unknown()).optional(),
      acceptanceCriteria: z.string().optional(),
      maxAttempts: z.number().int(),
    })
    .nullable()
    .optional(),
});

export const Decision = z.looseObject({
  step: z.number().int(),
  decisionType: z.enum(['plan', 'tool_call', 'delegate', 'escalate', 'complete', 'validate']),
  reasoning: z.string(),
  action: z.unknown(),
  result: z.unknown(),
  confidence: z.number().nullable(),
  createdAt: timestamp,
});

/** Where a task submitted with a `route` ended up: its attempts, oldest first (docs/agents.md "Routing"). */
export const TaskRouting = z.looseObject({
  capabilities: z.array(z.string()),
  strategy: z.enum(ROUTE_STRATEGIES),
  status: z.enum(['routing', 'completed', 'failed', 'cancelled']),
  routedTo: z.object({ taskId: z.uuid(), agentId: z.uuid(), status: z.enum(TASK_STATUSES) }),
  attempts: z.array(
    z.object({
      taskId: z.uuid(),
      agentId: z.uuid(),
      attempt: z.number().int(),
      status: z.enum(TASK_STATUSES),
      error: z.string().nullable(),
    }),
  ),
});

export const TaskDetail = Task.extend({ reasoningTrace: z.array(Decision), routing: TaskRouting.optional() });
export const SubmittedTask = Task.extend({
  position: z.number().int().min(0),
  routing: TaskRouting.nullable().optional(),
});

export const Approval = z.looseObject({
  id: z.uuid(),
  taskId: z.uuid(),
  agentId: z.uuid(),
  orgId: z.string(),
  title: z.string(),
  proposedAction: z.looseObject({ tool: z.string(), arguments: z.unknown() }),
  status: z.enum(APPROVAL_STATUSES),
  decidedBy: z.string().nullable(),
  reason: z.string().nullable(),
  editedAction: z.unknown(),
  createdAt: timestamp,
  decidedAt: nullableTimestamp,
  expiresAt: timestamp,
  /** The workflow waiting for the decision; null for requests recorded before it was. */
  workflowId: z.string().nullable(),
});

const page = { limit: z.number().int(), offset: z.number().int() };
export const AgentList = z.object({ agents: z.array(Agent), ...page });
export const TaskList = z.object({ tasks: z.array(Task), ...page });
export const ApprovalList = z.object({ approvals: z.array(Approval), ...page });

export const Health = z.object({
  status: z.enum(['ok', 'degraded']),
  checks: z.object({ postgres: z.enum(['ok', 'down']), temporal: z.enum(['ok', 'down']) }),
  // Only for a key of the operators' organisation (ADMIN_ORG_ID).
  providers: z
    .object({
      openCircuits: z.array(
        z.looseObject({
          worker: z.string(),
          provider: z.string(),
          state: z.string(),
          lastError: z.string().nullable(),
          changedAt: timestamp,
        }),
      ),
    })
    .optional(),
});

export const ChatHistory = z.object({
  sessionId: z.uuid(),
  messages: z.array(
    z.looseObject({
      id: z.uuid(),
      turnId: z.uuid(),
      role: z.enum(['user', 'assistant']),
      content: z.string(),
      agentId: z.uuid().nullable(),
      agentType: z.string().nullable(),
      metadata: z.unknown(),
      createdAt: timestamp,
    }),
  ),
  ...page,
});

export const ChatTurn = z.looseObject({
  sessionId: z.uuid(),
  agentId: z.uuid(),
  turnId: z.uuid(),
  status: z.enum(TERMINAL_TASK_STATUSES),
});

const CrewMemberRecord = z.looseObject({
  agentId: z.uuid(),
  role: z.string().nullable(),
  input: z.record(z.string(), z.unknown()),
});
const crewFields = {
  id: z.uuid(),
  orgId: z.string(),
  name: z.string(),
  goal: z.string(),
  process: z.enum(CREW_PROCESSES),
  assignment: z.enum(CREW_ASSIGNMENTS),
  input: z.record(z.string(), z.unknown()),
  status: z.enum(CREW_STATUSES),
  result: z.unknown(),
  error: z.string().nullable(),
  createdAt: timestamp,
  startedAt: nullableTimestamp,
  completedAt: nullableTimestamp,
};
export const Crew = z.looseObject({ ...crewFields, members: z.array(CrewMemberRecord) });

const CrewSubTask = z.looseObject({
  key: z.string(),
  title: z.string(),
  status: z.enum(CREW_SUBTASK_STATUSES),
  agentId: z.uuid().nullable(),
  taskIds: z.array(z.uuid()),
  output: z.unknown(),
  error: z.string().nullable(),
});

/** A crew with each member's state, its ordered message log, its tasks and (while it runs) its workflow's state. */
export const CrewDetail = z.looseObject({
  ...crewFields,
  members: z.array(
    CrewMemberRecord.extend({
      name: z.string().nullable(),
      capabilities: z.array(z.string()),
      agentStatus: z.enum(AGENT_STATUSES).nullable(),
      tasks: z.object({
        total: z.number().int(),
        completed: z.number().int(),
        failed: z.number().int(),
        cancelled: z.number().int(),
      }),
      activeTaskIds: z.array(z.uuid()),
      running: z.number().int().min(0),
    }),
  ),
  messages: z.array(
    z.looseObject({
      seq: z.number().int().min(1),
      messageId: z.uuid(),
      fromAgentId: z.uuid().nullable(),
      toAgentId: z.uuid().nullable(),
      type: z.enum(CREW_MESSAGE_TYPES),
      content: z.string(),
      sentAt: timestamp,
    }),
  ),
  tasks: z.array(
    z.looseObject({
      id: z.uuid(),
      agentId: z.uuid(),
      title: z.string(),
      status: z.enum(TASK_STATUSES),
      output: z.unknown(),
      error: z.string().nullable(),
    }),
  ),
  live: z
    .looseObject({
      crewId: z.uuid(),
      status: z.enum(CREW_STATUSES),
      members: z.array(
        z.looseObject({
          agentId: z.uuid(),
          role: z.string().nullable(),
          running: z.number().int(),
          assigned: z.number().int(),
        }),
      ),
      subTasks: z.array(CrewSubTask),
      messages: z.number().int(),
    })
    .nullable(),
});
export const CrewMessageAccepted = z.object({ messageId: z.uuid(), status: z.literal('accepted') });

export const Reminder = z.looseObject({
  id: z.uuid(),
  agentId: z.uuid(),
  title: z.string(),
  schedule: z.record(z.string(), z.unknown()),
  status: z.enum(REMINDER_STATUSES),
  nextFireAt: nullableTimestamp,
  firesSoFar: z.number().int().min(0),
  createdAt: timestamp,
});

const count = z.number().int().min(0);
export const Governance = z.object({
  limits: z.looseObject({
    globalTokenBudget: z.number(),
    orgTokenBudget: z.number().nullable(),
    tokenBudgetWindowSeconds: z.number(),
    maxActiveAgents: z.number(),
    maxConcurrentSteps: z.number(),
    cpuThresholdPercent: z.number(),
    maxDelegationDepth: z.number().int(),
    maxSubtasksPerTask: z.number().int(),
    maxPendingTasksPerOrg: z.number().int(),
    priorityScoring: z.enum(['on', 'off']),
    priorityCacheMinutes: z.number(),
  }),
  usage: z.looseObject({
    tokens: z.looseObject({ windowSeconds: z.number(), usedGlobal: count, usedByOrg: count }),
    slots: z.record(z.string(), z.looseObject({ held: count, waiting: count })),
    resources: z.array(
      z.looseObject({
        name: z.string(),
        capacity: z.number(),
        refillPerSecond: z.number(),
        tokens: z.number(),
        grantedTotal: z.number(),
        waitsTotal: z.number(),
      }),
    ),
    priority: z.looseObject({
      scored: count,
      cache: count,
      model: count,
      fallback: count,
      p50: z.number().nullable(),
      p50Cached: z.number().nullable(),
      hitRatio: z.number().min(0).max(1).nullable(),
    }),
  }),
});

const metaFields = {
  id: z.uuid(),
  orgId: z.string(),
  name: z.string(),
  objective: z.string(),
  maxAgents: z.number().int().min(1),
  status: z.enum(META_STATUSES),
  plan: z.array(
    z.looseObject({
      id: z.string(),
      title: z.string(),
      capabilities: z.array(z.string()),
      dependsOn: z.array(z.string()),
    }),
  ),
  crewId: z.uuid().nullable(),
  result: z.unknown(),
  error: z.string().nullable(),
  /** False: the team's agents are archived when the run ends. */
  keepAgents: z.boolean(),
  /** The agent (and task) that started the run with the meta_orchestrate tool; null for runs posted here. */
  requestedBy: z.object({ agentId: z.uuid(), taskId: z.uuid() }).nullable(),
  createdAt: timestamp,
  completedAt: nullableTimestamp,
};
const TeamMember = z.looseObject({
  name: z.string(),
  role: z.string(),
  objective: z.string(),
  capabilities: z.array(z.string()),
});
export const MetaRun = z.looseObject({
  ...metaFields,
  team: z.array(TeamMember.extend({ agentId: z.uuid().optional() })),
});
/** A meta run with each team member's agent (null until created) and its crew. */
export const MetaRunDetail = z.looseObject({
  ...metaFields,
  team: z.array(TeamMember.extend({ agentId: z.uuid().nullable(), agentStatus: z.enum(AGENT_STATUSES).nullable() })),
  crew: z.object({ id: z.uuid(), status: z.enum(CREW_STATUSES) }).nullable(),
});

export const CrewList = z.object({ crews: z.array(Crew), ...page });

/** A built-in tool and the JSON Schema of its input (what an edited call must match before approval). */
export const ToolList = z.object({
  tools: z.array(
    z.looseObject({
      name: z.string(),
      description: z.string(),
      parameters: z.record(z.string(), z.unknown()),
      sideEffect: z.boolean(),
      requiresApproval: z.boolean(),
    }),
  ),
});
export const ReminderList = z.object({ reminders: z.array(Reminder) });

/** One type of the agent-type catalogue as the organisation has it (docs/agents.md "Agent types"). */
export const AgentType = z.looseObject({
  orgId: z.string(),
  agentType: z.string(),
  name: z.string(),
  description: z.string(),
  autonomyLevel: z.enum(AUTONOMY_LEVELS),
  isEnabled: z.boolean(),
  allowedSkills: z.array(z.string()),
  config: z.record(z.string(), z.unknown()),
  systemPrompt: z.string().nullable(),
  customised: z.boolean(),
  updatedAt: nullableTimestamp,
});
export const AgentTypeList = z.object({ agentTypes: z.array(AgentType) });

/** A message an agent received or sent (docs/agents.md "Messaging"); `fromAgentId` null: from the orchestrator. */
export const AgentMessage = z.looseObject({
  id: z.uuid(),
  fromAgentId: z.uuid().nullable(),
  toAgentId: z.uuid(),
  topic: z.string().nullable(),
  type: z.enum(MESSAGE_TYPES),
  content: z.string(),
  replyTo: z.uuid().nullable(),
  status: z.enum(['delivered', 'read']),
  taskId: z.uuid().nullable(),
  createdAt: timestamp,
  readAt: nullableTimestamp,
});
export const AgentMessageList = z.object({
  messages: z.array(AgentMessage),
  direction: z.enum(['in', 'out']),
  ...page,
});
export const TopicSubscribers = z.looseObject({ topic: z.string(), subscribers: z.array(z.uuid()) });
export const TopicSubscription = z.object({ topic: z.string(), agentId: z.uuid(), subscribed: z.literal(true) });
export const MetaRunList = z.object({ runs: z.array(MetaRun), ...page });

/** The named schemas, as they appear under components.schemas. */
const RESPONSE_SCHEMAS = {
  ErrorResponse,
  AgentLive,
  Agent,
  AgentWithLive,
  AgentList,
  Task,
  TaskDetail,
  SubmittedTask,
  TaskRouting,
  TaskList,
  Decision,
  Approval,
  ApprovalList,
  Health,
  ChatHistory,
  ChatTurn,
  Crew,
  CrewDetail,
  CrewList,
  CrewMessageAccepted,
  Reminder,
  ReminderList,
  Governance,
  ToolList,
  AgentType,
  AgentTypeList,
  MetaRun,
  MetaRunDetail,
  MetaRunList,
  AgentMessage,
  AgentMessageList,
  TopicSubscribers,
  TopicSubscription,
};
const REQUEST_SCHEMAS = {
  CreateAgentBody,
  UpdateAgentBody,
  UpdateAgentTypeBody,
  CreateTaskBody,
  CancelTaskBody,
  ApproveBody,
  RejectBody,
  ChatBody,
  CreateCrewBody,
  CrewMessageBody,
  CreateReminderBody,
  CreateMetaBody,
  SubscribeBody,
};
const QUERY_SCHEMAS = {
  ListAgentsQuery,
  ListTasksQuery,
  ListApprovalsQuery,
  ListCrewsQuery,
  ListMetaQuery,
  ListMessagesQuery,
  PageQuery,
};

// ---------------------------------------------------------------------------------------------
// Routes

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
/** A JSON body, or several media types (none for 204): a response schema, or free text / any JSON object. */
type ResponseBody = z.ZodType | { description: string; media: Record<string, z.ZodType | 'text' | 'object'> };

interface RouteSpec {
  method: Method;
  /** Express-style path: `:id` segments become path parameters. */
  path: string;
  summary: string;
  tag: string;
  body?: z.ZodType;
  query?: z.ZodObject;
  /** Success responses; 400/404/409 error bodies are added to every /api/v1 route. */
  responses: Record<number, ResponseBody>;
  /** Outside /api/v1: no API key. */
  public?: boolean;
  /** Request headers the route reads, beyond authorization. */
  headers?: { name: string; description: string }[];
}

const ROUTES: RouteSpec[] = [];
const route = (spec: RouteSpec) => ROUTES.push(spec);

route({
  method: 'get',
  path: '/health',
  tag: 'operations',
  public: true,
  summary: 'Temporal and Postgres checks; 503 when either is down',
  responses: { 200: Health, 503: Health },
});
route({
  method: 'get',
  path: '/metrics',
  tag: 'operations',
  summary:
    'Prometheus metrics (agents by status, tasks, queue depth, tokens, approvals, circuits); METRICS_TOKEN or a key of ADMIN_ORG_ID',
  responses: { 200: { description: 'Prometheus text exposition format 0.0.4', media: { 'text/plain': 'text' } } },
});
route({
  method: 'get',
  path: '/api/v1/openapi.json',
  tag: 'operations',
  summary: 'This document',
  responses: { 200: { description: 'OpenAPI 3.1 document', media: { 'application/json': 'object' } } },
});

route({
  method: 'post',
  path: '/api/v1/agents',
  tag: 'agents',
  summary: 'Create an agent; its workflow runs when this returns',
  body: CreateAgentBody,
  responses: { 201: AgentWithLive },
});
route({
  method: 'get',
  path: '/api/v1/agents',
  tag: 'agents',
  summary: 'List agents (archived ones only with status=ARCHIVED)',
  query: ListAgentsQuery,
  responses: { 200: AgentList },
});
route({
  method: 'get',
  path: '/api/v1/agents/:id',
  tag: 'agents',
  summary: 'An agent with its live workflow state',
  responses: { 200: AgentWithLive },
});
route({
  method: 'patch',
  path: '/api/v1/agents/:id',
  tag: 'agents',
  summary: 'Change an agent; applied by its workflow',
  body: UpdateAgentBody,
  responses: { 200: AgentWithLive },
});
for (const action of ['pause', 'resume', 'archive'] as const) {
  route({
    method: 'post',
    path: `/api/v1/agents/:id/${action}`,
    tag: 'agents',
    summary: `${action[0]!.toUpperCase()}${action.slice(1)} an agent`,
    responses: { 200: AgentWithLive },
  });
}

route({
  method: 'get',
  path: '/api/v1/agent-types',
  tag: 'agent types',
  summary: "The organisation's agent-type catalogue: eight types with their defaults and the org's changes",
  responses: { 200: AgentTypeList },
});
route({
  method: 'get',
  path: '/api/v1/agent-types/:agentType',
  tag: 'agent types',
  summary: 'One agent type (also at GET /api/v1/agents/{agentType} when the segment is not an agent id)',
  responses: { 200: AgentType },
});
route({
  method: 'put',
  path: '/api/v1/agent-types/:agentType',
  tag: 'agent types',
  summary:
    'Change an agent type for this organisation: the fields given, the others kept (also at PUT /api/v1/agents/{agentType})',
  body: UpdateAgentTypeBody,
  responses: { 200: AgentType },
});

route({
  method: 'post',
  path: '/api/v1/tasks',
  tag: 'tasks',
  summary: "Submit a task to an agent's queue, or with a route to the agent it picks (422 when none can take it)",
  body: CreateTaskBody,
  headers: [
    {
      name: 'Idempotency-Key',
      description:
        'Optional, 1-255 printable ASCII characters: a repeated request with the same key names the same task (200 once it is recorded)',
    },
  ],
  responses: { 200: Task, 201: SubmittedTask, 422: ErrorResponse },
});
route({
  method: 'get',
  path: '/api/v1/tasks',
  tag: 'tasks',
  summary: 'List tasks, newest first',
  query: ListTasksQuery,
  responses: { 200: TaskList },
});
route({
  method: 'get',
  path: '/api/v1/tasks/:id',
  tag: 'tasks',
  summary: 'A task with its reasoning trace',
  responses: { 200: TaskDetail },
});
route({
  method: 'post',
  path: '/api/v1/tasks/:id/cancel',
  tag: 'tasks',
  summary: 'Cancel a queued or running task',
  body: CancelTaskBody,
  responses: { 200: Task },
});

route({
  method: 'get',
  path: '/api/v1/approvals',
  tag: 'approvals',
  summary: 'List approval requests: pending ones unless status says otherwise (status=all for every status)',
  query: ListApprovalsQuery,
  responses: { 200: ApprovalList },
});
route({
  method: 'get',
  path: '/api/v1/approvals/:id',
  tag: 'approvals',
  summary: 'One approval request',
  responses: { 200: Approval },
});
route({
  method: 'post',
  path: '/api/v1/approvals/:id/approve',
  tag: 'approvals',
  summary: 'Approve (optionally with an edited action)',
  body: ApproveBody,
  responses: { 200: Approval },
});
route({
  method: 'post',
  path: '/api/v1/approvals/:id/reject',
  tag: 'approvals',
  summary: 'Reject',
  body: RejectBody,
  responses: { 200: Approval },
});

route({
  method: 'post',
  path: '/api/v1/chat',
  tag: 'chat',
  summary:
    'Send a chat message; streams Server-Sent Events (session, token, tool_call, tool_result, message | error), or JSON with "stream": false',
  body: ChatBody,
  responses: {
    200: {
      description: 'An event stream (`event: <type>` / `data: <json>`), or the finished turn with "stream": false',
      media: { 'text/event-stream': 'text', 'application/json': ChatTurn },
    },
    502: ChatTurn,
  },
});
route({
  method: 'get',
  path: '/api/v1/chat/:sessionId',
  tag: 'chat',
  summary: "One page of a chat session's stored history, oldest first",
  query: PageQuery,
  responses: { 200: ChatHistory },
});

route({
  method: 'post',
  path: '/api/v1/crews',
  tag: 'crews',
  summary: 'Create a crew of existing agents (status idle)',
  body: CreateCrewBody,
  responses: { 201: CrewDetail },
});
route({
  method: 'get',
  path: '/api/v1/crews',
  tag: 'crews',
  summary: 'List crews, newest first',
  query: ListCrewsQuery,
  responses: { 200: CrewList },
});
route({
  method: 'get',
  path: '/api/v1/crews/:id',
  tag: 'crews',
  summary: "A crew with its members' state and one page (limit, offset) of its message log and tasks",
  query: PageQuery,
  responses: { 200: CrewDetail },
});
route({
  method: 'post',
  path: '/api/v1/crews/:id/start',
  tag: 'crews',
  summary: 'Start the crew; answers once it runs (409 once it has finished)',
  responses: { 200: CrewDetail },
});
route({
  method: 'post',
  path: '/api/v1/crews/:id/stop',
  tag: 'crews',
  summary: "Stop a running crew and its members' work (409 when idle or finished)",
  responses: { 200: CrewDetail },
});
route({
  method: 'post',
  path: '/api/v1/crews/:id/messages',
  tag: 'crews',
  summary: 'Send a message to a running crew (stored once per messageId)',
  body: CrewMessageBody,
  responses: { 202: CrewMessageAccepted },
});

route({
  method: 'get',
  path: '/api/v1/agents/:id/messages',
  tag: 'messages',
  summary: 'Messages the agent received (direction=in, the default) or sent (out), newest first',
  query: ListMessagesQuery,
  responses: { 200: AgentMessageList },
});
route({
  method: 'get',
  path: '/api/v1/topics/:topic/subscribers',
  tag: 'messages',
  summary: "A topic's subscribers in this organisation",
  responses: { 200: TopicSubscribers },
});
route({
  method: 'post',
  path: '/api/v1/topics/:topic/subscribers',
  tag: 'messages',
  summary: 'Subscribe an agent to a topic: what is published to it reaches its inbox (409 when archived)',
  body: SubscribeBody,
  responses: { 201: TopicSubscription },
});
route({
  method: 'delete',
  path: '/api/v1/topics/:topic/subscribers/:agentId',
  tag: 'messages',
  summary: 'Unsubscribe an agent from a topic (404 when it was not subscribed)',
  responses: { 204: { description: 'Unsubscribed', media: {} } },
});

route({
  method: 'post',
  path: '/api/v1/agents/:id/reminders',
  tag: 'reminders',
  summary: 'Give an agent a recurring or one-shot goal (409 when archived or at its limit)',
  body: CreateReminderBody,
  responses: { 201: Reminder },
});
route({
  method: 'get',
  path: '/api/v1/agents/:id/reminders',
  tag: 'reminders',
  summary: "An agent's active reminders with their next fire time",
  responses: { 200: ReminderList },
});
route({
  method: 'get',
  path: '/api/v1/agents/:id/reminders/:reminderId',
  tag: 'reminders',
  summary: 'One reminder',
  responses: { 200: Reminder },
});
route({
  method: 'delete',
  path: '/api/v1/agents/:id/reminders/:reminderId',
  tag: 'reminders',
  summary: 'Remove a reminder and its schedule',
  responses: { 204: { description: 'Removed', media: {} } },
});

route({
  method: 'get',
  path: '/api/v1/governance',
  tag: 'governance',
  summary: "The limits and how much of them is in use (token use by the caller's organisation)",
  responses: { 200: Governance },
});

route({
  method: 'get',
  path: '/api/v1/tools',
  tag: 'tools',
  summary: 'The built-in tools with the JSON Schema of their input',
  responses: { 200: ToolList },
});

route({
  method: 'post',
  path: '/api/v1/meta',
  tag: 'meta',
  summary: 'Start a meta supervisor for an objective (404 unless META_AGENT_ENABLED)',
  body: CreateMetaBody,
  responses: { 201: MetaRunDetail },
});
route({
  method: 'get',
  path: '/api/v1/meta',
  tag: 'meta',
  summary: 'List meta supervisor runs, newest first',
  query: ListMetaQuery,
  responses: { 200: MetaRunList },
});
route({
  method: 'get',
  path: '/api/v1/meta/:id',
  tag: 'meta',
  summary: 'A meta supervisor run with its team and crew',
  responses: { 200: MetaRunDetail },
});

// ---------------------------------------------------------------------------------------------
// The document

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const nameOf = (schema: z.ZodType, table: Record<string, z.ZodType>) =>
  Object.entries(table).find(([, s]) => s === schema)?.[0];

function componentSchemas(table: Record<string, z.ZodType>, io: 'input' | 'output'): Record<string, unknown> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(table)) registry.add(schema, { id });
  const { schemas } = z.toJSONSchema(registry, {
    io,
    uri: (id) => `#/components/schemas/${id}`,
    unrepresentable: 'any',
  });
  // Components live inside the document, which declares its dialect once (jsonSchemaDialect) and
  // names them by their place; zod's own $schema and $id would only repeat that.
  return Object.fromEntries(
    Object.entries(schemas).map(([id, { $schema: _dialect, $id: _id, ...schema }]) => [id, schema]),
  );
}

function queryParameters(query: z.ZodObject) {
  const json = z.toJSONSchema(query, { io: 'input' }) as { properties?: Record<string, object>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, schema]) => ({
    name,
    in: 'query',
    required: json.required?.includes(name) ?? false,
    schema,
  }));
}

function operation(spec: RouteSpec) {
  const pathParams = [...spec.path.matchAll(/:(\w+)/g)].map(([, name]) => ({
    name,
    in: 'path',
    required: true,
    schema: { type: 'string' },
  }));
  const responses: Record<string, unknown> = {};
  for (const [status, body] of Object.entries(spec.responses)) {
    const { description, media } =
      body instanceof z.ZodType ? { description: 'OK', media: { 'application/json': body } } : body;
    const content = Object.fromEntries(
      Object.entries(media).map(([type, schema]) => [
        type,
        {
          schema:
            schema instanceof z.ZodType
              ? ref(nameOf(schema, RESPONSE_SCHEMAS)!)
              : { type: schema === 'text' ? 'string' : 'object' },
        },
      ]),
    );
    responses[status] = {
      description: Number(status) >= 400 ? 'Failed' : description,
      ...(Object.keys(content).length ? { content } : {}),
    };
  }
  if (!spec.public) {
    const error = (description: string) => ({
      description,
      content: { 'application/json': { schema: ref('ErrorResponse') } },
    });
    responses['400'] ??= error('Malformed JSON or invalid fields (zod issues in details.issues)');
    responses['404'] ??= error('Unknown id or route');
    responses['409'] ??= error('Impossible transition');
  }
  const bodyName = spec.body && nameOf(spec.body, REQUEST_SCHEMAS);
  return {
    operationId: `${spec.method}${spec.path
      .replace(/^\/api\/v1/, '')
      .replace(/[/:.](\w)/g, (_m, c: string) => c.toUpperCase())
      .replace(/\W/g, '')}`,
    summary: spec.summary,
    tags: [spec.tag],
    ...(spec.public ? { security: [] } : {}),
    parameters: [
      ...pathParams,
      ...(spec.query ? queryParameters(spec.query) : []),
      ...(spec.headers ?? []).map((h) => ({
        name: h.name,
        in: 'header',
        required: false,
        description: h.description,
        schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$' },
      })),
    ],
    ...(bodyName
      ? { requestBody: { required: true, content: { 'application/json': { schema: ref(bodyName) } } } }
      : {}),
    responses,
  };
}

let cached: object | undefined;

/** The OpenAPI 3.1 document (built once per process). */
export function openApiDocument(): object {
  if (cached) return cached;
  const paths: Record<string, Record<string, unknown>> = {};
  for (const spec of ROUTES) {
    const path = spec.path.replace(/:(\w+)/g, '{$1}');
    (paths[path] ??= {})[spec.method] = operation(spec);
  }
  cached = {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'Temporal Agent Orchestrator API',
      version: '1',
      description:
        'Agents are Temporal workflows; this API starts and changes them and reads their Postgres records. Errors are {"error": {"code", "message", "details?"}}.',
    },
    servers: [{ url: '/' }],
    // API keys (Authorization: Bearer) when the server requires them; /health and this document are public.
    security: [{ bearerAuth: [] }, {}],
    paths,
    components: {
      schemas: {
        ...componentSchemas(RESPONSE_SCHEMAS, 'output'),
        ...componentSchemas(REQUEST_SCHEMAS, 'input'),
        ...componentSchemas(QUERY_SCHEMAS, 'input'),
      },
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'API key' } },
    },
  };
  return cached;
}

/** The documented operations, for tests that check each one against real responses. */
export function documentedOperations(): { method: Method; path: string }[] {
  return ROUTES.map(({ method, path }) => ({ method, path }));
}
