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

/** Every activity of the project, bound to its dependencies. Workflows proxy `Activities`. */
export function createActivities(deps: ActivityDeps) {
  const governance = createGovernance(deps.db, deps.config);
  const governed = { ...deps, governance };
  return {
    ...createRecordActivities(deps),
    ...createStepActivities(governed),
    ...createApprovalActivities(deps),
    ...createChatActivities(governed),
    ...createGovernanceActivities(governance, deps.db, deps.config, deps.gateway),
    ...createPriorityActivities(governed),
    ...createCrewActivities(deps),
    ...createReminderActivities(deps),
    ...createMetaActivities({ ...deps, runner: createStepRunner(governed) }),
  };
}

export type Activities = ReturnType<typeof createActivities>;
