import { createApprovalActivities } from './approvals';
import { createChatActivities } from './chat';
import { createCrewActivities } from './crews';
import { createRecordActivities, type RecordDeps } from './records';
import { createStepActivities, type StepDeps } from './steps';

export type ActivityDeps = RecordDeps & StepDeps;

/** Every activity of the project, bound to its dependencies. Workflows proxy `Activities`. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createRecordActivities(deps),
    ...createStepActivities(deps),
    ...createApprovalActivities(deps),
    ...createChatActivities(deps),
    ...createCrewActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
