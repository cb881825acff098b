import type { TemporalGateway } from '../client/gateway';
import { createApprovalActivities } from './approvals';
import { createChatActivities } from './chat';
import { createGovernance, createGovernanceActivities } from './governance';
import { createPriorityActivities } from './priority';
import { createCrewActivities } from './crews';
import { createMetaActivities } from './meta';
import { createMessageActivities } from './messages';
import { createRecordActivities, type RecordDeps } from './records';
import { createReminderActivities, type ReminderDeps } from './reminders';
import { createRoutingActivities, noticeRoutedTaskEnd } from './routing';
import { createStepActivities, createStepRunner, type StepDeps } from './steps';
import { createValidationActivities } from './validation';

/** `gateway` is the client: the one way activities start or signal workflows and manage schedules. */
export type ActivityDeps = RecordDeps & Omit<StepDeps, 'governance'> & ReminderDeps & { gateway: TemporalGateway };

/**
 * Every activity of the project, bound to its dependencies. Workflows proxy `Activities`. One step runner
 * (provider fallback, tool execution, admission) serves the step, chat, priority and meta activities.
 */
export function createActivities(deps: ActivityDeps) {
  const governance = createGovernance(deps.db, deps.config);
  const governed = { ...deps, governance };
  const runner = createStepRunner(governed);
  const withRunner = { ...governed, runner };
  const records = createRecordActivities(deps);
  const steps = createStepActivities(withRunner);
  return {
    ...records,
    ...steps,
    // A task's end (written by finishTask, or by the model call that answered) also reaches its routed
    // task's workflow, when it is an attempt of one.
    async finishTask(input: Parameters<typeof records.finishTask>[0]): Promise<void> {
      await records.finishTask(input);
      await noticeRoutedTaskEnd(deps.db, deps.gateway, input.outcome);
    },
    async callModel(input: Parameters<typeof steps.callModel>[0]): ReturnType<typeof steps.callModel> {
      const reply = await steps.callModel(input);
      if (input.completesTask && reply.toolCalls.length === 0) {
        await noticeRoutedTaskEnd(deps.db, deps.gateway, { taskId: input.taskId, errorType: null });
      }
      return reply;
    },
    ...createValidationActivities(withRunner),
    ...createApprovalActivities(deps),
    ...createChatActivities(withRunner),
    ...createGovernanceActivities(governance, deps.db, deps.config, deps.gateway),
    ...createPriorityActivities(withRunner),
    ...createCrewActivities(deps),
    ...createReminderActivities(deps),
    ...createMetaActivities(withRunner),
    ...createRoutingActivities(deps),
    ...createMessageActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
