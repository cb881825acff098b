import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  log,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { GoalScore, ScoreGoalInput } from '../activities/priority';
import type { AgentStateRecord } from '../activities/records';
import { ErrorType } from '../contract/errors';
import { activitiesFor } from './activities';
import {
  activeSlotFreedSignal,
  agentReadyUpdate,
  AgentNameAttr,
  AgentStatusAttr,
  archiveAgentUpdate,
  cancelGoalUpdate,
  decideApprovalSignal,
  decideApprovalUpdate,
  getAgentStateQuery,
  getTaskProgressQuery,
  pauseAgentUpdate,
  resumeAgentUpdate,
  submitGoalUpdate,
  updateAgentConfigUpdate,
  type AgentConfig,
  type AgentConfigPatch,
  type AgentLiveState,
  type AgentRuntimeState,
  type AgentStatus,
  type AgentWorkflowInput,
  type Goal,
  type GoalReceipt,
  type LifecycleRequest,
  type QueuedGoal,
  type SubmitGoalInput,
  type TaskOutcome,
} from '../contract/definitions';
import { AgentReminders } from './reminder';
import { TaskRun, type ActiveSlot } from './task';

/** Failures that mean the agent itself needs an operator; it stops taking goals until resumed. */
const AGENT_ERROR_TYPES: readonly string[] = [ErrorType.ProviderAuth, ErrorType.Configuration];

/** An agent running goal after goal re-confirms its active slot this often (fairness vs. history size). */
const SLOT_RECHECK_MS = 10_000;

/** How often an agent waiting for an active slot asks again on its own when no release wakes it. */
const DEFAULT_SLOT_RECHECK_SECONDS = 60;

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
  /** The goal running now, inline in this workflow. */
  runningTask: TaskRun | null = null;
  runningScope: CancellationScope | null = null;
  /** Goals cancelled between leaving the queue and starting: they end without running. */
  readonly cancelledBeforeStart = new Set<string>();
  /** Whether this agent holds one of the AGENTS_MAX_ACTIVE slots right now. */
  holdsSlot = false;
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

  /** Highest rank first (the AI score, or the static priority × 100 until scored), then static priority, then FIFO. */
  enqueue(goal: Goal): number {
    return this.insert({ ...goal, seq: this.state.nextSeq++ });
  }

  /** Moves a queued goal to where its new score puts it. */
  rescore(taskId: string, score: number): void {
    const goal = this.remove(taskId);
    if (goal) this.insert({ ...goal, score });
  }

  private insert(entry: QueuedGoal): number {
    const queue = this.state.queue;
    let i = queue.findIndex((g) => compareGoals(entry, g) < 0);
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
    return {
      ...(JSON.parse(JSON.stringify(this.state)) as AgentRuntimeState),
      status: this.deriveStatus(),
      agent: this.config,
      historyLength: workflowInfo().historyLength,
    };
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
 * and runs one goal at a time (a TaskRun, in this workflow). Continues as new between goals before its
 * history grows large, carrying its queue and state. Postgres is kept current through activities.
 */
export async function AgentWorkflow(input: AgentWorkflowInput): Promise<AgentLiveState> {
  const agent = new Agent(input);
  const acts = activitiesFor(input.settings);
  const reminders = new AgentReminders(input.agent.id, agent.state.paused);
  agent.state.runs += 1;
  const slotRecheckMs = (input.settings.slotRecheckSeconds ?? DEFAULT_SLOT_RECHECK_SECONDS) * 1000;
  /** Background scorings, cancelled when the agent is archived (archive must not wait for a slow model). */
  const scoringScopes = new Set<CancellationScope>();
  /** Scorings still running (cache lookups among them); the next goal is chosen only once they have landed. */
  let scoring = 0;
  let cacheLookups = 0;
  const scoringTimeoutMs = (input.settings.priorityScoringTimeoutSeconds ?? 10) * 1000;
  /**
   * Lets scores still arriving reorder the queue first, but a steady stream of submissions must not hold
   * the agent back for longer than one scoring may take. Cache lookups are local activities with their own
   * timeout, so waiting for them needs no timer.
   */
  const scoresLanded = async (): Promise<void> => {
    if (cacheLookups > 0) await condition(() => cacheLookups === 0);
    if (scoring > 0) await condition(() => scoring === 0, scoringTimeoutMs);
  };
  const historyTooLong = () =>
    workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > input.settings.historyLimit;
  /** When this agent last had its active slot confirmed; back-to-back goals within SLOT_RECHECK_MS keep it. */
  let slotConfirmedAt = -Infinity;
  /** Set when the agent that released an active slot says this agent is next. */
  let slotFreed = false;
  setHandler(activeSlotFreedSignal, () => void (slotFreed = true));

  /** The AgentStatus search attribute as this run set it: IDLE from the start; unknown after continue-as-new. */
  let searchedStatus: AgentStatus | null = input.carried ? null : 'IDLE';
  /**
   * Publishes a state change: search attribute, Web UI details and the Postgres projection. With
   * `recordLater`, the caller has the row written by an activity it runs next, and gets the row back.
   */
  const publish = async ({ recordLater = false } = {}): Promise<AgentStateRecord> => {
    const status = agent.deriveStatus();
    // Goals run back to back in RUNNING: an unchanged status writes no search attribute (no visibility write).
    if (status !== searchedStatus) upsertSearchAttributes([{ key: AgentStatusAttr, value: status }]);
    searchedStatus = status;
    agent.state.status = status;
    agent.state.stateVersion += 1;
    setCurrentDetails(describe(agent));
    const record: AgentStateRecord = {
      agentId: agent.config.id,
      status,
      currentTaskId: agent.state.current?.taskId ?? null,
      queueLength: agent.state.queue.length,
      stateVersion: agent.state.stateVersion,
      lastActive: agent.state.lastActive,
    };
    if (!recordLater) await acts.syncAgentState(record);
    await reminders.follow(agent.state.paused);
    return record;
  };

  const rejectIfArchived = () => {
    if (agent.archiveRequested) throw new Error('agent is archived');
  };

  setHandler(getAgentStateQuery, () => agent.snapshot());
  setHandler(getTaskProgressQuery, () => {
    if (!agent.runningTask) throw new Error('no task is running on this agent');
    return agent.runningTask.snapshot();
  });

  // Approval decisions for the running goal (crew work takes them in TaskWorkflow).
  const runningTaskFor = (approvalId: string): TaskRun => {
    if (!agent.runningTask) throw new Error(`no pending approval request ${approvalId} on this agent`);
    return agent.runningTask;
  };
  setHandler(decideApprovalUpdate, (request) => runningTaskFor(request.approvalId).applyDecision(request), {
    validator: (request) => runningTaskFor(request.approvalId).checkDecision(request),
  });
  setHandler(decideApprovalSignal, async (request) => {
    if (agent.runningTask) await agent.runningTask.applyDecisionSignal(request);
    else log.warn('approval decision signal ignored: no task is running', { approvalId: request.approvalId });
  });

  setHandler(agentReadyUpdate, async () => {
    await condition(() => agent.recorded);
    return agent.snapshot();
  });

  setHandler(
    submitGoalUpdate,
    async (request) => {
      if (agent.knows(request.taskId)) return agent.receipt(request.taskId);
      const goal = toGoal(request, agent.config.priority);
      const scores = input.settings.priorityScoring;
      const queued = { agentId: agent.config.id, orgId: agent.config.orgId, goal };
      agent.submitting += 1;
      // The cache lookup of the goal's score rides along with its task row: one local activity, not two.
      const { created, status, cachedScore } = await (
        scores
          ? acts.recordTaskQueuedWithCachedScore({ ...queued, scoring: scoreRequest(goal) })
          : acts.recordTaskQueued(queued).then((receipt) => ({ ...receipt, cachedScore: null }))
      ).finally(() => (agent.submitting -= 1));
      // A retried submission (same task id) is answered, not queued twice. A row that is still queued but
      // unknown here was written by an earlier run of this very handler whose workflow task was lost (a local
      // activity runs before its task completes; an update's speculative task leaves no trace): queue it.
      const known = !created && status !== 'queued';
      if (known || agent.knows(goal.taskId) || agent.archiveRequested)
        return { taskId: goal.taskId, status, position: 0 };
      // No publish here: the status does not change, and the queue length reaches Postgres with the
      // next transition. This keeps a burst of submissions from doubling the history.
      const position = agent.enqueue(goal);
      // About to continue as new: the next run scores it (an activity finishing during the continue-as-new
      // would fail that workflow task).
      if (cachedScore) agent.rescore(goal.taskId, cachedScore.score);
      else if (scores && !historyTooLong()) scoreInBackground(goal, { cacheChecked: true });
      return { taskId: goal.taskId, status: 'queued', position };
    },
    {
      validator: (request) => {
        rejectIfArchived();
        if (!request.taskId || !request.title) throw new Error('taskId and title are required');
        // Queued goals live in this workflow's state (and travel through continue-as-new): bounded per agent.
        const max = input.settings.maxQueuedGoals;
        if (max !== undefined && !agent.knows(request.taskId) && agent.state.queue.length + agent.submitting >= max) {
          throw ApplicationFailure.create({
            type: ErrorType.LimitReached,
            message: `agent ${agent.config.id} already has ${max} goals queued (MAX_QUEUED_GOALS_PER_AGENT); try again when some have run`,
          });
        }
      },
    },
  );

  setHandler(
    pauseAgentUpdate,
    // Runs and histories from before LifecycleRequest send no argument: an operator.
    async (request) => {
      if (!agent.state.paused) {
        agent.state.paused = true;
        agent.state.pausedByAgentId = request?.byAgentId ?? null;
        agent.runningTask?.pause();
        await publish();
      } else if (!request?.byAgentId) {
        // An operator pausing an agent an agent paused makes the pause theirs: no agent may lift it now.
        agent.state.pausedByAgentId = null;
      }
      return agent.snapshot();
    },
    { validator: (_request: LifecycleRequest | undefined) => rejectIfArchived() },
  );

  setHandler(
    resumeAgentUpdate,
    async () => {
      if (agent.state.paused || agent.state.errorReason) {
        agent.state.paused = false;
        agent.state.pausedByAgentId = null;
        agent.state.errorReason = null;
        agent.runningTask?.resume();
        await publish();
      }
      return agent.snapshot();
    },
    {
      validator: (request) => {
        rejectIfArchived();
        if (!request?.byAgentId) return;
        // An agent (agent_manager) lifts only what an agent did: not an operator's pause, not an error stop.
        if (agent.state.errorReason)
          throw new Error('it stopped with an error that needs an operator; only an operator can resume it');
        if (agent.state.paused && !agent.state.pausedByAgentId)
          throw new Error('it was paused by an operator; only an operator can resume it');
      },
    },
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
        // Not started yet (its state is being published): the goal ends before it runs anything.
        if (agent.runningScope) agent.runningScope.cancel();
        else agent.cancelledBeforeStart.add(taskId);
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
        if (patch.priority !== undefined && !(patch.priority >= 1 && patch.priority <= 10))
          throw new Error('priority must be 1-10');
      },
    },
  );

  setHandler(
    archiveAgentUpdate,
    async () => {
      agent.archiveRequested = true;
      agent.runningScope?.cancel();
      for (const scope of scoringScopes) scope.cancel();
      await condition(() => agent.archived);
      return agent.snapshot();
    },
    { validator: rejectIfArchived },
  );

  // ---- The agent's life ----
  if (!input.carried) {
    await acts.recordAgent({
      agent: agent.config,
      settings: input.settings,
      status: 'IDLE',
      stateVersion: ++agent.state.stateVersion,
    });
  }
  agent.recorded = true;
  setCurrentDetails(describe(agent));

  // Goals carried over unscored (they arrived while the last run was about to continue as new) are scored now.
  if (input.carried && input.settings.priorityScoring) {
    const unscored = agent.state.queue.filter((goal) => goal.score === undefined);
    const byRef = unscored.filter((goal) => goal.inputInRow);
    const inputs = byRef.length > 0 ? await acts.loadGoalInputs({ taskIds: byRef.map((g) => g.taskId) }) : {};
    for (const goal of unscored)
      scoreInBackground(goal.inputInRow ? { ...goal, input: inputs[goal.taskId] ?? {} } : goal);
  }

  for (;;) {
    await condition(() => agent.archiveRequested || agent.canStartGoal || historyTooLong());
    if (agent.archiveRequested) break;
    await scoresLanded();
    if (historyTooLong()) {
      // Between goals nothing runs; let in-flight updates finish so nothing they did is lost, and scorings
      // land (a completion arriving meanwhile would fail the continue-as-new's workflow task).
      // An archive arriving now is itself an unfinished handler: it ends the wait.
      await condition(() => agent.archiveRequested || (allHandlersFinished() && scoring === 0));
      if (agent.archiveRequested) break;
      if (!agent.state.current) {
        // Queued goals travel by reference: their inputs (up to API_BODY_LIMIT_KB each) stay in their rows.
        const carried = { ...agent.state, queue: agent.state.queue.map(byReference) };
        return await continueAsNew<typeof AgentWorkflow>({ agent: agent.config, settings: input.settings, carried });
      }
    }
    if (agent.canStartGoal && (await takeActiveSlot())) {
      // Goals may have arrived while the slot was taken: let their scores land before choosing.
      await scoresLanded();
      if (!agent.canStartGoal) {
        await releaseActiveSlot();
        continue;
      }
      await runGoal(agent.state.queue.shift()!);
      if (!agent.canStartGoal) await releaseActiveSlot();
    }
  }

  // Archive: cancel what is queued, remove what the agent owns, then finish the workflow. A submission
  // still writing its task row finishes first, so archiving cancels that row too.
  await condition(() => agent.submitting === 0 && scoring === 0);
  await releaseActiveSlot();
  await acts.archiveAgentData({ agentId: agent.config.id, stateVersion: agent.state.stateVersion + 1 });
  await reminders.removeAll();
  agent.state.queue = [];
  agent.archived = true;
  agent.state.status = 'ARCHIVED';
  upsertSearchAttributes([{ key: AgentStatusAttr, value: 'ARCHIVED' }]);
  setCurrentDetails(describe(agent));
  await condition(allHandlersFinished);
  return agent.snapshot();

  /**
   * Waits for one of AGENTS_MAX_ACTIVE slots (shared by every agent of every worker) before the next goal;
   * gives up (false) when the agent is paused, archived, has nothing left to run, or should continue as new.
   */
  async function takeActiveSlot(): Promise<boolean> {
    // Holding the slot from the goal before: ask again (and maybe yield to someone more urgent) only now and then.
    if (Date.now() - slotConfirmedAt < SLOT_RECHECK_MS) return true;
    const wanted = () => !agent.archiveRequested && agent.canStartGoal && !historyTooLong();
    const granted = await waitForSlot(() => rank(agent.state.queue[0]), wanted);
    // Not waiting any more: leave the line, or the place kept there holds back the agents behind.
    if (!granted && !historyTooLong()) await releaseActiveSlot();
    return granted;
  }

  /**
   * Asks for an active slot until it is granted or `wanted` turns false. A refused agent sleeps until the
   * agent that releases a slot wakes it (activeSlotFreedSignal) or a fallback timer fires, so a long wait
   * costs a few events per timer.
   */
  async function waitForSlot(priority: () => number, wanted: () => boolean): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      slotFreed = false;
      const { granted, ahead } = await acts.acquireAgentSlot({ agentId: agent.config.id, priority: priority() });
      if ((agent.state.waitingForSlot ?? false) === granted) {
        // Only the Web UI summary changes; the status stays as it is until the goal starts.
        agent.state.waitingForSlot = !granted;
        setCurrentDetails(
          describe(agent) + (granted ? '' : ` Waiting for an active slot (AGENTS_MAX_ACTIVE), ${ahead} ahead.`),
        );
      }
      if (granted) {
        agent.holdsSlot = true;
        slotConfirmedAt = Date.now();
        return true;
      }
      await condition(() => slotFreed || !wanted(), slotRecheckMs * 2 ** Math.min(attempt, 2));
      if (!wanted()) {
        agent.state.waitingForSlot = false;
        return false;
      }
    }
  }

  /** Gives the active slot back and wakes the agent waiting next for one (it asks again anyway, so a lost wake-up only delays it). */
  async function releaseActiveSlot(): Promise<void> {
    slotConfirmedAt = -Infinity;
    agent.holdsSlot = false;
    // The activity wakes the next waiter itself, skipping agents that are gone.
    await acts.releaseAgentSlot({ agentId: agent.config.id, wakeNext: true });
  }

  /**
   * The running goal's hold on its active slot: given back while it waits (approval, pause, budget) and
   * taken again, by the goal's priority, before it works again. Cancelling the goal ends a wait for it.
   */
  function goalSlot(goal: Goal): ActiveSlot {
    return {
      release: async () => {
        if (agent.holdsSlot) await releaseActiveSlot();
      },
      take: async () => {
        if (!agent.holdsSlot)
          await waitForSlot(
            () => rank(goal),
            () => true,
          );
      },
    };
  }

  /** What scoring a goal needs: the goal, the agent's objective and model, and what the goal unblocks. */
  function scoreRequest(goal: Goal): ScoreGoalInput {
    return {
      taskId: goal.taskId,
      agentId: agent.config.id,
      orgId: agent.config.orgId,
      objective: agent.config.objective,
      title: goal.title,
      input: goal.input,
      staticPriority: goal.priority,
      unblocks: agent.state.queue.filter(
        (g) => Array.isArray(g.input.dependsOn) && g.input.dependsOn.includes(goal.taskId),
      ).length,
      submittedAt: goal.submittedAt,
      provider: agent.config.provider,
      fallbackProviders: agent.config.fallbackProviders ?? [],
      model: agent.config.model,
      agentBudget: agent.config.tokenBudgetPerMinute ?? null,
      timeoutMs: scoringTimeoutMs,
    };
  }

  /**
   * Scores a queued goal with the agent's model in the background; the static priority stands meanwhile.
   * `cacheChecked`: the submission already looked the score up in the cache (and missed).
   */
  function scoreInBackground(goal: Goal, { cacheChecked = false } = {}): void {
    scoring += 1;
    const request = scoreRequest(goal);
    // A cache hit is answered by a local activity in this workflow task; only a miss calls the model.
    const score = () => (cacheChecked ? acts.scoreGoal(request) : cachedOrScored(request));
    const scope = new CancellationScope();
    scoringScopes.add(scope);
    scope
      .run(score)
      .finally(() => scoringScopes.delete(scope))
      .then(
        ({ score }) => agent.rescore(goal.taskId, score),
        (err) =>
          log.warn('priority scoring failed; the static priority stands', { taskId: goal.taskId, error: String(err) }),
      )
      .finally(() => (scoring -= 1));
  }

  async function cachedOrScored(request: ScoreGoalInput): Promise<GoalScore> {
    cacheLookups += 1;
    const hit = await acts.cachedGoalScore(request).finally(() => (cacheLookups -= 1));
    return hit ?? acts.scoreGoal(request);
  }

  async function runGoal(goal: Goal): Promise<void> {
    agent.state.current = goal;
    agent.state.lastActive = new Date().toISOString();
    // The goal's first model call writes the agent's new state (RUNNING, this task) with the task's start.
    const started = await publish({ recordLater: true });
    if (goal.inputInRow) {
      const inputs = await acts.loadGoalInputs({ taskIds: [goal.taskId] });
      goal = { ...goal, input: inputs[goal.taskId] ?? {}, inputInRow: undefined };
      if (agent.state.current?.taskId === goal.taskId) agent.state.current = goal;
    }
    const scope = new CancellationScope();
    agent.runningScope = scope;
    // Cancelled or archived while its state was being published: the goal ends as it is, having run nothing.
    if (agent.archiveRequested || agent.cancelledBeforeStart.delete(goal.taskId)) scope.cancel();
    const taskInput = { goal, agent: agent.config, settings: input.settings, startPaused: agent.state.paused };
    let outcome: TaskOutcome;
    try {
      outcome = await scope.run(() => {
        // A cancelled task records its own end and returns it.
        agent.runningTask = new TaskRun(taskInput, acts, workflowInfo().workflowId, started, goalSlot(goal));
        return agent.runningTask.run();
      });
    } catch (err) {
      if (!isCancellation(err)) throw err;
      outcome = cancelledOutcome(goal.taskId, agent.archiveRequested ? 'agent archived' : undefined);
    }
    agent.runningScope = null;
    agent.runningTask = null;
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

/** A queued goal as it travels through continue-as-new: its input stays in its row, but what orders the queue stays. */
function byReference(goal: QueuedGoal): QueuedGoal {
  if (goal.inputInRow) return goal;
  const { dependsOn } = goal.input;
  return { ...goal, input: dependsOn === undefined ? {} : { dependsOn }, inputInRow: true };
}

/** Queue rank of a goal: its AI score 0-1000, or its static 1-10 priority scaled to match until scored. */
function rank(goal: Goal | undefined): number {
  if (!goal) return 0;
  return goal.score ?? goal.priority * 100;
}

/** Negative when `a` runs before `b`. */
function compareGoals(a: QueuedGoal, b: QueuedGoal): number {
  return rank(b) - rank(a) || b.priority - a.priority || a.seq - b.seq;
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
  return {
    taskId,
    status: 'cancelled',
    output: null,
    error: reason ?? 'cancelled by request',
    errorType: 'Cancelled',
    steps: 0,
  };
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
