/**
 * Scenario 5: how many history events the work of the other scenarios wrote, read back from Temporal.
 * Steps are model turns: the benchmark task has two (tool call, then answer).
 */
import { type Bench } from '../context';
import { eventTypes, history, pool, round, summarize, type HistoryEvent, type Summary } from '../lib';
import { agentWorkflowId, taskWorkflowId } from '../../workflows/definitions';

export interface HistoryEfficiency {
  /** Task workflow of one LLM step plus one tool step (2 model turns, 1 tool call). */
  task: { sampled: number; events: Summary; eventsPerStep: number; byType: Record<string, number> };
  /** Task workflow whose tool call waited for approval. */
  approvalTask: { sampled: number; events: Summary; byType: Record<string, number> };
  /** Events the agent workflow adds per task it runs (steady state, from agents that ran many tasks). */
  agentPerTask: { sampled: number; events: Summary; runs: Summary; byType: Record<string, number> };
  /** A parked agent that never ran a task. */
  idleAgentEvents: number;
  /** Agent + task events per benchmark task. */
  totalPerTask: number;
  largest: { workflowId: string; events: number };
}

export async function historyEfficiency(
  b: Bench,
  ids: { taskIds: string[]; agentIds: string[]; approvalTaskIds: string[]; idleAgentId: string },
  sample: number,
): Promise<HistoryEfficiency> {
  const largest = { workflowId: '', events: 0 };
  const fetch = async (workflowId: string) => {
    const events = await history(b.client, workflowId);
    if (events.length > largest.events) Object.assign(largest, { workflowId, events: events.length });
    return events;
  };
  const fetchAll = async (workflowIds: string[]) => {
    const out: HistoryEvent[][] = [];
    await pool(workflowIds, 10, async (id) => void out.push(await fetch(id)));
    return out;
  };

  const tasks = await fetchAll(spread(ids.taskIds, sample).map(taskWorkflowId));
  const approvalTasks = await fetchAll(spread(ids.approvalTaskIds, sample).map(taskWorkflowId));
  const agents = await fetchAll(ids.agentIds.map(agentWorkflowId));
  const idle = await fetch(agentWorkflowId(ids.idleAgentId));

  // Per task cycle: from the first child started to the last child completed, over the children in between.
  const cycles = agents.flatMap((events) => {
    const first = events.findIndex((e) => e.type === 'START_CHILD_WORKFLOW_EXECUTION_INITIATED');
    const completed = events.filter((e) => e.type === 'CHILD_WORKFLOW_EXECUTION_COMPLETED');
    const last = events.lastIndexOf(completed.at(-1)!);
    return completed.length >= 2 && first >= 0 ? [{ events: events.slice(first, last + 1), tasks: completed.length }] : [];
  });
  const perTask = cycles.map((c) => c.events.length / c.tasks);
  const cycleTypes = eventTypes(cycles.flatMap((c) => c.events));
  const allTasks = cycles.reduce((n, c) => n + c.tasks, 0);
  const agentByType = Object.fromEntries(Object.entries(cycleTypes).map(([t, n]) => [t, round(n / allTasks, 2)]));
  const runs = await Promise.all(ids.agentIds.map(async (id) => (await b.gateway.state(id))?.runs ?? NaN));

  const taskEvents = summarize(tasks.map((e) => e.length));
  const agentEvents = summarize(perTask);
  return {
    task: { sampled: tasks.length, events: taskEvents, eventsPerStep: round(taskEvents.mean / 2), byType: eventTypes(tasks[0] ?? []) },
    approvalTask: { sampled: approvalTasks.length, events: summarize(approvalTasks.map((e) => e.length)), byType: eventTypes(approvalTasks[0] ?? []) },
    agentPerTask: { sampled: perTask.length, events: agentEvents, runs: summarize(runs), byType: agentByType },
    idleAgentEvents: idle.length,
    totalPerTask: round(taskEvents.mean + agentEvents.mean),
    largest,
  };
}

/** Up to n items spread evenly over the list (early, middle and late tasks alike). */
function spread<T>(items: T[], n: number): T[] {
  if (items.length <= n) return items;
  return Array.from({ length: n }, (_, i) => items[Math.floor((i * items.length) / n)]);
}
