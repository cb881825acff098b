import { SpanKind } from '@opentelemetry/api';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { BrokenCircuitError } from 'cockatiel';
import type { Logger } from 'pino';
import type { TemporalGateway } from '../client/gateway';
import type { Config } from '../lib/config';
import type { Db } from '../lib/db';
import { ErrorType } from '../contract/errors';
import { parseJsonOrText } from '../contract/json';
import { workerMetrics } from '../lib/metrics';
import { registerPromptSecrets } from '../lib/logger';
import { GenAi, inSpan, spanContent } from '../lib/tracing';
import { toolAllowed, type McpServer } from '../contract/definitions';
import { ProviderConfigError } from './llm';
import type { ProviderCircuits } from './llm/circuits';
import {
  ProviderError,
  type FinishReason,
  type LlmMessage,
  type LlmProvider,
  type LlmResponse,
  type ToolCall,
  type ToolSpec,
  type TokenUsage,
} from './llm/types';
import {
  admissionFailure,
  estimateTokens,
  admissionReason,
  isAdmissionWait,
  type Governance,
  type TokenReservation,
} from './governance';
import { writeAgentState, type AgentStateRecord } from '../lib/records/agents';
import { insertDecision } from '../lib/records/decisions';
import { recordModelCall } from '../lib/records/llm-calls';
import { startTask, startTaskAlongside, taskRunningAlongside } from '../lib/records/tasks';
import { parseMcpToolName, type McpToolSource } from './tools/mcp';
import { boundToolOutput, ToolError, type ToolPolicy, type ToolRegistry } from './tools/registry';

export interface StepDeps {
  db: Db;
  config: Config;
  logger: Logger;
  providers: { get(name: string | null): LlmProvider };
  circuits: ProviderCircuits;
  mcp: McpToolSource;
  tools: ToolRegistry;
  governance: Governance;
  /** The client, for the tools that submit goals to other agents. */
  gateway: Pick<TemporalGateway, 'submitGoal' | 'deliverMessage' | 'wakeWorkflow'>;
}

/** Who a step belongs to, for budgets and slots. */
export interface StepOwner {
  agentId: string;
  orgId: string;
  /** The goal's priority (score 0-1000): steps waiting for a slot are admitted highest first. */
  priority: number;
  /** The agent's own token budget per window, if any. */
  agentBudget?: number | null;
  /**
   * The calling workflow handles admissionFreedSignal: a refused step puts it in the line of
   * admission_waiters, and whoever frees room wakes it (absent: it asks again on its timer alone).
   */
  wakeOnAdmission?: boolean;
}

export interface CallModelInput {
  taskId: string;
  step: number;
  /** Absent only in calls scheduled before budgets existed; such calls are not governed. */
  owner?: StepOwner;
  /** Moves the task to `planning` before the call (its first step). */
  markStarted?: boolean;
  /**
   * The agent's state as its goal starts (RUNNING, this task), written before the call: the goal's start
   * needs no record of its own (see TaskRun's agentStateAtStart).
   */
  agentState?: AgentStateRecord;
  /**
   * A final answer (no tool calls, no refusal) completes the task: its final state is written with the
   * call's records, and the workflow records no end of its own (`ModelReply.completedTask`).
   */
  completesTask?: boolean;
  /** The agent's MCP servers: their allowed tools are offered alongside the built-ins. */
  mcpServers?: McpServer[];
  provider: string | null;
  /** Tried in order when the provider before fails for availability or credentials, or its circuit is open. */
  fallbackProviders?: string[];
  model: string | null;
  messages: LlmMessage[];
  toolNames: string[];
  /**
   * The call's retry budget across tries: a provider backing off for long (PROVIDER_BACKOFF_RELEASE_MS or
   * more) ends the try with a `provider_backoff` wait, and the workflow's next try starts its attempts here.
   */
  retry?: { attemptsBefore: number; maxAttempts: number };
}

export interface ModelReply {
  content: string;
  toolCalls: ToolCall[];
  /** How the workflow must gate each called tool (approval, proposal); the registry knows, workflows cannot. */
  toolPolicies: Record<string, ToolPolicy>;
  finishReason: FinishReason;
  usage: TokenUsage;
  provider: string;
  model: string;
  /** The task's row was moved to `completed` with this answer (asked for with `completesTask`). */
  completedTask?: boolean;
}

export interface RunToolInput {
  taskId: string;
  agentId: string;
  orgId: string;
  step: number;
  index: number;
  call: ToolCall;
  allowedTools: string[];
  mcpServers?: McpServer[];
  idempotencyKey: string;
  delegationDepth: number;
  maxDelegationDepth: number;
  /** The goal's priority (score 0-1000) for the step slot; absent in calls scheduled before slots existed. */
  priority?: number;
  /** As StepOwner.wakeOnAdmission. */
  wakeOnAdmission?: boolean;
}

export interface ToolReply {
  toolCallId: string;
  name: string;
  content: string;
  isError: boolean;
}

const PROVIDER_FAILURE: Record<ProviderError['kind'], string> = {
  rate_limited: ErrorType.ProviderRateLimited,
  unavailable: ErrorType.ProviderUnavailable,
  timeout: ErrorType.ProviderUnavailable,
  network: ErrorType.ProviderUnavailable,
  auth: ErrorType.ProviderAuth,
  invalid_request: ErrorType.ProviderInvalidRequest,
  context_length: ErrorType.ProviderContextLength,
  refusal: ErrorType.ProviderRefusal,
};

/** Heartbeats while `work` runs, so a step lost with its worker is retried after the heartbeat timeout. */
export async function withHeartbeat<T>(work: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
  // A local activity lives inside its workflow task, which the SDK keeps alive; it has nothing to heartbeat.
  if (ctx.info.isLocal) return work();
  const every = Math.max(200, (ctx.info.heartbeatTimeoutMs ?? 30_000) / 3);
  const timer = setInterval(() => ctx.heartbeat(), every);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/**
 * The model and tool calls shared by task steps and chat turns: provider fallback behind circuit
 * breakers, and tool execution that turns every mistake into a result the model can read.
 */
export function createStepRunner(deps: StepDeps) {
  const { db, tools } = deps;
  // A step slot outlives the longest step, so a slot held by a crashed worker frees itself.
  const stepLeaseMs = (Math.max(deps.config.LLM_TIMEOUT_SECONDS, 120) + 30) * 1000;

  /**
   * Tries the agent's provider, then its fallbacks in order. A provider is skipped while its circuit is
   * open; availability and credential failures move on to the next one; request errors (400, context
   * length) stop at once since another provider would refuse the same request. With every candidate
   * failing, the last failure decides: retryable ones are retried by Temporal (honouring retry-after).
   */
  async function completeWithFallback(
    input: CallModelInput,
    opts: { onToken?: (delta: string) => void; timeoutMs?: number } = {},
  ): Promise<LlmResponse> {
    const { onToken } = opts;
    // The activity's cancellation, and a deadline of the caller's own when it has one (priority scoring).
    const cancelled = Context.current().cancellationSignal;
    const signal = opts.timeoutMs ? AbortSignal.any([cancelled, AbortSignal.timeout(opts.timeoutMs)]) : cancelled;
    const names = [...new Set([input.provider ?? deps.config.aiProvider, ...(input.fallbackProviders ?? [])])];
    let lastFailure: ApplicationFailure | undefined;
    for (const name of names) {
      let provider: LlmProvider;
      try {
        provider = deps.providers.get(name);
      } catch (err) {
        if (!(err instanceof ProviderConfigError)) throw err;
        lastFailure = ApplicationFailure.nonRetryable(err.message, ErrorType.Configuration);
        continue;
      }
      // The agent's model belongs to its first provider; fallbacks use their own default model.
      const model = name === names[0] ? (input.model ?? provider.defaultModel) : provider.defaultModel;
      try {
        const specs = [...tools.specs(input.toolNames), ...(await mcpSpecs(input))];
        return await deps.circuits
          .for(name)
          .execute(() =>
            chatSpan(name, model, input, () =>
              provider.complete({ model, messages: input.messages, tools: specs }, { signal, onToken }),
            ),
          );
      } catch (err) {
        if (err instanceof BrokenCircuitError) {
          workerMetrics.providerError(name, 'circuit_open');
          deps.logger.warn({ provider: name, taskId: input.taskId }, 'provider circuit open; trying the next provider');
          lastFailure = ApplicationFailure.create({
            message: `${name}: circuit open`,
            type: ErrorType.ProviderUnavailable,
          });
          continue;
        }
        if (!(err instanceof ProviderError)) throw err;
        workerMetrics.providerError(name, err.kind);
        const failure = toFailure(name, err);
        if (!err.retryable && err.kind !== 'auth') throw failure;
        deps.logger.warn({ provider: name, kind: err.kind, taskId: input.taskId }, `provider failed: ${err.message}`);
        lastFailure = failure;
      }
    }
    throw lastFailure ?? ApplicationFailure.nonRetryable('no provider configured', ErrorType.Configuration);
  }

  /**
   * One `chat {model}` span (GenAI conventions) per provider attempt; the provider SDK's HTTP request is
   * its child. Prompts and completions are recorded only with OTEL_GENAI_CAPTURE_CONTENT, scrubbed.
   */
  function chatSpan(
    provider: string,
    model: string,
    input: CallModelInput,
    call: () => Promise<LlmResponse>,
  ): Promise<LlmResponse> {
    const capture = deps.config.OTEL_GENAI_CAPTURE_CONTENT;
    return inSpan(
      `chat ${model}`,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          [GenAi.operationName]: 'chat',
          [GenAi.providerName]: provider,
          [GenAi.requestModel]: model,
          [GenAi.conversationId]: input.taskId,
          ...(capture ? { [GenAi.inputMessages]: spanContent(input.messages) } : {}),
        },
      },
      async (span) => {
        const reply = await call();
        span.setAttributes({
          [GenAi.responseModel]: reply.model,
          [GenAi.inputTokens]: reply.usage.inputTokens,
          [GenAi.outputTokens]: reply.usage.outputTokens,
          [GenAi.finishReasons]: [reply.finishReason],
          ...(capture
            ? { [GenAi.outputMessages]: spanContent({ content: reply.content, toolCalls: reply.toolCalls }) }
            : {}),
        });
        return reply;
      },
    );
  }

  /** Runs a tool call; its output, stored and sent to the model, is cut to MAX_TOOL_OUTPUT_CHARS. */
  async function executeTool(
    input: RunToolInput,
  ): Promise<{ content: string; isError: boolean; decisionType: string }> {
    return inSpan(
      `execute_tool ${input.call.name}`,
      {
        kind: SpanKind.INTERNAL,
        attributes: {
          [GenAi.operationName]: 'execute_tool',
          [GenAi.toolName]: input.call.name,
          [GenAi.toolCallId]: input.call.id,
          [GenAi.toolType]: parseMcpToolName(input.call.name) ? 'extension' : 'function',
          [GenAi.conversationId]: input.taskId,
        },
      },
      async (span) => {
        const outcome = await executeToolUnbounded(input);
        // A tool error goes back to the model as its result; the span still says the call failed.
        if (outcome.isError) span.setAttribute(GenAi.errorType, 'tool_error');
        return { ...outcome, content: boundToolOutput(outcome.content) };
      },
    );
  }

  async function executeToolUnbounded(
    input: RunToolInput,
  ): Promise<{ content: string; isError: boolean; decisionType: string }> {
    const { call } = input;
    const fail = (message: string) => ({ content: message, isError: true, decisionType: 'tool_call' });
    if (!toolAllowed(input.allowedTools, call.name)) return fail(`tool "${call.name}" is not allowed for this agent`);
    const mcpTool = parseMcpToolName(call.name);
    if (mcpTool) return callMcpTool(input, mcpTool, fail);
    const def = tools.get(call.name);
    if (!def) return fail(`unknown tool "${call.name}"`);
    const raw = parseArguments(call);
    if ('invalid' in raw) return fail(raw.invalid);
    const parsed = def.input.safeParse(raw.value);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
      return fail(`invalid arguments: ${issues}`);
    }
    try {
      const result = await def.run(parsed.data, {
        db,
        config: deps.config,
        orgId: input.orgId,
        agentId: input.agentId,
        taskId: input.taskId,
        idempotencyKey: input.idempotencyKey,
        delegationDepth: input.delegationDepth,
        maxDelegationDepth: input.maxDelegationDepth,
        // Agents hand work only to agents of their own organisation.
        submitGoal: (agentId, goal) => deps.gateway.submitGoal(agentId, { ...goal, orgId: input.orgId }),
        deliverMessage: (agentId, message) => deps.gateway.deliverMessage(agentId, message),
        signal: Context.current().cancellationSignal,
      });
      return {
        content: JSON.stringify(result.content),
        isError: false,
        decisionType: result.decisionType ?? 'tool_call',
      };
    } catch (err) {
      if (err instanceof ToolError) return fail(err.message);
      if (err instanceof TypeError && call.name === 'http_get') return fail(`request failed: ${err.message}`);
      throw err;
    }
  }

  /** Tool specs of the agent's MCP servers that its allowlist permits. A server that is down offers none. */
  async function mcpSpecs(input: CallModelInput): Promise<ToolSpec[]> {
    const lists = await Promise.all(
      (input.mcpServers ?? []).map((server) =>
        deps.mcp.listTools(server, { orgId: input.owner?.orgId }).catch((err: unknown) => {
          deps.logger.warn(
            { server: server.name, err: String(err) },
            'MCP server unavailable; its tools are not offered',
          );
          return [];
        }),
      ),
    );
    return lists.flat().filter((spec) => toolAllowed(input.toolNames, spec.name));
  }

  async function callMcpTool(
    input: RunToolInput,
    target: { server: string; tool: string },
    fail: (message: string) => { content: string; isError: boolean; decisionType: string },
  ) {
    const server = (input.mcpServers ?? []).find((s) => s.name === target.server);
    if (!server) return fail(`no MCP server "${target.server}" is configured for this agent`);
    const parsed = parseArguments(input.call);
    if ('invalid' in parsed) return fail(parsed.invalid);
    const args = parsed.value;
    if (!args || typeof args !== 'object' || Array.isArray(args)) return fail('arguments must be a JSON object');
    // Connection failures are thrown (Temporal retries the activity); tool errors go back to the model.
    // At most once per idempotency key (the side_effects ledger), like the built-in side-effecting tools.
    const result = await deps.mcp.callTool(server, target.tool, args as Record<string, unknown>, {
      signal: Context.current().cancellationSignal,
      orgId: input.orgId,
      ledger: { db, idempotencyKey: input.idempotencyKey, taskId: input.taskId },
    });
    return { content: result.content, isError: result.isError, decisionType: 'tool_call' };
  }

  /**
   * Holds one of AGENTS_MAX_CONCURRENT_STEPS slots while `work` runs. Without a free slot within a few
   * seconds the activity fails with an AdmissionWait and the workflow asks again after a durable timer,
   * so a long wait holds no worker.
   */
  async function withStepSlot<T>(
    holder: string,
    priority: number | undefined,
    work: () => Promise<T>,
    wakeOnAdmission = false,
  ): Promise<T> {
    if (priority === undefined) return withHeartbeat(work);
    return withHeartbeat(async () => {
      const limit = deps.config.AGENTS_MAX_CONCURRENT_STEPS;
      // Steps are short: wait here a little (heartbeating) before handing the wait to a durable timer. A
      // local activity (a local tool) holds its agent's workflow task meanwhile, delaying the agent's
      // messages (pause, approvals), so it hands over sooner; not at once, since a waiter sleeping on a
      // timer keeps its place in line while a freed slot stays unused.
      const deadline =
        Date.now() + (Context.current().info.isLocal ? LOCAL_STEP_SLOT_INLINE_WAIT_MS : STEP_SLOT_INLINE_WAIT_MS);
      const first = await deps.governance.acquireSlot('step', holder, priority, limit, stepLeaseMs);
      // Only a step that had to wait gets a `wait step_slot` span: the common case adds nothing.
      if (!first.granted) {
        await inSpan('wait step_slot', { attributes: { 'agents.wait.reason': 'step_slot' } }, async (span) => {
          for (let ahead = first.ahead; ;) {
            if (Date.now() >= deadline) {
              span.setAttribute('agents.wait.handed_to_timer', true);
              const woken = wakeOnAdmission && (await joinAdmissionLine('step', priority));
              throw admissionFailure({
                reason: 'step_slot',
                retryAfterMs: Math.min(2000, 200 + ahead * 100),
                detail: `all ${limit} step slots busy, ${ahead} waiting ahead`,
                ...(woken ? { wake: true } : {}),
              });
            }
            await new Promise((r) => setTimeout(r, 100));
            const next = await deps.governance.acquireSlot('step', holder, priority, limit, stepLeaseMs);
            if (next.granted) return;
            ahead = next.ahead;
          }
        });
      }
      try {
        return await work();
      } finally {
        const next = await deps.governance.releaseStepSlot(holder);
        if (next) await wakeAdmissionWaiter('step', next);
      }
    });
  }

  /** Puts the calling workflow in a line of admission_waiters; false when there is no workflow to wake. */
  async function joinAdmissionLine(line: 'step' | 'budget', priority: number): Promise<boolean> {
    const workflowId = callerWorkflowId();
    if (!workflowId) return false;
    await deps.governance.addAdmissionWaiter(workflowId, line, priority);
    return true;
  }

  /**
   * Signals a workflow sleeping for admission; one that is gone is skipped for the next in its line (a
   * few at most: the rest ask again on their own timers).
   */
  async function wakeAdmissionWaiter(line: 'step' | 'budget', first: string): Promise<void> {
    let next: string | null = first;
    for (let tries = 0; next && tries < MAX_WAKE_ATTEMPTS; tries++) {
      if (await deps.gateway.wakeWorkflow(next)) return;
      next = await deps.governance.takeAdmissionWaiter(line);
    }
  }

  /** The model call inside its step slot and token reservation; the reservation settles to the real usage. */
  async function governedModelCall(
    input: CallModelInput,
    opts: { purpose?: TokenReservation['purpose']; onToken?: (delta: string) => void } = {},
  ): Promise<LlmResponse> {
    const { owner } = input;
    const call = () => completeWithFallback(input, { onToken: opts.onToken });
    if (!owner) return withHeartbeat(call);
    const wake = owner.wakeOnAdmission === true;
    // A step's answer and its review are two calls of one step: each holds a slot under its own name.
    const slotHolder = `${input.taskId}:${input.step}:${opts.purpose === 'review' ? 'review' : 'model'}`;
    const governed = withStepSlot(
      slotHolder,
      owner.priority,
      async () => {
        // Never reused: a reservation found under its id is taken as granted, so the id names this very
        // attempt of this very activity (a retry, a reset or a re-run of the step reserves again).
        const { info } = Context.current();
        const reservationId = `${input.taskId}:${input.step}:${info.workflowExecution?.runId ?? ''}:${info.activityId}:${info.attempt}`;
        const promptChars = input.messages.reduce((n, m) => n + m.content.length, 0);
        const admission = await deps.governance.reserveTokens({
          id: reservationId,
          orgId: owner.orgId,
          agentId: owner.agentId,
          taskId: input.taskId,
          purpose: opts.purpose ?? 'step',
          estimate: estimateTokens(promptChars, deps.config),
          agentBudget: owner.agentBudget,
        });
        if (!admission.granted) {
          // Woken by a call settling below its estimate: only then is it worth being in that line.
          const { wake: untilSettled, ...wait } = admission.wait;
          const woken = wake && untilSettled === true && (await joinAdmissionLine('budget', owner.priority));
          throw admissionFailure(woken ? { ...wait, wake: true } : wait);
        }
        let used = 0;
        try {
          const reply = await call();
          used = reply.usage.inputTokens + reply.usage.outputTokens;
          return reply;
        } finally {
          // A failed call is assumed to have used nothing; a crashed worker leaves the estimate in place.
          const next = await deps.governance.settleTokens(reservationId, used);
          if (next) await wakeAdmissionWaiter('budget', next);
        }
      },
      wake,
    );
    return governed.catch((err: unknown) => {
      throw providerBackoff(input, err);
    });
  }

  /** A tool call inside its step slot, once the resource buckets it draws on (MCP server, HTTP host) have room. */
  async function governedToolCall<T>(input: RunToolInput, work: () => Promise<T>): Promise<T> {
    return withStepSlot(
      `${input.taskId}:${input.step}:tool:${input.index}`,
      input.priority,
      async () => {
        const wait = await deps.governance.takeResources(resourceNeeds(input));
        if (!wait.granted) throw admissionFailure(wait.wait);
        return work();
      },
      input.wakeOnAdmission === true,
    );
  }

  return { completeWithFallback, executeTool, withStepSlot, governedModelCall, governedToolCall };
}

/** The model and tool calls of one worker, built once and shared by the step, chat, priority and meta activities. */
export type StepRunner = ReturnType<typeof createStepRunner>;

/** How many gone workflows one release skips before leaving the line to its timers. */
const MAX_WAKE_ATTEMPTS = 5;

/**
 * A provider retry at least this far off ends the try: the workflow waits on a durable timer with its
 * active slot given back (a `provider_backoff` wait) rather than Temporal retrying with the slot held.
 */
const PROVIDER_BACKOFF_RELEASE_MS = 5000;

/** The workflow that scheduled the running activity: the one to wake when admission frees. */
function callerWorkflowId(): string | undefined {
  return Context.current().info.workflowExecution?.workflowId;
}

/**
 * A retryable provider failure as the step's next move: Temporal's own retry when it comes soon, a
 * `provider_backoff` wait when it is PROVIDER_BACKOFF_RELEASE_MS or more away (retry-after, or the 1 s × 2ⁿ
 * backoff of the activity's retry policy), and a final failure once the call's attempts across tries are
 * spent. Calls without a `retry` budget (scheduled before it existed, chat) keep Temporal's retries.
 */
function providerBackoff(input: CallModelInput, err: unknown): unknown {
  const { retry } = input;
  if (!retry || !(err instanceof ApplicationFailure) || err.nonRetryable) return err;
  if (err.type !== ErrorType.ProviderRateLimited && err.type !== ErrorType.ProviderUnavailable) return err;
  const attemptsUsed = retry.attemptsBefore + Context.current().info.attempt;
  if (attemptsUsed >= retry.maxAttempts)
    return ApplicationFailure.create({ message: err.message, type: err.type, nonRetryable: true });
  const delayMs =
    typeof err.nextRetryDelay === 'number' ? err.nextRetryDelay : Math.min(60_000, 1000 * 2 ** (attemptsUsed - 1));
  if (delayMs < PROVIDER_BACKOFF_RELEASE_MS) return err;
  return admissionFailure({
    reason: 'provider_backoff',
    retryAfterMs: delayMs,
    detail: `${err.message}; trying again in ${Math.round(delayMs / 1000)} s (attempt ${attemptsUsed} of ${retry.maxAttempts})`,
    attemptsUsed,
  });
}

/** How long a step waits for a slot inside its activity before waiting on a durable timer instead. */
const STEP_SLOT_INLINE_WAIT_MS = 3000;
/** The same for a local tool call, which holds its agent's workflow task while it waits. */
const LOCAL_STEP_SLOT_INLINE_WAIT_MS = 1000;

export function createStepActivities(deps: StepDeps & { runner: StepRunner }) {
  const { db, tools } = deps;
  const { executeTool, governedToolCall, governedModelCall } = deps.runner;

  return {
    /**
     * One LLM call. Records the decision it produced and its token usage, keyed by (task, step) so a
     * retry never double counts. Provider failures are classified here: 429/5xx/network are retried by
     * Temporal (honouring retry-after), 400/401/context-length/refusals fail at once.
     */
    async callModel(input: CallModelInput): Promise<ModelReply> {
      // Values the task marked secret are scrubbed from this process's logs from now on.
      for (const message of input.messages) if (message.role === 'user') registerPromptSecrets(message.content);
      if (input.agentState) {
        await writeAgentState(db, input.agentState, input.markStarted ? startTaskAlongside(input.taskId) : undefined);
      } else if (input.markStarted) {
        await startTask(db, input.taskId);
      }
      const endStep = workerMetrics.startStep('model');
      const reply = await governedModelCall(input).catch((err: unknown) => {
        // A step waiting for admission has not run: only real calls are measured.
        if (!isAdmissionWait(err) || admissionReason(err) === 'provider_backoff')
          endStep(input.provider ?? deps.config.aiProvider, 'error');
        throw err;
      });
      endStep(reply.provider, 'ok');
      const final = reply.toolCalls.length === 0;
      const completes = Boolean(input.completesTask) && final && reply.finishReason !== 'refusal';
      // The call's usage, the task's counters and the decision (and, for a final answer the workflow asked
      // to complete with, the task's end) in one statement: a retried activity finds the call recorded and
      // adds nothing; a task that ended meanwhile (cancelled) keeps its end.
      await recordModelCall(
        db,
        {
          taskId: input.taskId,
          step: input.step,
          provider: reply.provider,
          model: reply.model,
          inputTokens: reply.usage.inputTokens,
          outputTokens: reply.usage.outputTokens,
          completes,
          answer: reply.content,
        },
        {
          seq: 0,
          type: final ? 'complete' : 'plan',
          reasoning: reply.content || (final ? '' : `Calling ${reply.toolCalls.map((c) => c.name).join(', ')}`),
          action: final
            ? { answer: reply.content }
            : { toolCalls: reply.toolCalls.map((c) => ({ name: c.name, arguments: c.arguments })) },
          result: final ? reply.content : null,
          confidence: final ? statedConfidence(reply.content) : null,
        },
      );
      return {
        content: reply.content,
        toolCalls: reply.toolCalls,
        toolPolicies: tools.policies(reply.toolCalls.map((c) => c.name)),
        finishReason: reply.finishReason,
        usage: reply.usage,
        provider: reply.provider,
        model: reply.model,
        ...(completes ? { completedTask: true } : {}),
      };
    },

    /**
     * One tool call. Disallowed tools, malformed or invalid arguments and tool errors are returned to the
     * model as the tool's result, never thrown: the model can repair its call. Infrastructure errors
     * (database down) are thrown so Temporal retries; side-effecting tools are idempotent per key.
     */
    async runTool(input: RunToolInput): Promise<ToolReply> {
      const { call } = input;
      const outcome = await governedToolCall(input, async () => {
        const endStep = workerMetrics.startStep('tool');
        const result = await executeTool(input).catch((err: unknown) => {
          endStep(call.name, 'error');
          throw err;
        });
        endStep(call.name, result.isError ? 'error' : 'ok');
        const faultDelay = deps.config.FAULT_DELAY_AFTER_SIDE_EFFECT_MS;
        if (faultDelay > 0 && tools.get(call.name)?.sideEffect) await new Promise((r) => setTimeout(r, faultDelay));
        return result;
      });
      await insertDecision(
        db,
        {
          taskId: input.taskId,
          step: input.step,
          seq: input.index + 1,
          type: outcome.decisionType,
          reasoning: outcome.isError ? `Tool ${call.name} failed: ${outcome.content}` : `Called ${call.name}`,
          action: { tool: call.name, arguments: parseJsonOrText(call.arguments), idempotencyKey: input.idempotencyKey },
          result: outcome.isError ? { error: outcome.content } : parseJsonOrText(outcome.content),
          confidence: null,
        },
        taskRunningAlongside(input.taskId),
      );
      return { toolCallId: call.id, name: call.name, content: outcome.content, isError: outcome.isError };
    },
  };
}

/**
 * The confidence a final answer states, 0 to 1: the `confidence` number of a JSON object in the answer (the
 * text from its first `{` to its last `}`), or a line `Confidence: 0.8` (or `80%`). Null when it states none.
 */
export function statedConfidence(answer: string): number | null {
  let value: unknown;
  const start = answer.indexOf('{');
  const end = answer.lastIndexOf('}');
  if (start >= 0 && end > start) {
    try {
      const parsed: unknown = JSON.parse(answer.slice(start, end + 1));
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
        value = (parsed as { confidence?: unknown }).confidence;
    } catch {
      // Not JSON: look for a line.
    }
  }
  if (value === undefined) {
    const line = /^[\s*_]*confidence[\s*_]*[:=][\s*_]*(\d+(?:\.\d+)?)\s*(%?)\s*$/im.exec(answer);
    if (line) value = Number(line[1]) / (line[2] ? 100 : 1);
  }
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= 1 ? value : null;
}

/** A tool call's arguments as JSON (none at all is an empty object), or what the model must fix. */
function parseArguments(call: ToolCall): { value: unknown } | { invalid: string } {
  try {
    return { value: call.arguments.trim() === '' ? {} : JSON.parse(call.arguments) };
  } catch (err) {
    return {
      invalid: `arguments are not valid JSON (${(err as Error).message}); send a JSON object matching the schema`,
    };
  }
}

function toFailure(provider: string, err: ProviderError): ApplicationFailure {
  const type = PROVIDER_FAILURE[err.kind];
  const message = `${provider}: ${err.message}`;
  if (!err.retryable) return ApplicationFailure.nonRetryable(message, type);
  return ApplicationFailure.create({ message, type, nextRetryDelay: err.details.retryAfterMs });
}

/** Resources a tool call draws on: `http:<host>` for the HTTP tools, `mcp:<server>` for MCP tools. */
function resourceNeeds(input: RunToolInput): { name: string; tokens: number }[] {
  const mcp = parseMcpToolName(input.call.name);
  if (mcp) return [{ name: `mcp:${mcp.server}`, tokens: 1 }];
  if (input.call.name === 'http_get' || input.call.name === 'http_post') {
    const url = (parseJsonOrText(input.call.arguments) as { url?: unknown } | null)?.url;
    if (typeof url === 'string' && URL.canParse(url)) return [{ name: `http:${new URL(url).host}`, tokens: 1 }];
  }
  return [];
}
