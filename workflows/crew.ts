import { CancellationScope, isCancellation, log, setHandler } from '@temporalio/workflow';
import {
  answerText,
  parseItems,
  parsePlan,
  parseVote,
  PLAN_INSTRUCTIONS,
  SPLIT_INSTRUCTIONS,
  tallyVotes,
  VOTE_INSTRUCTIONS,
  type PlanNode,
  type Vote,
} from '../contract/crew-plan';
import {
  CREW_PARALLEL_ITEMS_AT_ONCE,
  crewMessageSignal,
  crewStartedUpdate,
  getCrewStateQuery,
  type CrewProcess,
  type CrewResult,
  type CrewSubTaskReport,
  type CrewWorkflowInput,
} from '../contract/definitions';
import { Crew, type Member } from './crew-state';

/**
 * A team of agents working on one goal. The process decides what member work happens and in what order:
 * sequential (a pipeline), parallel (map over work items, then a reducer), hierarchical (a planner's DAG
 * of sub-tasks, each started when its dependencies are done) or consensus (confidence-weighted vote).
 * Every sub-task is a TaskWorkflow child recorded as a task of its member. A failed sub-task is retried
 * MAX_RETRIES times, then reassigned to another capable member; what still fails is named in a partial
 * result. Cancelling the workflow (stop) cancels every child and waits until each has recorded it.
 */
export async function CrewWorkflow(input: CrewWorkflowInput): Promise<CrewResult> {
  const crew = new Crew(input);
  setHandler(getCrewStateQuery, () => crew.snapshot());
  setHandler(crewStartedUpdate, () => crew.started());
  setHandler(crewMessageSignal, (message) => crew.receiveMessage(message));

  await crew.setStatus(input.process === 'hierarchical' ? 'planning' : 'running');
  crew.recorded = true;
  let output: unknown = null;
  try {
    output = await PROCESSES[input.process](crew);
  } catch (err) {
    if (!isCancellation(err)) throw err;
  }
  const result = crew.result(output, CancellationScope.current().consideredCancelled);
  // Recording the end must happen even when the crew was stopped; children finish cancelling first.
  await CancellationScope.nonCancellable(() => crew.recordEnd(result));
  log.info('crew finished', { crewId: input.crewId, status: result.status, failed: result.failed.length });
  return result;
}

// ---- The processes ----

/** Each member in crew order; one's output is the next one's input, passed on with a handoff message. */
async function sequential(crew: Crew): Promise<unknown> {
  const { input, members, context } = crew;
  let previous: unknown = null;
  for (const [i, member] of members.entries()) {
    const title = `${input.goal} (step ${i + 1}/${members.length}${member.role ? `, ${member.role}` : ''})`;
    if (crew.reports.some((r) => r.status !== 'completed')) {
      crew.skip(`step-${i + 1}`, title, 'an earlier step failed');
      continue;
    }
    const report = await crew.runSubTask({
      key: `step-${i + 1}`,
      title,
      agentId: member.agentId,
      input: { goal: input.goal, step: i + 1, steps: members.length, previous, ...context },
    });
    if (report.status !== 'completed') continue;
    previous = report.output;
    const next = members[i + 1];
    if (next)
      crew.post({
        fromAgentId: report.agentId,
        toAgentId: next.agentId,
        type: 'handoff',
        content: answerText(report.output),
      });
  }
  return previous;
}

/** Map-reduce: work items (input.items, or a splitter's answer) run in parallel; a reducer aggregates. */
async function parallel(crew: Crew): Promise<unknown> {
  const { input, members, context } = crew;
  const reducer = crew.byRole('reducer') ?? members[members.length - 1]!;
  const mappers = members.length > 1 ? members.filter((m) => m !== reducer) : members;
  let items = Array.isArray(input.input.items) ? (input.input.items as unknown[]) : null;
  if (!items) {
    const splitter = crew.byRole('splitter') ?? members[0]!;
    const split = await crew.runSubTask({
      key: 'split',
      title: `Split into work items: ${input.goal}`,
      agentId: splitter.agentId,
      input: { goal: input.goal, responseFormat: 'crew_items', instructions: SPLIT_INSTRUCTIONS, ...context },
    });
    items = (split.status === 'completed' && parseItems(answerText(split.output))) || [input.goal];
  }
  const mapItem = (item: unknown, i: number) =>
    crew.runSubTask({
      key: `item-${i + 1}`,
      title: `${input.goal} (item ${i + 1}/${items.length})`,
      among: mappers,
      input: { goal: input.goal, item, ...context },
    });
  // At most CREW_PARALLEL_ITEMS_AT_ONCE work items at a time.
  const mapped = await atMost(CREW_PARALLEL_ITEMS_AT_ONCE, items, mapItem);
  const results = mapped.map((r, i) => ({
    item: items[i],
    status: r.status,
    output: r.status === 'completed' ? answerText(r.output) : null,
    error: r.error,
  }));
  for (const r of mapped)
    if (r.status === 'completed')
      crew.post({
        fromAgentId: r.agentId,
        toAgentId: reducer.agentId,
        type: 'response',
        content: answerText(r.output),
      });
  const reduced = await crew.runSubTask({
    key: 'reduce',
    title: `Combine ${items.length} result(s): ${input.goal}`,
    agentId: reducer.agentId,
    input: { goal: input.goal, results, ...context },
  });
  return reduced.status === 'completed' ? { answer: answerText(reduced.output), results } : { results };
}

/** A planner's DAG of sub-tasks; each starts once its dependencies are done, dependents of a failure are skipped. */
async function hierarchical(crew: Crew): Promise<unknown> {
  const { input, members, context } = crew;
  if (input.plan) return runPlan(crew, null, members, input.plan);
  const planner = crew.byRole('planner') ?? members[0]!;
  const workers = members.length > 1 ? members.filter((m) => m !== planner) : members;
  const team = workers.map((m) => ({
    agentId: m.agentId,
    name: m.agent.name,
    role: m.role,
    capabilities: m.capabilities,
  }));
  const planned = await crew.runSubTask({
    key: 'plan',
    title: `Plan: ${input.goal}`,
    agentId: planner.agentId,
    input: {
      goal: input.goal,
      members: team,
      responseFormat: 'crew_plan',
      instructions: PLAN_INSTRUCTIONS,
      ...context,
    },
  });
  if (planned.status !== 'completed') return null;
  const plan = parsePlan(answerText(planned.output));
  if ('error' in plan) {
    planned.status = 'failed';
    planned.error = `the planner's answer is not a usable plan: ${plan.error}`;
    return null;
  }
  return runPlan(crew, planner, workers, plan.nodes);
}

/**
 * Runs a plan's DAG on the workers: the planner's, or a ready one given in the input (the meta
 * supervisor's), which needs no planner member. Ready plans are checked and ordered like a planner's.
 */
async function runPlan(crew: Crew, planner: Member | null, workers: Member[], nodes: PlanNode[]): Promise<unknown> {
  const { input, context } = crew;
  const plan = planner ? { nodes } : parsePlan(JSON.stringify({ subtasks: nodes }));
  if ('error' in plan) {
    crew.skip('plan', `Plan: ${input.goal}`, `the given plan is not usable: ${plan.error}`);
    return null;
  }
  crew.post({
    fromAgentId: planner?.agentId ?? null,
    toAgentId: null,
    type: 'status_update',
    content: `Plan: ${plan.nodes.map((n) => `${n.id} "${n.title}"${n.dependsOn.length ? ` after ${n.dependsOn.join(', ')}` : ''}`).join('; ')}`,
  });
  await crew.setStatus('running');
  const done = new Map<string, Promise<CrewSubTaskReport>>();
  const run = async (node: PlanNode): Promise<CrewSubTaskReport> => {
    const deps = await Promise.all(node.dependsOn.map((d) => done.get(d)!));
    const failed = deps.filter((d) => d.status !== 'completed').map((d) => d.key);
    if (failed.length)
      return crew.skip(node.id, node.title, `skipped: depends on ${failed.join(', ')}, which did not complete`);
    return crew.runSubTask({
      key: node.id,
      title: node.title,
      capabilities: node.capabilities,
      among: workers,
      requestedBy: planner?.agentId,
      input: {
        goal: input.goal,
        subtask: node,
        dependencies: deps.map((d) => ({ id: d.key, title: d.title, output: answerText(d.output) })),
        ...context,
      },
    });
  };
  // Dependencies come first in the plan's order, so every promise a node awaits already exists.
  for (const node of plan.nodes) done.set(node.id, run(node));
  const finished = await Promise.all(done.values());
  return {
    plan: plan.nodes,
    outputs: Object.fromEntries(
      finished.filter((r) => r.status === 'completed').map((r) => [r.key, answerText(r.output)]),
    ),
  };
}

/** Every member votes {decision, confidence}; the confidence-weighted winner, its share and the threshold. */
async function consensus(crew: Crew): Promise<unknown> {
  const { input, members, context } = crew;
  const ballots = await Promise.all(
    members.map((m) =>
      crew.runSubTask({
        key: `vote-${m.agentId}`,
        title: `Decide: ${input.goal}`,
        agentId: m.agentId,
        noReassign: true,
        input: {
          question: input.goal,
          options: input.input.options ?? null,
          responseFormat: 'crew_vote',
          instructions: VOTE_INSTRUCTIONS,
          ...context,
        },
      }),
    ),
  );
  const votes: Vote[] = [];
  const abstained: { agentId: string; reason: string }[] = [];
  for (const [i, ballot] of ballots.entries()) {
    const agentId = members[i]!.agentId;
    const vote = ballot.status === 'completed' ? parseVote(agentId, answerText(ballot.output)) : null;
    if (vote) {
      votes.push(vote);
      crew.post({
        fromAgentId: agentId,
        toAgentId: null,
        type: 'response',
        content: `${vote.decision} (confidence ${vote.confidence})`,
      });
    } else {
      abstained.push({ agentId, reason: ballot.error ?? 'the answer holds no {"decision", "confidence"} JSON' });
      if (ballot.status === 'completed') {
        ballot.status = 'failed';
        ballot.error = 'the answer holds no {"decision", "confidence"} JSON';
      }
    }
  }
  if (!votes.length) return null;
  return { ...tallyVotes(votes, input.consensusThreshold), votes, abstained };
}

const PROCESSES: Record<CrewProcess, (crew: Crew) => Promise<unknown>> = {
  sequential,
  parallel,
  hierarchical,
  consensus,
};

/** Runs `run` over `items` with at most `limit` in flight, starting them in order; results in item order. */
async function atMost<T, R>(
  limit: number,
  items: readonly T[],
  run: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await run(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}
