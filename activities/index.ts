import { createApprovalActivities } from './approvals';
import { createChatActivities } from './chat';
import { createRecordActivities, type RecordDeps } from './records';
import { createReminderActivities, type ReminderDeps } from './reminders';
import { createStepActivities, type StepDeps } from './steps';

export type ActivityDeps = RecordDeps & StepDeps & ReminderDeps;

/** Every activity of the project, bound to its dependencies. Workflows proxy `Activities`. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createRecordActivities(deps),
    ...createStepActivities(deps),
    ...createApprovalActivities(deps),
    ...createChatActivities(deps),
    ...createReminderActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
