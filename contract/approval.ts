import type { ApprovalStatus } from './definitions';

/** An approval request as the API shows it: the inbox row without the owning org and workflow. */
export interface Approval {
  id: string;
  taskId: string;
  agentId: string;
  title: string;
  proposedAction: { tool: string; arguments: unknown };
  status: ApprovalStatus;
  decidedBy: string | null;
  reason: string | null;
  editedAction: unknown;
  createdAt: string;
  decidedAt: string | null;
  expiresAt: string;
}
