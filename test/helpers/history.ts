/** Reading recorded workflow histories in tests. */
import { temporal } from '@temporalio/proto';
import { agentWorkflowId } from '../../contract/definitions';
import { waitFor, type TestStack } from './stack';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const { EventType } = temporal.api.enums.v1;

const WORKFLOW_TASK_EVENTS = new Set([
  EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
  EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
  EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
  EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
  EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
]);

/** Whether the history's last workflow task has completed (its commands follow WORKFLOW_TASK_COMPLETED). */
export function workflowTaskDone(events: HistoryEvent[]): boolean {
  const last = [...events].reverse().find((e) => WORKFLOW_TASK_EVENTS.has(e.eventType!));
  return last?.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED;
}

/** Local activities leave one marker each; the activity type is in the marker's data (core's bookkeeping, never encoded). */
export function localActivities(events: HistoryEvent[]): string[] {
  return events.flatMap((e) => {
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName !== 'core_local_activity') return [];
    const data = marker.details?.data?.payloads?.[0]?.data;
    return data ? [(JSON.parse(Buffer.from(data).toString()) as { activity_type: string }).activity_type] : [];
  });
}

/**
 * An agent's history once it has gone idle after its goals: a goal's row is final before the workflow task
 * recording it completes, so wait for the agent's row to say IDLE and for its last workflow task to have
 * completed (its commands follow that event). `fetchEvents` reads the history (decoded or raw).
 */
export async function idleAgentHistory(
  stack: TestStack,
  agentId: string,
  fetchEvents: () => Promise<HistoryEvent[]>,
): Promise<HistoryEvent[]> {
  return waitFor(async () => {
    if ((await stack.api.get(`/api/v1/agents/${agentId}`)).body.status !== 'IDLE') return undefined;
    const events = await fetchEvents();
    return workflowTaskDone(events) ? events : undefined;
  }, `agent ${agentId} to go idle and its last workflow task to complete`);
}

/**
 * Every run of an agent's workflow, oldest first, as one list of events: an agent that went idle past
 * AGENT_IDLE_HISTORY_LIMIT continued as new, so its latest run may hold none of the goals it ran.
 */
export async function agentEvents(stack: TestStack, agentId: string): Promise<HistoryEvent[]> {
  const runs = [];
  for await (const run of stack.client.workflow.list({ query: `WorkflowId = '${agentWorkflowId(agentId)}'` }))
    runs.push(run);
  runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
  const events: HistoryEvent[] = [];
  for (const run of runs)
    events.push(...((await stack.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory()).events ?? []));
  return events;
}
