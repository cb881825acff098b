/** Helpers shared by the benchmark scenarios: child processes, /proc readings, statistics, histories. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { Db } from '../lib/db';
import type { TaskOutcome } from '../contract/definitions';

export const ROOT = path.resolve(__dirname, '..');
const t0 = Date.now();

/** Progress goes to stderr; stdout stays free. */
export function log(msg: string): void {
  console.error(`[bench ${String(Math.round((Date.now() - t0) / 1000)).padStart(4)}s] ${msg}`);
}

export const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

// ---- statistics ----

export interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles, in the unit of the input (ms everywhere here). */
export function summarize(values: number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => (s.length ? s[Math.max(0, Math.ceil(q * s.length) - 1)] : NaN);
  const mean = s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN;
  return {
    n: s.length,
    p50: round(at(0.5)),
    p90: round(at(0.9)),
    p99: round(at(0.99)),
    max: round(s.at(-1) ?? NaN),
    mean: round(mean),
  };
}

/** Runs fn over items with at most `concurrency` calls in flight. */
export async function pool<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  });
  await Promise.all(lanes);
}

/** Calls fn every `ms` until the returned function is called. */
export function every(ms: number, fn: () => void): () => void {
  const timer = setInterval(fn, ms);
  return () => clearInterval(timer);
}

// ---- child processes ----

const running = new Set<ChildProcess>();
// Last resort against orphans if the benchmark dies without its cleanup (the normal path stops each child).
process.on('exit', () => running.forEach((c) => c.kill('SIGKILL')));

let reportCrash: (err: Error) => void = () => undefined;
/** Rejects when a child started by spawnNode exits on its own: scenarios race against it instead of hanging. */
export const childCrashed = new Promise<never>((_, reject) => (reportCrash = reject));
childCrashed.catch(() => undefined);

export interface Child {
  name: string;
  pid: number;
  stop(): Promise<void>;
}

/** `node --import tsx <script>` as a child process, so its CPU time and RSS are its own. */
export function spawnNode(
  name: string,
  script: string,
  env: NodeJS.ProcessEnv,
  args: string[] = [],
): Child & { proc: ChildProcess; output(): string } {
  // BENCH_CPU_PROFILE_DIR: every child writes a V8 CPU profile there when it exits (open it in Chrome DevTools).
  const profile = process.env.BENCH_CPU_PROFILE_DIR
    ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(process.env.BENCH_CPU_PROFILE_DIR)}`]
    : [];
  const proc = spawn(process.execPath, [...profile, '--import', 'tsx', path.join(ROOT, script), ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(proc);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  proc.stderr!.on('data', (chunk: Buffer) => (err = (err + chunk.toString()).slice(-4000)));
  let stopping = false;
  proc.once('exit', (code, signal) => {
    running.delete(proc);
    if (!stopping && code !== 0)
      reportCrash(new Error(`${name} exited (${signal ?? code}):\n${err.slice(-2000)}${out.slice(-2000)}`));
  });
  return {
    name,
    pid: proc.pid!,
    proc,
    output: () => out,
    async stop() {
      stopping = true;
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---- /proc ----

/** Resident set size of a process in MiB (VmRSS). */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? round(Number(m[1]) / 1024) : NaN;
}

const TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/**
 * CPU seconds used so far, per component: each named process with all its descendants, other direct
 * children of this process by command name (embedded PostgreSQL and its backends), this process, and
 * `other`: the rest of the machine.
 */
export function cpuSeconds(named: ReadonlyMap<number, string>): Record<string, number> {
  const procs = new Map<number, { ppid: number; cpu: number; comm: string }>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      // utime + stime, plus cutime + cstime (PostgreSQL backends that exited are counted in their parent),
      // except for this process, whose reaped children (API, load generator) are reported while they run.
      const own = Number(fields[11]) + Number(fields[12]);
      const ticks = Number(entry) === process.pid ? own : own + Number(fields[13]) + Number(fields[14]);
      procs.set(Number(entry), {
        ppid: Number(fields[1]),
        cpu: ticks / TICKS,
        comm: stat.slice(stat.indexOf('(') + 1, close),
      });
    } catch {
      // The process exited while we looked.
    }
  }
  const groupOf = (pid: number): string | undefined => {
    for (let cur = pid; ;) {
      if (cur === process.pid) return 'bench';
      if (named.has(cur)) return named.get(cur);
      const parent = procs.get(cur)?.ppid;
      if (parent === undefined || parent <= 1) return undefined;
      if (parent === process.pid) return procs.get(cur)!.comm;
      cur = parent;
    }
  };
  const totals: Record<string, number> = {};
  for (const [pid, p] of procs) {
    const group = groupOf(pid);
    if (group) totals[group] = (totals[group] ?? 0) + p.cpu;
  }
  // Everything else the machine did meanwhile (other people's work on a shared box): busy time minus ours.
  const cpuLine = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const busy = (cpuLine.reduce((a, b) => a + b, 0) - cpuLine[3] - cpuLine[4]) / TICKS;
  totals.other = busy - Object.values(totals).reduce((a, b) => a + b, 0);
  return totals;
}

/** Cores used per component between two cpuSeconds readings `seconds` apart. */
export function coresUsed(
  before: Record<string, number>,
  after: Record<string, number>,
  seconds: number,
): Record<string, number> {
  return Object.fromEntries(Object.keys(after).map((k) => [k, round((after[k] - (before[k] ?? 0)) / seconds, 2)]));
}

// ---- Temporal ----

export interface HistoryEvent {
  id: number;
  type: string;
  /** Server clock, ms since the epoch (sub-millisecond precision). */
  time: number;
  activity?: string;
  scheduledId?: number;
}

const num = (v: unknown): number => Number(String(v ?? 0));

export async function history(client: Client, workflowId: string, runId?: string): Promise<HistoryEvent[]> {
  const { events } = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  return (events ?? []).map((e) => ({
    id: num(e.eventId),
    type: temporal.api.enums.v1.EventType[e.eventType ?? 0].replace('EVENT_TYPE_', ''),
    time: num(e.eventTime?.seconds) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6,
    activity: e.activityTaskScheduledEventAttributes?.activityType?.name ?? undefined,
    scheduledId: e.activityTaskStartedEventAttributes
      ? num(e.activityTaskStartedEventAttributes.scheduledEventId)
      : undefined,
  }));
}

/** When the first `name` activity scheduled at or after `since` was scheduled and started, by the server's clock. */
export function activityTimes(
  events: HistoryEvent[],
  name: string,
  since = 0,
): { scheduled: number; started: number } | undefined {
  const scheduled = events.find((e) => e.type === 'ACTIVITY_TASK_SCHEDULED' && e.activity === name && e.time >= since);
  const started = scheduled && events.find((e) => e.type === 'ACTIVITY_TASK_STARTED' && e.scheduledId === scheduled.id);
  return scheduled && started ? { scheduled: scheduled.time, started: started.time } : undefined;
}

/** Event counts by type, most frequent first. */
export function eventTypes(events: HistoryEvent[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const e of events) counts[e.type] = (counts[e.type] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).sort((a, b) => b[1] - a[1]));
}

/**
 * The result of a workflow that exists only once its parent starts it (a queued task's handle answers "not
 * found" for a while): asked again with back-off (50 ms doubling to 1 s), so that waiting costs the server
 * little next to the load being measured. Once found, the result is a long poll.
 */
export async function resultOnceStarted<T>(client: Client, workflowId: string, timeoutMs = 600_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let delayMs = 50; ; delayMs = Math.min(1000, delayMs * 2)) {
    try {
      return (await client.workflow.getHandle(workflowId).result()) as T;
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError) || Date.now() > deadline) throw err;
      await sleep(delayMs);
    }
  }
}

const FINISHED_TASKS = `SELECT id AS "taskId", status, output, error, steps FROM tasks
  WHERE id = ANY($1::uuid[]) AND status IN ('completed','failed','cancelled')`;

/**
 * Task outcomes read from the tasks table: a goal runs inside its agent's workflow, so it has no result of
 * its own to wait on. One query every 100 ms answers every task being waited on, so that waiting adds little
 * to the load being measured.
 */
class FinishedTasks {
  private readonly waiting = new Map<
    string,
    { resolve: (o: TaskOutcome) => void; reject: (e: Error) => void; deadline: number }
  >();
  private polling = false;

  constructor(private readonly db: Db) {}

  wait(taskId: string, timeoutMs: number): Promise<TaskOutcome> {
    const done = new Promise<TaskOutcome>((resolve, reject) =>
      this.waiting.set(taskId, { resolve, reject, deadline: Date.now() + timeoutMs }),
    );
    if (!this.polling) void this.poll();
    return done;
  }

  private async poll(): Promise<void> {
    this.polling = true;
    try {
      while (this.waiting.size > 0) {
        await sleep(100);
        const { rows } = await this.db.query<Omit<TaskOutcome, 'errorType'>>(FINISHED_TASKS, [
          [...this.waiting.keys()],
        ]);
        for (const row of rows) {
          this.waiting.get(row.taskId)?.resolve({ ...row, errorType: null });
          this.waiting.delete(row.taskId);
        }
        const now = Date.now();
        for (const [taskId, w] of this.waiting) {
          if (now <= w.deadline) continue;
          w.reject(new Error(`task ${taskId} did not finish in time`));
          this.waiting.delete(taskId);
        }
      }
    } catch (err) {
      for (const w of this.waiting.values()) w.reject(err as Error);
      this.waiting.clear();
    } finally {
      this.polling = false;
    }
  }
}

const finishedTasks = new WeakMap<Db, FinishedTasks>();

/** The outcome of a task once it has finished, from its row. */
export function taskOutcome(db: Db, taskId: string, timeoutMs = 600_000): Promise<TaskOutcome> {
  if (!finishedTasks.has(db)) finishedTasks.set(db, new FinishedTasks(db));
  return finishedTasks.get(db)!.wait(taskId, timeoutMs);
}

/** Sums Prometheus counters of the dev server whose name is `name` (over all label sets). */
export async function serverCounter(metricsPort: number | undefined, name: string): Promise<number> {
  if (!metricsPort) return NaN;
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `))
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
