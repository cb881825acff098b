import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  setCurrentDetails,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { LlmMessage } from '../activities/llm/types';
import { activitiesFor, admissionWaitOf, applicationFailure } from './activities';
import {
  cancelChatTurnSignal,
  chatTurnUpdate,
  type ChatTurnInput,
  type ChatTurnResult,
  type ChatWorkflowInput,
  toolAllowed,
} from '../contract/definitions';
import { ErrorType } from '../contract/errors';

/** A session with no turn for this long ends; the next message starts a new run from the stored history. */
const IDLE_TIMEOUT = '1 hour';
/** How much stored history a new run reloads, and how much of it the workflow keeps (all of it stays in Postgres). */
const HISTORY_REPLAY_LIMIT = 50;
/**
 * One chat session with an agent. Each user message is a `chatTurn` update: the model call streams its
 * tokens to the API (through the chatModel activity), tools run as activities, and the finished turn is
 * stored in one transaction. A `cancelChatTurn` signal (the client disconnected) cancels the turn: its
 * activity stops and nothing is stored. Turns of one session run one at a time, in arrival order.
 */
export async function ChatWorkflow(input: ChatWorkflowInput): Promise<void> {
  const { sessionId, agent, settings } = input;
  const acts = activitiesFor(settings);
  let conversation = input.conversation;
  let busy = false;
  const results = new Map<string, ChatTurnResult>();
  const scopes = new Map<string, CancellationScope>();

  setHandler(cancelChatTurnSignal, ({ turnId }) => scopes.get(turnId)?.cancel());
  setHandler(
    chatTurnUpdate,
    async (turn) => {
      const known = results.get(turn.turnId);
      if (known) return known;
      await condition(() => !busy && conversation !== undefined);
      busy = true;
      const scope = new CancellationScope();
      scopes.set(turn.turnId, scope);
      try {
        const result = await scope.run(() => runTurn(turn)).catch((err: unknown) => failedTurn(turn, err));
        results.set(turn.turnId, result);
        return result;
      } finally {
        scopes.delete(turn.turnId);
        busy = false;
      }
    },
    {
      validator: (turn: ChatTurnInput) => {
        if (!turn.turnId || !turn.message?.trim()) throw new Error('a turn needs a turnId and a non-empty message');
      },
    },
  );

  setCurrentDetails(`Chat with **${agent.name}**`);
  conversation ??= (await acts.loadChatHistory({
    orgId: agent.orgId,
    sessionId,
    limit: HISTORY_REPLAY_LIMIT,
  })) as NonNullable<typeof conversation>;

  const historyTooLong = () =>
    workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > settings.historyLimit;
  for (;;) {
    const woke = await condition(() => busy || historyTooLong(), IDLE_TIMEOUT);
    if (!woke) break;
    await condition(() => !busy);
    if (historyTooLong()) {
      await condition(allHandlersFinished);
      return await continueAsNew<typeof ChatWorkflow>({ ...input, conversation });
    }
  }
  await condition(allHandlersFinished);

  /**
   * Runs a call, waiting on durable timers while it is not admitted, for at most LLM_TIMEOUT_SECONDS in
   * all: a person is waiting on the other end. Past that the turn fails, saying why; nothing is stored.
   */
  async function admitted<T>(call: () => Promise<T>, waited: { ms: number }): Promise<T> {
    const boundMs = settings.llmTimeoutSeconds * 1000;
    for (;;) {
      try {
        return await call();
      } catch (err) {
        const wait = admissionWaitOf(err);
        if (!wait) throw err;
        if (waited.ms + wait.retryAfterMs > boundMs) {
          throw ApplicationFailure.create({
            type: ErrorType.AdmissionWait,
            message: `not admitted within ${settings.llmTimeoutSeconds} s: waiting for ${wait.detail}; try again later`,
            nonRetryable: true,
          });
        }
        setCurrentDetails(`Chat with **${agent.name}** · waiting for ${wait.detail}`);
        waited.ms += wait.retryAfterMs;
        await sleep(wait.retryAfterMs);
      }
    }
  }

  async function runTurn(turn: ChatTurnInput): Promise<ChatTurnResult> {
    const waited = { ms: 0 };
    const owner = {
      agentId: agent.id,
      orgId: agent.orgId,
      priority: agent.priority * 100,
      agentBudget: agent.tokenBudgetPerMinute ?? null,
    };
    setCurrentDetails(`Chat with **${agent.name}** · answering turn ${turn.turnId}`);
    const messages: LlmMessage[] = [
      {
        role: 'system',
        content: `You are ${agent.name}. Your objective: ${agent.objective}. Answer the user helpfully.`,
      },
      ...conversation!,
      { role: 'user', content: turn.message },
    ];
    const toolCalls: ChatTurnResult['toolCalls'] = [];
    const usage = { inputTokens: 0, outputTokens: 0 };
    let answer = '';
    let provider = '';
    let model = '';
    for (let step = 1; step <= settings.maxSteps; step++) {
      const callModel = () =>
        acts.chatModel({
          turnId: turn.turnId,
          taskId: turn.turnId,
          step,
          owner,
          provider: agent.provider,
          fallbackProviders: agent.fallbackProviders ?? [],
          model: agent.model,
          messages,
          toolNames: agent.allowedTools,
          mcpServers: agent.mcpServers ?? [],
        });
      // Model and tool calls pass the same admission as a task's steps (budgets, step slots, resources).
      const reply = await admitted(callModel, waited);
      usage.inputTokens += reply.usage.inputTokens;
      usage.outputTokens += reply.usage.outputTokens;
      provider = reply.provider;
      model = reply.model;
      messages.push({ role: 'assistant', content: reply.content, toolCalls: reply.toolCalls });
      answer = reply.content;
      if (reply.toolCalls.length === 0) break;
      for (const [index, call] of reply.toolCalls.entries()) {
        const policy = reply.toolPolicies?.[call.name];
        // A chat acts only where the agent may act alone; anything needing a human goes through a task.
        const listed = toolAllowed(agent.approvalRequiredTools ?? [], call.name);
        const needsHuman =
          policy && (policy.requiresApproval || listed || (policy.sideEffect && agent.autonomy !== 'autopilot'));
        const runTool = () =>
          acts.chatTool({
            turnId: turn.turnId,
            taskId: turn.turnId,
            agentId: agent.id,
            orgId: agent.orgId,
            step,
            index,
            call,
            allowedTools: agent.allowedTools,
            mcpServers: agent.mcpServers ?? [],
            idempotencyKey: `${workflowInfo().workflowId}:${turn.turnId}:${step}:${index}`,
            delegationDepth: 0,
            maxDelegationDepth: settings.maxDelegationDepth,
            priority: owner.priority,
          });
        const result = needsHuman
          ? {
              content: `${call.name} needs a human's approval for this agent; create a task for it instead.`,
              isError: true,
            }
          : await admitted(runTool, waited);
        toolCalls.push({ name: call.name, arguments: call.arguments, result: result.content, isError: result.isError });
        messages.push({ role: 'tool', toolCallId: call.id, name: call.name, content: result.content });
      }
    }
    await acts.saveChatTurn({
      orgId: agent.orgId,
      sessionId,
      turnId: turn.turnId,
      agentId: agent.id,
      agentType: agent.type,
      user: turn.message,
      assistant: answer,
      toolCalls,
      usage,
      provider,
      model,
    });
    conversation!.push({ role: 'user', content: turn.message }, { role: 'assistant', content: answer });
    // Only the recent turns travel in workflow state (and through continue-as-new); Postgres keeps them all.
    if (conversation!.length > HISTORY_REPLAY_LIMIT)
      conversation!.splice(0, conversation!.length - HISTORY_REPLAY_LIMIT);
    setCurrentDetails(`Chat with **${agent.name}** · ${conversation!.length / 2} turn(s)`);
    return { turnId: turn.turnId, status: 'completed', content: answer, error: null, toolCalls, usage };
  }
}

function failedTurn(turn: ChatTurnInput, err: unknown): ChatTurnResult {
  const base = { turnId: turn.turnId, content: '', toolCalls: [], usage: { inputTokens: 0, outputTokens: 0 } };
  if (isCancellation(err)) return { ...base, status: 'cancelled', error: 'cancelled: the client went away' };
  const failure = applicationFailure(err);
  if (failure) return { ...base, status: 'failed', error: failure.message };
  throw err;
}
