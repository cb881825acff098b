import { CHAT_EVENTS_CHANNEL, type ChatEvent } from '../contract/definitions';
import { withTransaction } from '../lib/db';
import type { LlmMessage } from './llm/types';
import { isAdmissionWait } from './governance';
import {
  createStepRunner,
  type CallModelInput,
  type ModelReply,
  type RunToolInput,
  type StepDeps,
  type ToolReply,
} from './steps';

/** The Postgres channel chat events travel on, from the worker running a turn to the API streaming it. */
export interface SaveChatTurnInput {
  orgId: string;
  sessionId: string;
  turnId: string;
  agentId: string;
  agentType: string;
  user: string;
  assistant: string;
  toolCalls: { name: string; arguments: string; result: string; isError: boolean }[];
  usage: { inputTokens: number; outputTokens: number };
  provider: string;
  model: string;
}

/**
 * Chat turns: the model call streams its tokens to the API through Postgres NOTIFY while it runs; the
 * turn is stored only once the answer is complete.
 */
export function createChatActivities(deps: StepDeps) {
  const { db } = deps;
  const runner = createStepRunner(deps);

  /** Publishes events in order: each NOTIFY waits for the one before it. */
  const publisher = () => {
    let chain = Promise.resolve();
    return (event: ChatEvent) => {
      chain = chain
        .then(() => db.query('SELECT pg_notify($1, $2)', [CHAT_EVENTS_CHANNEL, JSON.stringify(event)]))
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
      await withTransaction(db, async (client) => {
        const insert = `INSERT INTO chat_messages (org_id, session_id, turn_id, seq, role, content, agent_id, agent_type, metadata)
                        VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (turn_id, seq) DO NOTHING`;
        await client.query(insert, [
          input.orgId,
          input.sessionId,
          input.turnId,
          0,
          'user',
          input.user,
          null,
          null,
          '{}',
        ]);
        await client.query(insert, [
          input.orgId,
          input.sessionId,
          input.turnId,
          1,
          'assistant',
          input.assistant,
          input.agentId,
          input.agentType,
          JSON.stringify({
            toolCalls: input.toolCalls,
            usage: input.usage,
            provider: input.provider,
            model: input.model,
          }),
        ]);
      });
    },

    /** The stored conversation of a session, to continue it in a new workflow run. */
    async loadChatHistory(input: { orgId: string; sessionId: string; limit: number }): Promise<LlmMessage[]> {
      const { rows } = await db.query<{ role: 'user' | 'assistant'; content: string }>(
        `SELECT role, content FROM (
           SELECT role, content, created_at, seq FROM chat_messages WHERE org_id = $1 AND session_id = $2
           ORDER BY created_at DESC, seq DESC LIMIT $3) recent
         ORDER BY created_at, seq`,
        [input.orgId, input.sessionId, input.limit],
      );
      return rows.map((r) => ({ role: r.role, content: r.content }));
    },
  };
}

/** What an admission failure says about the wait (reason, retryAfterMs, detail). */
function admissionDetails(err: unknown): Record<string, unknown> {
  const details = (err as { details?: unknown[] }).details;
  return (details?.[0] as Record<string, unknown> | undefined) ?? {};
}
