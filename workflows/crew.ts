import {
  allHandlersFinished,
  CancellationScope,
  ChildWorkflowCancellationType,
  condition,
  isCancellation,
  log,
  ParentClosePolicy,
  setCurrentDetails,
  setHandler,
  startChild,
  uuid4,
} from '@temporalio/workflow';
import { activitiesFor } from './activities';
import {
  answerText,
  parseItems,
  parsePlan,
  parseVote,
  PLAN_INSTRUCTIONS,
  Roster,
  SPLIT_INSTRUCTIONS,
  tallyVotes,
  VOTE_INSTRUCTIONS,
  type PlanNode,
  type Vote,
} from '../contract/crew-plan';
import {
  AgentIdAttr,
  AgentNameAttr,
  CREW_PARALLEL_ITEMS_AT_ONCE,
  crewMessageSignal,
  crewStartedUpdate,
  CrewIdAttr,
  getCrewStateQuery,
  OrgIdAttr,
  TaskIdAttr,
  taskWorkflowId,
  type AgentConfig,
  type CrewLiveState,
  type CrewMember,
  type CrewMessage,
  type CrewMessageInput,
  type CrewResult,
  type CrewStatus,
  type CrewSubTaskReport,
  type CrewWorkflowInput,
  type Goal,
  type TaskOutcome,
} from '../contract/definitions';
import { TaskWorkflow } from './task';

type Member = CrewMember & { agent: AgentConfig; capabilities: string[] };

/** One piece of member work, as a process asks for it. */
interface SubTaskSpec {
  key: string;
  title: string;
  input: Record<string, unknown>;
  /** First choice; otherwise the roster picks among `among` by the crew's assignment strategy. */
  agentId?: string;
  capabilities?: string[];
  among?: Member[];
  /** A vote belongs to its member: never hand it to someone else. */
  noReassign?: boolean;
  /** Who asked for it (the planner), for the request/response messages. */
  requestedBy?: string;
}

/** How many recent messages a member receives with a sub-task, to keep prompts small. */
const INBOX_LIMIT = 20;

/**
 * A team of agents working on one goal. The process decides what member work happens and in what order:
 * sequential (a pipeline), parallel (map over work items, then a reducer), hierarchical (a planner's DAG
 * of sub-tasks, each started when its dependencies are done) or consensus (confidence-weighted vote).
 * Every sub-task is a TaskWorkflow child recorded as a task of its member. A failed sub-task is retried
 * MAX_RETRIES times, then reassigned to another capable member; what still fails is named in a partial
 * result. Cancelling the workflow (stop) cancels every child and waits until each has recorded it.
 */

export async function CrewWorkflow(input: CrewWorkflowInput): Promise<CrewResult> {
  const acts = activitiesFor(input.settings);
  const members: Member[] = input.members.map((m) => ({ ...m, capabilities: m.agent.capabilities }));
  const roster = new Roster(members, input.assignment);
  const state = { status: 'idle' as CrewStatus, recorded: false };
  const reports: CrewSubTaskReport[] = [];
  const messageLog: CrewMessage[] = [];
  const seenMessageIds = new Set<string>();
  /** Inbox position per member: messages up to this seq were handed to it already. */
  const delivered = new Map<string, number>();
  const writes: Promise<void>[] = [];
  const runningChildren = new Set<Promise<unknown>>();

  const snapshot = (): CrewLiveState => ({
    crewId: input.crewId,
    status: state.status,
    members: members.map((m) => ({ agentId: m.agentId, role: m.role, ...roster.load(m.agentId) })),
    subTasks: reports.map((r) => ({ ...r, taskIds: [...r.taskIds] })),
    messages: messageLog.length,
  });

  /**
   * Appends a message to the crew's log. The seq is taken here, synchronously, so the log's order is the
   * order the workflow saw the messages; the write runs where a stop cannot cancel it.
   */
  const post = (message: Omit<CrewMessageInput, 'messageId'> & { messageId?: string }): void => {
    const stored: CrewMessage = {
      ...message,
      messageId: message.messageId ?? uuid4(),
      seq: messageLog.length + 1,
      sentAt: new Date().toISOString(),
    };
    seenMessageIds.add(stored.messageId);
    messageLog.push(stored);
    writes.push(
      CancellationScope.nonCancellable(() => acts.recordCrewMessage({ crewId: input.crewId, message: stored })),
    );
  };

  setHandler(getCrewStateQuery, snapshot);
  setHandler(crewStartedUpdate, async () => {
    await condition(() => state.recorded);
    return snapshot();
  });
  // A repeated delivery (same messageId, e.g. a retried API call) is stored once.
  setHandler(crewMessageSignal, (message) => {
    if (!seenMessageIds.has(message.messageId)) post(message);
  });

  const setStatus = async (status: CrewStatus): Promise<void> => {
    state.status = status;
    setCurrentDetails(
      `Crew **${input.name}** (${input.process}) is ${status}: ${reports.filter((r) => r.status === 'completed').length} sub-task(s) done.`,
    );
    await acts.recordCrewStatus({ crewId: input.crewId, status });
  };

  /** Messages for this member (to it, or broadcast by someone else) it has not been handed yet. */
  const inboxFor = (agentId: string): CrewMessage[] => {
    const from = delivered.get(agentId) ?? 0;
    delivered.set(agentId, messageLog.length);
    return messageLog
      .filter((m) => m.seq > from && (m.toAgentId === agentId || (m.toAgentId === null && m.fromAgentId !== agentId)))
      .slice(-INBOX_LIMIT);
  };

  /** One attempt of a sub-task on one member, as a TaskWorkflow child recorded as the member's task. */
  const runOnMember = async (member: Member, spec: SubTaskSpec, attempt: number): Promise<TaskOutcome> => {
    const taskId = uuid4();
    const inbox = inboxFor(member.agentId);
    const goal: Goal = {
      taskId,
      title: spec.title,
      taskType: 'crew',
      input: {
        ...spec.input,
        ...member.input,
        crew: {
          crewId: input.crewId,
          name: input.name,
          goal: input.goal,
          process: input.process,
          role: member.role,
          attempt: attempt + 1,
        },
        ...(inbox.length ? { messages: inbox } : {}),
      },
      priority: member.agent.priority,
      delegationDepth: 0,
      parentTaskId: null,
      submittedAt: new Date().toISOString(),
    };
    roster.started(member.agentId);
    try {
      await acts.recordCrewTask({ crewId: input.crewId, orgId: input.orgId, agentId: member.agentId, goal });
      const child = await startChild(TaskWorkflow, {
        workflowId: taskWorkflowId(taskId),
        args: [{ goal, agent: member.agent, settings: input.settings, startPaused: false }],
        // Stop waits until each child has recorded its cancellation; closing the crew cancels strays.
        cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
        typedSearchAttributes: [
          { key: AgentIdAttr, value: member.agentId },
          { key: AgentNameAttr, value: member.agent.name },
          { key: OrgIdAttr, value: input.orgId },
          { key: TaskIdAttr, value: taskId },
          { key: CrewIdAttr, value: input.crewId },
        ],
        staticSummary: `Crew "${input.name}": ${spec.title} (${member.agent.name}, attempt ${attempt + 1})`,
        staticDetails: `Crew **${input.name}** (${input.crewId}), ${input.process} process, sub-task \`${spec.key}\`.`,
      });
      const result = child.result();
      runningChildren.add(result);
      try {
        return await result;
      } finally {
        runningChildren.delete(result);
      }
    } finally {
      roster.finished(member.agentId);
    }
  };

  /**
   * Runs a sub-task to an end: up to 1 + MAX_RETRIES attempts on each capable member in turn (the first
   * choice, then reassignments by the strategy), and reports what happened.
   */
  const runSubTask = async (spec: SubTaskSpec): Promise<CrewSubTaskReport> => {
    const report: CrewSubTaskReport = {
      key: spec.key,
      title: spec.title,
      status: 'failed',
      agentId: null,
      taskIds: [],
      output: null,
      error: null,
    };
    reports.push(report);
    const among = spec.among ?? members;
    const tried = new Set<string>();
    const pickNext = () => (spec.noReassign ? null : roster.pick(spec.capabilities ?? [], among, tried));
    let member = spec.agentId ? (members.find((m) => m.agentId === spec.agentId) ?? null) : pickNext();
    if (!member) report.error = `no member has the capabilities ${JSON.stringify(spec.capabilities ?? [])}`;
    while (member) {
      tried.add(member.agentId);
      report.agentId = member.agentId;
      if (spec.requestedBy && spec.requestedBy !== member.agentId) {
        post({
          fromAgentId: spec.requestedBy,
          toAgentId: member.agentId,
          type: 'request',
          content: `Please do "${spec.title}".`,
        });
      }
      for (let attempt = 0; attempt <= input.settings.maxRetries; attempt++) {
        const outcome = await runOnMember(member, spec, attempt);
        report.taskIds.push(outcome.taskId);
        if (outcome.status === 'completed') {
          report.status = 'completed';
          report.output = outcome.output;
          report.error = null;
          if (spec.requestedBy && spec.requestedBy !== member.agentId) {
            post({
              fromAgentId: member.agentId,
              toAgentId: spec.requestedBy,
              type: 'response',
              content: answerText(outcome.output),
            });
          }
          return report;
        }
        report.error = outcome.error;
        // Cancelled work was stopped on purpose: neither retried nor reassigned.
        if (outcome.status === 'cancelled') {
          report.status = 'cancelled';
          return report;
        }
      }
      const previous = member;
      member = pickNext();
      post({
        fromAgentId: null,
        toAgentId: null,
        type: 'status_update',
        content: member
          ? `"${spec.title}" failed ${input.settings.maxRetries + 1} time(s) on ${previous.agent.name} (${report.error}); reassigned to ${member.agent.name}.`
          : `"${spec.title}" failed on every member that could take it (${report.error}); going on without it.`,
      });
    }
    return report;
  };

  const skip = (key: string, title: string, error: string): CrewSubTaskReport => {
    const report: CrewSubTaskReport = {
      key,
      title,
      status: 'skipped',
      agentId: null,
      taskIds: [],
      output: null,
      error,
    };
    reports.push(report);
    return report;
  };

  const byRole = (role: string): Member | undefined => members.find((m) => m.role?.toLowerCase() === role);
  const context = Object.keys(input.input).length ? { context: input.input } : {};

  // ---- The processes ----

  /** Each member in crew order; one's output is the next one's input, passed on with a handoff message. */
  const sequential = async (): Promise<unknown> => {
    let previous: unknown = null;
    for (const [i, member] of members.entries()) {
      const title = `${input.goal} (step ${i + 1}/${members.length}${member.role ? `, ${member.role}` : ''})`;
      if (reports.some((r) => r.status !== 'completed')) {
        skip(`step-${i + 1}`, title, 'an earlier step failed');
        continue;
      }
      const report = await runSubTask({
        key: `step-${i + 1}`,
        title,
        agentId: member.agentId,
        input: { goal: input.goal, step: i + 1, steps: members.length, previous, ...context },
      });
      if (report.status !== 'completed') continue;
      previous = report.output;
      const next = members[i + 1];
      if (next)
        post({
          fromAgentId: report.agentId,
          toAgentId: next.agentId,
          type: 'handoff',
          content: answerText(report.output),
        });
    }
    return previous;
  };

  /** Map-reduce: work items (input.items, or a splitter's answer) run in parallel; a reducer aggregates. */
  const parallel = async (): Promise<unknown> => {
    const reducer = byRole('reducer') ?? members[members.length - 1]!;
    const mappers = members.length > 1 ? members.filter((m) => m !== reducer) : members;
    let items = Array.isArray(input.input.items) ? (input.input.items as unknown[]) : null;
    if (!items) {
      const splitter = byRole('splitter') ?? members[0]!;
      const split = await runSubTask({
        key: 'split',
        title: `Split into work items: ${input.goal}`,
        agentId: splitter.agentId,
        input: { goal: input.goal, responseFormat: 'crew_items', instructions: SPLIT_INSTRUCTIONS, ...context },
      });
      items = (split.status === 'completed' && parseItems(answerText(split.output))) || [input.goal];
    }
    const mapItem = (item: unknown, i: number) =>
      runSubTask({
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
        post({ fromAgentId: r.agentId, toAgentId: reducer.agentId, type: 'response', content: answerText(r.output) });
    const reduced = await runSubTask({
      key: 'reduce',
      title: `Combine ${items.length} result(s): ${input.goal}`,
      agentId: reducer.agentId,
      input: { goal: input.goal, results, ...context },
    });
    return reduced.status === 'completed' ? { answer: answerText(reduced.output), results } : { results };
  };

  /** A planner's DAG of sub-tasks; each starts once its dependencies are done, dependents of a failure are skipped. */
  const hierarchical = async (): Promise<unknown> => {
    if (input.plan) return runPlan(null, members, input.plan);
    const planner = byRole('planner') ?? members[0]!;
    const workers = members.length > 1 ? members.filter((m) => m !== planner) : members;
    const roster_ = workers.map((m) => ({
      agentId: m.agentId,
      name: m.agent.name,
      role: m.role,
      capabilities: m.capabilities,
    }));
    const planned = await runSubTask({
      key: 'plan',
      title: `Plan: ${input.goal}`,
      agentId: planner.agentId,
      input: {
        goal: input.goal,
        members: roster_,
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
    return runPlan(planner, workers, plan.nodes);
  };

  /**
   * Runs a plan's DAG on the workers: the planner's, or a ready one given in the input (the meta
   * supervisor's), which needs no planner member. Ready plans are checked and ordered like a planner's.
   */
  const runPlan = async (planner: Member | null, workers: Member[], nodes: PlanNode[]): Promise<unknown> => {
    const plan = planner ? { nodes } : parsePlan(JSON.stringify({ subtasks: nodes }));
    if ('error' in plan) {
      skip('plan', `Plan: ${input.goal}`, `the given plan is not usable: ${plan.error}`);
      return null;
    }
    post({
      fromAgentId: planner?.agentId ?? null,
      toAgentId: null,
      type: 'status_update',
      content: `Plan: ${plan.nodes.map((n) => `${n.id} "${n.title}"${n.dependsOn.length ? ` after ${n.dependsOn.join(', ')}` : ''}`).join('; ')}`,
    });
    await setStatus('running');
    const done = new Map<string, Promise<CrewSubTaskReport>>();
    const run = async (node: PlanNode): Promise<CrewSubTaskReport> => {
      const deps = await Promise.all(node.dependsOn.map((d) => done.get(d)!));
      const failed = deps.filter((d) => d.status !== 'completed').map((d) => d.key);
      if (failed.length)
        return skip(node.id, node.title, `skipped: depends on ${failed.join(', ')}, which did not complete`);
      return runSubTask({
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
  };

  /** Every member votes {decision, confidence}; the confidence-weighted winner, its share and the threshold. */
  const consensus = async (): Promise<unknown> => {
    const ballots = await Promise.all(
      members.map((m) =>
        runSubTask({
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
        post({
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
  };

  const processes = { sequential, parallel, hierarchical, consensus };

  // ---- The crew's run ----
  await setStatus(input.process === 'hierarchical' ? 'planning' : 'running');
  state.recorded = true;
  let output: unknown = null;
  try {
    output = await processes[input.process]();
  } catch (err) {
    if (!isCancellation(err)) throw err;
  }
  const stopped = CancellationScope.current().consideredCancelled;
  const failed = reports
    .filter((r) => r.status !== 'completed')
    .map((r) => ({ key: r.key, title: r.title, error: r.error }));
  const anyCompleted = reports.some((r) => r.status === 'completed');
  const result: CrewResult = {
    status: stopped ? 'stopped' : output !== null && anyCompleted ? 'completed' : 'failed',
    output,
    partial: failed.length > 0,
    failed,
    subTasks: reports,
  };
  // Recording the end must happen even when the crew was stopped; children finish cancelling first.
  await CancellationScope.nonCancellable(async () => {
    await Promise.allSettled([...runningChildren]);
    await Promise.all(writes);
    state.status = result.status;
    setCurrentDetails(
      `Crew **${input.name}** ${result.status}${result.partial ? ` (partial: ${failed.map((f) => f.key).join(', ')} did not complete)` : ''}.`,
    );
    await acts.recordCrewStatus({
      crewId: input.crewId,
      status: result.status,
      result,
      error: failed[0]?.error ?? null,
    });
    await condition(allHandlersFinished);
    // Messages that arrived while the end was being recorded are stored too.
    await Promise.all(writes);
  });
  log.info('crew finished', { crewId: input.crewId, status: result.status, failed: failed.length });
  return result;
}

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
