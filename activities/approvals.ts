import type { Logger } from 'pino';
import type { Config } from '../lib/config';
import { withTransaction, type Db } from '../lib/db';
import { outboundAllowHosts } from '../lib/outbound-policy';
import { decideApproval, insertApproval, type NewApproval } from '../lib/records/approvals';
import { claimNotification, noteDelivered, noteDeliveryFailed } from '../lib/records/notifications';
import { markTaskAwaitingApproval, resumeTaskAfterApproval } from '../lib/records/tasks';
import { postWebhook } from './tools/safe-http';
import type { ApprovalOutcome, NotifyTarget } from '../contract/definitions';

export interface ApprovalDeps {
  db: Db;
  logger: Logger;
  /** Webhooks follow the outbound address policy (OUTBOUND_ALLOW_HOSTS). */
  config: Pick<Config, 'OUTBOUND_ALLOW_HOSTS' | 'HTTP_ALLOW_PRIVATE_HOSTS'>;
}

export interface NotificationInput {
  /** Stable per event, so a retried activity records and delivers it once. */
  key: string;
  orgId: string;
  agentId: string;
  taskId: string | null;
  event: 'approval_needed' | 'approval_decided' | 'approval_expired' | 'autopilot_executed';
  payload: Record<string, unknown>;
  target: NotifyTarget;
}

/**
 * The approvals inbox and notifications (SQL in lib/records/approvals.ts, notifications.ts). Rows are written idempotently: a request is unique per
 * (task, step, call); a decision only moves a request out of `pending`.
 */
export function createApprovalActivities({ db, logger, config }: ApprovalDeps) {
  return {
    /** Opens an approval request and moves its task to awaiting_approval, in one transaction. */
    async createApproval(input: NewApproval): Promise<void> {
      await withTransaction(db, async (client) => {
        await insertApproval(client, input);
        await markTaskAwaitingApproval(client, input.taskId);
      });
    },

    /** Records a decision or an expiry, and puts the task back to running. */
    async recordApprovalDecision(input: ApprovalOutcome): Promise<void> {
      await withTransaction(db, async (client) => {
        const taskId = await decideApproval(client, input);
        if (taskId) await resumeTaskAfterApproval(client, taskId);
      });
    },

    /**
     * Records a notification and delivers it to the agent's target: the log, or a webhook POST. A failed
     * delivery throws, so the activity's retry policy retries it; the row keeps the attempts and last error.
     * Webhooks go through the outbound address policy (checked after DNS resolution) and follow no redirect.
     */
    async notify(input: NotificationInput): Promise<void> {
      const row = await claimNotification(db, input);
      if (row.deliveredAt) return;
      const body = { id: row.id, event: input.event, agentId: input.agentId, taskId: input.taskId, ...input.payload };
      try {
        if (input.target.type === 'webhook') {
          const headers = { 'content-type': 'application/json', 'idempotency-key': input.key };
          const res = await postWebhook(
            input.target.url,
            JSON.stringify(body),
            headers,
            outboundAllowHosts(config),
            AbortSignal.timeout(10_000),
          );
          if (res.status >= 300) {
            throw new Error(
              `webhook answered ${res.status}${res.location ? ` (redirect to ${res.location} not followed)` : ''}`,
            );
          }
        } else {
          logger.info({ notification: body }, `notification: ${input.event}`);
        }
      } catch (err) {
        await noteDeliveryFailed(db, row.id, String(err));
        throw err;
      }
      await noteDelivered(db, row.id);
    },
  };
}
