/**
 * A deliberately incompatible change, for the replay test to catch: TaskWorkflow now sleeps before its
 * first step, a command that no recorded history contains.
 */
import { sleep } from '@temporalio/workflow';
import { TaskWorkflow as CurrentTaskWorkflow } from '../../workflows/task';

export { AgentWorkflow } from '../../workflows/agent';
export { ChatWorkflow } from '../../workflows/chat';

export async function TaskWorkflow(...args: Parameters<typeof CurrentTaskWorkflow>): ReturnType<typeof CurrentTaskWorkflow> {
  await sleep('1 second');
  return CurrentTaskWorkflow(...args);
}
