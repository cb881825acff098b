/** The peers benchmark's results and their Markdown table: systems as columns. */
import type { Summary } from '../lib';

export interface PeerResult {
  name: string;
  versions: Record<string, string>;
  config: string;
  lacks: string[];
  throughput0ms?: { perSecond: number; completed: number; failed: number };
  throughput200ms?: { perSecond: number; completed: number; failed: number };
  latencyAtRate?: { rate: number; latencyMs: Summary; failed: number };
  /** CPU ms per task in the 0 ms window, per component (PostgreSQL by process name) and in total. */
  cpuMsPerTask?: Record<string, number>;
  historyEventsPerTask?: number;
  storagePerTask?: { walBytes: number; rows: number; sqliteBytes: number };
  humanWait?: { how: string; decisionToNextStepMs: Summary };
  crash?: {
    tasks: number;
    kills: number;
    killsWithTasksInFlight: number;
    lost: number;
    failed: number;
    finishedTwice: number;
    modelCallsRepeated: number;
    toolWritesDuplicated: number;
    toolRetriesAbsorbedByKey: number;
  };
  error?: string;
}

export interface PeersResults {
  mode: 'full' | 'quick' | 'partial';
  startedAt: string;
  finishedAt?: string;
  commit: string;
  dirty?: boolean;
  loadAverage: { start: number[]; end?: number[] };
  machine: { cpuModel: string; cores: number };
  settings: Record<string, number>;
  systems: PeerResult[];
  error?: string;
}

const n = (v: number | undefined, unit = '') => (v === undefined || Number.isNaN(v) ? '–' : `${v}${unit}`);
const ps = (s: Summary | undefined) => (s ? `${n(s.p50)} / ${n(s.p99)}` : '–');

export function renderMarkdown(r: PeersResults, history: PeersResults[]): string {
  const sys = r.systems;
  const row = (label: string, cell: (s: PeerResult) => string, measured = true) =>
    `| ${label} | ${sys.map((s) => (measured && s.error && cell(s) === '–' ? 'failed' : cell(s))).join(' | ')} |`;
  const out = [
    '# Peers benchmark',
    '',
    `${r.mode} run of ${r.startedAt} (commit ${r.commit}${r.dirty ? ', working tree changed' : ''}), ` +
      `${r.machine.cores} cores (${r.machine.cpuModel}), load average ${r.loadAverage.start.join(' ')} at the start, ` +
      `${(r.loadAverage.end ?? []).join(' ')} at the end. How it is measured: bench/peers/README.md.`,
    '',
    `Settings: ${Object.entries(r.settings)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}.`,
    '',
    `| | ${sys.map((s) => s.name).join(' | ')} |`,
    `| --- |${sys.map(() => ' --- |').join('')}`,
    row('tasks/s, model 0 ms', (s) => n(s.throughput0ms?.perSecond)),
    row(`tasks/s, model ${r.settings.slowModelMs} ms`, (s) => n(s.throughput200ms?.perSecond)),
    row(`task latency p50 / p99 ms at ${r.settings.rate}/s (model 0 ms)`, (s) => ps(s.latencyAtRate?.latencyMs)),
    row('CPU ms per task (all processes)', (s) => n(s.cpuMsPerTask?.total)),
    row('CPU ms per task by process', (s) =>
      s.cpuMsPerTask
        ? Object.entries(s.cpuMsPerTask)
            .filter(([k]) => k !== 'total')
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')
        : '–',
    ),
    row('history events per task', (s) => n(s.historyEventsPerTask)),
    row('PostgreSQL WAL bytes per task', (s) => n(s.storagePerTask?.walBytes)),
    row('PostgreSQL rows written per task', (s) => n(s.storagePerTask?.rows)),
    row('Temporal SQLite bytes per task', (s) => n(s.storagePerTask?.sqliteBytes)),
    row('crash test: tasks / kills (with tasks in flight)', (s) =>
      s.crash ? `${s.crash.tasks} / ${s.crash.kills} (${s.crash.killsWithTasksInFlight})` : '–',
    ),
    row('crash test: lost / failed', (s) => (s.crash ? `${s.crash.lost} / ${s.crash.failed}` : '–')),
    row('crash test: final answer given twice (last step ran again)', (s) => n(s.crash?.finishedTwice)),
    row('crash test: tool writes applied twice', (s) => n(s.crash?.toolWritesDuplicated)),
    row('crash test: model calls repeated', (s) => n(s.crash?.modelCallsRepeated)),
    row('crash test: tool retries absorbed by the key', (s) => n(s.crash?.toolRetriesAbsorbedByKey)),
    row('human wait', (s) => s.humanWait?.how ?? '–'),
    row('decision → next step p50 / p99 ms', (s) => ps(s.humanWait?.decisionToNextStepMs)),
    row(
      'versions',
      (s) =>
        Object.entries(s.versions)
          .map(([k, v]) => `${k} ${v}`)
          .join(', '),
      false,
    ),
    row('configuration', (s) => s.config, false),
    row('does not offer', (s) => (s.lacks.length ? s.lacks.join('; ') : '–'), false),
    '',
  ];
  const errors = sys.filter((s) => s.error);
  if (errors.length || r.error) {
    out.push('## Errors', '');
    if (r.error) out.push('```', r.error, '```', '');
    for (const s of errors) out.push(`- **${s.name}**: ${s.error!.replace(/\n/g, ' ')}`);
    out.push('');
  }
  const runs = history.filter((h) => h.mode === r.mode).slice(-10);
  out.push(
    `## Runs of this kind (${r.mode}), latest last`,
    '',
    '| started | commit | load | ' +
      sys.map((s) => `${s.name}: tasks/s 0 / ${r.settings.slowModelMs} ms, lost`).join(' | ') +
      ' |',
    '| --- | --- | --- |' + sys.map(() => ' --- |').join(''),
  );
  for (const h of runs) {
    const cells = sys.map((s) => {
      const x = h.systems.find((y) => y.name === s.name);
      return x ? `${n(x.throughput0ms?.perSecond)} / ${n(x.throughput200ms?.perSecond)}, ${n(x.crash?.lost)}` : '–';
    });
    out.push(
      `| ${h.startedAt} | ${h.commit}${h.dirty ? '+' : ''} | ${h.loadAverage.start[0]} | ${cells.join(' | ')} |`,
    );
  }
  out.push('');
  return out.join('\n');
}
