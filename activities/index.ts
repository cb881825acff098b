import type { TemporalGateway } from '../client/gateway';
import { createApprovalActivities } from './approvals';
import { createChatActivities } from './chat';
import { createGovernance, createGovernanceActivities } from './governance';
import { createPriorityActivities } from './priority';
import { createCrewActivities } from './crews';
import { createMetaActivities } from './meta';
import { createRecordActivities, type RecordDeps } from './records';
import { createReminderActivities, type ReminderDeps } from './reminders';
import { createStepActivities, createStepRunner, type StepDeps } from './steps';

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
  return {
    ...createRecordActivities(deps),
    ...createStepActivities(withRunner),
    ...createApprovalActivities(deps),
    ...createChatActivities(withRunner),
    ...createGovernanceActivities(governance, deps.db, deps.config, deps.gateway),
    ...createPriorityActivities(withRunner),
    ...createCrewActivities(deps),
    ...createReminderActivities(deps),
    ...createMetaActivities(withRunner),
  };
}

export type Activities = ReturnType<typeof createActivities>;
