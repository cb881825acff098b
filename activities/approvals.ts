import type { Logger } from 'pino';
import type { Config } from '../lib/config';
import { withTransaction, type Db } from '../lib/db';
import { outboundAllowHosts } from '../lib/outbound-policy';
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
 * The approvals inbox and notifications. Rows are written idempotently: a request is unique per
 * (task, step, call); a decision only moves a request out of `pending`.
 */
export function createApprovalActivities({ db, logger, config }: ApprovalDeps) {
  return {
    /** Opens an approval request and moves its task to awaiting_approval, in one transaction. */
    async createApproval(input: {
      approvalId: string;
      taskId: string;
      agentId: string;
      orgId: string;
      /** The workflow waiting for the decision (the agent's, or the crew task's own). */
      workflowId: string;
      step: number;
      callIndex: number;
      title: string;
      proposedAction: Record<string, unknown>;
      expiresAt: string;
    }): Promise<void> {
      await withTransaction(db, async (client) => {
        await client.query(
          `INSERT INTO approvals (id, task_id, agent_id, org_id, step, call_index, title, proposed_action, expires_at, workflow_id)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (task_id, step, call_index) DO NOTHING`,
          [
            input.approvalId,
            input.taskId,
            input.agentId,
            input.orgId,
            input.step,
            input.callIndex,
            input.title,
            JSON.stringify(input.proposedAction),
            input.expiresAt,
            input.workflowId ?? null,
          ],
        );
        await client.query(
          `UPDATE tasks SET status = 'awaiting_approval', updated_at = now()
           WHERE id = $1 AND status NOT IN ('completed','failed','cancelled')`,
          [input.taskId],
        );
      });
    },

    /** Records a decision or an expiry, and puts the task back to running. */
    async recordApprovalDecision(input: ApprovalOutcome): Promise<void> {
      await withTransaction(db, async (client) => {
        const { rows } = await client.query<{ task_id: string }>(
          `UPDATE approvals SET status = $2, decided_by = $3, decision_reason = $4, edited_action = $5, decided_at = $6
           WHERE id = $1 AND status = 'pending' RETURNING task_id`,
          [
            input.approvalId,
            input.status,
            input.decidedBy,
            input.reason,
            input.editedAction ? JSON.stringify(input.editedAction) : null,
            input.decidedAt,
          ],
        );
        if (rows[0]) {
          await client.query(
            `UPDATE tasks SET status = 'running', updated_at = now() WHERE id = $1 AND status = 'awaiting_approval'`,
            [rows[0].task_id],
          );
        }
      });
    },

    /**
     * Records a notification and delivers it to the agent's target: the log, or a webhook POST. A failed
     * delivery throws, so the activity's retry policy retries it; the row keeps the attempts and last error.
     * Webhooks go through the outbound address policy (checked after DNS resolution) and follow no redirect.
     */
    async notify(input: NotificationInput): Promise<void> {
      const { rows } = await db.query<{ id: string; delivered_at: string | null }>(
        `INSERT INTO notifications (idempotency_key, org_id, agent_id, task_id, event, payload, target)
         VALUES ($1,$2,$3,$4,$5,$6,$7)
         ON CONFLICT (idempotency_key) DO UPDATE SET attempts = notifications.attempts
         RETURNING id, delivered_at`,
        [
          input.key,
          input.orgId,
          input.agentId,
          input.taskId,
          input.event,
          JSON.stringify(input.payload),
          JSON.stringify(input.target),
        ],
      );
      const row = rows[0]!;
      if (row.delivered_at) return;
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
        await db.query('UPDATE notifications SET attempts = attempts + 1, last_error = $2 WHERE id = $1', [
          row.id,
          String(err),
        ]);
        throw err;
      }
      await db.query(
        'UPDATE notifications SET attempts = attempts + 1, delivered_at = now(), last_error = NULL WHERE id = $1',
        [row.id],
      );
    },
  };
}
