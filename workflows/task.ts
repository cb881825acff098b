import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { LlmMessage } from '../activities/llm/types';
import { ErrorType } from '../lib/errors';
import { activitiesFor } from './activities';
import {
  getTaskProgressQuery,
  pauseTaskSignal,
  resumeTaskSignal,
  type TaskOutcome,
  type TaskStatus,
  type TaskWorkflowInput,
} from './definitions';

/**
 * One goal of an agent, run as a child of its AgentWorkflow: model call → tool calls → observe, until
 * the model answers, the step limit or the time limit. The reasoning trace is written by the step
 * activities; this workflow only decides what happens next. It never throws for a task failure: the
 * outcome says why, so the agent can move on to its next goal.
 */
export async function TaskWorkflow(input: TaskWorkflowInput): Promise<TaskOutcome> {
  const { goal, agent, settings } = input;
  const acts = activitiesFor(settings);
  const progress = { status: 'planning' as TaskStatus, step: 0, paused: input.startPaused, activity: 'starting' };

  setHandler(pauseTaskSignal, () => void (progress.paused = true));
  setHandler(resumeTaskSignal, () => void (progress.paused = false));
  setHandler(getTaskProgressQuery, () => ({ taskId: goal.taskId, maxSteps: settings.maxSteps, ...progress }));

  const show = (activity: string) => {
    progress.activity = activity;
    setCurrentDetails(`**${agent.name}** · ${activity}`);
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
    await CancellationScope.nonCancellable(() =>
      acts.finishTask({
        outcome,
        decision: error ? { type: 'escalate', reasoning: error.message } : undefined,
      }),
    );
    return outcome;
  };

  const messages: LlmMessage[] = [
    { role: 'system', content: systemPrompt(input) },
    { role: 'user', content: taskPrompt(goal.title, goal.input) },
  ];
  const timeoutMs = settings.taskTimeoutSeconds * 1000;
  let activeMs = 0;

  try {
    await acts.setTaskStatus({ taskId: goal.taskId, status: 'planning' });
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
      show(`thinking (step ${step}/${settings.maxSteps})`);
      const reply = await acts.callModel({
        taskId: goal.taskId,
        step,
        provider: agent.provider,
        model: agent.model,
        messages,
        toolNames: agent.allowedTools,
      });
      if (reply.finishReason === 'refusal') {
        return await finish('failed', null, { message: `model refused: ${reply.content}`, type: ErrorType.ProviderRefusal });
      }
      messages.push({ role: 'assistant', content: reply.content, toolCalls: reply.toolCalls });
      if (reply.toolCalls.length === 0) {
        return await finish('completed', { answer: reply.content }, null);
      }
      progress.status = 'running';
      for (const [index, call] of reply.toolCalls.entries()) {
        show(`calling tool ${call.name} (step ${step}/${settings.maxSteps})`);
        const result = await acts.runTool({
          taskId: goal.taskId,
          agentId: agent.id,
          orgId: agent.orgId,
          step,
          index,
          call,
          allowedTools: agent.allowedTools,
          // Stable across activity retries and worker crashes: the side effect's identity.
          idempotencyKey: `${workflowInfo().workflowId}:${step}:${index}`,
          delegationDepth: goal.delegationDepth,
          maxDelegationDepth: settings.maxDelegationDepth,
        });
        messages.push({ role: 'tool', toolCallId: result.toolCallId, name: result.name, content: result.content });
      }
      activeMs += Date.now() - stepStarted;
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
