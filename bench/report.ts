/** The shape of bench/results.json and its rendering as bench/RESULTS.md. */
import type { Usage } from './context';
import type { Summary } from './lib';
import type { ApiLatency, SubmitAtRate } from './scenarios/api';
import type { ApprovalResume } from './scenarios/approvals';
import type { BudgetResult } from './scenarios/budget';
import type { ChatFirstToken } from './scenarios/chat';
import type { HistoryEfficiency } from './scenarios/history';
import type { ParkedAgents } from './scenarios/parked';
import type { AgentThroughput, Throughput } from './scenarios/throughput';

export interface Scenarios {
  ceiling?: Throughput & { concurrency: number };
  agentTasks?: Omit<AgentThroughput, 'agentIds' | 'taskIds'>;
  ceilingRecheck?: Throughput & { concurrency: number };
  /** Agent tasks / the mean of both ceiling runs. */
  agentToCeilingRatio?: number;
  /** Agent tasks / the higher of both ceiling runs. */
  ceilingRatioMin?: number;
  shapeTasks?: Throughput;
  inlineShapeTasks?: Throughput;
  agentToShapeRatio?: number;
  /** Agent tasks / 2c (the same work inline, no-op), measured right after them. */
  floorRatio?: number;
  /** Scenario 2 again, the agent worker traced (spans exported to Jaeger), right after 2 and 2c. */
  agentTasksTraced?: Omit<AgentThroughput, 'agentIds' | 'taskIds'> & { exportedServices: string[] };
  /** How much lower 2t's tasks/s is than 2's (0.04 = 4 % lower; negative when it was higher). */
  tracingOverhead?: number;
  approvalResume?: Omit<ApprovalResume, 'approvalAgentIds'>;
  chatFirstToken?: ChatFirstToken;
  parkedAgents?: Omit<ParkedAgents, 'idleAgentId'>;
  history?: HistoryEfficiency;
  submitAtRate?: SubmitAtRate;
  api?: ApiLatency;
  budget?: BudgetResult;
}

type Environment = {
  versions: Partial<Record<'node' | 'temporalCli' | 'temporalSdk' | 'postgres', string>>;
  server: { kind?: 'dev' | 'cluster'; persistence?: string; webUi?: boolean; flags?: string[] };
  worker: Record<string, unknown>;
};

/** Scenarios 1–4 on the self-hosted cluster, with its own environment and CPU readings. */
export type ClusterResults = Environment & {
  scenarios: Pick<
    Scenarios,
    | 'ceiling'
    | 'agentTasks'
    | 'inlineShapeTasks'
    | 'floorRatio'
    | 'ceilingRecheck'
    | 'agentToCeilingRatio'
    | 'ceilingRatioMin'
    | 'approvalResume'
    | 'parkedAgents'
  >;
  usage: Record<string, Usage>;
  error?: string;
};

export type Results = Environment & {
  /** full: every scenario on both servers; partial: --only or --cluster at full size. */
  mode: 'full' | 'quick' | 'partial';
  startedAt: string;
  commit?: string;
  /** The working tree differed from the commit; diffHash tells such trees apart. */
  dirty?: boolean;
  diffHash?: string;
  durationSeconds?: number;
  loadAverage: { start: number[]; end?: number[] };
  machine: { cpuModel: string; cores: number; ramGiB: number; kernel: string };
  settings: Record<string, unknown>;
  /** On the dev server. */
  scenarios: Scenarios;
  /** CPU per component and sync-match ratio over each whole scenario. */
  usage: Record<string, Usage>;
  /** Scenarios 1–4 on the cluster, in full (the top-level `cluster` field holds its headline numbers). */
  clusterRun?: ClusterResults;
  error?: string;
};

/** Mean and higher of the two ceiling runs (the first alone when there was no recheck). */
export function ceilings(s: Pick<Scenarios, 'ceiling' | 'ceilingRecheck'>): { mean: number; max: number } | undefined {
  if (!s.ceiling) return undefined;
  const again = s.ceilingRecheck?.perSecond ?? s.ceiling.perSecond;
  return {
    mean: Math.round(((s.ceiling.perSecond + again) / 2) * 100) / 100,
    max: Math.max(s.ceiling.perSecond, again),
  };
}

const pick = (x?: { p50: number; p99: number }) => (x ? { p50: x.p50, p99: x.p99 } : undefined);

/** The headline numbers at the top level of results.json, for scripts comparing runs. */
export function headline(r: Results): Record<string, unknown> {
  const { agentTasks, approvalResume: ap, parkedAgents: pk, history: h, api, budget } = r.scenarios;
  const c = r.clusterRun?.scenarios;
  const chatAt10 = r.scenarios.chatFirstToken?.levels.find((l) => l.concurrency === 10);
  return {
    ceilingPerSec: ceilings(r.scenarios)?.mean,
    ceilingMaxPerSec: ceilings(r.scenarios)?.max,
    tasksPerSec: agentTasks?.perSecond,
    ratio: r.scenarios.agentToCeilingRatio,
    ceilingRatioMin: r.scenarios.ceilingRatioMin,
    shapePerSec: r.scenarios.shapeTasks?.perSecond,
    inlineShapePerSec: r.scenarios.inlineShapeTasks?.perSecond,
    ratioToShape: r.scenarios.agentToShapeRatio,
    floorRatio: r.scenarios.floorRatio,
    approvalResumeHttpMs: pick(ap?.httpApproveToNextActivityMs),
    approvalResumeMs: pick(ap?.approveToNextActivityMs),
    rawSignalMs: pick(ap?.rawSignalToNextActivityMs),
    chatFirstTokenOverheadMs: pick(chatAt10?.overheadMs),
    submitAt20rpsMs: pick(r.scenarios.submitAtRate?.latencyMs),
    parkedAgents: pk && {
      count: pk.agents,
      startPerSec: pk.startsPerSecond,
      workerRssMb: pk.workerRssMiB.settled,
      wakeFirstStepMs: pick(pk.wakeToFirstStepMs),
    },
    eventsPerTask: h?.totalPerTask,
    api:
      api &&
      Object.fromEntries(
        api.endpoints.map((e) => [e.endpoint, { p50: e.latencyMs.p50, p99: e.latencyMs.p99, rps: e.perSecond }]),
      ),
    budget: budget && {
      utilisation: budget.utilisation,
      overshootTokens: budget.overshootTokens,
      reservationTokens: budget.reservationTokens,
      prioritisationP50Ms: {
        cacheHit: budget.prioritisationMs.withCacheHit.p50,
        noCacheHit: budget.prioritisationMs.withoutCacheHit.p50,
      },
    },
    cluster: c && {
      ceilingPerSec: ceilings(c)?.mean,
      ceilingMaxPerSec: ceilings(c)?.max,
      floorPerSec: c.inlineShapeTasks?.perSecond,
      tasksPerSec: c.agentTasks?.perSecond,
      floorRatio: c.floorRatio,
      ceilingRatioMin: c.ceilingRatioMin,
      approvalResumeHttpMs: pick(c.approvalResume?.httpApproveToNextActivityMs),
    },
    tracingOverhead: r.scenarios.agentTasksTraced && {
      tracedPerSec: r.scenarios.agentTasksTraced.perSecond,
      exportedServices: r.scenarios.agentTasksTraced.exportedServices,
      untracedPerSec: agentTasks?.perSecond,
      lower: r.scenarios.tracingOverhead,
    },
  };
}

/** One line of history.jsonl: the run's headline numbers, what it measured and how loaded the machine was. */
export interface HistoryEntry {
  startedAt: string;
  mode: Results['mode'];
  commit?: string;
  dirty?: boolean;
  diffHash?: string;
  loadAverage: Results['loadAverage'];
  otherCores: number;
  durationSeconds?: number;
  error?: string;
  headline: Record<string, unknown>;
}

export function historyEntry(r: Results): HistoryEntry {
  const numbers = headline(r);
  return {
    startedAt: r.startedAt,
    mode: r.mode,
    commit: r.commit,
    dirty: r.dirty,
    diffHash: r.diffHash,
    loadAverage: r.loadAverage,
    otherCores: otherCores({ ...r.usage, ...prefixed(r.clusterRun?.usage) }),
    durationSeconds: r.durationSeconds,
    error: (r.error ?? r.clusterRun?.error)?.split('\n')[0],
    headline: numbers,
  };
}

const prefixed = (usage?: Record<string, Usage>) =>
  Object.fromEntries(Object.entries(usage ?? {}).map(([k, v]) => [`cluster ${k}`, v]));

const met = (ok: boolean | undefined) => (ok === undefined ? '—' : ok ? '✅ met' : '❌ missed');
const pp = (s: Summary | undefined) => (s ? `p50 ${s.p50} ms · p99 ${s.p99} ms` : 'n/a');

/** Mean cores used outside the benchmark, weighted by each scenario's duration. */
function otherCores(usage: Results['usage']): number {
  const all = Object.values(usage);
  const seconds = all.reduce((n, u) => n + u.seconds, 0);
  return Math.round((all.reduce((n, u) => n + (u.cores.other ?? 0) * u.seconds, 0) / (seconds || NaN)) * 100) / 100;
}

/** A recorded run to compare with (bench/baseline.json): the results as they were before a change. */
export interface Baseline {
  commit: string;
  description: string;
  results: Results;
}

function ceilingMean(r: Results): number | undefined {
  const { ceiling, ceilingRecheck } = r.scenarios;
  return (
    ceiling && Math.round(((ceiling.perSecond + (ceilingRecheck?.perSecond ?? ceiling.perSecond)) / 2) * 100) / 100
  );
}

/** "before → after" rows of the headline numbers, for the section comparing a run with its baseline. */
function comparison(r: Results, base: Baseline): string[] {
  const a = r.scenarios;
  const b = base.results.scenarios;
  const row = (
    what: string,
    before: number | undefined,
    after: number | undefined,
    unit = '',
    lowerIsBetter: boolean | null = false,
  ) => {
    if (before === undefined && after === undefined) return [];
    const pct = before && after !== undefined ? Math.round(((after - before) / before) * 100) : undefined;
    const change = pct === undefined ? '' : `${pct > 0 ? '+' : pct < 0 ? '−' : '±'}${Math.abs(pct)} %`;
    // null: a reference, not ours to make better or worse (the machine drifts).
    const better =
      lowerIsBetter !== null && before !== undefined && after !== undefined && after !== before
        ? after < before === lowerIsBetter
          ? ' (better)'
          : ' (worse)'
        : '';
    return [`| ${what} | ${before ?? '—'}${unit} | ${after ?? '—'}${unit} | ${change}${better} |`];
  };
  const cpu = (t: Results['scenarios']['agentTasks']) =>
    t
      ? Math.round(
          Object.entries(t.cpuMsPerCompletion)
            .filter(([k]) => k !== 'other')
            .reduce((n, [, v]) => n + v, 0),
        )
      : undefined;
  const lines = [
    `Compared with [baseline.json](baseline.json): commit \`${base.commit}\`, ${base.description} (${base.results.startedAt}).`,
    '',
    '| measurement | before | after | change |',
    '| --- | --- | --- | --- |',
    ...row('1 ceiling, workflows/s (mean of both runs)', ceilingMean(base.results), ceilingMean(r), '', null),
    ...row('2 agent tasks/s', b.agentTasks?.perSecond, a.agentTasks?.perSecond),
    ...row('2b same shape, no-op, tasks/s', b.shapeTasks?.perSecond, a.shapeTasks?.perSecond, '', null),
    ...row('2 agent tasks / ceiling', b.agentToCeilingRatio, a.agentToCeilingRatio),
    ...row('2 CPU per agent task, all components (ms)', cpu(b.agentTasks), cpu(a.agentTasks), '', true),
    ...row(
      '2 Temporal server CPU per agent task (ms)',
      b.agentTasks?.cpuMsPerCompletion.temporal,
      a.agentTasks?.cpuMsPerCompletion.temporal,
      '',
      true,
    ),
    ...row(
      '2 agent worker CPU per agent task (ms)',
      b.agentTasks?.cpuMsPerCompletion['agent worker'],
      a.agentTasks?.cpuMsPerCompletion['agent worker'],
      '',
      true,
    ),
    ...row(
      '2 PostgreSQL CPU per agent task (ms)',
      b.agentTasks?.cpuMsPerCompletion.postgres,
      a.agentTasks?.cpuMsPerCompletion.postgres,
      '',
      true,
    ),
    ...row('2 submitGoal p50 (ms)', b.agentTasks?.submitMs.p50, a.agentTasks?.submitMs.p50, '', true),
    ...row(
      '3 approval resume p50 (ms)',
      b.approvalResume?.approveToNextActivityMs.p50,
      a.approvalResume?.approveToNextActivityMs.p50,
      '',
      true,
    ),
    ...row(
      '3 approval resume p99 (ms)',
      b.approvalResume?.approveToNextActivityMs.p99,
      a.approvalResume?.approveToNextActivityMs.p99,
      '',
      true,
    ),
    ...row(
      '3 approve call p50 (ms)',
      b.approvalResume?.approveCallMs.p50,
      a.approvalResume?.approveCallMs.p50,
      '',
      true,
    ),
    ...row(
      '3 raw signal p99 (ms)',
      b.approvalResume?.rawSignalToNextActivityMs.p99,
      a.approvalResume?.rawSignalToNextActivityMs.p99,
      '',
      true,
    ),
    ...row('4 parked agents started/s', b.parkedAgents?.startsPerSecond, a.parkedAgents?.startsPerSecond),
    ...row(
      '4 worker RSS per parked agent (KiB)',
      b.parkedAgents?.workerRssKiBPerAgent,
      a.parkedAgents?.workerRssKiBPerAgent,
      '',
      true,
    ),
    ...row(
      '4 wake-up → first step p50 (ms)',
      b.parkedAgents?.wakeToFirstStepMs.p50,
      a.parkedAgents?.wakeToFirstStepMs.p50,
      '',
      true,
    ),
    ...row(
      '4 wake-up → first step p99 (ms)',
      b.parkedAgents?.wakeToFirstStepMs.p99,
      a.parkedAgents?.wakeToFirstStepMs.p99,
      '',
      true,
    ),
    ...row('5 history events per task, all workflows', b.history?.totalPerTask, a.history?.totalPerTask, '', true),
  ];
  for (const e of a.api?.endpoints ?? []) {
    const old = b.api?.endpoints.find((x) => x.endpoint === e.endpoint);
    lines.push(...row(`6 \`${e.endpoint}\` p50 (ms)`, old?.latencyMs.p50, e.latencyMs.p50, '', true));
    lines.push(...row(`6 \`${e.endpoint}\` req/s`, old?.perSecond, e.perSecond));
  }
  lines.push(...row('7 budget utilisation', b.budget?.utilisation, a.budget?.utilisation));
  return lines;
}

export function renderMarkdown(r: Results, baseline?: Baseline, runs: HistoryEntry[] = []): string {
  const { ceiling, agentTasks, ceilingRecheck, approvalResume: ap, parkedAgents: pk, history: h, api } = r.scenarios;
  const ratio = r.scenarios.agentToCeilingRatio;
  const out: string[] = [];
  out.push(
    '# Benchmark results',
    '',
    `Generated by \`npm run bench${r.mode === 'quick' ? ' -- --quick' : ''}\` (${r.mode} run) on ${r.startedAt}, ${Math.round((r.durationSeconds ?? 0) / 60)} min, commit \`${r.commit ?? '?'}\`${r.dirty ? ` with uncommitted changes (diff ${r.diffHash})` : ''}. ` +
      'Method and caveats: [README.md](README.md). Raw numbers: [results.json](results.json).',
    '',
  );
  if (r.error) out.push(`> **The run failed** and these results are incomplete: \`${r.error.split('\n')[0]}\``, '');
  if (r.clusterRun?.error)
    out.push(
      `> **The cluster part failed** and its results are incomplete: \`${r.clusterRun.error.split('\n')[0]}\``,
      '',
    );
  out.push(
    '| | |',
    '| --- | --- |',
    `| machine | ${r.machine.cpuModel}, ${r.machine.cores} cores, ${r.machine.ramGiB} GiB RAM, Linux ${r.machine.kernel} |`,
    `| load average (1/5/15 min) | start ${r.loadAverage.start.join(' / ')} · end ${r.loadAverage.end?.join(' / ') ?? '?'}; other work on the machine used **${otherCores(r.usage)} cores** on average during the scenarios (\`other\` below) |`,
    `| versions | Node ${r.versions.node}; ${r.versions.temporalCli}; TypeScript SDK ${r.versions.temporalSdk}; PostgreSQL ${r.versions.postgres} (embedded) |`,
    `| Temporal server | ${r.server.kind === 'cluster' ? 'self-hosted cluster' : 'dev server'}, ${r.server.persistence}, Web UI ${r.server.webUi ? 'on' : 'off'}; ${(r.server.flags ?? []).map((f) => `\`${f}\``).join(', ')}${r.clusterRun && r.server.kind !== 'cluster' ? `; then the cluster (${r.clusterRun.versions.temporalCli ?? '?'}, ${r.clusterRun.server.persistence ?? '?'}) for scenarios 1–4` : ''} |`,
    `| workers | two child processes (agent worker \`workers/main.ts\`, reference worker \`bench/trivial-worker.ts\`) with the SDK's default options but for the agent worker's workflow threads: ${Object.entries(
      r.worker,
    )
      .map(([k, v]) => `${k} ${String(v)}`)
      .join(', ')} |`,
    `| benchmark settings | ${Object.entries(r.settings)
      .map(([k, v]) => `${k} ${String(v)}`)
      .join(', ')} |`,
    '',
    '## Results',
    '',
    '| # | measurement | result | target | |',
    '| --- | --- | --- | --- | --- |',
  );
  if (ceiling) {
    out.push(
      `| 1 | ceiling: TrivialWorkflow (two no-op activities), ${ceiling.concurrency} concurrent, ${ceiling.windowSeconds} s window | **${ceiling.perSecond} workflows/s**${ceilingRecheck ? ` (rechecked after 2: ${ceilingRecheck.perSecond}/s)` : ''}; latency at saturation ${pp(ceiling.latencyMs)} | — | |`,
    );
  }
  if (agentTasks) {
    const cmin = r.scenarios.ceilingRatioMin;
    out.push(
      `| 2 | agent tasks (one LLM step + one tool step) via TemporalGateway, ${agentTasks.agents} agents × ${agentTasks.tasksInFlightPerAgent} in flight, ${agentTasks.windowSeconds} s window | **${agentTasks.perSecond} tasks/s = ${ratio ?? '—'} × ceiling** (mean of both ceiling runs); ${agentTasks.failed} failed; submitGoal ${pp(agentTasks.submitMs)} | — | |`,
      `| 2 | agent tasks / the higher ceiling run | **${cmin ?? '—'}** | ≥ 0.9 | ${met(cmin !== undefined ? cmin >= 0.9 : undefined)} |`,
    );
  }
  const shape = r.scenarios.shapeTasks;
  if (shape) {
    out.push(
      `| 2b | the same shape with no-op work: ShapeAgentWorkflow parents take goals by update and run each as a child of three no-op activities, ${agentTasks?.agents ?? '?'} parents × ${agentTasks?.tasksInFlightPerAgent ?? '?'} in flight | **${shape.perSecond} tasks/s** (the shape agent tasks had before goals ran inline); agent tasks = ${r.scenarios.agentToShapeRatio} × this; ${shape.failed} failed | — | |`,
    );
  }
  const inline = r.scenarios.inlineShapeTasks;
  const ceil = ceilings(r.scenarios);
  if (inline) {
    const fr = r.scenarios.floorRatio;
    out.push(
      `| 2c | the floor: the same work inline with no-op activities (each parent runs three no-op activities itself, the update answering when its goal is done), right after 2 with the same settings | **${inline.perSecond} tasks/s**${ceil ? ` = ${Math.round((inline.perSecond / ceil.mean) * 100) / 100} × ceiling` : ''}${shape && ceil ? `; 2b = ${Math.round((shape.perSecond / ceil.mean) * 100) / 100} × ceiling` : ''}; ${inline.failed} failed | — | |`,
      `| 2 | agent tasks / floor (2c): what the orchestrator adds to the shape's own cost | **${fr ?? '—'}** | ≥ 0.9 | ${met(fr !== undefined ? fr >= 0.9 : undefined)} |`,
    );
  }
  const traced = r.scenarios.agentTasksTraced;
  if (traced) {
    const lower = r.scenarios.tracingOverhead!;
    out.push(
      `| 2t | scenario 2 again with tracing on (traced workflow bundle, activity and model spans, OTLP/HTTP to Jaeger), right after 2 and 2c | **${traced.perSecond} tasks/s, ${Math.round(lower * 1000) / 10} % ${lower >= 0 ? 'below' : 'above'} 2**; ${traced.failed} failed; worker CPU ${traced.cpuMsPerCompletion['agent worker'] ?? '?'} ms per task (untraced ${agentTasks?.cpuMsPerCompletion['agent worker'] ?? '?'}) | < 5 % lower | ${met(lower < 0.05)} |`,
    );
  }
  if (ap) {
    out.push(
      `| 3 | approval resume through the API: \`POST /api/v1/approvals/:id/approve\` sent → task's next activity (runTool) started, ${ap.samples} approvals | **${pp(ap.httpApproveToNextActivityMs)}** (to scheduled: ${pp(ap.httpApproveToScheduledMs)}; the HTTP call itself ${pp(ap.httpApproveCallMs)}) | p99 < 60 ms | ${met(ap.httpApproveToNextActivityMs.p99 < 60)} |`,
      `| 3 | approval resume by a direct update (\`gateway.decideApproval\`) → runTool started, ${ap.samples} approvals | **${pp(ap.approveToNextActivityMs)}** (to scheduled: ${pp(ap.approveToScheduledMs)}; the update call itself ${pp(ap.approveCallMs)}) | p99 < 100 ms | ${met(ap.approveToNextActivityMs.p99 < 100)} |`,
      `| 3 | raw signal → next activity started (SignalWaiterWorkflow), ${ap.samples} signals | **${pp(ap.rawSignalToNextActivityMs)}** (to scheduled: ${pp(ap.rawSignalToScheduledMs)}) | — | |`,
      `| 3 | approval (direct update) / raw | p50 ${ap.ratioP50}×, p99 ${ap.ratioP99}× | ≤ 1.5× | ${met(ap.ratioP50 <= 1.5 && ap.ratioP99 <= 1.5)} |`,
    );
  }
  const chat = r.scenarios.chatFirstToken;
  for (const l of chat?.levels ?? []) {
    out.push(
      `| 8 | chat first token: \`POST /api/v1/chat\` → first \`token\` event, minus the loopback provider's ${chat!.providerFirstTokenMs} ms, ${l.concurrency} concurrent, ${l.samples} turns | **overhead ${pp(l.overheadMs)}** (as seen: ${pp(l.firstTokenMs)}); ${l.failed} failed | ${l.concurrency === 10 ? 'p99 < 50 ms' : '—'} | ${l.concurrency === 10 ? met(l.overheadMs.p99 < 50) : ''} |`,
    );
  }
  const sub = r.scenarios.submitAtRate;
  if (sub) {
    out.push(
      `| 9 | \`POST /api/v1/tasks\` at a fixed ${sub.rate}/s (open loop) for ${sub.seconds} s | **p50 ${sub.latencyMs.p50} ms · p99 ${sub.latencyMs.p99} ms** (max ${sub.latencyMs.max}; ${sub.requests} requests, ${sub.non2xx} non-2xx, ${sub.errors} errors; latest send ${sub.maxSendLagMs} ms after due) | p99 < 100 ms | ${met(sub.latencyMs.p99 < 100)} |`,
    );
  }
  if (pk) {
    const m = pk.workerRssMiB;
    out.push(
      `| 4 | parked agents: start ${pk.agents} idle AgentWorkflows via gateway.start | **${pk.startsPerSecond} agents/s** (${pk.startSeconds} s) | — | |`,
      `| 4 | agent worker RSS (VmRSS of its process) | ${m.before} MiB before → ${m.afterStart} after the starts → ${m.settled} settled (peak ${m.peak}, ${m.afterWakes} after the wakes): **${pk.workerRssKiBPerAgent} KiB per parked agent**, bounded by the workflow cache (${String(r.worker.maxCachedWorkflows)} workflows; idle agents beyond it are evicted); server ${pk.serverRssMiB.before} → ${pk.serverRssMiB.settled} MiB | — | |`,
      `| 4 | wake ${pk.wakes} random parked agents at ${pk.wakesPerSecond}/s: task submitted → first callModel started | **${pp(pk.wakeToFirstStepMs)}** (submitGoal returned: ${pp(pk.submitMs)}; callModel scheduled: ${pp(pk.wakeToScheduledMs)}) | — | |`,
    );
  }
  if (h) {
    out.push(
      `| 5 | history events per task (2 model turns + 1 tool call), all in the agent's workflow | **${h.agentPerTask.events.mean}** (p99 ${h.agentPerTask.events.p99}; ${h.agentPerTask.eventsPerStep} per step); idle agent ${h.idleAgentEvents}; ${h.approvalTask.sampled ? `an approval task adds ${h.approvalTask.events.mean}` : 'no approval task (scenario 3 not run)'} | — | |`,
      `| 5 | largest history seen | ${h.largest.events} events (\`${h.largest.workflowId}\`; agents continue as new past ${String(r.worker.agentHistoryLimit)}, or ${String(r.worker.agentIdleHistoryLimit ?? '—')} when idle) | — | |`,
    );
  }
  for (const e of api?.endpoints ?? []) {
    out.push(
      `| 6 | API \`${e.endpoint}\`, ${e.connections} connections, ${e.seconds} s | **p50 ${e.latencyMs.p50} ms · p99 ${e.latencyMs.p99} ms** at ${e.perSecond} req/s; ${e.non2xx} non-2xx, ${e.errors} errors | — | |`,
    );
  }
  const bu = r.scenarios.budget;
  if (bu) {
    out.push(
      `| 7 | token budget ${bu.budgetTokens} per ${bu.windowSeconds} s window, ${bu.measuredSeconds} s measured with demand above it | **utilisation ${Math.round(bu.utilisation * 100)} %** (${bu.tasksCompleted} tasks) | ≥ 90 % | ${met(bu.utilisation >= 0.9)} |`,
      `| 7 | overshoot: the fullest window beyond the budget | **${bu.overshootTokens} tokens** (one reservation: ${bu.reservationTokens}) | ≤ one reservation | ${met(bu.overshootTokens <= bu.reservationTokens)} |`,
      `| 7 | prioritisation time (scoreGoal activity), cache hit ratio ${Math.round(bu.prioritisationMs.hitRatio * 100)} % | with a cache hit **p50 ${bu.prioritisationMs.withCacheHit.p50} ms**; without **p50 ${bu.prioritisationMs.withoutCacheHit.p50} ms** (offline model: no model latency) | — | |`,
    );
  }

  if (r.clusterRun) out.push('', ...sideBySide(r));
  if (runs.length > 0) out.push('', ...runsOfCommit(r, runs));
  if (baseline && r.mode !== 'partial') out.push('', '## Before and after', '', ...comparison(r, baseline));

  // Components that never used a measurable share (e.g. tsx's esbuild service) are left out.
  const usage = r.usage;
  const groups = [
    ...new Set(Object.values(usage).flatMap((u) => Object.keys(u.cores).filter((g) => Math.abs(u.cores[g]) >= 0.01))),
  ].sort();
  out.push(
    '',
    '## Where the CPU went',
    '',
    'Cores used by each component over each whole scenario (2.0 = both cores of the machine; `other` is everything on the machine outside this benchmark), and the share of tasks the server handed to an already waiting poll (sync match; the rest waited in the task queue backlog).',
    '',
    `| scenario | seconds | ${groups.join(' | ')} | sync match |`,
    `| --- | --- | ${groups.map(() => '---').join(' | ')} | --- |`,
    ...Object.entries(usage).map(
      ([name, u]) =>
        `| ${name} | ${u.seconds} | ${groups.map((g) => u.cores[g] ?? 0).join(' | ')} | ${Number.isFinite(u.syncMatchRatio) ? u.syncMatchRatio : '—'} |`,
    ),
  );
  if (ceiling && agentTasks) {
    const cg = groups.filter(
      (g) => g !== 'other' && (ceiling.cpuMsPerCompletion[g] || agentTasks.cpuMsPerCompletion[g]),
    );
    out.push(
      '',
      'CPU milliseconds per completion inside the steady windows of scenarios 1, 2, 2b and 2c:',
      '',
      `| per completion | ${cg.join(' | ')} |`,
      `| --- | ${cg.map(() => '---').join(' | ')} |`,
      `| trivial workflow | ${cg.map((g) => ceiling.cpuMsPerCompletion[g] ?? 0).join(' | ')} |`,
      `| agent task | ${cg.map((g) => agentTasks.cpuMsPerCompletion[g] ?? 0).join(' | ')} |`,
      ...(shape ? [`| same shape, no-op | ${cg.map((g) => shape.cpuMsPerCompletion[g] ?? 0).join(' | ')} |`] : []),
      ...(inline
        ? [`| same shape inline, no-op | ${cg.map((g) => inline.cpuMsPerCompletion[g] ?? 0).join(' | ')} |`]
        : []),
    );
  }
  if (h) {
    out.push(
      '',
      '## History events of one task, by type',
      '',
      `- agent with one approval task: ${Object.entries(h.approvalTask.byType)
        .map(([t, n]) => `${t} ${n}`)
        .join(', ')}`,
      `- agent workflow, per task: ${Object.entries(h.agentPerTask.byType)
        .map(([t, n]) => `${t} ${n}`)
        .join(', ')}`,
    );
  }
  return `${out.join('\n')}\n`;
}

/** Scenarios 1–4 on the dev server and on the cluster, each against its own ceiling and floor. */
function sideBySide(r: Results): string[] {
  const d = r.scenarios;
  const c = r.clusterRun!.scenarios;
  const v = (x: number | undefined, unit = '') => (x === undefined ? '—' : `${x}${unit}`);
  const p = (x: Summary | undefined) => (x ? `${x.p50} / ${x.p99}` : '—');
  const rows: [string, (s: Scenarios) => string][] = [
    [
      '1 ceiling, workflows/s (first run · after 2 and 2c)',
      (s) => `${v(s.ceiling?.perSecond)} · ${v(s.ceilingRecheck?.perSecond)}`,
    ],
    ['2c floor, tasks/s', (s) => v(s.inlineShapeTasks?.perSecond)],
    ['2 agent tasks/s', (s) => v(s.agentTasks?.perSecond)],
    ['2 agent tasks / floor (target ≥ 0.9)', (s) => v(s.floorRatio)],
    [
      '2 agent tasks / ceiling: mean · higher run (target ≥ 0.9 against the higher)',
      (s) => `${v(s.agentToCeilingRatio)} · ${v(s.ceilingRatioMin)}`,
    ],
    [
      '3 approval resume via HTTP, p50 / p99 ms (target p99 < 60)',
      (s) => p(s.approvalResume?.httpApproveToNextActivityMs),
    ],
    ['3 approval resume via direct update, p50 / p99 ms', (s) => p(s.approvalResume?.approveToNextActivityMs)],
    ['3 raw signal, p50 / p99 ms', (s) => p(s.approvalResume?.rawSignalToNextActivityMs)],
    [
      '4 parked agents started/s (agents)',
      (s) => (s.parkedAgents ? `${s.parkedAgents.startsPerSecond} (${s.parkedAgents.agents})` : '—'),
    ],
    ['4 wake-up → first step, p50 / p99 ms', (s) => p(s.parkedAgents?.wakeToFirstStepMs)],
    ['4 worker RSS per parked agent (KiB)', (s) => v(s.parkedAgents?.workerRssKiBPerAgent)],
  ];
  const cpu = (s: Scenarios) =>
    s.agentTasks
      ? Object.entries(s.agentTasks.cpuMsPerCompletion)
          .filter(([k]) => k !== 'other')
          .map(([k, ms]) => `${k} ${ms}`)
          .join(', ')
      : '—';
  return [
    '## Dev server and cluster side by side',
    '',
    `Scenarios 1–4 on the dev server (${r.versions.temporalCli ?? '?'}, ${r.server.persistence ?? '?'}) and on the self-hosted cluster (${r.clusterRun!.versions.temporalCli ?? '?'}: four services, persistence on ${r.clusterRun!.server.persistence ?? '?'}), one after the other in this run, each with its own workers and PostgreSQL. Each ratio is against that server's own ceiling and floor. On the cluster, \`postgres\` includes Temporal's own persistence, and scenario 4 parks ${c.parkedAgents?.agents ?? '?'} agents.`,
    '',
    '| measurement | dev server | cluster |',
    '| --- | --- | --- |',
    ...rows.map(([what, f]) => `| ${what} | ${Object.keys(d).length ? f(d) : 'not run'} | ${f(c)} |`),
    `| 2 CPU ms per agent task | ${cpu(d)} | ${cpu(c)} |`,
  ];
}

/** The runs of this commit kept in history.jsonl (the latest ten), and the spread of their headline numbers. */
function runsOfCommit(r: Results, runs: HistoryEntry[]): string[] {
  const same = runs.filter((e) => e.commit === r.commit && e.mode === r.mode).slice(-10);
  const num = (e: HistoryEntry, path: string): number | undefined => {
    let cur: unknown = e.headline;
    for (const k of path.split('.')) cur = (cur as Record<string, unknown> | undefined)?.[k];
    return typeof cur === 'number' ? cur : undefined;
  };
  const cols: [string, string][] = [
    ['ceiling mean', 'ceilingPerSec'],
    ['ceiling higher', 'ceilingMaxPerSec'],
    ['floor (2c)', 'inlineShapePerSec'],
    ['tasks/s', 'tasksPerSec'],
    ['/ floor', 'floorRatio'],
    ['/ higher ceiling', 'ceilingRatioMin'],
    ['approve HTTP p99', 'approvalResumeHttpMs.p99'],
    ['chat overhead p99', 'chatFirstTokenOverheadMs.p99'],
    ['submit 20/s p99', 'submitAt20rpsMs.p99'],
    ['cluster / floor', 'cluster.floorRatio'],
    ['tracing: lower by', 'tracingOverhead.lower'],
  ];
  const spread = cols.map(([, path]) => {
    const xs = same.map((e) => num(e, path)).filter((x): x is number => x !== undefined);
    return xs.length ? `${Math.min(...xs)}–${Math.max(...xs)}` : '—';
  });
  return [
    `## Runs of commit \`${r.commit ?? '?'}\` (${r.mode})`,
    '',
    `Every ${r.mode} run appends its headline numbers to [history.jsonl](history.jsonl), whatever it measured; these are the last ${same.length} of this commit (a diff hash tells apart runs of different uncommitted changes). \`other\` is the cores other work on the machine used meanwhile.`,
    '',
    `| started | diff | load at start | other | ${cols.map(([h]) => h).join(' | ')} | |`,
    `| --- | --- | --- | --- | ${cols.map(() => '---').join(' | ')} | --- |`,
    ...same.map(
      (e) =>
        `| ${e.startedAt.slice(0, 16).replace('T', ' ')} | ${e.dirty ? (e.diffHash ?? '?') : 'clean'} | ${e.loadAverage.start.join(' / ')} | ${e.otherCores} | ${cols.map(([, path]) => num(e, path) ?? '—').join(' | ')} | ${e.error ? 'failed' : ''} |`,
    ),
    `| **spread** | | | | ${spread.join(' | ')} | |`,
  ];
}
