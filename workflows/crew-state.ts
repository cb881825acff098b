import {
  allHandlersFinished,
  CancellationScope,
  ChildWorkflowCancellationType,
  condition,
  ParentClosePolicy,
  setCurrentDetails,
  startChild,
  uuid4,
} from '@temporalio/workflow';
import { activitiesFor } from './activities';
import { answerText, Roster } from '../contract/crew-plan';
import {
  AgentIdAttr,
  AgentNameAttr,
  CrewIdAttr,
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

export type Member = CrewMember & { agent: AgentConfig; capabilities: string[] };

/** One piece of member work, as a process asks for it. */
export interface SubTaskSpec {
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
 * One run of a CrewWorkflow: the crew's state (status, sub-task reports, message log, children in
 * flight), its message handlers, and how a piece of member work is run, retried and reassigned. The
 * workflow function registers the handlers and runs the crew's process.
 */
export class Crew {
  readonly members: Member[];
  /** The crew-wide input as member work receives it. */
  readonly context: { context?: Record<string, unknown> };
  status: CrewStatus = 'idle';
  recorded = false;
  readonly reports: CrewSubTaskReport[] = [];
  private readonly acts: ReturnType<typeof activitiesFor>;
  private readonly roster: Roster<Member>;
  private readonly messageLog: CrewMessage[] = [];
  private readonly seenMessageIds = new Set<string>();
  /** Inbox position per member: messages up to this seq were handed to it already. */
  private readonly delivered = new Map<string, number>();
  private readonly writes: Promise<void>[] = [];
  private readonly runningChildren = new Set<Promise<unknown>>();

  constructor(readonly input: CrewWorkflowInput) {
    this.acts = activitiesFor(input.settings);
    this.members = input.members.map((m) => ({ ...m, capabilities: m.agent.capabilities }));
    this.roster = new Roster(this.members, input.assignment);
    this.context = Object.keys(input.input).length ? { context: input.input } : {};
  }

  // ---- Message handlers ----

  snapshot(): CrewLiveState {
    return {
      crewId: this.input.crewId,
      status: this.status,
      members: this.members.map((m) => ({ agentId: m.agentId, role: m.role, ...this.roster.load(m.agentId) })),
      subTasks: this.reports.map((r) => ({ ...r, taskIds: [...r.taskIds] })),
      messages: this.messageLog.length,
    };
  }

  async started(): Promise<CrewLiveState> {
    await condition(() => this.recorded);
    return this.snapshot();
  }

  /** A repeated delivery (same messageId, e.g. a retried API call) is stored once. */
  receiveMessage(message: CrewMessageInput): void {
    if (!this.seenMessageIds.has(message.messageId)) this.post(message);
  }

  // ---- Messages and status ----

  /**
   * Appends a message to the crew's log. The seq is taken here, synchronously, so the log's order is the
   * order the workflow saw the messages; the write runs where a stop cannot cancel it.
   */
  post(message: Omit<CrewMessageInput, 'messageId'> & { messageId?: string }): void {
    const stored: CrewMessage = {
      ...message,
      messageId: message.messageId ?? uuid4(),
      seq: this.messageLog.length + 1,
      sentAt: new Date().toISOString(),
    };
    this.seenMessageIds.add(stored.messageId);
    this.messageLog.push(stored);
    this.writes.push(
      CancellationScope.nonCancellable(() =>
        this.acts.recordCrewMessage({ crewId: this.input.crewId, message: stored }),
      ),
    );
  }

  async setStatus(status: CrewStatus): Promise<void> {
    this.status = status;
    setCurrentDetails(
      `Crew **${this.input.name}** (${this.input.process}) is ${status}: ${this.reports.filter((r) => r.status === 'completed').length} sub-task(s) done.`,
    );
    await this.acts.recordCrewStatus({ crewId: this.input.crewId, status });
  }

  /** Messages for this member (to it, or broadcast by someone else) it has not been handed yet. */
  private inboxFor(agentId: string): CrewMessage[] {
    const from = this.delivered.get(agentId) ?? 0;
    this.delivered.set(agentId, this.messageLog.length);
    return this.messageLog
      .filter((m) => m.seq > from && (m.toAgentId === agentId || (m.toAgentId === null && m.fromAgentId !== agentId)))
      .slice(-INBOX_LIMIT);
  }

  // ---- Member work ----

  byRole(role: string): Member | undefined {
    return this.members.find((m) => m.role?.toLowerCase() === role);
  }

  /** One attempt of a sub-task on one member, as a TaskWorkflow child recorded as the member's task. */
  private async runOnMember(member: Member, spec: SubTaskSpec, attempt: number): Promise<TaskOutcome> {
    const input = this.input;
    const taskId = uuid4();
    const inbox = this.inboxFor(member.agentId);
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
      delegationDepth: input.delegatedBy ? input.delegatedBy.delegationDepth + 1 : 0,
      parentTaskId: input.delegatedBy?.taskId ?? null,
      submittedAt: new Date().toISOString(),
    };
    this.roster.started(member.agentId);
    try {
      await this.acts.recordCrewTask({ crewId: input.crewId, orgId: input.orgId, agentId: member.agentId, goal });
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
      this.runningChildren.add(result);
      try {
        return await result;
      } finally {
        this.runningChildren.delete(result);
      }
    } finally {
      this.roster.finished(member.agentId);
    }
  }

  /**
   * Runs a sub-task to an end: up to 1 + MAX_RETRIES attempts on each capable member in turn (the first
   * choice, then reassignments by the strategy), and reports what happened.
   */
  async runSubTask(spec: SubTaskSpec): Promise<CrewSubTaskReport> {
    const report: CrewSubTaskReport = {
      key: spec.key,
      title: spec.title,
      status: 'failed',
      agentId: null,
      taskIds: [],
      output: null,
      error: null,
    };
    this.reports.push(report);
    const maxRetries = this.input.settings.maxRetries;
    const among = spec.among ?? this.members;
    const tried = new Set<string>();
    const pickNext = () => (spec.noReassign ? null : this.roster.pick(spec.capabilities ?? [], among, tried));
    let member = spec.agentId ? (this.members.find((m) => m.agentId === spec.agentId) ?? null) : pickNext();
    if (!member) report.error = `no member has the capabilities ${JSON.stringify(spec.capabilities ?? [])}`;
    while (member) {
      tried.add(member.agentId);
      report.agentId = member.agentId;
      if (spec.requestedBy && spec.requestedBy !== member.agentId) {
        this.post({
          fromAgentId: spec.requestedBy,
          toAgentId: member.agentId,
          type: 'request',
          content: `Please do "${spec.title}".`,
        });
      }
      for (let attempt = 0; attempt <= maxRetries; attempt++) {
        const outcome = await this.runOnMember(member, spec, attempt);
        report.taskIds.push(outcome.taskId);
        if (outcome.status === 'completed') {
          report.status = 'completed';
          report.output = outcome.output;
          report.error = null;
          if (spec.requestedBy && spec.requestedBy !== member.agentId) {
            this.post({
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
      this.post({
        fromAgentId: null,
        toAgentId: null,
        type: 'status_update',
        content: member
          ? `"${spec.title}" failed ${maxRetries + 1} time(s) on ${previous.agent.name} (${report.error}); reassigned to ${member.agent.name}.`
          : `"${spec.title}" failed on every member that could take it (${report.error}); going on without it.`,
      });
    }
    return report;
  }

  /** Reports a sub-task that does not run (its dependencies or an earlier step failed). */
  skip(key: string, title: string, error: string): CrewSubTaskReport {
    const report: CrewSubTaskReport = {
      key,
      title,
      status: 'skipped',
      agentId: null,
      taskIds: [],
      output: null,
      error,
    };
    this.reports.push(report);
    return report;
  }

  // ---- The end ----

  /** The crew's result from its process's output: stopped, completed (an output and some work done) or failed. */
  result(output: unknown, stopped: boolean): CrewResult {
    const failed = this.reports
      .filter((r) => r.status !== 'completed')
      .map((r) => ({ key: r.key, title: r.title, error: r.error }));
    const anyCompleted = this.reports.some((r) => r.status === 'completed');
    return {
      status: stopped ? 'stopped' : output !== null && anyCompleted ? 'completed' : 'failed',
      output,
      partial: failed.length > 0,
      failed,
      subTasks: this.reports,
    };
  }

  /**
   * Records the crew's end once every child has finished (cancelling, when stopped) and every message
   * is written. Runs in a non-cancellable scope: a stopped crew records its end too.
   */
  async recordEnd(result: CrewResult): Promise<void> {
    await Promise.allSettled([...this.runningChildren]);
    await Promise.all(this.writes);
    this.status = result.status;
    setCurrentDetails(
      `Crew **${this.input.name}** ${result.status}${result.partial ? ` (partial: ${result.failed.map((f) => f.key).join(', ')} did not complete)` : ''}.`,
    );
    await this.acts.recordCrewStatus({
      crewId: this.input.crewId,
      status: result.status,
      result,
      error: result.failed[0]?.error ?? null,
    });
    await condition(allHandlersFinished);
    // Messages that arrived while the end was being recorded are stored too.
    await Promise.all(this.writes);
  }
}
