/**
 * Reminder schedules: parsing and validation of the three shapes a reminder can take, and their
 * translation into a Temporal schedule spec. Errors name the field and say what is wrong, because they
 * reach people (400 answers) and models (tool results) verbatim.
 */
import type { ScheduleSpec } from '@temporalio/client';
import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';
import type { ReminderScheduleState, ReminderView } from '../contract/definitions';

/** A reminder that cannot be created: unknown or archived agent, or the agent's reminder limit. */
export class ReminderRefused extends Error {}

const EVERY_UNITS_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const MIN_EVERY_MS = 1000;
const MAX_EVERY_MS = 366 * 86_400_000;
const CRON_FIELDS = ['minute', 'hour', 'day-of-month', 'month', 'day-of-week'] as const;

/** "30s", "5m", "1h", "2d" in milliseconds, or a sentence saying why the text is not a duration. */
export function parseEvery(text: string): { ms: number } | { problem: string } {
  const match = /^(\d+)(s|m|h|d)$/.exec(text.trim());
  if (!match)
    return { problem: `"${text}" is not a duration; use a number and a unit s, m, h or d, like "30s" or "5m"` };
  const ms = Number(match[1]) * EVERY_UNITS_MS[match[2] as keyof typeof EVERY_UNITS_MS];
  if (ms < MIN_EVERY_MS) return { problem: `"${text}" is too short; the shortest interval is 1s` };
  if (ms > MAX_EVERY_MS) return { problem: `"${text}" is too long; the longest interval is 366d` };
  return { ms };
}

/**
 * Why a five-field cron expression is invalid, or undefined when it is valid. Each field is checked on
 * its own first so the message names it ("minute 61 is out of range 0-59").
 */
export function cronProblem(expression: string): string | undefined {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== CRON_FIELDS.length) {
    return `"${expression}" has ${fields.length} field(s); expected 5 (minute hour day-of-month month day-of-week)`;
  }
  for (const [i, field] of fields.entries()) {
    const probe = CRON_FIELDS.map((_, j) => (j === i ? field : '*')).join(' ');
    try {
      CronExpressionParser.parse(probe);
    } catch (err) {
      return `"${expression}" ${CRON_FIELDS[i]} ${describeCronError(field, (err as Error).message)}`;
    }
  }
  try {
    CronExpressionParser.parse(expression);
  } catch (err) {
    return `"${expression}" is invalid: ${(err as Error).message}`;
  }
  return undefined;
}

function describeCronError(field: string, message: string): string {
  const range = /got value (\S+) expected range (\d+)-(\d+)/.exec(message);
  if (range) return `${range[1]} is out of range ${range[2]}-${range[3]}`;
  return `"${field}" is invalid: ${message}`;
}

/** Why a time zone is not usable, or undefined for an IANA zone name the runtime knows. */
export function timezoneProblem(timezone: string): string | undefined {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return undefined;
  } catch {
    return `"${timezone}" is not an IANA time zone (like "Europe/Berlin" or "UTC")`;
  }
}

const startAt = z.iso.datetime({ offset: true }).optional().describe('Do not fire before this time (ISO 8601)');

export const ReminderScheduleSchema = z.union([
  z
    .object({
      every: z.string().superRefine((v, ctx) => {
        const parsed = parseEvery(v);
        if ('problem' in parsed) ctx.addIssue({ code: 'custom', message: parsed.problem });
      }),
      startAt,
    })
    .strict(),
  z
    .object({
      cron: z.string().superRefine((v, ctx) => {
        const problem = cronProblem(v);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
      timezone: z
        .string()
        .default('UTC')
        .superRefine((v, ctx) => {
          const problem = timezoneProblem(v);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        }),
      startAt,
    })
    .strict(),
  z
    .object({
      at: z.iso
        .datetime({ offset: true })
        .refine((v) => Date.parse(v) > Date.now(), { message: 'must be in the future' }),
    })
    .strict(),
]);

/** One of {"every": "30s"}, {"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"}, {"at": "<ISO time>"}. */
export type ReminderSchedule = z.output<typeof ReminderScheduleSchema>;

/**
 * Picks the union member by its key before validating, so an invalid cron is reported as a cron problem
 * rather than as "matches none of three shapes".
 */
export const ReminderScheduleInput = z.record(z.string(), z.unknown()).transform((value, ctx): ReminderSchedule => {
  const keys = Object.keys(value);
  const kinds = ['every', 'cron', 'at'].filter((k) => keys.includes(k));
  if (kinds.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      message:
        'send exactly one of {"every": "30s"}, {"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"} or {"at": "<ISO time>"}',
    });
    return z.NEVER;
  }
  const member = ReminderScheduleSchema.options[['every', 'cron', 'at'].indexOf(kinds[0]!)]!;
  const parsed = member.safeParse(value);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
    return z.NEVER;
  }
  return parsed.data;
});

/** A one-shot reminder, which fires once and then has no further fire times. */
export const isOneShot = (schedule: ReminderSchedule): schedule is { at: string } => 'at' in schedule;

/** The Temporal schedule spec: intervals, cron with a time zone, or one calendar instant in UTC. */
export function toScheduleSpec(schedule: ReminderSchedule): ScheduleSpec {
  if ('every' in schedule) {
    const parsed = parseEvery(schedule.every);
    if ('problem' in parsed) throw new Error(parsed.problem);
    return { intervals: [{ every: parsed.ms }], ...(schedule.startAt ? { startAt: new Date(schedule.startAt) } : {}) };
  }
  if ('cron' in schedule) {
    return {
      cronExpressions: [schedule.cron.trim()],
      timezone: schedule.timezone,
      ...(schedule.startAt ? { startAt: new Date(schedule.startAt) } : {}),
    };
  }
  const at = new Date(schedule.at);
  return {
    calendars: [
      {
        year: at.getUTCFullYear(),
        month: MONTHS[at.getUTCMonth()]!,
        dayOfMonth: at.getUTCDate(),
        hour: at.getUTCHours(),
        minute: at.getUTCMinutes(),
        second: at.getUTCSeconds(),
        comment: `once, at ${at.toISOString()}`,
      },
    ],
    timezone: 'UTC',
  };
}

const MONTHS = [
  'JANUARY',
  'FEBRUARY',
  'MARCH',
  'APRIL',
  'MAY',
  'JUNE',
  'JULY',
  'AUGUST',
  'SEPTEMBER',
  'OCTOBER',
  'NOVEMBER',
  'DECEMBER',
] as const;

/** A row of the `reminders` table. */
export interface ReminderRow {
  id: string;
  orgId: string;
  agentId: string;
  title: string;
  schedule: Record<string, unknown>;
  taskTemplate: Record<string, unknown>;
  status: 'active' | 'removed';
  createdAt: string;
}

/**
 * A reminder as the API shows it: the row, and from its schedule (the source of truth for firing)
 * whether it is paused, when it fires next and how often it has fired.
 */
export async function describeReminder(schedules: ReminderScheduleReader, row: ReminderRow): Promise<ReminderView> {
  const view = {
    id: row.id,
    agentId: row.agentId,
    title: row.title,
    schedule: row.schedule,
    createdAt: new Date(row.createdAt).toISOString(),
  };
  if (row.status === 'removed') return { ...view, status: 'removed', nextFireAt: null, firesSoFar: 0 };
  const state = await schedules.reminderScheduleState(row.id);
  // Row written, schedule not (yet) created: nothing will fire.
  if (!state) return { ...view, status: 'done', nextFireAt: null, firesSoFar: 0 };
  const status = state.paused ? 'paused' : state.nextFireAt ? 'active' : 'done';
  return { ...view, status, nextFireAt: state.nextFireAt, firesSoFar: state.firesSoFar };
}

/** Reads a reminder's schedule (the client's TemporalGateway). */
export interface ReminderScheduleReader {
  reminderScheduleState(reminderId: string): Promise<ReminderScheduleState | null>;
}
