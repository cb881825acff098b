/**
 * The contract between the API, the workers and the workflows: workflow ids, message definitions
 * (signals, queries, updates), search attributes and the types they carry. It imports only the
 * Temporal workflow/common packages, so every side can use it. Wire names never change once shipped.
 */
import { defineSearchAttributeKey } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { SEARCH_ATTRIBUTE_KEYS } from './search-attributes';

export const DEFAULT_TASK_QUEUE = 'agents';

export const agentWorkflowId = (agentId: string): string => `agent-${agentId}`;
export const taskWorkflowId = (taskId: string): string => `task-${taskId}`;
export const chatWorkflowId = (sessionId: string): string => `chat-${sessionId}`;

// ---- Search attributes (registered on the server from contract/search-attributes.ts) ----
export const {
  AgentId: AgentIdAttr,
  AgentName: AgentNameAttr,
  AgentStatus: AgentStatusAttr,
  AgentType: AgentTypeAttr,
  OrgId: OrgIdAttr,
  CrewId: CrewIdAttr,
  TaskId: TaskIdAttr,
} = SEARCH_ATTRIBUTE_KEYS;

// ---- The vocabulary: every status and enum once, as arrays; types, request schemas, the OpenAPI
// document and the database's CHECK constraints derive from these ----

export const AGENT_STATUSES = ['IDLE', 'RUNNING', 'PAUSED', 'ERROR', 'ARCHIVED'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];
export const AUTONOMY_LEVELS = ['manual', 'copilot', 'autopilot'] as const;
export type Autonomy = (typeof AUTONOMY_LEVELS)[number];
/**
 * `waiting_for_budget`: the token budget is spent; the task sleeps on a durable timer until the window refills.
 * `validating`: the model answered and the answer is being checked against the task's `validation`.
 */
export const TASK_STATUSES = [
  'queued',
  'planning',
  'awaiting_approval',
  'running',
  'waiting_for_budget',
  'validating',
  'completed',
  'failed',
  'cancelled',
] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const TERMINAL_TASK_STATUSES: readonly TaskStatus[] = ['completed', 'failed', 'cancelled'];
export const APPROVAL_STATUSES = ['pending', 'approved', 'rejected', 'expired'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];
export const APPROVAL_TIMEOUT_ACTIONS = ['fail', 'escalate'] as const;
export const PROVIDER_NAMES = ['offline', 'openai', 'anthropic', 'ollama', 'openai-compatible'] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];
export const CREW_PROCESSES = ['sequential', 'parallel', 'hierarchical', 'consensus'] as const;
export type CrewProcess = (typeof CREW_PROCESSES)[number];
export const CREW_STATUSES = ['idle', 'planning', 'running', 'completed', 'failed', 'stopped'] as const;
export type CrewStatus = (typeof CREW_STATUSES)[number];
export const TERMINAL_CREW_STATUSES: readonly CrewStatus[] = ['completed', 'failed', 'stopped'];
export const CREW_ASSIGNMENTS = ['capability', 'least-loaded', 'round-robin'] as const;
export type CrewAssignment = (typeof CREW_ASSIGNMENTS)[number];
export const CREW_MESSAGE_TYPES = ['request', 'response', 'status_update', 'handoff'] as const;
export type CrewMessageType = (typeof CREW_MESSAGE_TYPES)[number];
export const CREW_SUBTASK_STATUSES = ['completed', 'failed', 'cancelled', 'skipped'] as const;
export const META_STATUSES = ['planning', 'creating_team', 'running', 'completed', 'failed'] as const;
export type MetaStatus = (typeof META_STATUSES)[number];
export const REMINDER_STATUSES = ['active', 'paused', 'done', 'removed'] as const;
export type ReminderStatus = (typeof REMINDER_STATUSES)[number];

// ---- Domain types carried through workflows ----

export interface AgentConfig {
  id: string;
  orgId: string;
  name: string;
  objective: string;
  type: string;
  capabilities: string[];
  autonomy: Autonomy;
  priority: number;
  allowedTools: string[];
  systemPrompt: string | null;
  /** Provider name, or null for the deployment default. */
  provider: string | null;
  model: string | null;
  /** Providers to try, in order, when the first is failing or its circuit is open. */
  fallbackProviders: string[];
  /** MCP servers whose tools join this agent's registry (subject to allowedTools). */
  mcpServers: McpServer[];
  /** Tools that need a human's approval even in autopilot (on top of tools that always do). */
  approvalRequiredTools: string[];
  /** Overrides APPROVAL_TIMEOUT_HOURS for this agent. */
  approvalTimeoutHours: number | null;
  /** When an approval lapses: fail the task, or tell the model and escalate (the task goes on). */
  onApprovalTimeout: (typeof APPROVAL_TIMEOUT_ACTIONS)[number];
  /** Where this agent's notifications go. */
  notify: NotifyTarget;
  /** This agent's own token budget per budget window, on top of the org and global ones; null: none. */
  tokenBudgetPerMinute?: number | null;
  /** Free JSON shown to the model in the system prompt (absent in agents created before it existed). */
  config?: Record<string, unknown> | null;
  createdAt: string;
}

export type NotifyTarget = { type: 'log' } | { type: 'webhook'; url: string };

/** An MCP server an agent may use; its tools are named `mcp__<name>__<tool>`. */
export type McpServer =
  | { name: string; transport: 'stdio'; server: string }
  | { name: string; transport: 'http'; url: string; headers?: Record<string, string> };

/** Whether an allowlist permits a tool: exact names, or `mcp__<server>__*` for all of a server's tools. */
export function toolAllowed(allowedTools: readonly string[], name: string): boolean {
  return allowedTools.some((entry) => entry === name || (entry.endsWith('__*') && name.startsWith(entry.slice(0, -1))));
}

/** Work items of one parallel crew in flight at once: each is a child workflow and a member's model calls. */
export const CREW_PARALLEL_ITEMS_AT_ONCE = 8;

/** Runtime limits handed to workflows as arguments: workflows never read the environment. */
export interface AgentSettings {
  maxSteps: number;
  /** AGENT_TIMEOUT_SECONDS: the most time a task may spend running (paused time excluded). */
  taskTimeoutSeconds: number;
  /** MAX_RETRIES: retries after the first attempt for LLM and tool activities. */
  maxRetries: number;
  /** How quickly a step lost with a crashed worker is retried elsewhere. */
  heartbeatTimeoutSeconds: number;
  llmTimeoutSeconds: number;
  maxDelegationDepth: number;
  /** Continue-as-new once the agent's history has this many events. */
  historyLimit: number;
  /**
   * AGENT_IDLE_HISTORY_LIMIT: continue-as-new once an agent with nothing running or queued has this many events.
   * Absent in runs started before it existed: DEFAULT_IDLE_HISTORY_LIMIT.
   */
  idleHistoryLimit?: number;
  /**
   * AGENT_WORKFLOW_TASK_TIMEOUT_SECONDS: the workflow task timeout an agent starts with (continued runs keep
   * it). Absent in settings written before it existed: Temporal's default.
   */
  workflowTaskTimeoutSeconds?: number;
  /** AGENT_SLOT_RECHECK_SECONDS (absent in runs started before it existed). */
  slotRecheckSeconds?: number;
  /** ADMISSION_RECHECK_MAX_SECONDS: the longest fallback timer of a step sleeping until it is woken for admission. */
  admissionRecheckMaxSeconds?: number;
  /** MAX_QUEUED_GOALS_PER_AGENT (absent in runs started before it existed). */
  maxQueuedGoals?: number;
  /** APPROVAL_TIMEOUT_HOURS: how long an approval request waits before it expires. */
  approvalTimeoutHours: number;
  /** PRIORITY_SCORING: whether queued goals are scored by the model (absent in runs started before it existed). */
  priorityScoring?: boolean;
  /** PRIORITY_SCORING_TIMEOUT_SECONDS. */
  priorityScoringTimeoutSeconds?: number;
  /** TRACES_UI_URL (with `{traceId}`): a running task's Web UI details link to its trace. */
  tracesUiUrl?: string;
}

export interface Goal {
  taskId: string;
  title: string;
  taskType: string;
  input: Record<string, unknown>;
  priority: number;
  /** The AI-scored priority 0-1000, once scored; the queue orders by it (static priority × 100 until then). */
  score?: number;
  delegationDepth: number;
  parentTaskId: string | null;
  submittedAt: string;
  /**
   * Set on goals carried through continue-as-new: their input stayed in the task's row (only `dependsOn`
   * travels), and is read back when the goal starts or is scored.
   */
  inputInRow?: boolean;
  /** The skill named when the task was submitted, if any. */
  skillId?: string;
  /** What the final answer must satisfy before the task completes (docs/agents.md "Checked output"). */
  validation?: TaskValidation;
  /** Set on goals carried through continue-as-new whose `validation` stayed in the task's row. */
  validationInRow?: boolean;
}

/**
 * A task's output check: the answer must be JSON matching `expectedOutput` (a JSON Schema) and/or meet
 * `acceptanceCriteria` as judged by a model call. A failed check goes back to the model with the reasons,
 * up to `maxAttempts` checks in all; then the task fails with them.
 */
export interface TaskValidation {
  expectedOutput?: Record<string, unknown>;
  acceptanceCriteria?: string;
  maxAttempts: number;
}

/** A check's outcome: the reasons it failed (none when it passed) and, with a schema, the parsed output. */
export interface OutputVerdict {
  passed: boolean;
  reasons: string[];
  /** The answer's JSON, when `expectedOutput` was given and it parsed. */
  output?: unknown;
}

/** Queue entry: `seq` makes ordering FIFO within one priority. */
export interface QueuedGoal extends Goal {
  seq: number;
}

export interface AgentRuntimeState {
  status: AgentStatus;
  paused: boolean;
  /** Set when a task failed in a way that needs an operator (bad credentials, bad config). */
  errorReason: string | null;
  queue: QueuedGoal[];
  current: Goal | null;
  nextSeq: number;
  stateVersion: number;
  goalsCompleted: number;
  goalsFailed: number;
  goalsCancelled: number;
  runs: number;
  lastActive: string | null;
  /** Set while the next goal waits for one of the AGENTS_MAX_ACTIVE slots. */
  waitingForSlot?: boolean;
  /** While paused: the agent whose agent_manager paused it; absent or null for an operator's pause. */
  pausedByAgentId?: string | null;
  /** Messages delivered to the agent and not yet shown to its model, oldest first (bounded). */
  inbox?: InboxMessage[];
  /** Requests of this agent that a response reached lately (for await_response), oldest first (bounded). */
  repliesSeen?: string[];
}

export const MESSAGE_TYPES = ['status', 'request', 'response', 'handoff'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

/** A message from another agent as its recipient's workflow holds it until its model has seen it. */
export interface InboxMessage {
  messageId: string;
  /** Null for the orchestrator's own messages (a meta run's result to the agent that started it). */
  fromAgentId: string | null;
  type: MessageType;
  /** The content, cut to a few hundred characters; the full text stays in its row. */
  summary: string;
  replyTo?: string | null;
  topic?: string | null;
}

export interface AgentWorkflowInput {
  agent: AgentConfig;
  settings: AgentSettings;
  /** Present when continuing as new: everything the previous run knew. */
  carried?: AgentRuntimeState;
}

export interface AgentLiveState extends AgentRuntimeState {
  agent: AgentConfig;
  historyLength: number;
  /** Messages in the inbox that the agent's model has not seen yet. */
  unreadMessages?: number;
}

export interface SubmitGoalInput {
  taskId: string;
  title: string;
  /**
   * The submitting organisation, which must be the agent's. Its top-level `orgId` binds the submission's
   * payload to that organisation under payload encryption (lib/codec.ts), so the organisation's own key
   * reads its task's input in the Web UI.
   */
  orgId?: string;
  taskType?: string;
  input?: Record<string, unknown>;
  priority?: number;
  delegationDepth?: number;
  parentTaskId?: string | null;
  /** The skill the task is meant to be executed with (stored on the task row). */
  skillId?: string;
  /** What the answer must satisfy before the task completes. */
  validation?: TaskValidation;
}

export interface GoalReceipt {
  taskId: string;
  status: TaskStatus;
  /** 1-based position in the queue, 0 when it is already running or finished. */
  position: number;
}

export type AgentConfigPatch = Partial<
  Pick<
    AgentConfig,
    | 'name'
    | 'objective'
    | 'type'
    | 'capabilities'
    | 'autonomy'
    | 'priority'
    | 'allowedTools'
    | 'systemPrompt'
    | 'provider'
    | 'model'
    | 'fallbackProviders'
    | 'mcpServers'
    | 'approvalRequiredTools'
    | 'approvalTimeoutHours'
    | 'onApprovalTimeout'
    | 'notify'
    | 'tokenBudgetPerMinute'
    | 'config'
  >
>;

export interface TaskWorkflowInput {
  goal: Goal;
  agent: AgentConfig;
  settings: AgentSettings;
  /** Whether the owning agent was paused when the task started. */
  startPaused: boolean;
}

export interface TaskOutcome {
  taskId: string;
  status: Extract<TaskStatus, 'completed' | 'failed' | 'cancelled'>;
  output: unknown;
  error: string | null;
  /** Failure type name from contract/errors when failed. */
  errorType: string | null;
  steps: number;
}

// ---- Agent workflow messages ----
// Updates, not signals, wherever the API must answer with the real outcome (queued, 409 on an
// impossible transition); the validators reject before anything is written to history.
export const submitGoalUpdate = defineUpdate<GoalReceipt, [SubmitGoalInput]>('submitGoal');
/**
 * Who asks to pause or resume: an operator (API, CLI; no argument), or an agent through its agent_manager
 * tool (`byAgentId`). An agent may resume only a pause an agent made, never an operator's.
 */
export interface LifecycleRequest {
  byAgentId?: string;
}
export const pauseAgentUpdate = defineUpdate<AgentLiveState, [LifecycleRequest | undefined]>('pauseAgent');
export const resumeAgentUpdate = defineUpdate<AgentLiveState, [LifecycleRequest | undefined]>('resumeAgent');
export const archiveAgentUpdate = defineUpdate<AgentLiveState>('archiveAgent');
export const cancelGoalUpdate = defineUpdate<GoalReceipt, [{ taskId: string; reason?: string }]>('cancelGoal');
export const updateAgentConfigUpdate = defineUpdate<AgentConfig, [AgentConfigPatch]>('updateAgentConfig');
/** Resolves once the agent's row is recorded; used with update-with-start so creation is read-your-writes. */
export const agentReadyUpdate = defineUpdate<AgentLiveState>('agentReady');
export const getAgentStateQuery = defineQuery<AgentLiveState>('getAgentState');
/** Sent by an agent that gave back an active slot to the agent waiting next for one: ask again now. */
export const activeSlotFreedSignal = defineSignal('activeSlotFreed');
/** A step slot or token budget was freed: a step sleeping for admission asks again now. */
export const admissionFreedSignal = defineSignal('admissionFreed');
/** A message from another agent (send_message, publish): it joins the recipient's inbox, once per message id. */
export const deliverMessageSignal = defineSignal<[InboxMessage]>('deliverMessage');

// ---- Task workflow messages ----
// Signals: the agent does not need a reply to pause or resume its running task.
export const pauseTaskSignal = defineSignal('pauseTask');
export const resumeTaskSignal = defineSignal('resumeTask');
export const getTaskProgressQuery = defineQuery<TaskProgress>('getTaskProgress');

export interface TaskProgress {
  taskId: string;
  status: TaskStatus;
  step: number;
  maxSteps: number;
  paused: boolean;
  activity: string;
}

// ---- Approvals ----

export interface ApprovalDecisionInput {
  approvalId: string;
  decision: 'approve' | 'reject';
  /** Replaces the proposed tool arguments (approve only). */
  editedAction?: Record<string, unknown>;
  reason?: string;
  decidedBy?: string;
}

export interface ApprovalOutcome {
  approvalId: string;
  status: Exclude<ApprovalStatus, 'pending'>;
  decidedBy: string | null;
  reason: string | null;
  editedAction: Record<string, unknown> | null;
  decidedAt: string;
}

/**
 * An update, so the caller learns the real outcome: the validator refuses a request that is unknown,
 * expired or already decided the other way (the API answers 409); the same decision sent twice is
 * answered with the recorded outcome.
 */
export const decideApprovalUpdate = defineUpdate<ApprovalOutcome, [ApprovalDecisionInput]>('decideApproval');
/** The same decision as a signal, for senders that can only signal; a decision that does not apply is ignored. */
export const decideApprovalSignal = defineSignal<[ApprovalDecisionInput]>('decideApprovalSignal');

// ---- Chat ----
export interface ChatWorkflowInput {
  sessionId: string;
  agent: AgentConfig;
  settings: AgentSettings;
  /** The conversation so far: set when continuing as new, and empty for a session just created. */
  conversation?: { role: 'user' | 'assistant'; content: string }[];
}

export interface ChatTurnInput {
  turnId: string;
  message: string;
}

export interface ChatTurnResult {
  turnId: string;
  status: 'completed' | 'cancelled' | 'failed';
  content: string;
  error: string | null;
  toolCalls: { name: string; arguments: string; result: string; isError: boolean }[];
  usage: { inputTokens: number; outputTokens: number };
}

/** An update: the API streams tokens meanwhile and answers with the final message when it returns. */
export const chatTurnUpdate = defineUpdate<ChatTurnResult, [ChatTurnInput]>('chatTurn');
/** A signal: the client went away; stop generating. No reply is needed. */
export const cancelChatTurnSignal = defineSignal<[{ turnId: string }]>('cancelChatTurn');

/** Workers publish a turn's events (Postgres NOTIFY on this channel) to the API process streaming it. */
export const CHAT_EVENTS_CHANNEL = 'chat_events';

export interface ChatEvent {
  turnId: string;
  /** `waiting`: the turn waits for admission (token budget, a step slot, a resource); data says why and how long. */
  type: 'token' | 'tool_call' | 'tool_result' | 'waiting';
  data: Record<string, unknown>;
}

// ---- Governance ----
/**
 * Why a step was not admitted yet. Activities throw it as a non-retryable failure of type
 * ErrorType.AdmissionWait with this as its only detail; the workflow sleeps on a durable timer and asks again.
 */
export interface AdmissionWait {
  /** `provider_backoff`: the provider asked to be left alone for a while; the step tries again after it. */
  reason: 'token_budget' | 'step_slot' | 'resource' | 'provider_backoff';
  retryAfterMs: number;
  detail: string;
  /**
   * The workflow is in the line of admission_waiters: whoever frees room signals it (admissionFreedSignal),
   * so its timer is only a fallback and may grow long.
   */
  wake?: boolean;
  /** provider_backoff: attempts of this call made so far, carried into the next try's retry budget. */
  attemptsUsed?: number;
}
// ---- Crews ----
// A crew is a team of existing agents working on one goal as a CrewWorkflow (`crew-<crewId>`); every
// piece of member work is a TaskWorkflow child of the crew, recorded as a task of that member.
export const crewWorkflowId = (crewId: string): string => `crew-${crewId}`;

/** How a sub-task finds its member: all required capabilities then least busy; least busy; in turn. */

export interface CrewMember {
  agentId: string;
  /** `planner` leads a hierarchical crew, `reducer` aggregates a parallel one; otherwise free text. */
  role: string | null;
  /** Merged into the input of every sub-task this member runs (instructions, context, scripts). */
  input: Record<string, unknown>;
}

export interface CrewWorkflowInput {
  crewId: string;
  orgId: string;
  name: string;
  goal: string;
  process: CrewProcess;
  assignment: CrewAssignment;
  /** Crew-wide input; `items` gives a parallel crew its work items. */
  input: Record<string, unknown>;
  /** Each member with its agent's configuration as of the start (read from the agent's workflow). */
  members: (CrewMember & { agent: AgentConfig })[];
  settings: AgentSettings;
  /** CREW_CONSENSUS_THRESHOLD: the winning share a consensus must reach. */
  consensusThreshold: number;
  /** A hierarchical crew given a ready plan (the meta supervisor's) runs it instead of asking a planner. */
  plan?: { id: string; title: string; capabilities: string[]; dependsOn: string[] }[];
  /**
   * Set when the crew works for a task (a meta run an agent started): its members' goals sit one level below
   * it, so the delegation fuse and sub-task limits count them. Absent: top level (depth 0, no parent).
   */
  delegatedBy?: { taskId: string; delegationDepth: number };
}

/** A message between members (or from outside, `fromAgentId` null); `toAgentId` null is a broadcast. */
export interface CrewMessageInput {
  messageId: string;
  fromAgentId: string | null;
  toAgentId: string | null;
  type: CrewMessageType;
  content: string;
}

/** A message as the crew stored it: `seq` is its position in the crew's one ordered log. */
export interface CrewMessage extends CrewMessageInput {
  seq: number;
  sentAt: string;
}

export interface CrewSubTaskReport {
  key: string;
  title: string;
  status: (typeof CREW_SUBTASK_STATUSES)[number];
  agentId: string | null;
  /** Every attempt's task id, in order (retries and reassignments included). */
  taskIds: string[];
  output: unknown;
  error: string | null;
}

export interface CrewResult {
  status: Extract<CrewStatus, 'completed' | 'failed' | 'stopped'>;
  /** The crew's answer: the last pipeline output, the reduction, the plan's outputs or the vote. */
  output: unknown;
  /** True when some sub-tasks failed and the output is built from the rest. */
  partial: boolean;
  failed: { key: string; title: string; error: string | null }[];
  subTasks: CrewSubTaskReport[];
}

export interface CrewLiveState {
  crewId: string;
  status: CrewStatus;
  members: { agentId: string; role: string | null; running: number; assigned: number }[];
  subTasks: CrewSubTaskReport[];
  messages: number;
}

/** Update (used with update-with-start): `start` answers once the crew's running status is recorded. */
export const crewStartedUpdate = defineUpdate<CrewLiveState>('crewStarted');
/** A signal: a sender needs no reply, and signals are stored durably in order of arrival. */
export const crewMessageSignal = defineSignal<[CrewMessageInput]>('crewMessage');
export const getCrewStateQuery = defineQuery<CrewLiveState>('getCrewState');
// ---- Reminders ----
// Each reminder is a Temporal schedule `reminder-<id>` whose action starts a ReminderFireWorkflow; the
// server appends the tick's time to the fire workflow's id and sets TemporalScheduledStartTime on it.
export const reminderScheduleId = (reminderId: string): string => `reminder-${reminderId}`;
export const reminderFireWorkflowId = (reminderId: string): string => `reminder-${reminderId}-fire`;
export const reminderChangeWorkflowId = (reminderId: string, op: 'create' | 'remove'): string =>
  `reminder-${reminderId}-${op}`;
export const ScheduledStartTimeAttr = defineSearchAttributeKey('TemporalScheduledStartTime', 'DATETIME');

/** What every fire of a reminder submits to its agent. */
export interface ReminderTask {
  reminderId: string;
  agentId: string;
  title: string;
  taskType: string;
  input: Record<string, unknown>;
  /** Null: the agent's own priority. */
  priority: number | null;
  delegationDepth: number;
}

export interface ReminderFireInput extends ReminderTask {
  /** ACTIVITY_HEARTBEAT_SECONDS when the reminder was created: how soon a fire lost with its worker is retried. */
  heartbeatTimeoutSeconds: number;
}

export interface ReminderFireResult {
  reminderId: string;
  taskId: string;
  scheduledFor: string;
  /** `agent_gone`: the agent was archived; the reminder removed itself. */
  outcome: 'submitted' | 'agent_gone';
}

/** A new reminder, validated by the API or the create_reminder tool. `schedule` is one of lib/reminders' shapes. */
export interface NewReminder extends ReminderTask {
  orgId: string;
  schedule: Record<string, unknown>;
  createdBy: string;
}

export interface ReminderView {
  id: string;
  agentId: string;
  title: string;
  schedule: Record<string, unknown>;
  status: ReminderStatus;
  nextFireAt: string | null;
  firesSoFar: number;
  createdAt: string;
}

/** What a reminder's schedule says about it: the source of truth for firing. */
export interface ReminderScheduleState {
  paused: boolean;
  nextFireAt: string | null;
  firesSoFar: number;
}

export type ReminderChange = { op: 'create'; reminder: NewReminder } | { op: 'remove'; reminderId: string };

// ---- Meta supervisor ----
// A MetaSupervisorWorkflow (`meta-<metaId>`) turns one objective into a team of new agents and a plan of
// sub-tasks, then runs them as a hierarchical crew (a CrewWorkflow child) and records the combined result.
export const metaWorkflowId = (metaId: string): string => `meta-${metaId}`;

/** One specialised agent the supervisor designs: what it is for and what it can do. */
export interface MetaTeamMember {
  name: string;
  role: string;
  objective: string;
  capabilities: string[];
}

/** A sub-task of the objective: a node of the plan's DAG, taken by a member with its capabilities. */
export interface MetaPlanNode {
  id: string;
  title: string;
  capabilities: string[];
  dependsOn: string[];
}

export interface MetaWorkflowInput {
  metaId: string;
  orgId: string;
  name: string;
  objective: string;
  /** At most this many agents are created (1-5). */
  maxAgents: number;
  settings: AgentSettings;
  /** Handed on to the crew (CREW_CONSENSUS_THRESHOLD). */
  consensusThreshold: number;
  /**
   * Set when an agent started the run (the meta_orchestrate tool): the team gets no more than `limits`
   * allow, and the result goes back to the agent as a response to `metaId`.
   */
  requestedBy?: { agentId: string; taskId: string; delegationDepth: number; limits: MetaTeamLimits };
  /** Archive the team's agents when the run ends. Absent in runs started before this existed (kept). */
  archiveTeam?: boolean;
}

/** What the agents of a team started by an agent take from it, so that none has more than it. */
export type MetaTeamLimits = Pick<
  AgentConfig,
  | 'autonomy'
  | 'allowedTools'
  | 'approvalRequiredTools'
  | 'tokenBudgetPerMinute'
  | 'provider'
  | 'model'
  | 'fallbackProviders'
  | 'approvalTimeoutHours'
  | 'onApprovalTimeout'
  | 'notify'
>;

export interface MetaResult {
  status: Extract<MetaStatus, 'completed' | 'failed'>;
  crewId: string | null;
  /** Every sub-task's answer in plan order, then the answer of the sub-task(s) nothing depends on. */
  combined: string | null;
  subTasks: (CrewSubTaskReport & { dependsOn: string[] })[];
  error: string | null;
}

// ---- Routed tasks ----
// A task submitted with a route instead of an agent id runs on the agent the route picked; its
// RoutedTaskWorkflow (`route-<taskId>`) retries it once on that agent when it fails, then reassigns it
// to another capable agent, then fails it with every attempt's reason.
export const routedTaskWorkflowId = (taskId: string): string => `route-${taskId}`;

export const ROUTE_STRATEGIES = ['capability', 'least_loaded', 'round_robin'] as const;
export type RouteStrategy = (typeof ROUTE_STRATEGIES)[number];

export interface TaskRoute {
  capabilities: string[];
  strategy: RouteStrategy;
}

export interface RoutedTaskInput {
  orgId: string;
  /** The original task: the first attempt, and the row that records the route's outcome. */
  taskId: string;
  agentId: string;
  route: TaskRoute;
}

/** An attempt of a routed task ended (sent by the activity that records a task's end). */
export interface RoutedTaskEnd {
  taskId: string;
  status: TaskStatus;
  error: string | null;
  /** The failure's type (contract/errors), when the signal carries it. */
  errorType?: string | null;
}

export interface RoutedTaskResult {
  status: 'completed' | 'failed' | 'cancelled';
  attempts: { taskId: string; agentId: string; status: TaskStatus; error: string | null }[];
  error: string | null;
}

export const routedTaskEndedSignal = defineSignal<[RoutedTaskEnd]>('routedTaskEnded');

// ---- Workflow types, by the names the worker registers ----
// The client starts workflows by name with these signatures; workflows/index.ts checks that the
// implementations match them, so neither side imports the other.

export type AgentWorkflowType = (input: AgentWorkflowInput) => Promise<AgentLiveState>;
export type TaskWorkflowType = (input: TaskWorkflowInput) => Promise<TaskOutcome>;
export type ChatWorkflowType = (input: ChatWorkflowInput) => Promise<void>;
export type CrewWorkflowType = (input: CrewWorkflowInput) => Promise<CrewResult>;
export type MetaSupervisorWorkflowType = (input: MetaWorkflowInput) => Promise<MetaResult>;
export type ReminderFireWorkflowType = (input: ReminderFireInput) => Promise<ReminderFireResult>;
export type ReminderChangeWorkflowType = (change: ReminderChange) => Promise<ReminderView | null>;
export type RoutedTaskWorkflowType = (input: RoutedTaskInput) => Promise<RoutedTaskResult>;
