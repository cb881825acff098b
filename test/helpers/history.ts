/** Reading recorded workflow histories in tests. */
import { temporal } from '@temporalio/proto';

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
