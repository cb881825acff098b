import type { Db, Queryable } from '../db';
import { orgRowById } from './org-rows';
import type { Approval } from '../../contract/approval';
import type { ApprovalOutcome } from '../../contract/definitions';

/** SQL of `approvals`, the inbox: a request is unique per (task, step, call); a decision only leaves `pending`. */

export interface ApprovalRecord extends Approval {
  orgId: string;
  /** The workflow waiting for the decision; null for requests opened before it was recorded. */
  workflowId: string | null;
}

const APPROVAL_COLUMNS = `id, task_id AS "taskId", agent_id AS "agentId", org_id AS "orgId", title, proposed_action AS "proposedAction",
  status, decided_by AS "decidedBy", decision_reason AS "reason", edited_action AS "editedAction", created_at AS "createdAt",
  decided_at AS "decidedAt", expires_at AS "expiresAt", workflow_id AS "workflowId"`;

export function approvalById(db: Db, orgId: string, id: string): Promise<ApprovalRecord | undefined> {
  return orgRowById<ApprovalRecord>(db, 'approvals', APPROVAL_COLUMNS, orgId, id);
}

/** One page of an organisation's approvals, newest first. */
export async function listApprovals(
  db: Db,
  orgId: string,
  f: { status?: string; agentId?: string; taskId?: string; limit: number; offset: number },
): Promise<ApprovalRecord[]> {
  const { rows } = await db.query<ApprovalRecord>(
    `SELECT ${APPROVAL_COLUMNS} FROM approvals
     WHERE org_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::uuid IS NULL OR agent_id = $3) AND ($4::uuid IS NULL OR task_id = $4)
     ORDER BY created_at DESC, id LIMIT $5 OFFSET $6`,
    [orgId, f.status ?? null, f.agentId ?? null, f.taskId ?? null, f.limit, f.offset],
  );
  return rows;
}

export interface NewApproval {
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
}

/** Opens a request, once per (task, step, call). */
export async function insertApproval(db: Queryable, input: NewApproval): Promise<void> {
  await db.query(
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
}

/** Records a decision or an expiry of a pending request; answers its task, or null when it was not pending. */
export async function decideApproval(db: Queryable, input: ApprovalOutcome): Promise<string | null> {
  const { rows } = await db.query<{ task_id: string }>(
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
  return rows[0]?.task_id ?? null;
}
