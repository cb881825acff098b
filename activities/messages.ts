import { AgentRejectedError, type TemporalGateway } from '../client/gateway';
import type { Db } from '../lib/db';
import { withTransaction } from '../lib/db';
import { insertAgentMessage, markAgentMessagesRead } from '../lib/records/agent-messages';

export interface MessageDeps {
  db: Db;
  gateway: Pick<TemporalGateway, 'deliverMessage'>;
}

export interface AnswerRequestInput {
  orgId: string;
  /** The agent that ran the request's goal; null when the orchestrator answers (a meta run's result). */
  agentId: string | null;
  /** The agent that sent the request. */
  requesterId: string;
  requestId: string;
  taskId: string;
  content: string;
}

/** How much of a response the requester's inbox carries (the full text stays in its row). */
const SUMMARY_CHARS = 500;

/** The activities of agent messaging that workflows run: marking messages read, answering a request. */
export function createMessageActivities({ db, gateway }: MessageDeps) {
  return {
    /** Marks the messages the agent's model has just seen as read. */
    async markMessagesRead(input: { agentId: string; messageIds: string[] }): Promise<void> {
      await markAgentMessagesRead(db, input.agentId, input.messageIds);
    },

    /**
     * Sends a request's answer back to its sender as a `response` (once per request: the key derives from
     * it) and marks the request read. A sender that is gone keeps the row; nothing is retried for it.
     */
    async answerRequest(input: AnswerRequestInput): Promise<{ messageId: string }> {
      const messageId = await withTransaction(db, async (client) => {
        const id = await insertAgentMessage(client, {
          orgId: input.orgId,
          fromAgentId: input.agentId,
          toAgentId: input.requesterId,
          taskId: input.taskId,
          content: input.content,
          idempotencyKey: `response:${input.requestId}`,
          type: 'response',
          replyTo: input.requestId,
        });
        if (input.agentId) await markAgentMessagesRead(client, input.agentId, [input.requestId]);
        return id;
      });
      try {
        await gateway.deliverMessage(input.requesterId, {
          messageId,
          fromAgentId: input.agentId,
          type: 'response',
          summary: input.content.length > SUMMARY_CHARS ? `${input.content.slice(0, SUMMARY_CHARS)}…` : input.content,
          replyTo: input.requestId,
          topic: null,
        });
      } catch (err) {
        if (!(err instanceof AgentRejectedError)) throw err;
      }
      return { messageId };
    },
  };
}
