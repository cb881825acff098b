import {
  ApplicationFailure,
  CancellationScope,
  condition,
  getRandomStream,
  isCancellation,
  log,
  patched,
  setCurrentDetails,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { ToolCall, LlmMessage } from '../activities/llm/types';
import type { NotificationInput } from '../activities/approvals';
import type { AgentStateRecord } from '../activities/records';
import type { ToolPolicy } from '../activities/tools/registry';
import { ErrorType } from '../contract/errors';
import { parseJsonOrText } from '../contract/json';
import { activitiesFor, admissionWaitOf, applicationFailure } from './activities';
import { activeTraceId, inTaskSpan, inWaitSpan, type WaitReason } from './task-spans';
import {
  admissionFreedSignal,
  decideApprovalSignal,
  decideApprovalUpdate,
  getTaskProgressQuery,
  type AdmissionWait,
  pauseTaskSignal,
  resumeTaskSignal,
  type AgentConfig,
  type ApprovalDecisionInput,
  type ApprovalOutcome,
  type InboxMessage,
  type TaskOutcome,
  type TaskStatus,
  type TaskProgress,
  type TaskWorkflowInput,
  taskWorkflowId,
  toolAllowed,
} from '../contract/definitions';

/**
 * The host agent's hold on one of AGENTS_MAX_ACTIVE slots: only agents doing work hold one. A TaskRun
 * gives it back before a wait and takes it again (by priority, possibly waiting) before it works again.
 */
export interface ActiveSlot {
  release(): Promise<void>;
  take(): Promise<void>;
}

/**
 * The host agent's inbox (agents only): messages from other agents, shown to the next model call and then
 * removed, and the requests a response has reached (what await_response waits for).
 */
export interface Mailbox {
  unread(): InboxMessage[];
  remove(messageIds: string[]): void;
  replied(requestId: string): boolean;
}

/**
 * A decision for an approval request the task is not waiting on. Typed, so the API can tell it from a
 * refusal: after a worker crash the task may be re-running the step that opened the request, whose row is
 * already written, and the same decision succeeds once the task is back at its wait.
 */
export function approvalNotPending(approvalId: string, where: 'task' | 'agent'): ApplicationFailure {
  return ApplicationFailure.create({
    type: ErrorType.ApprovalNotPending,
    message: `no pending approval request ${approvalId} on this ${where}`,
    nonRetryable: true,
  });
}

/** Approval ids come from each task's own random stream (workflows/patches.ts). */
const APPROVAL_IDS_PER_TASK_PATCH = 'approval-ids-per-task';

/** The longest await_response wait, and the one it takes when the call names none. */
const MAX_RESPONSE_WAIT_SECONDS = 86_400;
const DEFAULT_RESPONSE_WAIT_SECONDS = 300;

/** What happens to a tool call, by the agent's autonomy and the tool's policy. */
type Gate = 'run' | 'approve' | 'propose';

function gateFor(agent: AgentConfig, call: ToolCall, policy: ToolPolicy | undefined): Gate {
  // A disallowed call runs: it fails as a tool result.
  if (!policy || !toolAllowed(agent.allowedTools, call.name)) return 'run';
  // `mcp__<server>__*` matches every tool of a server, as in allowedTools; and a listed tool is gated even
  // when it has no side effect (the operator asked for it).
  const listed = toolAllowed(agent.approvalRequiredTools ?? [], call.name);
  // A harmless call runs: it changes nothing.
  if (!policy.sideEffect && !policy.requiresApproval && !listed) return 'run';
  if (agent.autonomy === 'manual') return 'propose';
  if (policy.requiresApproval || listed) return 'approve';
  return agent.autonomy === 'copilot' ? 'approve' : 'run';
}

type TaskActivities = ReturnType<typeof activitiesFor>;

/**
 * One goal of an agent: model call → tool calls → observe, until the model answers, the step limit or the
 * time limit. Side-effecting tool calls are gated by the agent's autonomy: proposed (manual), sent for
 * approval and waited on durably (copilot, or tools that always need approval), or executed with a
 * notification (autopilot). The reasoning trace is written by activities; this only decides what happens
 * next. It never throws for a task failure: the outcome says why.
 *
 * It runs inside the workflow that hosts the task: an agent's goals run inline in its AgentWorkflow, a
 * crew's member work runs as a TaskWorkflow child. The host routes its messages (pause, resume, approval
 * decisions, the progress query) to `pause`, `resume`, `checkDecision`/`applyDecision` and `progress`.
 */
export class TaskRun {
  readonly progress: { status: TaskStatus; step: number; paused: boolean; activity: string };
  /** The approval request being waited on, and every decision taken (for idempotent repeats). */
  private pendingApprovalId: string | null = null;
  private readonly decisions = new Map<string, ApprovalOutcome>();
  /** Decisions whose approval row is written; the task acts on a decision only once it is. */
  private readonly recordedDecisions = new Set<string>();
  /** Decisions still being recorded; the task finishes only once none is. */
  private decisionsInFlight = 0;
  private readonly notifications: Promise<void>[] = [];
  /** The task's identity in side-effect and notification keys (`task-<taskId>`, wherever it runs). */
  private readonly key: string;
  /** The latest request this task sent (send_message type "request"), for await_response. */
  private lastRequestId: string | null = null;
  /** Time spent waiting for admission (budget, step slots, resources): not counted as running time. */
  private admissionWaitMs = 0;
  /** Set by admissionFreedSignal since the current step was last tried. */
  private admissionFreed = false;
  /** Checks of final answers so far (the goal's `validation` bounds them). */
  private validationAttempts = 0;
  /** ` · [trace](url)` in the Web UI details while tracing is on and TRACES_UI_URL is set; else empty. */
  private traceLink = '';

  constructor(
    private readonly input: TaskWorkflowInput,
    private readonly acts: TaskActivities,
    /** The workflow running this task: approval decisions are sent there. */
    private readonly hostWorkflowId: string,
    /** The host agent's state as this goal starts, for the first model call to write (see AgentWorkflow's publish). */
    private readonly agentStateAtStart?: AgentStateRecord,
    /** The host agent's active slot (agents only; crew work takes none). */
    private readonly slot?: ActiveSlot,
    /** The host agent's inbox (agents only). */
    private readonly mailbox?: Mailbox,
  ) {
    this.progress = { status: 'planning', step: 0, paused: input.startPaused, activity: 'starting' };
    this.key = taskWorkflowId(input.goal.taskId);
  }

  get taskId(): string {
    return this.input.goal.taskId;
  }

  snapshot(): TaskProgress {
    return { taskId: this.taskId, maxSteps: this.input.settings.maxSteps, ...this.progress };
  }

  pause(): void {
    this.progress.paused = true;
  }

  resume(): void {
    this.progress.paused = false;
  }

  /** Refuses a decision that does not apply: unknown request, expired, or decided the other way. */
  checkDecision(request: ApprovalDecisionInput): void {
    const known = this.decisions.get(request.approvalId);
    if (known) {
      if (known.status === 'expired') throw new Error('approval request expired');
      if (known.status !== (request.decision === 'approve' ? 'approved' : 'rejected'))
        throw new Error(`approval request already ${known.status}`);
      return;
    }
    if (this.pendingApprovalId !== request.approvalId) throw approvalNotPending(request.approvalId, 'task');
    if (request.decision === 'reject' && request.editedAction) throw new Error('editedAction applies to approve only');
  }

  /** Applies a checked decision (a repeat gets the first outcome) and records it. */
  async applyDecision(request: ApprovalDecisionInput): Promise<ApprovalOutcome> {
    const known = this.decisions.get(request.approvalId);
    if (known) return known;
    const outcome: ApprovalOutcome = {
      approvalId: request.approvalId,
      status: request.decision === 'approve' ? 'approved' : 'rejected',
      decidedBy: request.decidedBy ?? null,
      reason: request.reason ?? null,
      editedAction: request.decision === 'approve' ? (request.editedAction ?? null) : null,
      decidedAt: new Date().toISOString(),
    };
    // Set before the first await: a concurrent opposite decision is refused by the validator from here on.
    this.decisions.set(request.approvalId, outcome);
    this.decisionsInFlight += 1;
    try {
      await this.acts.recordApprovalDecision(outcome);
    } finally {
      this.decisionsInFlight -= 1;
    }
    this.recordedDecisions.add(request.approvalId);
    return outcome;
  }

  /** The same decision sent as a signal: one that does not apply is logged and ignored. */
  async applyDecisionSignal(request: ApprovalDecisionInput): Promise<void> {
    try {
      this.checkDecision(request);
    } catch (err) {
      log.warn('approval decision signal ignored', { approvalId: request.approvalId, reason: (err as Error).message });
      return;
    }
    await this.applyDecision(request);
  }

  /** The goal, traced as one `invoke_agent` span (workflows/task-spans.ts). */
  run(): Promise<TaskOutcome> {
    const { goal, agent } = this.input;
    return inTaskSpan({ taskId: goal.taskId, agentId: agent.id, agentName: agent.name }, () => this.runSteps());
  }

  private async runSteps(): Promise<TaskOutcome> {
    const { goal, agent, settings } = this.input;
    const { acts, progress } = this;
    // Inside the goal's invoke_agent span: its trace is the one the task row names.
    const traceId = activeTraceId();
    if (traceId && settings.tracesUiUrl)
      this.traceLink = ` · [trace](${settings.tracesUiUrl.replace('{traceId}', traceId)})`;
    const rank = goal.score ?? goal.priority * 100;
    const messages: LlmMessage[] = [
      { role: 'system', content: systemPrompt(this.input) },
      { role: 'user', content: taskPrompt(goal.title, goal.input) },
    ];
    const timeoutMs = settings.taskTimeoutSeconds * 1000;
    let activeMs = 0;

    try {
      for (progress.step = 1; progress.step <= settings.maxSteps; progress.step++) {
        const { step } = progress;
        if (progress.paused) {
          this.show(`paused before step ${step}/${settings.maxSteps}`);
          await this.slot?.release();
          await inWaitSpan('paused', () => condition(() => !progress.paused));
          await this.takeSlot();
        }
        if (activeMs >= timeoutMs) {
          return await this.finish('failed', null, {
            message: `timed out: ran for more than ${settings.taskTimeoutSeconds}s (AGENT_TIMEOUT_SECONDS)`,
            type: ErrorType.TaskLimit,
          });
        }
        const stepStarted = Date.now();
        const admissionWaitBefore = this.admissionWaitMs;
        let waitedMs = 0;
        this.show(`thinking (step ${step}/${settings.maxSteps})`);
        // Messages from other agents since the last call: shown once, in their own turn, then marked read.
        const unread = this.mailbox?.unread() ?? [];
        if (unread.length > 0) messages.push({ role: 'user', content: inboxPrompt(unread) });
        const reply = await this.admitted(({ attemptsBefore }) =>
          acts.callModel(this.summary(`model call, step ${step}/${settings.maxSteps}`), {
            taskId: goal.taskId,
            step,
            owner: {
              agentId: agent.id,
              orgId: agent.orgId,
              priority: rank,
              agentBudget: agent.tokenBudgetPerMinute ?? null,
              wakeOnAdmission: true,
            },
            retry: { attemptsBefore, maxAttempts: settings.maxRetries + 1 },
            ...(step === 1 && this.agentStateAtStart ? { agentState: this.agentStateAtStart } : {}),
            // The first model call marks the task as started; a final answer's call records its end, unless
            // the answer is checked first.
            markStarted: step === 1,
            completesTask: !goal.validation,
            provider: agent.provider,
            fallbackProviders: agent.fallbackProviders ?? [],
            model: agent.model,
            messages,
            toolNames: agent.allowedTools,
            mcpServers: agent.mcpServers ?? [],
          }),
        );
        if (unread.length > 0) {
          const ids = unread.map((m) => m.messageId);
          this.mailbox!.remove(ids);
          await acts.markMessagesRead({ agentId: agent.id, messageIds: ids });
        }
        if (reply.finishReason === 'refusal') {
          return await this.finish('failed', null, {
            message: `model refused: ${reply.content}`,
            type: ErrorType.ProviderRefusal,
          });
        }
        messages.push({ role: 'assistant', content: reply.content, toolCalls: reply.toolCalls });
        if (reply.toolCalls.length === 0) {
          if (!goal.validation)
            return await this.finish('completed', { answer: reply.content }, null, reply.completedTask);
          // A checked answer ends the task, or goes back to the model with the reasons as the next step.
          const ended = await this.validated(reply.content, step, rank, messages);
          if (ended) return ended;
        }
        progress.status = 'running';
        const proposals: { tool: string; arguments: unknown }[] = [];
        for (const [index, call] of reply.toolCalls.entries()) {
          const gate = gateFor(agent, call, reply.toolPolicies?.[call.name]);
          const decisionSeq = index + 1;
          let toRun = call;
          if (gate === 'propose') {
            const proposal = { tool: call.name, arguments: parseJsonOrText(call.arguments) };
            proposals.push(proposal);
            await acts.recordDecision({
              taskId: goal.taskId,
              step,
              seq: decisionSeq,
              type: 'tool_call',
              reasoning: `Proposed ${call.name} for a human to execute (manual autonomy); not executed`,
              action: proposal,
              result: { proposed: true, executed: false },
              confidence: null,
            });
            messages.push(toolMessage(call, 'Proposed to a human for manual execution; not executed by the agent.'));
            continue;
          }
          if (gate === 'approve') {
            const waitStarted = Date.now();
            const outcome = await this.requestApproval(step, index, call);
            waitedMs += Date.now() - waitStarted;
            if (outcome.status === 'expired' && agent.onApprovalTimeout !== 'escalate') {
              return await this.finish('failed', null, {
                message: `approval ${outcome.approvalId} for ${call.name} expired: ${outcome.reason}`,
                type: ErrorType.ApprovalExpired,
              });
            }
            if (outcome.status !== 'approved') {
              const why =
                outcome.status === 'rejected'
                  ? `Rejected by ${outcome.decidedBy ?? 'a reviewer'}: ${outcome.reason ?? 'no reason given'}`
                  : `No decision arrived in time (${outcome.reason}); escalated`;
              await acts.recordDecision({
                taskId: goal.taskId,
                step,
                seq: decisionSeq,
                type: 'escalate',
                reasoning: `${why}. ${call.name} was not executed.`,
                action: { tool: call.name, arguments: parseJsonOrText(call.arguments), approvalId: outcome.approvalId },
                result: { approval: outcome.status },
                confidence: null,
              });
              messages.push(toolMessage(call, `${why}. The action was not executed.`));
              continue;
            }
            if (outcome.editedAction) toRun = { ...call, arguments: JSON.stringify(outcome.editedAction) };
          }
          if (toRun.name === 'await_response' && this.mailbox) {
            waitedMs += await this.awaitResponse(toRun);
            toRun = this.withRequestId(toRun);
          }
          this.show(`calling tool ${call.name} (step ${step}/${settings.maxSteps})`);
          const runTool = reply.toolPolicies?.[toRun.name]?.local ? acts.runToolLocally : acts.runTool;
          const result = await this.admitted(() =>
            runTool(this.summary(`${toRun.name}, step ${step}/${settings.maxSteps}`), {
              taskId: goal.taskId,
              agentId: agent.id,
              orgId: agent.orgId,
              step,
              index,
              call: toRun,
              allowedTools: agent.allowedTools,
              mcpServers: agent.mcpServers ?? [],
              // Stable across activity retries and worker crashes: the side effect's identity.
              idempotencyKey: `${this.key}:${step}:${index}`,
              delegationDepth: goal.delegationDepth,
              maxDelegationDepth: settings.maxDelegationDepth,
              priority: rank,
              wakeOnAdmission: true,
            }),
          );
          messages.push({ role: 'tool', toolCallId: result.toolCallId, name: result.name, content: result.content });
          // A request (send_message) or a meta run (meta_orchestrate): what await_response waits for by default.
          if ((toRun.name === 'send_message' || toRun.name === 'meta_orchestrate') && !result.isError)
            this.noteRequest(result.content);
          // A handoff moved this goal to another agent: the task ends here, pointing to the new one.
          const handoff = toRun.name === 'send_message' && !result.isError ? handoffOf(result.content) : null;
          if (handoff) {
            return await this.finish(
              'completed',
              { answer: `Handed off to agent ${handoff.agentId} as task ${handoff.taskId}.`, handedOffTo: handoff },
              null,
            );
          }
          if (gate === 'run' && reply.toolPolicies?.[call.name]?.sideEffect && !result.isError) {
            this.notifyLater('autopilot_executed', `${step}:${index}`, {
              tool: call.name,
              arguments: parseJsonOrText(toRun.arguments),
              result: result.content,
            });
          }
        }
        if (proposals.length > 0) {
          return await this.finish(
            'completed',
            { suggestion: reply.content, proposedActions: proposals, executed: false },
            null,
          );
        }
        waitedMs += this.admissionWaitMs - admissionWaitBefore;
        activeMs += Date.now() - stepStarted - waitedMs;
      }
      progress.step = settings.maxSteps;
      return await this.finish('failed', null, {
        message: `stopped after ${settings.maxSteps} steps without a final answer (max steps)`,
        type: ErrorType.TaskLimit,
      });
    } catch (err) {
      if (isCancellation(err)) return await this.finish('cancelled', null, { message: 'cancelled', type: 'Cancelled' });
      const failure = applicationFailure(err);
      if (failure)
        return await this.finish('failed', null, { message: failure.message, type: failure.type ?? 'ActivityFailure' });
      throw err;
    }
  }

  /**
   * The validating stage: checks a final answer against the goal's `validation`. Passed, the task completes
   * (with the answer's JSON as `output` when a schema was given); failed with checks left, the reasons go
   * back to the model as a new turn and this returns null; failed on the last check, the task fails with them.
   */
  private async validated(
    answer: string,
    step: number,
    rank: number,
    messages: LlmMessage[],
  ): Promise<TaskOutcome | null> {
    const { goal, agent, settings } = this.input;
    const validation = goal.validation!;
    this.validationAttempts += 1;
    const attempt = this.validationAttempts;
    // On the last step no correction could follow: this check is the last either way.
    const lastCheck = attempt >= validation.maxAttempts || step >= settings.maxSteps;
    this.progress.status = 'validating';
    this.show(`validating the answer (check ${attempt}/${validation.maxAttempts})`);
    const verdict = await this.admitted(() =>
      this.acts.validateOutput(this.summary(`validating the answer, check ${attempt}/${validation.maxAttempts}`), {
        taskId: goal.taskId,
        step,
        attempt,
        lastCheck,
        title: goal.title,
        answer,
        validation,
        owner: {
          agentId: agent.id,
          orgId: agent.orgId,
          priority: rank,
          agentBudget: agent.tokenBudgetPerMinute ?? null,
          wakeOnAdmission: true,
        },
        provider: agent.provider,
        fallbackProviders: agent.fallbackProviders ?? [],
        model: agent.model,
      }),
    );
    if (verdict.passed) {
      const output = 'output' in verdict ? { output: verdict.output } : {};
      return await this.finish('completed', { answer, ...output }, null);
    }
    if (lastCheck) {
      return await this.finish(
        'failed',
        { answer, validation: { reasons: verdict.reasons } },
        {
          message: `the answer failed its check ${attempt} time(s): ${verdict.reasons.join('; ')}`,
          type: ErrorType.ValidationFailed,
        },
      );
    }
    messages.push({ role: 'user', content: validationFeedback(verdict.reasons, validation.maxAttempts - attempt) });
    return null;
  }

  /** An activity's one-line summary in the Web UI, naming the task: an agent's history holds all its goals. */
  private summary(what: string): string {
    const { title } = this.input.goal;
    return `"${title.length > 60 ? `${title.slice(0, 59)}…` : title}" · ${what}`;
  }

  private show(activity: string): void {
    this.progress.activity = activity;
    setCurrentDetails(`**${this.input.agent.name}** · ${activity}${this.traceLink}`);
  }

  /** Notifications run beside the task (in a scope cancellation cannot reach) and are awaited at the end. */
  private notifyLater(event: NotificationInput['event'], key: string, payload: Record<string, unknown>): void {
    const { agent, goal } = this.input;
    const notification: NotificationInput = {
      key: `${this.key}:${event}:${key}`,
      orgId: agent.orgId,
      agentId: agent.id,
      taskId: goal.taskId,
      event,
      payload: { agentName: agent.name, taskTitle: goal.title, ...payload },
      target: agent.notify ?? { type: 'log' },
    };
    this.notifications.push(
      CancellationScope.nonCancellable(() => this.acts.notify(notification)).catch((err) =>
        log.warn('notification not delivered', { event, error: String(err) }),
      ),
    );
  }

  /** Records the task's end (unless `recorded`: the model call that answered wrote it) and returns it. */
  private async finish(
    status: TaskOutcome['status'],
    output: unknown,
    error: { message: string; type: string } | null,
    recorded = false,
  ): Promise<TaskOutcome> {
    const outcome: TaskOutcome = {
      taskId: this.taskId,
      status,
      output,
      error: error?.message ?? null,
      errorType: error?.type ?? null,
      steps: this.progress.step,
    };
    this.progress.status = status;
    this.show(status === 'completed' ? 'completed' : `${status}: ${error?.message ?? ''}`);
    // Recording the end must happen even when the task itself was cancelled.
    await CancellationScope.nonCancellable(async () => {
      if (!recorded) await this.recordEnd(outcome);
      await Promise.all(this.notifications);
      await condition(() => this.decisionsInFlight === 0);
    });
    return outcome;
  }

  /**
   * Writes the task's end. An end the database can never store (an output it refuses) is recorded as a
   * failure naming why, so the agent's other writes are not held behind it.
   */
  private async recordEnd(outcome: TaskOutcome): Promise<void> {
    const decision = outcome.error ? { type: 'escalate' as const, reasoning: outcome.error } : undefined;
    try {
      await this.acts.finishTask({ outcome, decision });
    } catch (err) {
      const failure = applicationFailure(err);
      if (failure?.type !== ErrorType.Unstorable) throw err;
      const reason = `the task's end could not be stored: ${failure.message}`;
      Object.assign(outcome, { status: 'failed', output: null, error: reason, errorType: ErrorType.Unstorable });
      this.progress.status = 'failed';
      await this.acts.finishTask({ outcome, decision: { type: 'escalate', reasoning: reason } });
    }
  }

  /**
   * A fresh approval id, drawn from a random stream of this task's own. The workflow's default stream is
   * shared with every other draw in the run (other goals, crew message ids, anything an interceptor or
   * plugin does), so an id drawn there depends on the order of all of them; a worker replaying after a
   * crash that saw a different order would wait for another id than the row the first worker wrote, and
   * the decision would never reach the task. A task's own stream depends only on its own approvals.
   */
  private newApprovalId(): string {
    if (!patched(APPROVAL_IDS_PER_TASK_PATCH)) return uuid4();
    return getRandomStream(`approval-ids/${this.input.goal.taskId}`).uuid4();
  }

  /** Opens an approval request and waits for a decision or the timeout; returns how it ended. */
  private async requestApproval(step: number, index: number, call: ToolCall): Promise<ApprovalOutcome> {
    const { agent, goal, settings } = this.input;
    const approvalId = this.newApprovalId();
    const hours = agent.approvalTimeoutHours ?? settings.approvalTimeoutHours;
    const timeoutMs = Math.round(hours * 3_600_000);
    const expiresAt = new Date(Date.now() + timeoutMs).toISOString();
    const proposedAction = { tool: call.name, arguments: parseJsonOrText(call.arguments) };
    const title = `${agent.name} wants to call ${call.name} for "${goal.title}"`;
    // Known as pending before its row exists: whoever sees the row can decide at once.
    this.pendingApprovalId = approvalId;
    await this.acts.createApproval({
      approvalId,
      taskId: goal.taskId,
      agentId: agent.id,
      orgId: agent.orgId,
      workflowId: this.hostWorkflowId,
      step,
      callIndex: index,
      title,
      proposedAction,
      expiresAt,
    });
    this.progress.status = 'awaiting_approval';
    this.show(`waiting for approval of ${call.name} (request ${approvalId}, expires ${expiresAt})`);
    this.notifyLater('approval_needed', approvalId, { approvalId, title, proposedAction, expiresAt });

    // A durable timer: no worker slot is held while a human decides, and it fires after any restart. Nor
    // is an active slot: waiting agents would otherwise keep working ones out.
    await this.slot?.release();
    const decided = await inWaitSpan('approval', async () => {
      const inTime = await condition(() => this.decisions.has(approvalId), timeoutMs, {
        summary: `approval ${approvalId} of ${call.name} expires`,
      });
      // Act on a decision only once its row says so, or a crash in between could let the task finish first
      // and mark the approved request expired.
      if (inTime) await condition(() => this.recordedDecisions.has(approvalId));
      return inTime;
    });
    this.pendingApprovalId = null;
    if (!decided) {
      const expired: ApprovalOutcome = {
        approvalId,
        status: 'expired',
        decidedBy: null,
        reason: `no decision within ${formatHours(hours)}`,
        editedAction: null,
        decidedAt: new Date().toISOString(),
      };
      this.decisions.set(approvalId, expired);
      await this.acts.recordApprovalDecision(expired);
    }
    const outcome = this.decisions.get(approvalId)!;
    await this.takeSlot();
    this.progress.status = 'running';
    this.notifyLater(outcome.status === 'expired' ? 'approval_expired' : 'approval_decided', approvalId, {
      ...outcome,
    });
    return outcome;
  }

  /**
   * await_response: waits durably (a timer, no worker or active slot held) until the response to the
   * request reaches the inbox or the timeout passes; the tool call that follows reads the response. The
   * response is then the tool's result, not an inbox message. Returns the time spent waiting.
   */
  private async awaitResponse(call: ToolCall): Promise<number> {
    const mailbox = this.mailbox!;
    const args = parseJsonOrText(call.arguments) as { messageId?: unknown; timeoutSeconds?: unknown } | string;
    const named = typeof args === 'object' && typeof args?.messageId === 'string' ? args.messageId : null;
    const requestId = named ?? this.lastRequestId;
    if (!requestId) return 0;
    const asked = typeof args === 'object' ? Number(args.timeoutSeconds) : NaN;
    const seconds = Number.isFinite(asked)
      ? Math.min(Math.max(asked, 1), MAX_RESPONSE_WAIT_SECONDS)
      : DEFAULT_RESPONSE_WAIT_SECONDS;
    const started = Date.now();
    if (!mailbox.replied(requestId)) {
      this.show(`waiting for the response to message ${requestId} (up to ${seconds}s)`);
      await this.slot?.release();
      await inWaitSpan('response', () =>
        condition(() => mailbox.replied(requestId), seconds * 1000, {
          summary: `response to message ${requestId}`,
        }),
      );
      await this.takeSlot();
    }
    const response = mailbox.unread().filter((m) => m.type === 'response' && m.replyTo === requestId);
    if (response.length > 0) {
      const ids = response.map((m) => m.messageId);
      mailbox.remove(ids);
      await this.acts.markMessagesRead({ agentId: this.input.agent.id, messageIds: ids });
    }
    return Date.now() - started;
  }

  /** Remembers the request a call sent (or the meta run it started): await_response without a messageId waits for it. */
  private noteRequest(content: string): void {
    const sent = parseJsonOrText(content) as { messageId?: unknown; type?: unknown } | null;
    if (typeof sent === 'object' && sent?.type === 'request' && typeof sent.messageId === 'string')
      this.lastRequestId = sent.messageId;
  }

  /** await_response without a messageId: the call asks about the task's latest request. */
  private withRequestId(call: ToolCall): ToolCall {
    const args = parseJsonOrText(call.arguments);
    if (!this.lastRequestId || typeof args !== 'object' || args === null || 'messageId' in args) return call;
    return { ...call, arguments: JSON.stringify({ ...args, messageId: this.lastRequestId }) };
  }

  /** Takes the host agent's active slot back; waiting for it is a `wait active_slot` span. */
  private async takeSlot(): Promise<void> {
    const { slot } = this;
    if (slot) await inWaitSpan('active_slot', () => slot.take());
  }

  /**
   * Runs a step, waiting on durable timers while it is not admitted (token budget spent, every step slot
   * busy, a resource bucket empty). No worker slot is held while waiting; the task's state says why.
   */
  private async admitted<T>(step: (admission: StepAdmission) => Promise<T>): Promise<T> {
    let attemptsBefore = 0;
    for (let round = 0; ; round++) {
      // A wake-up counts from here on: one sent while the step was being refused must not be lost.
      this.admissionFreed = false;
      try {
        const result = await step({ attemptsBefore });
        if (this.progress.status === 'waiting_for_budget') this.progress.status = 'running';
        return result;
      } catch (err) {
        const wait = admissionWaitOf(err);
        if (!wait) throw err;
        if (wait.reason === 'token_budget' && this.progress.status !== 'waiting_for_budget') {
          this.progress.status = 'waiting_for_budget';
          await this.acts.setTaskStatus({ taskId: this.taskId, status: 'waiting_for_budget' });
        }
        if (wait.reason === 'provider_backoff') attemptsBefore = wait.attemptsUsed ?? attemptsBefore + 1;
        this.show(`waiting for ${wait.detail}`);
        const waitStarted = Date.now();
        // A budget wait can last the whole window and a provider may back off for minutes: the active slot
        // goes to an agent that can work meanwhile.
        if (wait.reason === 'token_budget' || wait.reason === 'provider_backoff') await this.slot?.release();
        await inWaitSpan(waitReason(wait.reason), () =>
          condition(() => this.admissionFreed, this.admissionTimerMs(wait, round)),
        );
        await this.takeSlot();
        this.admissionWaitMs += Date.now() - waitStarted;
      }
    }
  }

  /**
   * How long an admission wait sleeps before asking again. Waits someone wakes (step slots, budget held by
   * calls in flight) double their fallback timer each round up to admissionRecheckMaxSeconds, so however
   * long the wait lasts it costs a few events per wake-up; the others end when the activity said.
   */
  private admissionTimerMs(wait: AdmissionWait, round: number): number {
    if (!wait.wake) return wait.retryAfterMs;
    const maxMs = (this.input.settings.admissionRecheckMaxSeconds ?? DEFAULT_ADMISSION_RECHECK_MAX_SECONDS) * 1000;
    return Math.max(wait.retryAfterMs, Math.min(maxMs, wait.retryAfterMs * 2 ** Math.min(round, 20)));
  }

  /** admissionFreedSignal: a step slot or budget was freed; a step sleeping for admission asks again now. */
  noteAdmissionFreed(): void {
    this.admissionFreed = true;
  }
}

/**
 * A task as its own workflow (`task-<taskId>`): a crew member's piece of work, a child of the crew (and an
 * agent's goal in histories from before goals ran inline, see AgentWorkflow).
 */
export async function TaskWorkflow(input: TaskWorkflowInput): Promise<TaskOutcome> {
  const task = new TaskRun(input, activitiesFor(input.settings), workflowInfo().workflowId);
  setHandler(pauseTaskSignal, () => task.pause());
  setHandler(resumeTaskSignal, () => task.resume());
  setHandler(getTaskProgressQuery, () => task.snapshot());
  setHandler(admissionFreedSignal, () => task.noteAdmissionFreed());
  setHandler(decideApprovalUpdate, (request) => task.applyDecision(request), {
    validator: (request) => task.checkDecision(request),
  });
  setHandler(decideApprovalSignal, (request) => task.applyDecisionSignal(request));
  return task.run();
}

/** "24 h", "1.5 h", "6 min", "3.6 s": readable at every approval timeout scale. */
function formatHours(hours: number): string {
  if (hours >= 1) return `${Number(hours.toFixed(2))} h`;
  if (hours * 60 >= 1) return `${Number((hours * 60).toFixed(1))} min`;
  return `${Number((hours * 3600).toFixed(1))} s`;
}

/** The turn that sends a failed answer back to the model. */
function validationFeedback(reasons: string[], checksLeft: number): string {
  const lines = reasons.map((r) => `- ${r}`).join('\n');
  return `Your answer did not pass its check:\n${lines}\nFix these and answer again (${checksLeft} check(s) left).`;
}

/** The turn that shows the model what other agents sent since its last call. */
function inboxPrompt(unread: InboxMessage[]): string {
  const lines = unread.map((m) => {
    const about = [m.topic ? `topic ${m.topic}` : null, m.replyTo ? `in reply to ${m.replyTo}` : null]
      .filter(Boolean)
      .join(', ');
    const from = m.fromAgentId ? `agent ${m.fromAgentId}` : 'the orchestrator';
    return `- ${m.type} from ${from} (message ${m.messageId}${about ? `, ${about}` : ''}): ${m.summary}`;
  });
  return `Messages received:\n${lines.join('\n')}`;
}

/** Where a send_message handoff moved the goal, from the tool's result; null for any other message. */
function handoffOf(content: string): { agentId: string; taskId: string; messageId: string } | null {
  const parsed = parseJsonOrText(content) as { messageId?: unknown; handoff?: { agentId?: unknown; taskId?: unknown } };
  const handoff = typeof parsed === 'object' ? parsed?.handoff : undefined;
  if (typeof handoff?.agentId !== 'string' || typeof handoff.taskId !== 'string') return null;
  return { agentId: handoff.agentId, taskId: handoff.taskId, messageId: String(parsed.messageId) };
}

function toolMessage(call: ToolCall, content: string): LlmMessage {
  return { role: 'tool', toolCallId: call.id, name: call.name, content };
}

function systemPrompt({ agent }: TaskWorkflowInput): string {
  const lines = [
    `You are ${agent.name}, an autonomous agent. Your objective: ${agent.objective}`,
    'Work on the task step by step. Use the tools when they help; answer plainly when you are done.',
  ];
  if (agent.systemPrompt) lines.push(agent.systemPrompt);
  // Only the model's input changes (an activity argument): runs recorded before agents had a config replay alike.
  if (agent.config && Object.keys(agent.config).length) lines.push(`Configuration: ${JSON.stringify(agent.config)}`);
  return lines.join('\n');
}

/** The first line names the task; its input follows as a JSON block. */
export function taskPrompt(title: string, input: Record<string, unknown>): string {
  return `Task: ${title}\nInput:\n\`\`\`json\n${JSON.stringify(input, null, 2)}\n\`\`\``;
}

/** The span name of an admission wait: budget, step slots and provider back-off by name, resource buckets as one. */
function waitReason(reason: AdmissionWait['reason']): WaitReason {
  return reason === 'resource' ? 'resource' : reason;
}

/** What a step's activity is told about its admission so far: attempts spent in earlier tries. */
interface StepAdmission {
  attemptsBefore: number;
}

/** ADMISSION_RECHECK_MAX_SECONDS for runs started before it was a setting. */
const DEFAULT_ADMISSION_RECHECK_MAX_SECONDS = 300;
