import { ApplicationFailure, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { ErrorType } from '../contract/errors';
import {
  reminderFireWorkflowId,
  ScheduledStartTimeAttr,
  type ReminderChange,
  type ReminderFireInput,
  type ReminderFireResult,
  type ReminderView,
} from '../contract/definitions';

/**
 * One tick of a reminder, started by its Temporal schedule: submits the reminder's goal to the agent.
 * The goal's task id derives from (reminder, scheduled time), so a fire retried after a worker died
 * mid-submission submits the same task again, which the agent recognises: one task per tick. The
 * activity retries until the agent has the goal; the schedule's run timeout bounds how late it may be.
 */
export async function ReminderFireWorkflow(input: ReminderFireInput): Promise<ReminderFireResult> {
  const { fireReminder } = proxyActivities<Activities>({
    startToCloseTimeout: '1m',
    heartbeatTimeout: `${input.heartbeatTimeoutSeconds}s`,
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
  });
  return fireReminder({ ...input, scheduledFor: scheduledFireTime(input.reminderId) });
}

/**
 * Creates or removes a reminder: its row and its schedule, in an activity, so a change requested by the
 * API completes even if the API process dies halfway. Both operations are idempotent per reminder id.
 */
export async function ReminderChangeWorkflow(change: ReminderChange): Promise<ReminderView | null> {
  const { createReminder, removeReminder } = proxyActivities<Activities>({
    startToCloseTimeout: '30s',
    retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 10 },
  });
  return change.op === 'create' ? createReminder(change.reminder) : removeReminder({ reminderId: change.reminderId });
}

/**
 * The tick this run belongs to: the schedule sets TemporalScheduledStartTime on every workflow it starts
 * and appends the same time to the workflow id; either identifies the tick across retries.
 */
function scheduledFireTime(reminderId: string): string {
  const info = workflowInfo();
  const fromAttribute = info.typedSearchAttributes.get(ScheduledStartTimeAttr);
  if (fromAttribute) return new Date(fromAttribute).toISOString();
  const prefix = `${reminderFireWorkflowId(reminderId)}-`;
  const suffix = info.workflowId.startsWith(prefix) ? Date.parse(info.workflowId.slice(prefix.length)) : NaN;
  if (!Number.isNaN(suffix)) return new Date(suffix).toISOString();
  throw ApplicationFailure.nonRetryable(
    `workflow ${info.workflowId} was not started by reminder ${reminderId}'s schedule`,
    ErrorType.NotFound,
  );
}

/**
 * An agent's reminders, as its AgentWorkflow drives them: their schedules pause and resume with the agent
 * and are deleted when it is archived, by activities, so it happens even if every process restarts
 * meanwhile. Database-class activity options: retried until done, every call is idempotent.
 */
export class AgentReminders {
  private readonly acts = proxyActivities<Activities>({
    startToCloseTimeout: '30s',
    retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '30s' },
  });

  /** The last change sent; the next one starts after it, so they apply in the order the agent made them. */
  private lastChange: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly agentId: string,
    private paused: boolean,
  ) {}

  /**
   * Pauses or resumes the schedules when the agent's paused flag changed since the last call. Handlers and
   * the main loop publish concurrently: the flag is taken at once so a change is sent once, and changes
   * run one after another so a late pause cannot overtake the resume that followed it.
   */
  async follow(paused: boolean): Promise<void> {
    if (paused === this.paused) return;
    this.paused = paused;
    const change = this.lastChange.then(() => this.acts.setAgentRemindersPaused({ agentId: this.agentId, paused }));
    this.lastChange = change.catch(() => undefined);
    await change;
  }

  /** Deletes every schedule of the agent (archive). */
  async removeAll(): Promise<void> {
    await this.acts.removeAgentReminders({ agentId: this.agentId });
  }
}
