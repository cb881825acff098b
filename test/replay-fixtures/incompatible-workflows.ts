/**
 * Deliberately incompatible changes, for the replay test to catch: AgentWorkflow, CrewWorkflow and
 * TaskWorkflow each schedule one extra activity before anything else, a command no recorded history has.
 * Each wraps the current workflow function unchanged (it runs right after, so its handlers are registered
 * in the same activation), so the fixture keeps working whatever the workflows do inside. The other
 * workflow types are the current ones: their histories still replay with this bundle.
 */
import { proxyActivities } from '@temporalio/workflow';
import * as current from '../../workflows';

export {
  ChatWorkflow,
  MetaSupervisorWorkflow,
  ReminderChangeWorkflow,
  ReminderFireWorkflow,
  RoutedTaskWorkflow,
} from '../../workflows';

/** An activity type that no workflow schedules: the command replay must not find. */
const { incompatibleExtraStep } = proxyActivities<{ incompatibleExtraStep(workflow: string): Promise<void> }>({
  startToCloseTimeout: '1 minute',
});

/** Schedules the extra activity first, then runs the current workflow as it is. */
function withExtraStep<A extends unknown[], R>(name: string, workflow: (...args: A) => Promise<R>) {
  return (...args: A): Promise<R> => {
    incompatibleExtraStep(name).catch(() => undefined);
    return workflow(...args);
  };
}

export const AgentWorkflow = withExtraStep('AgentWorkflow', current.AgentWorkflow);
export const CrewWorkflow = withExtraStep('CrewWorkflow', current.CrewWorkflow);
export const TaskWorkflow = withExtraStep('TaskWorkflow', current.TaskWorkflow);
