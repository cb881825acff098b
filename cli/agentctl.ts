/**
 * agentctl: the orchestrator's command line, a thin client of the HTTP API (so it works against any
 * deployment and obeys the same rules and errors). Tables for people, `--json` for scripts; an API
 * error prints its message and exits 1.
 *
 *   npx agentctl agents create --name Researcher --objective "Answer questions"
 *   npx agentctl tasks submit <agentId> "remember the launch is on Friday" --watch
 *   npx agentctl submit "summarise the report" --capability writing --strategy least_loaded
 *   npx agentctl status
 */
import { Command, Option } from 'commander';
import { APPROVAL_STATUSES, ROUTE_STRATEGIES, TASK_STATUSES, TERMINAL_TASK_STATUSES } from '../contract/definitions';

export const DEFAULT_API_URL = 'http://127.0.0.1:3300';
const TERMINAL = new Set<string>(TERMINAL_TASK_STATUSES);

/** A JSON body of the API, already validated by the server; the CLI only reads and prints it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

/** An error worth one readable line; the process exits 1 after printing it. */
class CliError extends Error {}

interface GlobalOptions {
  apiUrl: string;
  apiKey?: string;
  json?: boolean;
}

/** The HTTP API, with errors turned into the API's own message. */
class Api {
  constructor(private readonly opts: GlobalOptions) {}

  async call<T = Json>(method: string, path: string, body?: unknown): Promise<T> {
    const url = `${this.opts.apiUrl.replace(/\/+$/, '')}${path}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: {
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(this.opts.apiKey ? { authorization: `Bearer ${this.opts.apiKey}` } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(
        `cannot reach the API at ${this.opts.apiUrl}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
      );
    }
    const text = await res.text();
    let parsed: Json;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    if (!res.ok) {
      const error = parsed?.error;
      const message = error?.message ?? (typeof parsed === 'string' && parsed ? parsed.slice(0, 300) : res.statusText);
      throw new CliError(`${message} (HTTP ${res.status}${error?.code ? `, ${error.code}` : ''})`);
    }
    return parsed as T;
  }

  get = <T = Json>(path: string) => this.call<T>('GET', path);
  post = <T = Json>(path: string, body: unknown = {}) => this.call<T>('POST', path, body);
}

// ---------------------------------------------------------------------------------------------
// Output

type Row = Record<string, unknown>;

/** A plain-text table: a header, then one line per row, columns padded to their widest cell. */
export function table(rows: Row[], columns: readonly string[]): string {
  if (rows.length === 0) return '(none)';
  const cell = (v: unknown) =>
    (v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v)).replace(/\s+/g, ' ');
  const cells = rows.map((r) => columns.map((c) => cell(r[c])));
  const widths = columns.map((c, i) => Math.min(60, Math.max(c.length, ...cells.map((r) => r[i]!.length))));
  const line = (values: string[]) =>
    values
      .map((v, i) => (v.length > widths[i]! ? `${v.slice(0, widths[i]! - 1)}…` : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n');
}

function details(record: Row, fields: string[]): string {
  const width = Math.max(...fields.map((f) => f.length));
  return fields
    .filter((f) => record[f] !== undefined)
    .map(
      (f) =>
        `${f.padEnd(width)}  ${typeof record[f] === 'object' && record[f] !== null ? JSON.stringify(record[f]) : String(record[f] ?? '-')}`,
    )
    .join('\n');
}

const AGENT_COLUMNS = ['id', 'name', 'type', 'status', 'autonomy', 'priority', 'queueLength'];
const TASK_COLUMNS = ['id', 'agentId', 'title', 'status', 'priority', 'steps', 'createdAt'];
const APPROVAL_COLUMNS = ['id', 'taskId', 'tool', 'status', 'decidedBy', 'expiresAt'];

const approvalRow = (a: Row & { proposedAction?: { tool?: string } }) => ({ ...a, tool: a.proposedAction?.tool });

/** One decision of a reasoning trace as a line: `step 2 tool_call  Called memory_write`. */
export function decisionLine(d: { step: number; decisionType: string; reasoning: string }): string {
  return `step ${d.step} ${d.decisionType.padEnd(9)} ${d.reasoning.replace(/\s+/g, ' ')}`;
}

const parseJson = (what: string) => (value: string) => {
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new CliError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
};
const parseInteger = (what: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new CliError(`${what} must be an integer, got "${value}"`);
  return n;
};
const commaList = (value: string) =>
  value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
const query = (params: Record<string, unknown>) => {
  const q = new URLSearchParams(
    Object.entries(params)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]): [string, string] => [k, String(v)]),
  );
  return q.size ? `?${q}` : '';
};

// ---------------------------------------------------------------------------------------------
// Commands

export function buildProgram(
  io: { out: (s: string) => void; err: (s: string) => void } = { out: console.log, err: console.error },
): Command {
  const program = new Command('agentctl')
    .description('Operate the Temporal agent orchestrator through its HTTP API')
    .addOption(new Option('--api-url <url>', 'API base URL').env('AGENTCTL_API_URL').default(DEFAULT_API_URL))
    .addOption(new Option('--api-key <key>', 'API key, sent as Authorization: Bearer').env('AGENTCTL_API_KEY'))
    .option('--json', 'print JSON (for scripts) instead of tables')
    .showHelpAfterError()
    .exitOverride();

  const ctx = () => {
    const opts = program.opts<GlobalOptions>();
    return { api: new Api(opts), json: Boolean(opts.json) };
  };
  /** Prints JSON, or the human form. */
  const show = (value: unknown, human: () => string) => io.out(ctx().json ? JSON.stringify(value, null, 2) : human());

  // agents ------------------------------------------------------------------------------------
  const agents = program.command('agents').description('create, list and change agents');
  agents
    .command('create')
    .description('create an agent (its workflow is running when this returns)')
    .requiredOption('--name <name>', 'display name')
    .requiredOption('--objective <text>', 'what the agent is for')
    .option('--type <type>', 'agent type (groups agents in lists and metrics)')
    .addOption(
      new Option('--autonomy <level>', 'side-effecting tools: propose, ask, or run').choices([
        'manual',
        'copilot',
        'autopilot',
      ]),
    )
    .option('--priority <1-10>', 'default priority of its tasks', parseInteger('--priority'))
    .option('--tools <list>', 'allowed tools, comma-separated', commaList)
    .option('--provider <name>', 'LLM provider (offline, openai, anthropic, ollama, openai-compatible)')
    .option('--model <name>', 'model of that provider')
    .option('--system-prompt <text>', 'system prompt')
    .action(async (o) => {
      const body = {
        name: o.name,
        objective: o.objective,
        ...(o.type ? { type: o.type } : {}),
        ...(o.autonomy ? { autonomy: o.autonomy } : {}),
        ...(o.priority !== undefined ? { priority: o.priority } : {}),
        ...(o.tools ? { allowedTools: o.tools } : {}),
        ...(o.provider ? { provider: o.provider } : {}),
        ...(o.model ? { model: o.model } : {}),
        ...(o.systemPrompt ? { systemPrompt: o.systemPrompt } : {}),
      };
      const agent = await ctx().api.post('/api/v1/agents', body);
      show(
        agent,
        () =>
          `created agent ${agent.id}\n${details(agent, ['name', 'type', 'status', 'autonomy', 'priority', 'allowedTools'])}`,
      );
    });
  agents
    .command('list')
    .description('list agents (archived ones with --status ARCHIVED)')
    .option('--status <status>', 'IDLE, RUNNING, PAUSED, ERROR or ARCHIVED')
    .option('--type <type>', 'agent type')
    .option('--limit <n>', 'at most this many', parseInteger('--limit'))
    .action(async (o) => {
      const { agents: list } = await ctx().api.get(
        `/api/v1/agents${query({ status: o.status, type: o.type, limit: o.limit })}`,
      );
      show(list, () => table(list, AGENT_COLUMNS));
    });
  agents
    .command('get <id>')
    .description("an agent's configuration and live state")
    .action(async (id: string) => {
      const agent = await ctx().api.get(`/api/v1/agents/${encodeURIComponent(id)}`);
      show(agent, () => {
        const live = agent.live;
        const state = live
          ? `\ncurrent     ${live.current ? `${live.current.title} (${live.current.taskId})` : '-'}\nqueue       ${live.queue.length}\ncompleted   ${live.goalsCompleted}  failed ${live.goalsFailed}  cancelled ${live.goalsCancelled}`
          : '';
        return (
          details(agent, [
            'id',
            'name',
            'type',
            'status',
            'objective',
            'autonomy',
            'priority',
            'allowedTools',
            'provider',
            'model',
            'createdAt',
            'lastActive',
          ]) + state
        );
      });
    });
  for (const action of ['pause', 'resume', 'archive'] as const) {
    agents
      .command(`${action} <id>`)
      .description(
        {
          pause: 'stop taking new steps (the step in flight finishes)',
          resume: 'continue where it was',
          archive: 'cancel queued work and end the agent',
        }[action],
      )
      .action(async (id: string) => {
        const agent = await ctx().api.post(`/api/v1/agents/${encodeURIComponent(id)}/${action}`);
        show(agent, () => `agent ${agent.id} is ${agent.status}`);
      });
  }

  // tasks -------------------------------------------------------------------------------------
  const tasks = program.command('tasks').description('submit, list, read and watch tasks');
  tasks
    .command('submit <agentId> <title>')
    .description("queue a task in an agent's goal queue")
    .option('--input <json>', 'task input (JSON object)', parseJson('--input'))
    .option('--priority <1-10>', "priority (default: the agent's)", parseInteger('--priority'))
    .option('--task-type <type>', 'task type')
    .option('--watch', 'then follow its reasoning trace until it ends')
    .action(async (agentId: string, title: string, o) => {
      const task = await ctx().api.post('/api/v1/tasks', {
        agentId,
        title,
        ...(o.input !== undefined ? { input: o.input } : {}),
        ...(o.priority !== undefined ? { priority: o.priority } : {}),
        ...(o.taskType ? { taskType: o.taskType } : {}),
      });
      if (!o.watch) return show(task, () => `submitted task ${task.id} (${task.status}, position ${task.position})`);
      if (!ctx().json) io.out(`submitted task ${task.id} (${task.status}, position ${task.position})`);
      await watch(task.id, {});
    });
  program
    .command('submit <title>')
    .description('submit a task without an agent id: the route picks an agent of your organisation')
    .option(
      '--capability <name>',
      'a capability the agent must have (repeat for several)',
      (value: string, all: string[] = []) => [...all, value],
    )
    .addOption(
      new Option('--strategy <strategy>', 'how to choose among capable agents')
        .choices(ROUTE_STRATEGIES)
        .default('capability'),
    )
    .option('--input <json>', 'task input (JSON object)', parseJson('--input'))
    .option('--priority <1-10>', "priority (default: the agent's)", parseInteger('--priority'))
    .option('--task-type <type>', 'task type')
    .option('--watch', 'then follow its reasoning trace until it ends')
    .action(async (title: string, o) => {
      const task = await ctx().api.post('/api/v1/tasks', {
        route: { capabilities: o.capability ?? [], strategy: o.strategy },
        title,
        ...(o.input !== undefined ? { input: o.input } : {}),
        ...(o.priority !== undefined ? { priority: o.priority } : {}),
        ...(o.taskType ? { taskType: o.taskType } : {}),
      });
      const line = `submitted task ${task.id} to agent ${task.agentId} (${task.status}, position ${task.position})`;
      if (!o.watch) return show(task, () => line);
      if (!ctx().json) io.out(line);
      await watch(task.id, {});
    });
  tasks
    .command('list')
    .description('list tasks, newest first')
    .option('--agent <id>', "only this agent's")
    .addOption(new Option('--status <status>', 'only this status').choices(TASK_STATUSES))
    .option('--limit <n>', 'at most this many', parseInteger('--limit'))
    .action(async (o) => {
      const { tasks: list } = await ctx().api.get(
        `/api/v1/tasks${query({ agentId: o.agent, status: o.status, limit: o.limit })}`,
      );
      show(list, () => table(list, TASK_COLUMNS));
    });
  tasks
    .command('get <id>')
    .description('a task with its output and reasoning trace')
    .action(async (id: string) => {
      const task = await ctx().api.get(`/api/v1/tasks/${encodeURIComponent(id)}`);
      show(task, () =>
        [
          details(task, [
            'id',
            'agentId',
            'title',
            'status',
            'priority',
            'steps',
            'usage',
            'output',
            'error',
            'createdAt',
            'completedAt',
          ]),
          '',
          'reasoning trace:',
          ...(task.reasoningTrace.length
            ? task.reasoningTrace.map((d: Json) => `  ${decisionLine(d)}`)
            : ['  (empty)']),
        ].join('\n'),
      );
    });
  tasks
    .command('cancel <id>')
    .description('cancel a queued or running task')
    .option('--reason <text>', 'why')
    .action(async (id: string, o) => {
      const task = await ctx().api.post(
        `/api/v1/tasks/${encodeURIComponent(id)}/cancel`,
        o.reason ? { reason: o.reason } : {},
      );
      show(task, () => `task ${task.id} is ${task.status}`);
    });
  tasks
    .command('watch <id>')
    .description("follow a task's reasoning trace live until it ends (exit 1 unless it completes)")
    .option('--interval <ms>', 'poll interval', parseInteger('--interval'), 500)
    .option('--timeout <seconds>', 'give up after this long (default: never)', parseInteger('--timeout'))
    .action(async (id: string, o) => watch(id, o));

  /**
   * Polls the task and prints each new decision once, in order. While nothing new happens a progress
   * line goes to stderr every few seconds, so a long wait (a slow model, an approval) never looks hung.
   * With --json, each decision is one JSON line and the final task the last line.
   */
  async function watch(id: string, o: { interval?: number; timeout?: number }) {
    const { api, json } = ctx();
    const started = Date.now();
    const deadline = o.timeout ? started + o.timeout * 1000 : Infinity;
    let printed = 0;
    let lastStatus = '';
    let lastNews = Date.now();
    for (;;) {
      const task = await api.get(`/api/v1/tasks/${encodeURIComponent(id)}`);
      const trace: Json[] = task.reasoningTrace;
      for (const d of trace.slice(printed)) io.out(json ? JSON.stringify(d) : decisionLine(d));
      const elapsed = Math.round((Date.now() - started) / 1000);
      if (trace.length > printed || task.status !== lastStatus) {
        if (task.status !== lastStatus && !TERMINAL.has(task.status)) io.err(`… ${task.status} (${elapsed}s)`);
        printed = trace.length;
        lastStatus = task.status;
        lastNews = Date.now();
      } else if (Date.now() - lastNews >= 3000) {
        io.err(`… still ${task.status} (${elapsed}s, step ${task.steps})`);
        lastNews = Date.now();
      }
      if (TERMINAL.has(task.status)) {
        if (json) io.out(JSON.stringify({ ...task, reasoningTrace: undefined }));
        else
          io.out(
            `task ${task.status}${task.error ? `: ${task.error}` : ''}${task.status === 'completed' ? `: ${typeof task.output?.answer === 'string' ? task.output.answer : JSON.stringify(task.output)}` : ''}`,
          );
        if (task.status !== 'completed') process.exitCode = 1;
        return;
      }
      if (Date.now() > deadline) throw new CliError(`task ${id} is still ${task.status} after ${o.timeout}s`);
      await new Promise((r) => setTimeout(r, o.interval ?? 500));
    }
  }

  // approvals ---------------------------------------------------------------------------------
  const approvals = program.command('approvals').description('list and decide approval requests');
  approvals
    .command('list')
    .description('approval requests (pending by default)')
    .addOption(new Option('--status <status>', 'which').choices([...APPROVAL_STATUSES, 'all']).default('pending'))
    .option('--agent <id>', "only this agent's")
    .option('--task <id>', "only this task's")
    .action(async (o) => {
      const { approvals: list } = await ctx().api.get(
        `/api/v1/approvals${query({ status: o.status, agentId: o.agent, taskId: o.task })}`,
      );
      show(list, () => table(list.map(approvalRow), APPROVAL_COLUMNS));
    });
  approvals
    .command('approve <id>')
    .description('approve; --edit replaces the proposed arguments')
    .option('--edit <json>', 'edited tool arguments (JSON object)', parseJson('--edit'))
    .option('--reason <text>', 'why')
    .option('--by <name>', 'who decides', process.env.USER)
    .action(async (id: string, o) => {
      const approval = await ctx().api.post(`/api/v1/approvals/${encodeURIComponent(id)}/approve`, {
        ...(o.edit !== undefined ? { editedAction: o.edit } : {}),
        ...(o.reason ? { reason: o.reason } : {}),
        ...(o.by ? { decidedBy: o.by } : {}),
      });
      show(approval, () => `approval ${approval.id} ${approval.status} by ${approval.decidedBy ?? '-'}`);
    });
  approvals
    .command('reject <id>')
    .description('reject; the task carries on without the action')
    .option('--reason <text>', 'why (the agent sees it)')
    .option('--by <name>', 'who decides', process.env.USER)
    .action(async (id: string, o) => {
      const approval = await ctx().api.post(`/api/v1/approvals/${encodeURIComponent(id)}/reject`, {
        ...(o.reason ? { reason: o.reason } : {}),
        ...(o.by ? { decidedBy: o.by } : {}),
      });
      show(approval, () => `approval ${approval.id} ${approval.status} by ${approval.decidedBy ?? '-'}`);
    });

  // crews -------------------------------------------------------------------------------------
  const crews = program.command('crews').description('start and stop crews of agents');
  for (const action of ['start', 'stop'] as const) {
    crews
      .command(`${action} <id>`)
      .description(action === 'start' ? 'start a crew' : 'stop a crew')
      .action(async (id: string) => {
        const crew = await ctx().api.post(`/api/v1/crews/${encodeURIComponent(id)}/${action}`);
        show(crew, () => `crew ${crew?.id ?? id} ${crew?.status ?? (action === 'start' ? 'started' : 'stopped')}`);
      });
  }

  // status ------------------------------------------------------------------------------------
  program
    .command('status')
    .description('health, agents, task counts and pending approvals at a glance')
    .action(async () => {
      const { api } = ctx();
      // /health answers 503 with a body when degraded: still worth showing.
      const health = await api
        .get('/health')
        .catch((err: unknown) => ({ status: 'unreachable', error: (err as Error).message }));
      const [{ agents: agentList }, pending, ...counts] = await Promise.all([
        api.get('/api/v1/agents?limit=500'),
        api.get('/api/v1/approvals?status=pending&limit=500'),
        ...TASK_STATUSES.map((s) => api.get(`/api/v1/tasks?status=${s}&limit=500`)),
      ]);
      const taskCounts = Object.fromEntries(TASK_STATUSES.map((s, i) => [s, counts[i].tasks.length]));
      const summary = { health, agents: agentList, tasks: taskCounts, pendingApprovals: pending.approvals.length };
      show(summary, () =>
        [
          `API ${program.opts().apiUrl}: ${health.status}${health.checks ? ` (postgres ${health.checks.postgres}, temporal ${health.checks.temporal})` : ''}`,
          ...(health.providers?.openCircuits?.length
            ? [
                `open provider circuits: ${health.providers.openCircuits.map((c: Row) => `${c.provider}@${c.worker}`).join(', ')}`,
              ]
            : []),
          '',
          `AGENTS (${agentList.length})`,
          table(agentList, ['id', 'name', 'type', 'status', 'queueLength', 'currentTaskId']),
          '',
          'TASKS',
          table(
            [Object.fromEntries(TASK_STATUSES.map((s) => [s, taskCounts[s] >= 500 ? '500+' : taskCounts[s]]))],
            TASK_STATUSES,
          ),
          '',
          `PENDING APPROVALS (${pending.approvals.length})`,
          table(pending.approvals.map(approvalRow), APPROVAL_COLUMNS),
        ].join('\n'),
      );
    });

  return program;
}

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (err) {
    // commander already printed usage errors and help; its exit code says which.
    if (err instanceof Error && 'exitCode' in err && typeof err.exitCode === 'number') return err.exitCode;
    console.error(`error: ${err instanceof CliError ? err.message : err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

// `npx tsx cli/agentctl.ts …`; the `agentctl` bin (cli/agentctl.cjs) calls main() the same way.
if (require.main === module) {
  void main(process.argv).then((code) => (process.exitCode = code));
}
