/** The shape of bench/results.json and its rendering as bench/RESULTS.md. */
import type { Usage } from './context';
import type { Summary } from './lib';
import type { ApiLatency } from './scenarios/api';
import type { ApprovalResume } from './scenarios/approvals';
import type { BudgetResult } from './scenarios/budget';
import type { HistoryEfficiency } from './scenarios/history';
import type { ParkedAgents } from './scenarios/parked';
import type { AgentThroughput, Throughput } from './scenarios/throughput';

export interface Results {
  mode: 'full' | 'quick';
  startedAt: string;
  durationSeconds?: number;
  loadAverage: { start: number[]; end?: number[] };
  machine: { cpuModel: string; cores: number; ramGiB: number; kernel: string };
  versions: Partial<Record<'node' | 'temporalCli' | 'temporalSdk' | 'postgres', string>>;
  server: { persistence?: string; webUi?: boolean; flags?: string[] };
  worker: Record<string, unknown>;
  settings: Record<string, unknown>;
  scenarios: {
    ceiling?: Throughput & { concurrency: number };
    agentTasks?: Omit<AgentThroughput, 'agentIds' | 'taskIds'>;
    ceilingRecheck?: Throughput & { concurrency: number };
    agentToCeilingRatio?: number;
    shapeTasks?: Throughput;
    inlineShapeTasks?: Throughput;
    agentToShapeRatio?: number;
    approvalResume?: Omit<ApprovalResume, 'approvalAgentIds'>;
    parkedAgents?: Omit<ParkedAgents, 'idleAgentId'>;
    history?: HistoryEfficiency;
    api?: ApiLatency;
    budget?: BudgetResult;
  };
  /** CPU per component and sync-match ratio over each whole scenario. */
  usage: Record<string, Usage>;
  error?: string;
}

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

export function renderMarkdown(r: Results, baseline?: Baseline): string {
  const { ceiling, agentTasks, ceilingRecheck, approvalResume: ap, parkedAgents: pk, history: h, api } = r.scenarios;
  const ratio = r.scenarios.agentToCeilingRatio;
  const out: string[] = [];
  out.push(
    '# Benchmark results',
    '',
    `Generated by \`npm run bench${r.mode === 'quick' ? ' -- --quick' : ''}\` (${r.mode} run) on ${r.startedAt}, ${Math.round((r.durationSeconds ?? 0) / 60)} min. ` +
      'Method and caveats: [README.md](README.md). Raw numbers: [results.json](results.json).',
    '',
  );
  if (r.error) out.push(`> **The run failed** and these results are incomplete: \`${r.error.split('\n')[0]}\``, '');
  out.push(
    '| | |',
    '| --- | --- |',
    `| machine | ${r.machine.cpuModel}, ${r.machine.cores} cores, ${r.machine.ramGiB} GiB RAM, Linux ${r.machine.kernel} |`,
    `| load average (1/5/15 min) | start ${r.loadAverage.start.join(' / ')} · end ${r.loadAverage.end?.join(' / ') ?? '?'}; other work on the machine used **${otherCores(r.usage)} cores** on average during the scenarios (\`other\` below) |`,
    `| versions | Node ${r.versions.node}; ${r.versions.temporalCli}; TypeScript SDK ${r.versions.temporalSdk}; PostgreSQL ${r.versions.postgres} (embedded) |`,
    `| Temporal server | dev server, ${r.server.persistence}, Web UI ${r.server.webUi ? 'on' : 'off'}; ${(r.server.flags ?? []).map((f) => `\`${f}\``).join(', ')} |`,
    `| workers | two child processes (agent worker \`workers/main.ts\`, reference worker \`bench/trivial-worker.ts\`) with the SDK's default options: ${Object.entries(
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
    out.push(
      `| 2 | agent tasks (one LLM step + one tool step) via TemporalGateway, ${agentTasks.agents} agents × ${agentTasks.tasksInFlightPerAgent} in flight, ${agentTasks.windowSeconds} s window | **${agentTasks.perSecond} tasks/s = ${ratio} × ceiling** (mean of both ceiling runs); ${agentTasks.failed} failed; submitGoal ${pp(agentTasks.submitMs)} | ≥ 0.8 × ceiling | ${met(ratio !== undefined ? ratio >= 0.8 : undefined)} |`,
    );
  }
  const shape = r.scenarios.shapeTasks;
  if (shape) {
    out.push(
      `| 2b | the same shape with no-op work: ShapeAgentWorkflow parents take goals by update and run each as a child of three no-op activities, ${agentTasks?.agents ?? '?'} parents × ${agentTasks?.tasksInFlightPerAgent ?? '?'} in flight | **${shape.perSecond} tasks/s** (the shape agent tasks had before goals ran inline); agent tasks = ${r.scenarios.agentToShapeRatio} × this; ${shape.failed} failed | — | |`,
    );
  }
  const inline = r.scenarios.inlineShapeTasks;
  if (inline && ceiling) {
    const ceilingMean = (ceiling.perSecond + (ceilingRecheck?.perSecond ?? ceiling.perSecond)) / 2;
    out.push(
      `| 2c | the same work inline: each parent runs the three no-op activities itself (no child workflow per goal), the update answering when its goal is done: the shape agent tasks have | **${inline.perSecond} tasks/s = ${Math.round((inline.perSecond / ceilingMean) * 100) / 100} × ceiling**${shape ? `; 2b = ${Math.round((shape.perSecond / ceilingMean) * 100) / 100} × ceiling` : ''}${agentTasks ? `; agent tasks = **${Math.round((agentTasks.perSecond / inline.perSecond) * 100) / 100} × this** (what the orchestrator adds to the shape's own cost)` : ''}; ${inline.failed} failed | — | |`,
    );
  }
  if (ap) {
    out.push(
      `| 3 | approval resume: approve call → task's next activity (runTool) started, ${ap.samples} approvals | **${pp(ap.approveToNextActivityMs)}** (to scheduled: ${pp(ap.approveToScheduledMs)}; the approve call itself ${pp(ap.approveCallMs)}) | p99 < 100 ms | ${met(ap.approveToNextActivityMs.p99 < 100)} |`,
      `| 3 | raw signal → next activity started (SignalWaiterWorkflow), ${ap.samples} signals | **${pp(ap.rawSignalToNextActivityMs)}** (to scheduled: ${pp(ap.rawSignalToScheduledMs)}) | — | |`,
      `| 3 | approval / raw | p50 ${ap.ratioP50}×, p99 ${ap.ratioP99}× | ≤ 1.5× | ${met(ap.ratioP50 <= 1.5 && ap.ratioP99 <= 1.5)} |`,
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
      `| 5 | history events per task (2 model turns + 1 tool call), all in the agent's workflow | **${h.agentPerTask.events.mean}** (p99 ${h.agentPerTask.events.p99}; ${h.agentPerTask.eventsPerStep} per step); idle agent ${h.idleAgentEvents}; an approval task adds ${h.approvalTask.events.mean} | — | |`,
      `| 5 | largest history seen | ${h.largest.events} events (\`${h.largest.workflowId}\`; agents continue as new past ${String(r.worker.agentHistoryLimit)}) | — | |`,
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

  if (baseline) out.push('', '## Before and after', '', ...comparison(r, baseline));

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
