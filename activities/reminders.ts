import { ApplicationFailure } from '@temporalio/activity';
import { AgentRejectedError, type TemporalGateway } from '../client/gateway';
import type { Config } from '../lib/config';
import type { Db } from '../lib/db';
import { agentStatus } from '../lib/records/agents';
import {
  activeReminders,
  countActiveReminders,
  insertReminder,
  markReminderRemoved,
  reminderById,
} from '../lib/records/reminders';
import { ErrorType } from '../contract/errors';
import {
  describeReminder,
  isOneShot,
  ReminderRefused,
  ReminderScheduleInput,
  toScheduleSpec,
  type ReminderRow,
  type ReminderSchedule,
} from '../lib/reminders';
import {
  AgentIdAttr,
  OrgIdAttr,
  reminderFireWorkflowId,
  type NewReminder,
  type ReminderFireInput,
  type ReminderFireResult,
  type ReminderView,
} from '../contract/definitions';
import { withHeartbeat } from './steps';
import { stableUuid } from '../lib/stable-uuid';

export type ReminderSchedules = Pick<
  TemporalGateway,
  | 'createReminderSchedule'
  | 'reminderScheduleState'
  | 'setReminderSchedulePaused'
  | 'deleteReminderSchedule'
  | 'backfillReminderTick'
>;

export interface ReminderDeps {
  db: Db;
  config: Config;
  /** The client: reminder schedules, and the goals a fire submits. */
  gateway: ReminderSchedules & Pick<TemporalGateway, 'submitGoal'>;
}

/**
 * Overlap policy SKIP: a fire only submits a goal and ends within moments, so a fire still running when
 * the next tick comes means the agent cannot be reached (its workers are down); piling up more fires
 * behind it would only deliver a burst later. Goals that arrive while the agent is busy queue on the
 * agent like any other goal. A recurring reminder catches up at most one minute after a server outage;
 * a one-shot reminder still fires up to a day late rather than never.
 */
const RECURRING_CATCHUP = '1m';
const ONE_SHOT_CATCHUP_MS = 86_400_000;
/** A fire that cannot reach its agent for this long gives up; the next tick tries again. */
const FIRE_RUN_TIMEOUT = '10m';

/**
 * Reminders on Temporal schedules: the schedule `reminder-<id>` decides when a reminder fires and whether
 * it is paused; the `reminders` row lists it. Every operation is idempotent per reminder id, so activities
 * that call these may be retried freely.
 */
export class ReminderBook {
  constructor(private readonly deps: Omit<ReminderDeps, 'gateway'> & { gateway: ReminderSchedules }) {}

  /** Records the reminder and creates its schedule (paused when its agent is). A retry finds both done. */
  async create(reminder: NewReminder): Promise<ReminderView> {
    const { db, config, gateway: schedules } = this.deps;
    const status = await agentStatus(db, reminder.agentId, reminder.orgId);
    if (!status) throw new ReminderRefused(`no agent ${reminder.agentId} in this organisation`);
    let row = await this.row(reminder.reminderId);
    if (!row) {
      const parsed = ReminderScheduleInput.safeParse(reminder.schedule);
      if (!parsed.success)
        throw new ReminderRefused(`invalid schedule: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
      if (status === 'ARCHIVED')
        throw new ReminderRefused(`agent ${reminder.agentId} is archived; it takes no reminders`);
      if ((await countActiveReminders(db, reminder.agentId)) >= config.MAX_REMINDERS_PER_AGENT) {
        throw new ReminderRefused(
          `reminder limit reached: MAX_REMINDERS_PER_AGENT is ${config.MAX_REMINDERS_PER_AGENT}; delete a reminder first`,
        );
      }
      const template = {
        input: reminder.input,
        priority: reminder.priority,
        taskType: reminder.taskType,
        delegationDepth: reminder.delegationDepth,
      };
      await insertReminder(db, {
        id: reminder.reminderId,
        orgId: reminder.orgId,
        agentId: reminder.agentId,
        title: reminder.title,
        schedule: parsed.data,
        taskTemplate: template,
        createdBy: reminder.createdBy,
      });
      row = (await this.row(reminder.reminderId))!;
    }
    if (row.status === 'removed') return describeReminder(schedules, row);
    // A retry uses the recorded schedule: validated once, so a one-shot time that has passed meanwhile stays valid.
    const schedule = row.schedule as ReminderSchedule;
    const oneShot = isOneShot(schedule);
    const fireInput: ReminderFireInput = {
      reminderId: reminder.reminderId,
      agentId: reminder.agentId,
      title: reminder.title,
      taskType: reminder.taskType,
      input: reminder.input,
      priority: reminder.priority,
      delegationDepth: reminder.delegationDepth,
      heartbeatTimeoutSeconds: config.ACTIVITY_HEARTBEAT_SECONDS,
    };
    const attributes = [
      { key: AgentIdAttr, value: reminder.agentId },
      { key: OrgIdAttr, value: reminder.orgId },
    ];
    await schedules.createReminderSchedule(reminder.reminderId, {
      spec: toScheduleSpec(schedule),
      action: {
        type: 'startWorkflow',
        workflowType: 'ReminderFireWorkflow',
        workflowId: reminderFireWorkflowId(reminder.reminderId),
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        args: [fireInput],
        workflowRunTimeout: FIRE_RUN_TIMEOUT,
        typedSearchAttributes: attributes,
        staticSummary: `Reminder "${reminder.title}" fires for agent ${reminder.agentId}`,
      },
      policies: { overlap: 'SKIP', catchupWindow: oneShot ? ONE_SHOT_CATCHUP_MS : RECURRING_CATCHUP },
      state: {
        paused: status === 'PAUSED',
        note: status === 'PAUSED' ? 'paused with its agent' : `created by ${reminder.createdBy}`,
        ...(oneShot ? { remainingActions: 1 } : {}),
      },
      typedSearchAttributes: attributes,
      memo: { reminderId: reminder.reminderId, agentId: reminder.agentId, title: reminder.title },
    });
    if (oneShot) await this.fireIfMissed(reminder.reminderId, schedule.at);
    return describeReminder(schedules, row);
  }

  /** Deletes the schedule and marks the row removed. Null when there is no such reminder. */
  async remove(reminderId: string): Promise<ReminderView | null> {
    const row = await this.row(reminderId);
    if (!row) return null;
    await this.deps.gateway.deleteReminderSchedule(reminderId);
    return describeReminder(this.deps.gateway, (await markReminderRemoved(this.deps.db, reminderId))!);
  }

  /** Pauses or resumes every reminder of an agent (idempotent: a paused schedule stays paused). */
  async setAgentPaused(agentId: string, paused: boolean): Promise<number> {
    const rows = await this.activeRows(agentId);
    for (const row of rows) {
      await this.deps.gateway.setReminderSchedulePaused(
        row.id,
        paused,
        paused ? 'paused with its agent' : 'resumed with its agent',
      );
      const schedule = row.schedule as ReminderSchedule;
      if (!paused && isOneShot(schedule)) await this.fireIfMissed(row.id, schedule.at);
    }
    return rows.length;
  }

  /**
   * A schedule only takes times after its scheduler first ran, so a one-shot whose schedule was created
   * late (a retried activity, a slow server) or paused at its time (with its agent) would never fire. Once
   * its time has passed with no fire taken, this starts that tick, up to a day late. The fire's ids derive
   * from the tick, so a start the schedule made at the same moment submits the same task, queued once.
   */
  private async fireIfMissed(reminderId: string, at: string): Promise<void> {
    const state = await this.deps.gateway.reminderScheduleState(reminderId);
    if (!state || state.paused || state.nextFireAt || state.firesSoFar > 0) return;
    if (Date.now() - Date.parse(at) > ONE_SHOT_CATCHUP_MS) return;
    await this.deps.gateway.backfillReminderTick(reminderId, new Date(at));
  }

  /** Removes every reminder of an agent (archive): no schedule of it is left to fire. */
  async removeAll(agentId: string): Promise<number> {
    const rows = await this.activeRows(agentId);
    for (const row of rows) await this.remove(row.id);
    return rows.length;
  }

  private row(reminderId: string): Promise<ReminderRow | undefined> {
    return reminderById(this.deps.db, reminderId);
  }

  private activeRows(agentId: string): Promise<ReminderRow[]> {
    return activeReminders(this.deps.db, agentId);
  }
}

/** The task id of one tick of a reminder: the same on every retry of that tick's fire. */
export const reminderTaskId = (reminderId: string, scheduledFor: string): string =>
  stableUuid(`reminder:${reminderId}:${scheduledFor}`);

export function createReminderActivities(deps: ReminderDeps) {
  const book = new ReminderBook(deps);
  return {
    /**
     * Submits one tick's goal to the agent. Idempotent per tick: the task id derives from the reminder and
     * the scheduled time, and the agent answers a known task id without queueing it again. An archived
     * agent cannot take it: the reminder removes itself (a reminder created while its agent was archiving).
     */
    async fireReminder(input: ReminderFireInput & { scheduledFor: string }): Promise<ReminderFireResult> {
      const taskId = reminderTaskId(input.reminderId, input.scheduledFor);
      const result = { reminderId: input.reminderId, taskId, scheduledFor: input.scheduledFor };
      try {
        await withHeartbeat(() =>
          deps.gateway.submitGoal(input.agentId, {
            taskId,
            title: input.title,
            taskType: input.taskType,
            input: { ...input.input, reminder: { id: input.reminderId, scheduledFor: input.scheduledFor } },
            ...(input.priority !== null ? { priority: input.priority } : {}),
            delegationDepth: input.delegationDepth,
          }),
        );
      } catch (err) {
        if (!(err instanceof AgentRejectedError)) throw err;
        if ((await agentStatus(deps.db, input.agentId)) !== 'ARCHIVED') throw err;
        await book.remove(input.reminderId);
        return { ...result, outcome: 'agent_gone' };
      }
      // Crash tests: the goal is submitted and the fire not yet reported, the window a dying worker leaves.
      const faultDelay = deps.config.FAULT_DELAY_AFTER_SIDE_EFFECT_MS;
      if (faultDelay > 0) await withHeartbeat(() => new Promise((r) => setTimeout(r, faultDelay)));
      return { ...result, outcome: 'submitted' };
    },

    /** Creates a reminder requested through the API (ReminderChangeWorkflow); a refusal is final. */
    async createReminder(reminder: NewReminder): Promise<ReminderView> {
      try {
        return await book.create(reminder);
      } catch (err) {
        if (err instanceof ReminderRefused)
          throw ApplicationFailure.nonRetryable(err.message, ErrorType.InvalidTransition);
        throw err;
      }
    },

    /** Removes one reminder: its schedule is deleted, its row kept as a tombstone. */
    async removeReminder(input: { reminderId: string }): Promise<ReminderView | null> {
      return book.remove(input.reminderId);
    },

    /** Pauses or resumes an agent's reminders with the agent (driven by AgentWorkflow). */
    async setAgentRemindersPaused(input: { agentId: string; paused: boolean }): Promise<number> {
      return book.setAgentPaused(input.agentId, input.paused);
    },

    /** Removes every reminder of an archived agent (driven by AgentWorkflow). */
    async removeAgentReminders(input: { agentId: string }): Promise<number> {
      return book.removeAll(input.agentId);
    },
  };
}
