/**
 * Scenario 5: how many history events the work of the other scenarios wrote, read back from Temporal.
 * Steps are model turns: the benchmark task has two (tool call, then answer). Every goal runs inside its
 * agent's workflow, so the agents' histories hold all of it.
 */
import { type Bench } from '../context';
import { eventTypes, history, pool, round, summarize, type HistoryEvent, type Summary } from '../lib';
import { agentWorkflowId } from '../../contract/definitions';

export interface HistoryEfficiency {
  /**
   * Events an agent workflow adds per task it runs (one LLM step plus one tool step: 2 model turns, 1 tool
   * call), in steady state, from agents that ran many tasks. Goals run inside the agent's workflow, so this
   * is all the history a task writes.
   */
  agentPerTask: {
    sampled: number;
    events: Summary;
    eventsPerStep: number;
    runs: Summary;
    byType: Record<string, number>;
  };
  /** Events a task whose tool call waited for approval added to its agent (its history minus an idle agent's). */
  approvalTask: { sampled: number; events: Summary; byType: Record<string, number> };
  /** A parked agent that never ran a task. */
  idleAgentEvents: number;
  /** History events per benchmark task, all workflows. */
  totalPerTask: number;
  largest: { workflowId: string; events: number };
}

export async function historyEfficiency(
  b: Bench,
  ids: { agentIds: string[]; approvalAgentIds: string[]; idleAgentId: string },
  sample: number,
): Promise<HistoryEfficiency> {
  const largest = { workflowId: '', events: 0 };
  const fetch = async (workflowId: string, runId?: string) => {
    const events = await history(b.client, workflowId, runId);
    if (events.length > largest.events) Object.assign(largest, { workflowId, events: events.length });
    return events;
  };
  const fetchAll = async (workflowIds: string[]) => {
    const out: HistoryEvent[][] = [];
    await pool(workflowIds, 10, async (id) => void out.push(await fetch(id)));
    return out;
  };
  // Every run of each workflow: an agent continues as new when it goes idle, so its latest run may hold
  // none of the tasks it ran. Runs per agent come from the same visibility listing.
  const runs: number[] = [];
  const fetchRuns = async (workflowIds: string[]) => {
    const out: HistoryEvent[][] = [];
    await pool(workflowIds, 10, async (workflowId) => {
      const runIds: string[] = [];
      for await (const run of b.client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) runIds.push(run.runId);
      runs.push(runIds.length);
      for (const runId of runIds) out.push(await fetch(workflowId, runId));
    });
    return out;
  };

  const approvalAgents = await fetchAll(spread(ids.approvalAgentIds, sample).map(agentWorkflowId));
  const agents = await fetchRuns(ids.agentIds.map(agentWorkflowId));
  const idle = await fetch(agentWorkflowId(ids.idleAgentId));

  // Per task cycle: from the first task's first model call to the last one's, over the tasks in between
  // (each benchmark task makes exactly two model calls; its tool call may leave only a marker), within
  // each run of the agent.
  const cycles = agents.flatMap((events) => {
    const modelCalls = events.flatMap((e, i) =>
      e.type === 'ACTIVITY_TASK_SCHEDULED' && e.activity === 'callModel' ? [i] : [],
    );
    const taskStarts = modelCalls.filter((_, k) => k % 2 === 0);
    return taskStarts.length >= 3
      ? [{ events: events.slice(taskStarts[0], taskStarts.at(-1)), tasks: taskStarts.length - 1 }]
      : [];
  });
  const perTask = cycles.map((c) => c.events.length / c.tasks);
  const cycleTypes = eventTypes(cycles.flatMap((c) => c.events));
  const allTasks = cycles.reduce((n, c) => n + c.tasks, 0);
  const agentByType = Object.fromEntries(Object.entries(cycleTypes).map(([t, n]) => [t, round(n / allTasks, 2)]));
  const agentEvents = summarize(perTask);
  return {
    agentPerTask: {
      sampled: perTask.length,
      events: agentEvents,
      eventsPerStep: round(agentEvents.mean / 2),
      runs: summarize(runs),
      byType: agentByType,
    },
    approvalTask: {
      sampled: approvalAgents.length,
      events: summarize(approvalAgents.map((e) => e.length - idle.length)),
      byType: eventTypes(approvalAgents[0] ?? []),
    },
    idleAgentEvents: idle.length,
    totalPerTask: agentEvents.mean,
    largest,
  };
}

/** Up to n items spread evenly over the list (early, middle and late tasks alike). */
function spread<T>(items: T[], n: number): T[] {
  if (items.length <= n) return items;
  return Array.from({ length: n }, (_, i) => items[Math.floor((i * items.length) / n)]);
}
