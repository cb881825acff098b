import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  isGrpcDeadlineError,
  isGrpcServiceError,
  ServiceError,
  WithStartWorkflowOperation,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type Client,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { AgentWorkflow } from '../workflows/agent';
import type { ChatWorkflow } from '../workflows/chat';
import type { ReminderChangeWorkflow } from '../workflows/reminder';
import { ErrorType } from './errors';
import {
  AgentIdAttr,
  AgentNameAttr,
  AgentStatusAttr,
  AgentTypeAttr,
  agentReadyUpdate,
  agentWorkflowId,
  archiveAgentUpdate,
  cancelChatTurnSignal,
  cancelGoalUpdate,
  chatTurnUpdate,
  chatWorkflowId,
  decideApprovalUpdate,
  getAgentStateQuery,
  OrgIdAttr,
  pauseAgentUpdate,
  resumeAgentUpdate,
  submitGoalUpdate,
  taskWorkflowId,
  updateAgentConfigUpdate,
  type AgentConfig,
  type AgentConfigPatch,
  type AgentLiveState,
  type AgentSettings,
  type ApprovalDecisionInput,
  type ApprovalOutcome,
  type ChatTurnInput,
  type ChatTurnResult,
  type GoalReceipt,
  type LifecycleRequest,
  reminderChangeWorkflowId,
  type ReminderChange,
  type ReminderView,
  type SubmitGoalInput,
} from '../workflows/definitions';

/** The agent's workflow refused the request (impossible transition) or is not running. */
export class AgentRejectedError extends Error {
  constructor(
    message: string,
    readonly reason: 'not_running' | 'invalid_transition' | 'limit_reached',
  ) {
    super(message);
    this.name = 'AgentRejectedError';
  }
}

/**
 * The one way to reach a running agent: every change goes through a signal or an update to its
 * workflow, never through the database. Used by the API and by tools (create_task).
 */
export class AgentGateway {
  constructor(
    readonly client: Client,
    readonly taskQueue: string,
  ) {}

  /**
   * Starts the agent's workflow and returns once its row is recorded (update-with-start), so a read
   * right after creation finds the agent.
   */
  async start(agent: AgentConfig, settings: AgentSettings): Promise<AgentLiveState> {
    const startOperation = new WithStartWorkflowOperation<typeof AgentWorkflow>('AgentWorkflow', {
      workflowId: agentWorkflowId(agent.id),
      taskQueue: this.taskQueue,
      args: [{ agent, settings }],
      workflowIdConflictPolicy: 'FAIL',
      typedSearchAttributes: [
        { key: AgentIdAttr, value: agent.id },
        { key: AgentNameAttr, value: agent.name },
        { key: AgentTypeAttr, value: agent.type },
        { key: OrgIdAttr, value: agent.orgId },
        { key: AgentStatusAttr, value: 'IDLE' },
      ],
      staticSummary: `Agent ${agent.name} (${agent.type}, ${agent.autonomy})`,
      staticDetails: `**Objective:** ${agent.objective}\n\nOrg \`${agent.orgId}\` · priority ${agent.priority} · tools: ${agent.allowedTools.join(', ') || 'none'}`,
    });
    return this.client.workflow.executeUpdateWithStart(agentReadyUpdate, { startWorkflowOperation: startOperation });
  }

  /**
   * One update id per submission, kept when `update` sends it again, so the server joins a repeat to the
   * first; a later submission of the same task is a new update and answers the task's current state.
   */
  submitGoal(agentId: string, goal: SubmitGoalInput): Promise<GoalReceipt> {
    const updateId = `goal:${goal.taskId}:${randomUUID()}`;
    return this.update(`agent ${agentId}`, () =>
      this.handle(agentId).executeUpdate(submitGoalUpdate, { args: [goal], updateId }),
    );
  }

  /** Pauses an agent; `request.byAgentId` when an agent asks (agent_manager), none for an operator. */
  pause(agentId: string, request: LifecycleRequest = {}): Promise<AgentLiveState> {
    return this.update(`agent ${agentId}`, () =>
      this.handle(agentId).executeUpdate(pauseAgentUpdate, { args: [request] }),
    );
  }

  /** Resumes an agent; an agent's request is refused for an operator's pause or an error stop. */
  resume(agentId: string, request: LifecycleRequest = {}): Promise<AgentLiveState> {
    return this.update(`agent ${agentId}`, () =>
      this.handle(agentId).executeUpdate(resumeAgentUpdate, { args: [request] }),
    );
  }

  archive(agentId: string): Promise<AgentLiveState> {
    return this.update(`agent ${agentId}`, () => this.handle(agentId).executeUpdate(archiveAgentUpdate));
  }

  cancelGoal(agentId: string, taskId: string, reason?: string): Promise<GoalReceipt> {
    return this.update(`agent ${agentId}`, () =>
      this.handle(agentId).executeUpdate(cancelGoalUpdate, { args: [{ taskId, reason }] }),
    );
  }

  updateConfig(agentId: string, patch: AgentConfigPatch): Promise<AgentConfig> {
    return this.update(`agent ${agentId}`, () =>
      this.handle(agentId).executeUpdate(updateAgentConfigUpdate, { args: [patch] }),
    );
  }

  /**
   * Delivers an approval decision to the workflow waiting for it: the agent's (its goals run inline), or
   * the task's own (crew work, and requests recorded without a workflow id). The update id makes a
   * repeated identical request return the first answer instead of deciding twice.
   */
  decideApproval(
    approval: { taskId: string; workflowId: string | null },
    decision: ApprovalDecisionInput,
  ): Promise<ApprovalOutcome> {
    const handle = this.client.workflow.getHandle(approval.workflowId ?? taskWorkflowId(approval.taskId));
    return this.update(`task ${approval.taskId}`, () =>
      handle.executeUpdate(decideApprovalUpdate, {
        args: [decision],
        updateId: `${decision.approvalId}:${decision.decision}`,
      }),
    );
  }

  /**
   * Runs one chat turn in the session's ChatWorkflow, starting the workflow if it is not running (a new
   * session, or one that ended after being idle). The turn id is the update id: a retried request gets
   * the same turn, not a second one.
   */
  chatTurn(
    sessionId: string,
    agent: AgentConfig,
    settings: AgentSettings,
    turn: ChatTurnInput,
  ): Promise<ChatTurnResult> {
    const startWorkflowOperation = new WithStartWorkflowOperation<typeof ChatWorkflow>('ChatWorkflow', {
      workflowId: chatWorkflowId(sessionId),
      taskQueue: this.taskQueue,
      args: [{ sessionId, agent, settings }],
      workflowIdConflictPolicy: 'USE_EXISTING',
      typedSearchAttributes: [
        { key: AgentIdAttr, value: agent.id },
        { key: AgentNameAttr, value: agent.name },
        { key: OrgIdAttr, value: agent.orgId },
      ],
      staticSummary: `Chat session ${sessionId} with ${agent.name}`,
    });
    return this.client.workflow.executeUpdateWithStart(chatTurnUpdate, {
      args: [turn],
      updateId: turn.turnId,
      startWorkflowOperation,
    });
  }

  /** Tells a session to stop the turn in progress (its client went away). */
  async cancelChatTurn(sessionId: string, turnId: string): Promise<void> {
    await this.client.workflow.getHandle(chatWorkflowId(sessionId)).signal(cancelChatTurnSignal, { turnId });
  }

  /**
   * Creates or removes a reminder (its row and its Temporal schedule) through ReminderChangeWorkflow, so
   * the change completes even if this process dies halfway; a repeated request joins the same change.
   * A refusal (archived agent, reminder limit) becomes an AgentRejectedError.
   */
  async changeReminder(change: ReminderChange): Promise<ReminderView | null> {
    const reminderId = change.op === 'create' ? change.reminder.reminderId : change.reminderId;
    try {
      return await this.client.workflow.execute<typeof ReminderChangeWorkflow>('ReminderChangeWorkflow', {
        workflowId: reminderChangeWorkflowId(reminderId, change.op),
        taskQueue: this.taskQueue,
        args: [change],
        workflowIdConflictPolicy: 'USE_EXISTING',
        staticSummary: `${change.op === 'create' ? 'Create' : 'Remove'} reminder ${reminderId}`,
      });
    } catch (err) {
      let cause: unknown = err instanceof WorkflowFailedError ? err.cause : undefined;
      while (cause instanceof Error && !(cause instanceof ApplicationFailure)) cause = cause.cause;
      if (cause instanceof ApplicationFailure && cause.type === ErrorType.InvalidTransition) {
        throw new AgentRejectedError(cause.message, 'invalid_transition');
      }
      throw err;
    }
  }

  /** The live state from the workflow query, or null when the workflow is not reachable. */
  async state(agentId: string): Promise<AgentLiveState | null> {
    try {
      return await this.handle(agentId).query(getAgentStateQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }

  private handle(agentId: string) {
    return this.client.workflow.getHandle<typeof AgentWorkflow>(agentWorkflowId(agentId));
  }

  /**
   * Translates Temporal's answers into the two outcomes callers care about. Two failures are sent again,
   * since every update here is idempotent (goals by task id, decisions by update id, transitions by their
   * target state): an update the server aborted because the workflow task carrying it failed (it had not
   * run), and a call whose deadline passed before the workflow accepted it (a busy worker replaying an
   * evicted agent), at most RPC_TIMEOUT_ATTEMPTS times.
   */
  private async update<T>(target: string, send: () => Promise<T>): Promise<T> {
    let timeouts = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        return await send();
      } catch (err) {
        if (isDeadlineExceeded(err) && ++timeouts < RPC_TIMEOUT_ATTEMPTS) continue;
        if (attempt >= UPDATE_ATTEMPTS || !isAbortedByWorkflowTaskFailure(err)) throw this.rejection(target, err);
        await sleep(Math.min(1000, 100 * attempt));
      }
    }
  }

  private rejection(target: string, err: unknown): unknown {
    if (err instanceof WorkflowNotFoundError || isClosedWorkflowError(err)) {
      return new AgentRejectedError(`${target} is not running`, 'not_running');
    }
    if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
      return new AgentRejectedError(
        err.cause.message,
        err.cause.type === ErrorType.LimitReached ? 'limit_reached' : 'invalid_transition',
      );
    }
    return err;
  }
}

/**
 * Attempts of an update the server aborted with its workflow task (see AgentGateway.update), 100 ms × attempt
 * apart, at most 1 s (about 15 s in all: a loaded worker may need seconds to replay a long history first).
 */
const UPDATE_ATTEMPTS = 20;

/** Calls of one update that may each run out of time waiting for the workflow to accept it. */
const RPC_TIMEOUT_ATTEMPTS = 3;

/** The update call's deadline passed (not a cancellation by the caller). */
function isDeadlineExceeded(err: unknown): boolean {
  return err instanceof WorkflowUpdateRPCTimeoutOrCancelledError && isGrpcDeadlineError(err);
}

/**
 * The server aborts updates delivered in a workflow task that failed, e.g. one completing a continue-as-new
 * while more updates arrived (UnhandledCommand), and refuses new ones until the retried task succeeds. The
 * update had no effect either way; sent again, the next run or the next task takes it.
 */
function isAbortedByWorkflowTaskFailure(err: unknown): boolean {
  const cause = err instanceof ServiceError ? err.cause : undefined;
  return (
    isGrpcServiceError(cause) &&
    cause.code === GRPC_FAILED_PRECONDITION &&
    /workflow task (failure|in failed state)/i.test(cause.message)
  );
}
const GRPC_FAILED_PRECONDITION = 9;

/** Updates sent to a workflow that has completed fail with a NOT_FOUND-like service error. */
function isClosedWorkflowError(err: unknown): boolean {
  const message = err instanceof Error ? err.message : '';
  return /workflow execution already completed|workflow not found/i.test(message);
}
