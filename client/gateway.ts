import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  isGrpcDeadlineError,
  isGrpcServiceError,
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ServiceError,
  WithStartWorkflowOperation,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type Client,
  type ScheduleOptions,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType } from '../contract/errors';
import {
  AgentIdAttr,
  AgentNameAttr,
  AgentStatusAttr,
  AgentTypeAttr,
  activeSlotFreedSignal,
  admissionFreedSignal,
  agentReadyUpdate,
  agentWorkflowId,
  archiveAgentUpdate,
  cancelChatTurnSignal,
  cancelGoalUpdate,
  chatTurnUpdate,
  deliverMessageSignal,
  chatWorkflowId,
  CrewIdAttr,
  crewMessageSignal,
  crewStartedUpdate,
  crewWorkflowId,
  decideApprovalUpdate,
  getCrewStateQuery,
  getAgentStateQuery,
  metaWorkflowId,
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
  type InboxMessage,
  type LifecycleRequest,
  reminderChangeWorkflowId,
  reminderScheduleId,
  type AgentWorkflowType,
  type ChatWorkflowType,
  type CrewLiveState,
  type CrewMessageInput,
  type CrewWorkflowInput,
  type CrewWorkflowType,
  type MetaSupervisorWorkflowType,
  type MetaWorkflowInput,
  type ReminderChange,
  type ReminderChangeWorkflowType,
  type ReminderScheduleState,
  type ReminderView,
  type SubmitGoalInput,
  routedTaskEndedSignal,
  routedTaskWorkflowId,
  type RoutedTaskEnd,
  type RoutedTaskInput,
  type RoutedTaskWorkflowType,
} from '../contract/definitions';

/**
 * The agent's workflow refused the request (impossible transition), is not running, or is not (yet)
 * waiting on the approval request a decision names (`not_pending`).
 */
export class AgentRejectedError extends Error {
  constructor(
    message: string,
    readonly reason: 'not_running' | 'invalid_transition' | 'limit_reached' | 'not_pending',
  ) {
    super(message);
    this.name = 'AgentRejectedError';
  }
}

/**
 * The one door to Temporal: the only code that starts, signals, updates or queries workflows and manages
 * schedules. A running agent changes only through a signal or an update to its workflow, never through the
 * database. Used by the API and by the activities that start or signal workflows (tools, meta, reminders,
 * governance).
 */
export class TemporalGateway {
  constructor(
    readonly client: Client,
    readonly taskQueue: string,
  ) {}

  /**
   * Starts the agent's workflow and returns once its row is recorded (update-with-start), so a read
   * right after creation finds the agent.
   */
  async start(agent: AgentConfig, settings: AgentSettings): Promise<AgentLiveState> {
    const startOperation = new WithStartWorkflowOperation<AgentWorkflowType>('AgentWorkflow', {
      workflowId: agentWorkflowId(agent.id),
      taskQueue: this.taskQueue,
      args: [{ agent, settings }],
      workflowIdConflictPolicy: 'FAIL',
      ...(settings.workflowTaskTimeoutSeconds
        ? { workflowTaskTimeout: settings.workflowTaskTimeoutSeconds * 1000 }
        : {}),
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
   * the same turn, not a second one. A session the caller has just created (`newSession`) starts with an
   * empty conversation instead of loading its stored history, which cannot exist yet.
   */
  chatTurn(
    sessionId: string,
    agent: AgentConfig,
    settings: AgentSettings,
    turn: ChatTurnInput,
    { newSession = false }: { newSession?: boolean } = {},
  ): Promise<ChatTurnResult> {
    const startWorkflowOperation = new WithStartWorkflowOperation<ChatWorkflowType>('ChatWorkflow', {
      workflowId: chatWorkflowId(sessionId),
      taskQueue: this.taskQueue,
      args: [{ sessionId, agent, settings, ...(newSession ? { conversation: [] } : {}) }],
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
      return await this.client.workflow.execute<ReminderChangeWorkflowType>('ReminderChangeWorkflow', {
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

  /** True while the agent's workflow runs; a lookup that fails for another reason counts as running. */
  async isAgentRunning(agentId: string): Promise<boolean> {
    try {
      return (await this.handle(agentId).describe()).status.name === 'RUNNING';
    } catch (err) {
      return !(err instanceof WorkflowNotFoundError);
    }
  }

  /** Tells an agent waiting for an active slot that one was freed; false when its workflow is gone. */
  async wakeAgent(agentId: string): Promise<boolean> {
    try {
      await this.handle(agentId).signal(activeSlotFreedSignal);
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }

  /** Tells a workflow sleeping for admission that a step slot or budget was freed; false when it is gone. */
  async wakeWorkflow(workflowId: string): Promise<boolean> {
    try {
      await this.client.workflow.getHandle(workflowId).signal(admissionFreedSignal);
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }

  /**
   * Puts a message in an agent's inbox (the workflow keeps one copy per message id, so sending again is
   * harmless); AgentRejectedError when the agent's workflow is not running.
   */
  async deliverMessage(agentId: string, message: InboxMessage): Promise<void> {
    try {
      await this.handle(agentId).signal(deliverMessageSignal, message);
    } catch (err) {
      throw this.rejection(`agent ${agentId}`, err);
    }
  }

  // ---- Crews and the meta supervisor ----

  /**
   * Starts the crew's workflow and returns once it has recorded that it runs. Two starts at once (or a
   * retried request) reach the same run; a finished crew is never run again (AgentRejectedError).
   */
  async startCrew(input: CrewWorkflowInput, details: { goal: string }): Promise<CrewLiveState> {
    try {
      return await this.client.workflow.executeUpdateWithStart(crewStartedUpdate, {
        startWorkflowOperation: new WithStartWorkflowOperation<CrewWorkflowType>('CrewWorkflow', {
          workflowId: crewWorkflowId(input.crewId),
          taskQueue: this.taskQueue,
          args: [input],
          workflowIdConflictPolicy: 'USE_EXISTING',
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
          typedSearchAttributes: [
            { key: CrewIdAttr, value: input.crewId },
            { key: OrgIdAttr, value: input.orgId },
          ],
          staticSummary: `Crew ${input.name} (${input.process}, ${input.members.length} members)`,
          staticDetails: `**Goal:** ${details.goal}`,
        }),
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        throw new AgentRejectedError('crew already ran; it cannot start again', 'invalid_transition');
      }
      throw err;
    }
  }

  /** The running crew's live state, or null when it cannot be asked (not running, not reachable). */
  crewState(crewId: string): Promise<CrewLiveState | null> {
    return this.crewHandle(crewId)
      .query(getCrewStateQuery)
      .catch(() => null);
  }

  /** Delivers a message to a running crew; AgentRejectedError when it is not running. */
  async messageCrew(crewId: string, message: CrewMessageInput): Promise<void> {
    try {
      await this.crewHandle(crewId).signal(crewMessageSignal, message);
    } catch (err) {
      throw this.rejection('crew', err);
    }
  }

  /**
   * Cancels the crew's workflow (which cancels its children) and waits up to `waitMs` for it to finish
   * recording that it stopped. A crew that is no longer running is left as it is.
   */
  async stopCrew(crewId: string, waitMs: number): Promise<void> {
    const handle = this.crewHandle(crewId);
    try {
      await handle.cancel();
      await Promise.race([handle.result(), sleep(waitMs, undefined, { ref: false })]);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
  }

  startMeta(input: MetaWorkflowInput): Promise<unknown> {
    return this.client.workflow.start<MetaSupervisorWorkflowType>('MetaSupervisorWorkflow', {
      workflowId: metaWorkflowId(input.metaId),
      taskQueue: this.taskQueue,
      // A run id is started once: a repeated start (a retried tool call) must not run it again after it closed.
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      args: [input],
      typedSearchAttributes: [{ key: OrgIdAttr, value: input.orgId }],
      staticSummary: `Meta supervisor ${input.name} (up to ${input.maxAgents} agents)`,
      staticDetails: `**Objective:** ${input.objective}`,
    });
  }

  /** Starts a routed task's workflow; a second start for the same task leaves the first as it is. */
  async startRoutedTask(input: RoutedTaskInput): Promise<void> {
    try {
      await this.client.workflow.start<RoutedTaskWorkflowType>('RoutedTaskWorkflow', {
        workflowId: routedTaskWorkflowId(input.taskId),
        taskQueue: this.taskQueue,
        args: [input],
        // A route runs once: a start after it ended must not run its attempts again.
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        typedSearchAttributes: [{ key: OrgIdAttr, value: input.orgId }],
        staticSummary: `Routed task (${input.route.strategy}: ${input.route.capabilities.join(', ') || 'any agent'})`,
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
  }

  /** Tells a routed task's workflow that one of its attempts ended; false when it is not running. */
  async routedTaskEnded(routedTaskId: string, end: RoutedTaskEnd): Promise<boolean> {
    try {
      await this.client.workflow.getHandle(routedTaskWorkflowId(routedTaskId)).signal(routedTaskEndedSignal, end);
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }

  // ---- Reminder schedules ----

  /** Creates a reminder's schedule; a retry finds it created already and leaves it as it is. */
  async createReminderSchedule(reminderId: string, options: Omit<ScheduleOptions, 'scheduleId'>): Promise<void> {
    try {
      await this.client.schedule.create({ ...options, scheduleId: reminderScheduleId(reminderId) });
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    }
  }

  /** Whether the schedule is paused, when it fires next and how often it fired; null when it does not exist. */
  async reminderScheduleState(reminderId: string): Promise<ReminderScheduleState | null> {
    try {
      const d = await this.client.schedule.getHandle(reminderScheduleId(reminderId)).describe();
      return {
        paused: d.state.paused,
        nextFireAt: d.state.paused ? null : (d.info.nextActionTimes[0]?.toISOString() ?? null),
        firesSoFar: d.info.numActionsTaken,
      };
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) return null;
      throw err;
    }
  }

  /**
   * Starts the one tick a schedule has at `at` now, whether or not the schedule is paused (a backfill):
   * the fire gets the tick's scheduled time, so its workflow id and task id are those of the tick.
   */
  async backfillReminderTick(reminderId: string, at: Date): Promise<void> {
    await this.client.schedule
      .getHandle(reminderScheduleId(reminderId))
      .backfill({ start: at, end: new Date(at.getTime() + 1000), overlap: 'SKIP' });
  }

  /** Pauses or resumes a reminder's schedule (idempotent); a schedule that does not exist is skipped. */
  async setReminderSchedulePaused(reminderId: string, paused: boolean, note: string): Promise<void> {
    const handle = this.client.schedule.getHandle(reminderScheduleId(reminderId));
    try {
      if (paused) await handle.pause(note);
      else await handle.unpause(note);
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
  }

  async deleteReminderSchedule(reminderId: string): Promise<void> {
    try {
      await this.client.schedule.getHandle(reminderScheduleId(reminderId)).delete();
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
  }

  /** The server's version and capabilities (the API's health check). */
  async serverInfo() {
    return this.client.connection.workflowService.getSystemInfo({});
  }

  private crewHandle(crewId: string) {
    return this.client.workflow.getHandle<CrewWorkflowType>(crewWorkflowId(crewId));
  }

  private handle(agentId: string) {
    return this.client.workflow.getHandle<AgentWorkflowType>(agentWorkflowId(agentId));
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
      const reasons: Record<string, AgentRejectedError['reason']> = {
        [ErrorType.LimitReached]: 'limit_reached',
        [ErrorType.ApprovalNotPending]: 'not_pending',
      };
      return new AgentRejectedError(err.cause.message, reasons[err.cause.type ?? ''] ?? 'invalid_transition');
    }
    return err;
  }
}

/**
 * Attempts of an update the server aborted with its workflow task (see TemporalGateway.update), 100 ms × attempt
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
