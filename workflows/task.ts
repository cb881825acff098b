import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  patched,
  setCurrentDetails,
  setHandler,
  sleep,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { ToolCall, LlmMessage } from '../activities/llm/types';
import type { NotificationInput } from '../activities/approvals';
import type { ToolPolicy } from '../activities/tools/registry';
import { ErrorType } from '../lib/errors';
import { activitiesFor } from './activities';
import {
  type AdmissionWait,
  decideApprovalSignal,
  decideApprovalUpdate,
  getTaskProgressQuery,
  pauseTaskSignal,
  resumeTaskSignal,
  type AgentConfig,
  type ApprovalDecisionInput,
  type ApprovalOutcome,
  type TaskOutcome,
  type TaskStatus,
  type TaskWorkflowInput,
  toolAllowed,
} from './definitions';

/** What happens to a tool call, by the agent's autonomy and the tool's policy. */
type Gate = 'run' | 'approve' | 'propose';

function gateFor(agent: AgentConfig, call: ToolCall, policy: ToolPolicy | undefined): Gate {
  // A disallowed or harmless call runs: it either fails as a tool result or changes nothing.
  if (!policy || !toolAllowed(agent.allowedTools, call.name) || (!policy.sideEffect && !policy.requiresApproval)) return 'run';
  if (agent.autonomy === 'manual') return 'propose';
  if (policy.requiresApproval || (agent.approvalRequiredTools ?? []).includes(call.name)) return 'approve';
  return agent.autonomy === 'copilot' ? 'approve' : 'run';
}

/**
 * One goal of an agent, run as a child of its AgentWorkflow: model call → tool calls → observe, until
 * the model answers, the step limit or the time limit. Side-effecting tool calls are gated by the agent's
 * autonomy: proposed (manual), sent for approval and waited on durably (copilot, or tools that always need
 * approval), or executed with a notification (autopilot). The reasoning trace is written by activities;
 * this workflow only decides what happens next. It never throws for a task failure: the outcome says why.
 */
export async function TaskWorkflow(input: TaskWorkflowInput): Promise<TaskOutcome> {
  const { goal, agent, settings } = input;
  const acts = activitiesFor(settings);
  const progress = { status: 'planning' as TaskStatus, step: 0, paused: input.startPaused, activity: 'starting' };
  /** The approval request being waited on, and every decision taken (for idempotent repeats). */
  let pendingApprovalId: string | null = null;
  const decisions = new Map<string, ApprovalOutcome>();
  /** Decisions whose approval row is written; the task acts on a decision only once it is. */
  const recordedDecisions = new Set<string>();
  const notifications: Promise<void>[] = [];

  setHandler(pauseTaskSignal, () => void (progress.paused = true));
  setHandler(resumeTaskSignal, () => void (progress.paused = false));
  setHandler(getTaskProgressQuery, () => ({ taskId: goal.taskId, maxSteps: settings.maxSteps, ...progress }));

  const checkDecision = (request: ApprovalDecisionInput): void => {
    const known = decisions.get(request.approvalId);
    if (known) {
      if (known.status === 'expired') throw new Error('approval request expired');
      if (known.status !== (request.decision === 'approve' ? 'approved' : 'rejected')) throw new Error(`approval request already ${known.status}`);
      return;
    }
    if (pendingApprovalId !== request.approvalId) throw new Error(`no pending approval request ${request.approvalId} on this task`);
    if (request.decision === 'reject' && request.editedAction) throw new Error('editedAction applies to approve only');
  };
  const applyDecision = async (request: ApprovalDecisionInput): Promise<ApprovalOutcome> => {
    const known = decisions.get(request.approvalId);
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
    decisions.set(request.approvalId, outcome);
    await acts.recordApprovalDecision(outcome);
    recordedDecisions.add(request.approvalId);
    return outcome;
  };
  setHandler(decideApprovalUpdate, applyDecision, { validator: checkDecision });
  setHandler(decideApprovalSignal, async (request) => {
    try {
      checkDecision(request);
    } catch (err) {
      log.warn('approval decision signal ignored', { approvalId: request.approvalId, reason: (err as Error).message });
      return;
    }
    await applyDecision(request);
  });

  const show = (activity: string) => {
    progress.activity = activity;
    setCurrentDetails(`**${agent.name}** · ${activity}`);
  };

  /** Notifications run beside the task (in a scope cancellation cannot reach) and are awaited at the end. */
  const notifyLater = (event: NotificationInput['event'], key: string, payload: Record<string, unknown>) => {
    const notification: NotificationInput = {
      key: `${workflowInfo().workflowId}:${event}:${key}`,
      orgId: agent.orgId,
      agentId: agent.id,
      taskId: goal.taskId,
      event,
      payload: { agentName: agent.name, taskTitle: goal.title, ...payload },
      target: agent.notify ?? { type: 'log' },
    };
    notifications.push(
      CancellationScope.nonCancellable(() => acts.notify(notification)).catch((err) =>
        log.warn('notification not delivered', { event, error: String(err) }),
      ),
    );
  };

  const finish = async (
    status: TaskOutcome['status'],
    output: unknown,
    error: { message: string; type: string } | null,
  ): Promise<TaskOutcome> => {
    const outcome: TaskOutcome = {
      taskId: goal.taskId,
      status,
      output,
      error: error?.message ?? null,
      errorType: error?.type ?? null,
      steps: progress.step,
    };
    progress.status = status;
    show(status === 'completed' ? 'completed' : `${status}: ${error?.message ?? ''}`);
    // Recording the end must happen even when the task itself was cancelled.
    await CancellationScope.nonCancellable(async () => {
      await acts.finishTask({ outcome, decision: error ? { type: 'escalate', reasoning: error.message } : undefined });
      await Promise.all(notifications);
      await condition(allHandlersFinished);
    });
    return outcome;
  };

  /** Opens an approval request and waits for a decision or the timeout; returns how it ended. */
  const requestApproval = async (step: number, index: number, call: ToolCall): Promise<ApprovalOutcome> => {
    const approvalId = uuid4();
    const hours = agent.approvalTimeoutHours ?? settings.approvalTimeoutHours;
    const timeoutMs = Math.round(hours * 3_600_000);
    const expiresAt = new Date(Date.now() + timeoutMs).toISOString();
    const proposedAction = { tool: call.name, arguments: parseArguments(call.arguments) };
    const title = `${agent.name} wants to call ${call.name} for "${goal.title}"`;
    // Known as pending before its row exists: whoever sees the row can decide at once.
    pendingApprovalId = approvalId;
    await acts.createApproval({
      approvalId,
      taskId: goal.taskId,
      agentId: agent.id,
      orgId: agent.orgId,
      step,
      callIndex: index,
      title,
      proposedAction,
      expiresAt,
    });
    progress.status = 'awaiting_approval';
    show(`waiting for approval of ${call.name} (request ${approvalId}, expires ${expiresAt})`);
    notifyLater('approval_needed', approvalId, { approvalId, title, proposedAction, expiresAt });

    // A durable timer: no worker slot is held while a human decides, and it fires after any restart.
    const decided = await condition(() => decisions.has(approvalId), timeoutMs, {
      summary: `approval ${approvalId} of ${call.name} expires`,
    });
    // Patch: act on a decision only once its row says so, or a crash in between could let the task
    // finish first and mark the approved request expired. Earlier histories replay without the wait.
    if (decided && patched('approval-recorded-before-acting')) await condition(() => recordedDecisions.has(approvalId));
    pendingApprovalId = null;
    if (!decided) {
      const expired: ApprovalOutcome = {
        approvalId,
        status: 'expired',
        decidedBy: null,
        reason: `no decision within ${formatHours(hours)}`,
        editedAction: null,
        decidedAt: new Date().toISOString(),
      };
      decisions.set(approvalId, expired);
      await acts.recordApprovalDecision(expired);
    }
    const outcome = decisions.get(approvalId)!;
    progress.status = 'running';
    notifyLater(outcome.status === 'expired' ? 'approval_expired' : 'approval_decided', approvalId, { ...outcome });
    return outcome;
  };

  /**
   * Runs a step, waiting on durable timers while it is not admitted (token budget spent, every step slot
   * busy, a resource bucket empty). No worker slot is held while waiting; the task's state says why.
   */
  const admitted = async <T>(step: () => Promise<T>): Promise<T> => {
    for (;;) {
      try {
        const result = await step();
        if (progress.status === 'waiting_for_budget') progress.status = 'running';
        return result;
      } catch (err) {
        const wait = admissionWait(err);
        if (!wait) throw err;
        if (wait.reason === 'token_budget' && progress.status !== 'waiting_for_budget') {
          progress.status = 'waiting_for_budget';
          await acts.setTaskStatus({ taskId: goal.taskId, status: 'waiting_for_budget' });
        }
        show(`waiting for ${wait.detail}`);
        await sleep(wait.retryAfterMs);
      }
    }
  };
  const rank = goal.score ?? goal.priority * 100;

  const messages: LlmMessage[] = [
    { role: 'system', content: systemPrompt(input) },
    { role: 'user', content: taskPrompt(goal.title, goal.input) },
  ];
  const timeoutMs = settings.taskTimeoutSeconds * 1000;
  let activeMs = 0;

  // Patch: the first model call marks the task as started itself, one activity (three history events)
  // less per task. Histories recorded before it (test/histories/legacy/before-status-patch-*) replay
  // through the old branch. Once no such run is open, deprecatePatch() and then removal follow.
  const startsInModelCall = patched('status-in-first-model-call');
  try {
    if (!startsInModelCall) await acts.setTaskStatus({ taskId: goal.taskId, status: 'planning' });
    for (progress.step = 1; progress.step <= settings.maxSteps; progress.step++) {
      const { step } = progress;
      if (progress.paused) {
        show(`paused before step ${step}/${settings.maxSteps}`);
        await condition(() => !progress.paused);
      }
      if (activeMs >= timeoutMs) {
        return await finish('failed', null, {
          message: `timed out: ran for more than ${settings.taskTimeoutSeconds}s (AGENT_TIMEOUT_SECONDS)`,
          type: ErrorType.TaskLimit,
        });
      }
      const stepStarted = Date.now();
      let waitedMs = 0;
      show(`thinking (step ${step}/${settings.maxSteps})`);
      const reply = await admitted(() => acts.callModel(`model call, step ${step}/${settings.maxSteps}`, {
        taskId: goal.taskId,
        step,
        owner: { agentId: agent.id, orgId: agent.orgId, priority: rank, agentBudget: agent.tokenBudgetPerMinute ?? null },
        markStarted: startsInModelCall && step === 1,
        provider: agent.provider,
        fallbackProviders: agent.fallbackProviders ?? [],
        model: agent.model,
        messages,
        toolNames: agent.allowedTools,
        mcpServers: agent.mcpServers ?? [],
      }));
      if (reply.finishReason === 'refusal') {
        return await finish('failed', null, { message: `model refused: ${reply.content}`, type: ErrorType.ProviderRefusal });
      }
      messages.push({ role: 'assistant', content: reply.content, toolCalls: reply.toolCalls });
      if (reply.toolCalls.length === 0) {
        return await finish('completed', { answer: reply.content }, null);
      }
      progress.status = 'running';
      const proposals: { tool: string; arguments: unknown }[] = [];
      for (const [index, call] of reply.toolCalls.entries()) {
        const gate = gateFor(agent, call, reply.toolPolicies?.[call.name]);
        const decisionSeq = index + 1;
        let toRun = call;
        if (gate === 'propose') {
          const proposal = { tool: call.name, arguments: parseArguments(call.arguments) };
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
          const outcome = await requestApproval(step, index, call);
          waitedMs += Date.now() - waitStarted;
          if (outcome.status === 'expired' && agent.onApprovalTimeout !== 'escalate') {
            return await finish('failed', null, {
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
              action: { tool: call.name, arguments: parseArguments(call.arguments), approvalId: outcome.approvalId },
              result: { approval: outcome.status },
              confidence: null,
            });
            messages.push(toolMessage(call, `${why}. The action was not executed.`));
            continue;
          }
          if (outcome.editedAction) toRun = { ...call, arguments: JSON.stringify(outcome.editedAction) };
        }
        show(`calling tool ${call.name} (step ${step}/${settings.maxSteps})`);
        const result = await admitted(() => acts.runTool(`${toRun.name}, step ${step}/${settings.maxSteps}`, {
          taskId: goal.taskId,
          agentId: agent.id,
          orgId: agent.orgId,
          step,
          index,
          call: toRun,
          allowedTools: agent.allowedTools,
          mcpServers: agent.mcpServers ?? [],
          // Stable across activity retries and worker crashes: the side effect's identity.
          idempotencyKey: `${workflowInfo().workflowId}:${step}:${index}`,
          delegationDepth: goal.delegationDepth,
          maxDelegationDepth: settings.maxDelegationDepth,
          priority: rank,
        }));
        messages.push({ role: 'tool', toolCallId: result.toolCallId, name: result.name, content: result.content });
        if (gate === 'run' && reply.toolPolicies?.[call.name]?.sideEffect && !result.isError) {
          notifyLater('autopilot_executed', `${step}:${index}`, { tool: call.name, arguments: parseArguments(toRun.arguments), result: result.content });
        }
      }
      if (proposals.length > 0) {
        return await finish('completed', { suggestion: reply.content, proposedActions: proposals, executed: false }, null);
      }
      activeMs += Date.now() - stepStarted - waitedMs;
    }
    progress.step = settings.maxSteps;
    return await finish('failed', null, {
      message: `stopped after ${settings.maxSteps} steps without a final answer (max steps)`,
      type: ErrorType.TaskLimit,
    });
  } catch (err) {
    if (isCancellation(err)) return await finish('cancelled', null, { message: 'cancelled', type: 'Cancelled' });
    if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) {
      return await finish('failed', null, { message: err.cause.message, type: err.cause.type ?? 'ActivityFailure' });
    }
    throw err;
  }
}

/** The admission wait an activity failed with, if that is why it failed. */
function admissionWait(err: unknown): AdmissionWait | null {
  if (!(err instanceof ActivityFailure) || !(err.cause instanceof ApplicationFailure)) return null;
  if (err.cause.type !== ErrorType.AdmissionWait) return null;
  return (err.cause.details?.[0] as AdmissionWait | undefined) ?? null;
}

/** "24 h", "1.5 h", "6 min", "3.6 s": readable at every approval timeout scale. */
function formatHours(hours: number): string {
  if (hours >= 1) return `${Number(hours.toFixed(2))} h`;
  if (hours * 60 >= 1) return `${Number((hours * 60).toFixed(1))} min`;
  return `${Number((hours * 3600).toFixed(1))} s`;
}

function toolMessage(call: ToolCall, content: string): LlmMessage {
  return { role: 'tool', toolCallId: call.id, name: call.name, content };
}

function parseArguments(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function systemPrompt({ agent }: TaskWorkflowInput): string {
  const lines = [
    `You are ${agent.name}, an autonomous agent. Your objective: ${agent.objective}`,
    'Work on the task step by step. Use the tools when they help; answer plainly when you are done.',
  ];
  if (agent.systemPrompt) lines.push(agent.systemPrompt);
  return lines.join('\n');
}

/** The first line names the task; its input follows as a JSON block. */
export function taskPrompt(title: string, input: Record<string, unknown>): string {
  return `Task: ${title}\nInput:\n\`\`\`json\n${JSON.stringify(input, null, 2)}\n\`\`\``;
}
