import { setTimeout as sleep } from 'node:timers/promises';
import { Router } from 'express';
import type { ToolRegistry } from '../../activities/tools/registry';
import { AgentRejectedError } from '../../client/gateway';
import { ApproveBody, ListApprovalsQuery, RejectBody, Uuid } from '../../lib/models';
import type { ApprovalDecisionInput } from '../../contract/definitions';
import type { AppDeps } from '../deps';
import type { ApprovalRecord, Store } from '../store';
import { conflict, HttpError, notFound, parse } from '../errors';

export function approvalRoutes({ store, gateway, tools, config }: AppDeps & { tools: ToolRegistry }): Router {
  const router = Router();
  const catchUpMs = config.APPROVAL_DECISION_WAIT_SECONDS * 1000;

  const loadApproval = async (orgId: string, id: string) => {
    const approval = Uuid.safeParse(id).success ? await store.approval(orgId, id) : undefined;
    if (!approval) throw notFound('approval request', id);
    return approval;
  };

  router.get('/', async (req, res) => {
    const query = parse(ListApprovalsQuery, req.query, 'query');
    const status = query.status === 'all' ? undefined : query.status;
    const approvals = await store.approvals(res.locals.orgId, { ...query, status });
    res.json({ approvals, limit: query.limit, offset: query.offset });
  });

  router.get('/:id', async (req, res) => {
    res.json(await loadApproval(res.locals.orgId, req.params.id));
  });

  router.post('/:id/approve', async (req, res) => {
    const approval = await loadApproval(res.locals.orgId, req.params.id);
    const body = parse(ApproveBody, req.body, 'body');
    if (body.editedAction) {
      // The edit must be a valid call of the same tool; the model never sees an invalid one.
      const tool = tools.get(approval.proposedAction.tool);
      const valid = tool?.input.safeParse(body.editedAction);
      if (valid && !valid.success) {
        const issues = valid.error.issues.map((i) => ({ path: i.path.join('.') || '(root)', message: i.message }));
        throw new HttpError(
          400,
          'validation_failed',
          `editedAction does not match ${approval.proposedAction.tool}'s input: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
          { issues },
        );
      }
    }
    res.json(
      await decide(store, gateway, catchUpMs, res.locals.orgId, approval, {
        approvalId: approval.id,
        decision: 'approve',
        ...body,
        decidedBy: body.decidedBy ?? 'api',
      }),
    );
  });

  router.post('/:id/reject', async (req, res) => {
    const approval = await loadApproval(res.locals.orgId, req.params.id);
    const body = parse(RejectBody, req.body, 'body');
    res.json(
      await decide(store, gateway, catchUpMs, res.locals.orgId, approval, {
        approvalId: approval.id,
        decision: 'reject',
        ...body,
        decidedBy: body.decidedBy ?? 'api',
      }),
    );
  });

  return router;
}

const STATUS_OF = { approve: 'approved', reject: 'rejected' } as const;

/**
 * Sends the decision to the task's workflow and answers with the real outcome: 200 when applied (or
 * when the same decision was already applied: a retried request is idempotent), 409 when the request
 * was decided the other way or expired.
 *
 * A request can be pending in its row while its task is not waiting on it: a worker that wrote the row
 * and crashed before its workflow task completed leaves the task to re-run that step on another worker.
 * The decision is then sent again (for up to `catchUpMs`) until the task is back at its wait.
 */
async function decide(
  store: Store,
  gateway: AppDeps['gateway'],
  catchUpMs: number,
  orgId: string,
  approval: ApprovalRecord,
  decision: ApprovalDecisionInput,
): Promise<ApprovalRecord> {
  const wanted = STATUS_OF[decision.decision];
  const settled = (row: ApprovalRecord) => {
    if (row.status === wanted) return row;
    throw conflict(`approval request is already ${row.status}${row.decidedBy ? ` by ${row.decidedBy}` : ''}`);
  };
  if (approval.status !== 'pending') return settled(approval);
  const deadline = Date.now() + catchUpMs;
  for (let pause = 100; ; pause = Math.min(pause * 2, 2000)) {
    try {
      await gateway.decideApproval(approval, decision);
      return (await store.approval(orgId, approval.id))!;
    } catch (err) {
      if (!(err instanceof AgentRejectedError)) throw err;
      const current = await store.approval(orgId, approval.id);
      if (current && current.status !== 'pending') return settled(current);
      if (err.reason !== 'not_pending' || Date.now() + pause > deadline) {
        throw conflict(`approval request cannot be decided: ${err.message}`);
      }
      await sleep(pause);
    }
  }
}
