/**
 * Pure helpers of the crew workflow: reading the JSON a member answered (plans, votes, work items),
 * checking that a plan is a DAG, tallying votes and choosing members. No I/O and no clock, so the
 * workflow stays deterministic.
 */
import type { CrewAssignment } from './definitions';

/** Caps that keep a crew's history small: a plan or a split beyond these is cut. */
export const MAX_PLAN_NODES = 20;
export const MAX_WORK_ITEMS = 50;

export const PLAN_INSTRUCTIONS =
  'Decompose the goal into sub-tasks for the crew members. Answer only with JSON: ' +
  '{"subtasks":[{"id":"short-id","title":"what to do","capabilities":["required capability"],"dependsOn":["id of a sub-task that must finish first"]}]}';
export const VOTE_INSTRUCTIONS =
  'Decide the question. Answer only with JSON: {"decision":"your choice","confidence":0.0-1.0,"reason":"one sentence"}';
export const SPLIT_INSTRUCTIONS =
  'Split the goal into independent work items. Answer only with a JSON array of strings.';

export interface PlanNode {
  id: string;
  title: string;
  capabilities: string[];
  dependsOn: string[];
}

export interface Vote {
  agentId: string;
  decision: string;
  confidence: number;
}

export interface Tally {
  decision: string | null;
  /** The winner's share of the total confidence, 0-1. */
  share: number;
  threshold: number;
  reached: boolean;
  weights: Record<string, number>;
}

/** The text a task answered: `output.answer`, or a manual agent's suggestion. */
export function answerText(output: unknown): string {
  if (output && typeof output === 'object') {
    const o = output as { answer?: unknown; suggestion?: unknown };
    if (typeof o.answer === 'string') return o.answer;
    if (typeof o.suggestion === 'string') return o.suggestion;
  }
  return typeof output === 'string' ? output : JSON.stringify(output ?? null);
}

/**
 * The first JSON object or array in a model's answer: a ```json block, else the first `{` or `[` from which
 * the text up to the last matching bracket parses (models wrap JSON in prose, "[offline]" included).
 */
export function extractJson(text: string): unknown {
  const fenced = /```(?:json)?\s*\n([\s\S]*?)\n```/.exec(text)?.[1];
  if (fenced !== undefined) {
    try {
      return JSON.parse(fenced);
    } catch {
      // Fall back to scanning the whole answer.
    }
  }
  const lastBrace = text.lastIndexOf('}');
  const lastBracket = text.lastIndexOf(']');
  for (let i = 0, tries = 0; i < text.length && tries < 20; i++) {
    const end = text[i] === '{' ? lastBrace : text[i] === '[' ? lastBracket : -1;
    if (end <= i) continue;
    tries++;
    try {
      return JSON.parse(text.slice(i, end + 1));
    } catch {
      // Not JSON from here; try the next opening bracket.
    }
  }
  return undefined;
}

const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string' && s.trim() !== '').map((s) => s.trim()) : [];

/**
 * Reads a planner's answer into sub-tasks in an order where every dependency comes first, or explains
 * why it cannot (no sub-tasks, duplicate ids, unknown dependencies, a cycle).
 */
export function parsePlan(answer: string): { nodes: PlanNode[] } | { error: string } {
  const json = extractJson(answer);
  const list = Array.isArray(json) ? json : (json as { subtasks?: unknown } | undefined)?.subtasks;
  if (!Array.isArray(list) || list.length === 0) return { error: 'the answer holds no {"subtasks": [...]} JSON' };
  const nodes: PlanNode[] = list.slice(0, MAX_PLAN_NODES).map((raw: unknown, i) => {
    const r = (raw ?? {}) as Record<string, unknown>;
    const id = typeof r.id === 'string' || typeof r.id === 'number' ? String(r.id).trim() : `t${i + 1}`;
    const title = typeof r.title === 'string' && r.title.trim() ? r.title.trim() : id;
    return { id, title, capabilities: strings(r.capabilities), dependsOn: strings(r.dependsOn ?? r.depends_on) };
  });
  const ids = new Set(nodes.map((n) => n.id));
  if (ids.size !== nodes.length) return { error: 'sub-task ids are not unique' };
  for (const n of nodes) {
    const unknown = n.dependsOn.filter((d) => !ids.has(d));
    if (unknown.length) return { error: `sub-task ${n.id} depends on unknown ${unknown.join(', ')}` };
  }
  // Kahn's algorithm: what remains once nothing more is ready forms a cycle.
  const ordered: PlanNode[] = [];
  const done = new Set<string>();
  let remaining = nodes;
  while (remaining.length) {
    const ready = remaining.filter((n) => n.dependsOn.every((d) => done.has(d)));
    if (!ready.length) return { error: `the dependencies form a cycle among ${remaining.map((n) => n.id).join(', ')}` };
    for (const n of ready) done.add(n.id);
    ordered.push(...ready);
    remaining = remaining.filter((n) => !done.has(n.id));
  }
  return { nodes: ordered };
}

/** A vote `{decision, confidence}` from an answer; confidence is clamped to 0-1. */
export function parseVote(agentId: string, answer: string): Vote | null {
  const json = extractJson(answer) as { decision?: unknown; confidence?: unknown } | undefined;
  if (!json || typeof json !== 'object') return null;
  const decision =
    typeof json.decision === 'string'
      ? json.decision.trim()
      : typeof json.decision === 'boolean'
        ? String(json.decision)
        : '';
  const confidence = Number(json.confidence);
  if (!decision || !Number.isFinite(confidence)) return null;
  return { agentId, decision, confidence: Math.min(1, Math.max(0, confidence)) };
}

/** The confidence-weighted winner and its share of the total weight; ties go to the earliest decision. */
export function tallyVotes(votes: Vote[], threshold: number): Tally {
  const weights: Record<string, number> = {};
  for (const v of votes) weights[v.decision] = (weights[v.decision] ?? 0) + v.confidence;
  const total = Object.values(weights).reduce((a, b) => a + b, 0);
  let decision: string | null = null;
  for (const [d, w] of Object.entries(weights)) if (decision === null || w > weights[decision]!) decision = d;
  const share = decision !== null && total > 0 ? weights[decision]! / total : 0;
  return { decision, share: Math.round(share * 1000) / 1000, threshold, reached: share >= threshold, weights };
}

/** Work items from a splitter's answer: a JSON array (strings or objects), or `{"items": [...]}`. */
export function parseItems(answer: string): unknown[] | null {
  const json = extractJson(answer);
  const list = Array.isArray(json) ? json : (json as { items?: unknown } | undefined)?.items;
  return Array.isArray(list) && list.length > 0 ? list.slice(0, MAX_WORK_ITEMS) : null;
}

export interface RosterMember {
  agentId: string;
  capabilities: string[];
}

/**
 * Who does the next sub-task. `capability`: members with every required capability, then the least busy
 * (fewest running, then fewest assigned, then crew order); `least-loaded`: the least busy of all;
 * `round-robin`: the next member in turn. Busy means crew work in flight, counted by the workflow.
 */
export class Roster<M extends RosterMember> {
  private readonly running = new Map<string, number>();
  private readonly assigned = new Map<string, number>();
  private turn = 0;

  constructor(
    readonly members: M[],
    readonly strategy: CrewAssignment,
  ) {}

  pick(required: string[], among: M[] = this.members, exclude: ReadonlySet<string> = new Set()): M | null {
    const open = among.filter((m) => !exclude.has(m.agentId));
    const capable =
      this.strategy === 'capability' ? open.filter((m) => required.every((c) => m.capabilities.includes(c))) : open;
    if (!capable.length) return null;
    if (this.strategy === 'round-robin') {
      for (let i = 0; i < this.members.length; i++) {
        const next = this.members[(this.turn + i) % this.members.length]!;
        if (capable.includes(next)) {
          this.turn = (this.members.indexOf(next) + 1) % this.members.length;
          return next;
        }
      }
    }
    const load = (m: M) => [this.running.get(m.agentId) ?? 0, this.assigned.get(m.agentId) ?? 0];
    return capable.reduce((best, m) => {
      const [r, a] = load(m);
      const [br, ba] = load(best);
      return r < br || (r === br && a < ba) ? m : best;
    });
  }

  started(agentId: string): void {
    this.running.set(agentId, (this.running.get(agentId) ?? 0) + 1);
    this.assigned.set(agentId, (this.assigned.get(agentId) ?? 0) + 1);
  }

  finished(agentId: string): void {
    this.running.set(agentId, (this.running.get(agentId) ?? 1) - 1);
  }

  load(agentId: string): { running: number; assigned: number } {
    return { running: this.running.get(agentId) ?? 0, assigned: this.assigned.get(agentId) ?? 0 };
  }
}
