import {
  allHandlersFinished,
  CancellationScope,
  ChildWorkflowCancellationType,
  condition,
  continueAsNew,
  isCancellation,
  ParentClosePolicy,
  setCurrentDetails,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
  type ChildWorkflowHandle,
} from '@temporalio/workflow';
import { ErrorType } from '../lib/errors';
import { activitiesFor } from './activities';
import {
  agentReadyUpdate,
  AgentIdAttr,
  AgentNameAttr,
  AgentStatusAttr,
  archiveAgentUpdate,
  cancelGoalUpdate,
  getAgentStateQuery,
  OrgIdAttr,
  pauseAgentUpdate,
  pauseTaskSignal,
  resumeAgentUpdate,
  resumeTaskSignal,
  submitGoalUpdate,
  TaskIdAttr,
  taskWorkflowId,
  updateAgentConfigUpdate,
  type AgentConfig,
  type AgentConfigPatch,
  type AgentLiveState,
  type AgentRuntimeState,
  type AgentStatus,
  type AgentWorkflowInput,
  type Goal,
  type GoalReceipt,
  type QueuedGoal,
  type SubmitGoalInput,
  type TaskOutcome,
} from './definitions';
import { AgentReminders } from './reminder';
import { TaskWorkflow } from './task';

/** Failures that mean the agent itself needs an operator; it stops taking goals until resumed. */
const AGENT_ERROR_TYPES: readonly string[] = [ErrorType.ProviderAuth, ErrorType.Configuration];

/** How many finished task outcomes the agent remembers, to answer a late cancel truthfully. */
const RECENT_OUTCOMES = 100;

/** The agent's state, kept in one place so the workflow below reads like the business process. */
class Agent {
  config: AgentConfig;
  state: AgentRuntimeState;
  recorded = false;
  /** Submissions whose task row is being written; archive waits for them so none is left queued. */
  submitting = 0;
  archiveRequested = false;
  archived = false;
  runningChild: ChildWorkflowHandle<typeof TaskWorkflow> | null = null;
  runningScope: CancellationScope | null = null;
  readonly recentOutcomes = new Map<string, TaskOutcome>();

  constructor(input: AgentWorkflowInput) {
    this.config = input.agent;
    this.state = input.carried ?? {
      status: 'IDLE',
      paused: false,
      errorReason: null,
      queue: [],
      current: null,
      nextSeq: 0,
      stateVersion: 0,
      goalsCompleted: 0,
      goalsFailed: 0,
      goalsCancelled: 0,
      runs: 0,
      lastActive: null,
    };
  }

  get canStartGoal(): boolean {
    return !this.state.paused && this.state.errorReason === null && this.state.queue.length > 0;
  }

  deriveStatus(): AgentStatus {
    if (this.archived) return 'ARCHIVED';
    if (this.state.errorReason) return 'ERROR';
    if (this.state.paused) return 'PAUSED';
    return this.state.current ? 'RUNNING' : 'IDLE';
  }

  knows(taskId: string): boolean {
    return this.state.current?.taskId === taskId || this.state.queue.some((g) => g.taskId === taskId);
  }

  /** Highest priority first; FIFO within a priority. */
  enqueue(goal: Goal): number {
    const entry: QueuedGoal = { ...goal, seq: this.state.nextSeq++ };
    const queue = this.state.queue;
    let i = queue.findIndex((g) => g.priority < entry.priority);
    if (i === -1) i = queue.length;
    queue.splice(i, 0, entry);
    return i + 1;
  }

  remove(taskId: string): QueuedGoal | undefined {
    const i = this.state.queue.findIndex((g) => g.taskId === taskId);
    return i === -1 ? undefined : this.state.queue.splice(i, 1)[0];
  }

  rememberOutcome(outcome: TaskOutcome): void {
    this.recentOutcomes.set(outcome.taskId, outcome);
    if (this.recentOutcomes.size > RECENT_OUTCOMES) {
      this.recentOutcomes.delete(this.recentOutcomes.keys().next().value!);
    }
  }

  snapshot(): AgentLiveState {
    return { ...(JSON.parse(JSON.stringify(this.state)) as AgentRuntimeState), status: this.deriveStatus(), agent: this.config, historyLength: workflowInfo().historyLength };
  }

  receipt(taskId: string): GoalReceipt {
    if (this.state.current?.taskId === taskId) return { taskId, status: 'running', position: 0 };
    const i = this.state.queue.findIndex((g) => g.taskId === taskId);
    if (i >= 0) return { taskId, status: 'queued', position: i + 1 };
    const done = this.recentOutcomes.get(taskId);
    return { taskId, status: done?.status ?? 'queued', position: 0 };
  }
}

/**
 * A long-lived agent: owns its lifecycle (IDLE, RUNNING, PAUSED, ERROR, ARCHIVED) and its goal queue,
 * and runs one goal at a time as a TaskWorkflow child. Continues as new between goals before its
 * history grows large, carrying its queue and state. Postgres is kept current through activities.
 */
export async function AgentWorkflow(input: AgentWorkflowInput): Promise<AgentLiveState> {
  const agent = new Agent(input);
  const acts = activitiesFor(input.settings);
  const reminders = new AgentReminders(input.agent.id, agent.state.paused);
  agent.state.runs += 1;

  /** Publishes a state change: search attribute, Web UI details and the Postgres projection. */
  const publish = async (): Promise<void> => {
    const status = agent.deriveStatus();
    agent.state.status = status;
    agent.state.stateVersion += 1;
    upsertSearchAttributes([{ key: AgentStatusAttr, value: status }]);
    setCurrentDetails(describe(agent));
    await acts.syncAgentState({
      agentId: agent.config.id,
      status,
      currentTaskId: agent.state.current?.taskId ?? null,
      queueLength: agent.state.queue.length,
      stateVersion: agent.state.stateVersion,
      lastActive: agent.state.lastActive,
    });
    await reminders.follow(agent.state.paused);
  };

  const rejectIfArchived = () => {
    if (agent.archiveRequested) throw new Error('agent is archived');
  };

  setHandler(getAgentStateQuery, () => agent.snapshot());

  setHandler(agentReadyUpdate, async () => {
    await condition(() => agent.recorded);
    return agent.snapshot();
  });

  setHandler(
    submitGoalUpdate,
    async (request) => {
      if (agent.knows(request.taskId)) return agent.receipt(request.taskId);
      const goal = toGoal(request, agent.config.priority);
      agent.submitting += 1;
      const { created, status } = await acts
        .recordTaskQueued({ agentId: agent.config.id, orgId: agent.config.orgId, goal })
        .finally(() => (agent.submitting -= 1));
      // A retried submission (same task id) is answered, not queued twice.
      if (!created || agent.knows(goal.taskId) || agent.archiveRequested) return { taskId: goal.taskId, status, position: 0 };
      // No publish here: the status does not change, and the queue length reaches Postgres with the
      // next transition. This keeps a burst of submissions from doubling the history.
      const position = agent.enqueue(goal);
      return { taskId: goal.taskId, status: 'queued', position };
    },
    {
      validator: (request) => {
        rejectIfArchived();
        if (!request.taskId || !request.title) throw new Error('taskId and title are required');
      },
    },
  );

  setHandler(
    pauseAgentUpdate,
    async () => {
      if (!agent.state.paused) {
        agent.state.paused = true;
        await agent.runningChild?.signal(pauseTaskSignal);
        await publish();
      }
      return agent.snapshot();
    },
    { validator: rejectIfArchived },
  );

  setHandler(
    resumeAgentUpdate,
    async () => {
      if (agent.state.paused || agent.state.errorReason) {
        agent.state.paused = false;
        agent.state.errorReason = null;
        await agent.runningChild?.signal(resumeTaskSignal);
        await publish();
      }
      return agent.snapshot();
    },
    { validator: rejectIfArchived },
  );

  setHandler(
    cancelGoalUpdate,
    async ({ taskId, reason }) => {
      const queued = agent.remove(taskId);
      if (queued) {
        const outcome = cancelledOutcome(taskId, reason);
        await acts.finishTask({ outcome, decision: { type: 'escalate', reasoning: outcome.error! } });
        agent.rememberOutcome(outcome);
        agent.state.goalsCancelled += 1;
        await publish();
        return { taskId, status: 'cancelled', position: 0 };
      }
      if (agent.state.current?.taskId === taskId) {
        agent.runningScope?.cancel();
        await condition(() => agent.state.current?.taskId !== taskId);
      }
      return agent.receipt(taskId);
    },
    {
      validator: ({ taskId }) => {
        rejectIfArchived();
        if (!agent.knows(taskId)) throw new Error(`task ${taskId} is not queued or running on this agent`);
      },
    },
  );

  setHandler(
    updateAgentConfigUpdate,
    async (patch) => {
      agent.config = { ...agent.config, ...patch };
      agent.state.stateVersion += 1;
      upsertSearchAttributes([{ key: AgentNameAttr, value: agent.config.name }]);
      await acts.recordAgent({
        agent: agent.config,
        settings: input.settings,
        status: agent.deriveStatus(),
        stateVersion: agent.state.stateVersion,
      });
      return agent.config;
    },
    {
      validator: (patch: AgentConfigPatch) => {
        rejectIfArchived();
        if (patch.priority !== undefined && !(patch.priority >= 1 && patch.priority <= 10)) throw new Error('priority must be 1-10');
      },
    },
  );

  setHandler(
    archiveAgentUpdate,
    async () => {
      agent.archiveRequested = true;
      agent.runningScope?.cancel();
      await condition(() => agent.archived);
      return agent.snapshot();
    },
    { validator: rejectIfArchived },
  );

  // ---- The agent's life ----
  if (!input.carried) {
    await acts.recordAgent({ agent: agent.config, settings: input.settings, status: 'IDLE', stateVersion: ++agent.state.stateVersion });
  }
  agent.recorded = true;
  setCurrentDetails(describe(agent));

  const historyTooLong = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > input.settings.historyLimit;

  for (;;) {
    await condition(() => agent.archiveRequested || agent.canStartGoal || historyTooLong());
    if (agent.archiveRequested) break;
    if (historyTooLong()) {
      // Between goals nothing runs; let in-flight updates finish so nothing they did is lost.
      await condition(allHandlersFinished);
      if (agent.archiveRequested) break;
      if (!agent.state.current) {
        return await continueAsNew<typeof AgentWorkflow>({ agent: agent.config, settings: input.settings, carried: agent.state });
      }
    }
    if (agent.canStartGoal) await runGoal(agent.state.queue.shift()!);
  }

  // Archive: cancel what is queued, remove what the agent owns, then finish the workflow. A submission
  // still writing its task row finishes first, so archiving cancels that row too.
  await condition(() => agent.submitting === 0);
  await acts.archiveAgentData({ agentId: agent.config.id, stateVersion: agent.state.stateVersion + 1 });
  await reminders.removeAll();
  agent.state.queue = [];
  agent.archived = true;
  agent.state.status = 'ARCHIVED';
  upsertSearchAttributes([{ key: AgentStatusAttr, value: 'ARCHIVED' }]);
  setCurrentDetails(describe(agent));
  await condition(allHandlersFinished);
  return agent.snapshot();

  async function runGoal(goal: Goal): Promise<void> {
    agent.state.current = goal;
    agent.state.lastActive = new Date().toISOString();
    await publish();
    const scope = new CancellationScope();
    agent.runningScope = scope;
    let outcome: TaskOutcome;
    try {
      outcome = await scope.run(async () => {
        const child = await startChild(TaskWorkflow, {
          workflowId: taskWorkflowId(goal.taskId),
          args: [{ goal, agent: agent.config, settings: input.settings, startPaused: agent.state.paused }],
          // The child records its own cancellation, so wait for it to finish doing so.
          cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
          parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
          typedSearchAttributes: [
            { key: AgentIdAttr, value: agent.config.id },
            { key: AgentNameAttr, value: agent.config.name },
            { key: OrgIdAttr, value: agent.config.orgId },
            { key: TaskIdAttr, value: goal.taskId },
          ],
          staticSummary: `Task "${goal.title}" of agent ${agent.config.name}`,
          staticDetails: `Agent **${agent.config.name}** (${agent.config.id}), priority ${goal.priority}, delegation depth ${goal.delegationDepth}.`,
        });
        agent.runningChild = child;
        return child.result();
      });
    } catch (err) {
      if (!isCancellation(err)) throw err;
      outcome = cancelledOutcome(goal.taskId, agent.archiveRequested ? 'agent archived' : undefined);
    }
    agent.runningScope = null;
    agent.runningChild = null;
    agent.rememberOutcome(outcome);
    if (outcome.status === 'completed') agent.state.goalsCompleted += 1;
    else if (outcome.status === 'failed') agent.state.goalsFailed += 1;
    else agent.state.goalsCancelled += 1;
    if (outcome.status === 'failed' && outcome.errorType && AGENT_ERROR_TYPES.includes(outcome.errorType)) {
      agent.state.errorReason = outcome.error;
    }
    agent.state.current = null;
    agent.state.lastActive = new Date().toISOString();
    // When the next goal starts right away, its own publish (RUNNING) covers this transition.
    if (!agent.archiveRequested && !agent.canStartGoal) await publish();
  }
}

function toGoal(request: SubmitGoalInput, defaultPriority: number): Goal {
  return {
    taskId: request.taskId,
    title: request.title,
    taskType: request.taskType ?? 'general',
    input: request.input ?? {},
    priority: request.priority ?? defaultPriority,
    delegationDepth: request.delegationDepth ?? 0,
    parentTaskId: request.parentTaskId ?? null,
    submittedAt: new Date().toISOString(),
  };
}

function cancelledOutcome(taskId: string, reason?: string): TaskOutcome {
  return { taskId, status: 'cancelled', output: null, error: reason ?? 'cancelled by request', errorType: 'Cancelled', steps: 0 };
}

function describe(agent: Agent): string {
  const s = agent.state;
  const queued = `${s.queue.length} goal(s) queued`;
  switch (agent.deriveStatus()) {
    case 'ARCHIVED':
      return `**${agent.config.name}** is archived.`;
    case 'ERROR':
      return `**${agent.config.name}** needs attention: ${s.errorReason}. Resume to continue; ${queued}.`;
    case 'PAUSED':
      return `**${agent.config.name}** is paused${s.current ? ` during "${s.current.title}"` : ''}; ${queued}.`;
    case 'RUNNING':
      return `**${agent.config.name}** is working on "${s.current?.title}" (task ${s.current?.taskId}); ${queued}.`;
    default:
      return `**${agent.config.name}** is idle, waiting for goals. ${s.goalsCompleted} completed so far.`;
  }
}
