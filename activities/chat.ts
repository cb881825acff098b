import type { ChatEvent } from '../contract/definitions';
import {
  insertChatTurn,
  publishChatEvent,
  recentChatMessages,
  type SaveChatTurnInput,
} from '../lib/records/chat-messages';
import type { LlmMessage } from './llm/types';
import { isAdmissionWait } from './governance';
import type { CallModelInput, ModelReply, RunToolInput, StepDeps, StepRunner, ToolReply } from './steps';

export type { SaveChatTurnInput };

/**
 * Chat turns: the model call streams its tokens to the API through Postgres NOTIFY while it runs; the
 * turn is stored only once the answer is complete.
 */
export function createChatActivities(deps: Pick<StepDeps, 'db' | 'tools'> & { runner: StepRunner }) {
  const { db, runner } = deps;

  /** Publishes events in order: each NOTIFY waits for the one before it. */
  const publisher = () => {
    let chain = Promise.resolve();
    return (event: ChatEvent) => {
      chain = chain
        .then(() => publishChatEvent(db, event))
        .then(
          () => undefined,
          () => undefined, // A lost token is cosmetic; the final answer comes back through the update.
        );
      return chain;
    };
  };

  return {
    /**
     * One streamed model call of a chat turn. Heartbeats, so a disconnected client's cancel reaches it.
     * With an owner, it goes through the same admission as a task's step (token budgets, step slots) and
     * tells the stream when it must wait.
     */
    async chatModel(input: CallModelInput & { turnId: string }): Promise<ModelReply> {
      const publish = publisher();
      const onToken = (delta: string) => void publish({ turnId: input.turnId, type: 'token', data: { delta } });
      const reply = await runner.governedModelCall(input, { purpose: 'chat', onToken }).catch(async (err: unknown) => {
        if (isAdmissionWait(err))
          await publish({ turnId: input.turnId, type: 'waiting', data: { ...admissionDetails(err) } });
        throw err;
      });
      for (const call of reply.toolCalls) {
        void publish({
          turnId: input.turnId,
          type: 'tool_call',
          data: { id: call.id, name: call.name, arguments: call.arguments },
        });
      }
      await publish({ turnId: input.turnId, type: 'token', data: { delta: '' } });
      return {
        content: reply.content,
        toolCalls: reply.toolCalls,
        toolPolicies: deps.tools.policies(reply.toolCalls.map((c) => c.name)),
        finishReason: reply.finishReason,
        usage: reply.usage,
        provider: reply.provider,
        model: reply.model,
      };
    },

    /** One tool call of a chat turn (no reasoning trace: a chat is not a task). */
    async chatTool(input: RunToolInput & { turnId: string }): Promise<ToolReply> {
      const outcome = await runner
        .governedToolCall(input, () => runner.executeTool(input))
        .catch(async (err: unknown) => {
          if (isAdmissionWait(err))
            await publisher()({ turnId: input.turnId, type: 'waiting', data: { ...admissionDetails(err) } });
          throw err;
        });
      await publisher()({
        turnId: input.turnId,
        type: 'tool_result',
        data: { name: input.call.name, content: outcome.content, isError: outcome.isError },
      });
      return { toolCallId: input.call.id, name: input.call.name, content: outcome.content, isError: outcome.isError };
    },

    /** Stores a finished turn: the user message and the answer, together or not at all. */
    async saveChatTurn(input: SaveChatTurnInput): Promise<void> {
      await insertChatTurn(db, input);
    },

    /** The stored conversation of a session, to continue it in a new workflow run. */
    async loadChatHistory(input: { orgId: string; sessionId: string; limit: number }): Promise<LlmMessage[]> {
      const rows = await recentChatMessages(db, input.orgId, input.sessionId, input.limit);
      return rows.map((r) => ({ role: r.role, content: r.content }));
    },
  };
}

/** What an admission failure says about the wait (reason, retryAfterMs, detail). */
function admissionDetails(err: unknown): Record<string, unknown> {
  const details = (err as { details?: unknown[] }).details;
  return (details?.[0] as Record<string, unknown> | undefined) ?? {};
}
