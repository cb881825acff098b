import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  patched,
  setCurrentDetails,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { GoalScore, ScoreGoalInput } from '../activities/priority';
import type { AgentStateRecord } from '../activities/records';
import { ErrorType } from '../contract/errors';
import { activitiesFor } from './activities';
import {
  AgentNameAttr,
  AgentStatusAttr,
  type AgentConfig,
  type AgentConfigPatch,
  type AgentLiveState,
  type AgentRuntimeState,
  type AgentSettings,
  type AgentStatus,
  type AgentWorkflowInput,
  type ApprovalDecisionInput,
  type ApprovalOutcome,
  type Goal,
  type GoalReceipt,
  type InboxMessage,
  type LifecycleRequest,
  type QueuedGoal,
  type SubmitGoalInput,
  type TaskOutcome,
  type TaskProgress,
} from '../contract/definitions';
import { AgentReminders } from './reminder';
import { approvalNotPending, TaskRun, type ActiveSlot, type Mailbox } from './task';

/** Failures that mean the agent itself needs an operator; it stops taking goals until resumed. */
const AGENT_ERROR_TYPES: readonly string[] = [ErrorType.ProviderAuth, ErrorType.Configuration];

/** An agent running goal after goal re-confirms its active slot this often (fairness vs. history size). */
const SLOT_RECHECK_MS = 10_000;

/** How often an agent waiting for an active slot asks again on its own when no release wakes it. */
const DEFAULT_SLOT_RECHECK_SECONDS = 60;

/** The idle limit of runs started before AGENT_IDLE_HISTORY_LIMIT existed (its default). */
const DEFAULT_IDLE_HISTORY_LIMIT = 100;

/** How many finished task outcomes the agent remembers, to answer a late cancel truthfully. */
const RECENT_OUTCOMES = 100;

/** Unread messages an agent holds; the oldest go first (they stay in their rows, marked delivered). */
const INBOX_LIMIT = 50;

/** Message ids a run remembers having received, so a delivery sent again is not shown twice. */
const DELIVERED_IDS_LIMIT = 500;

/** Requests answered lately that await_response may still ask about. */
const REPLIES_SEEN_LIMIT = 100;

/** How many unread messages the agent's Web UI details list. */
const UNREAD_SHOWN = 3;

/** Patch (workflows/patches.ts): only goals that wait are scored by the model, not one the agent starts at once. */
const SCORE_WAITING_GOALS_PATCH = 'score-waiting-goals';

/**
 * One run of an AgentWorkflow: the agent's state (queue, lifecycle flags, counters), its message handlers
 * and validators, and the steps the workflow takes (publish a change, take an active slot, run a goal,
 * archive). The workflow function registers the handlers and runs the goal loop.
 */
export class Agent {
  config: AgentConfig;
  state: AgentRuntimeState;
  readonly settings: AgentSettings;
  private readonly acts: ReturnType<typeof activitiesFor>;
  private readonly reminders: AgentReminders;
  recorded = false;
  /** Submissions whose task row is being written; archive waits for them so none is left queued. */
  private submitting = 0;
  archiveRequested = false;
  private archived = false;
  /** The goal running now, inline in this workflow. */
  private runningTask: TaskRun | null = null;
  private runningScope: CancellationScope | null = null;
  /** Goals cancelled between leaving the queue and starting: they end without running. */
  private readonly cancelledBeforeStart = new Set<string>();
  /** Whether this agent holds one of the AGENTS_MAX_ACTIVE slots right now. */
  private holdsSlot = false;
  private readonly recentOutcomes = new Map<string, TaskOutcome>();
  private readonly slotRecheckMs: number;
  /** When this agent last had its active slot confirmed; back-to-back goals within SLOT_RECHECK_MS keep it. */
  private slotConfirmedAt = -Infinity;
  /** Set when the agent that released an active slot says this agent is next. */
  private slotFreed = false;
  /** Background scorings, cancelled when the agent is archived (archive must not wait for a slow model). */
  private readonly scoringScopes = new Set<CancellationScope>();
  /** Scorings still running (cache lookups among them); the next goal is chosen only once they have landed. */
  scoring = 0;
  /** Queued goals whose scoring was started in this run (scoreWaitingGoals): none is scored twice. */
  private readonly scoringAsked = new Set<string>();
  private cacheLookups = 0;
  private readonly scoringTimeoutMs: number;
  /** The AgentStatus search attribute as this run set it: IDLE from the start; unknown after continue-as-new. */
  private searchedStatus: AgentStatus | null;
  /** Messages this run received (see DELIVERED_IDS_LIMIT). */
  private readonly deliveredIds = new Set<string>();

  constructor(input: AgentWorkflowInput) {
    this.config = input.agent;
    this.settings = input.settings;
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
    this.acts = activitiesFor(input.settings);
    this.reminders = new AgentReminders(input.agent.id, this.state.paused);
    this.state.runs += 1;
    this.slotRecheckMs = (input.settings.slotRecheckSeconds ?? DEFAULT_SLOT_RECHECK_SECONDS) * 1000;
    this.scoringTimeoutMs = (input.settings.priorityScoringTimeoutSeconds ?? 10) * 1000;
    this.searchedStatus = input.carried ? null : 'IDLE';
  }

  // ---- What the agent is ----

  get canStartGoal(): boolean {
    return !this.state.paused && this.state.errorReason === null && this.state.queue.length > 0;
  }

  historyTooLong(): boolean {
    return workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > this.settings.historyLimit;
  }

  /**
   * Nothing running or queued, and a history past the idle limit: worth continuing as new now, so that an agent
   * evicted from the worker's cache while it waits replays a few events, not its whole past.
   */
  idleHistoryLong(): boolean {
    // Above historyLimit, historyTooLong() ends the wait anyway: no need to cap the idle limit here.
    const limit = this.settings.idleHistoryLimit ?? DEFAULT_IDLE_HISTORY_LIMIT;
    return !this.state.current && this.state.queue.length === 0 && workflowInfo().historyLength > limit;
  }

  private deriveStatus(): AgentStatus {
    if (this.archived) return 'ARCHIVED';
    if (this.state.errorReason) return 'ERROR';
    if (this.state.paused) return 'PAUSED';
    return this.state.current ? 'RUNNING' : 'IDLE';
  }

  private knows(taskId: string): boolean {
    return this.state.current?.taskId === taskId || this.state.queue.some((g) => g.taskId === taskId);
  }

  snapshot(): AgentLiveState {
    return {
      ...(JSON.parse(JSON.stringify(this.state)) as AgentRuntimeState),
      status: this.deriveStatus(),
      agent: this.config,
      historyLength: workflowInfo().historyLength,
      unreadMessages: this.state.inbox?.length ?? 0,
    };
  }

  private receipt(taskId: string): GoalReceipt {
    if (this.state.current?.taskId === taskId) return { taskId, status: 'running', position: 0 };
    const i = this.state.queue.findIndex((g) => g.taskId === taskId);
    if (i >= 0) return { taskId, status: 'queued', position: i + 1 };
    const done = this.recentOutcomes.get(taskId);
    return { taskId, status: done?.status ?? 'queued', position: 0 };
  }

  /** The Web UI summary of the agent (with `note` after its status), then its latest unread messages. */
  private describe(note = ''): string {
    const inbox = this.state.inbox ?? [];
    if (inbox.length === 0) return this.describeStatus() + note;
    const latest = inbox.slice(-UNREAD_SHOWN).map((m) => {
      const from = m.fromAgentId ? `agent ${m.fromAgentId}` : 'the orchestrator';
      const text = m.summary.length > 120 ? `${m.summary.slice(0, 119)}…` : m.summary;
      return `\n- ${m.type} from ${from}: ${text}`;
    });
    const heading = inbox.length > UNREAD_SHOWN ? `, the latest ${UNREAD_SHOWN}` : '';
    return `${this.describeStatus()}${note}\n\n**${inbox.length} unread message(s)**${heading}:${latest.join('')}`;
  }

  private describeStatus(): string {
    const s = this.state;
    const name = this.config.name;
    const queued = `${s.queue.length} goal(s) queued`;
    switch (this.deriveStatus()) {
      case 'ARCHIVED':
        return `**${name}** is archived.`;
      case 'ERROR':
        return `**${name}** needs attention: ${s.errorReason}. Resume to continue; ${queued}.`;
      case 'PAUSED':
        return `**${name}** is paused${s.current ? ` during "${s.current.title}"` : ''}; ${queued}.`;
      case 'RUNNING':
        return `**${name}** is working on "${s.current?.title}" (task ${s.current?.taskId}); ${queued}.`;
      default:
        return `**${name}** is idle, waiting for goals. ${s.goalsCompleted} completed so far.`;
    }
  }

  // ---- The queue ----

  /** Highest rank first (the AI score, or the static priority × 100 until scored), then static priority, then FIFO. */
  private enqueue(goal: Goal): number {
    return this.insert({ ...goal, seq: this.state.nextSeq++ });
  }

  /** Moves a queued goal to where its new score puts it. */
  private rescore(taskId: string, score: number): void {
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

  private remove(taskId: string): QueuedGoal | undefined {
    const i = this.state.queue.findIndex((g) => g.taskId === taskId);
    return i === -1 ? undefined : this.state.queue.splice(i, 1)[0];
  }

  private rememberOutcome(outcome: TaskOutcome): void {
    this.recentOutcomes.set(outcome.taskId, outcome);
    if (this.recentOutcomes.size > RECENT_OUTCOMES) {
      this.recentOutcomes.delete(this.recentOutcomes.keys().next().value!);
    }
  }

  /** The state the next run starts from. Queued goals travel by reference: their inputs (up to API_BODY_LIMIT_KB each) stay in their rows. */
  carriedState(): AgentRuntimeState {
    return { ...this.state, queue: this.state.queue.map(byReference) };
  }

  // ---- Message handlers and their validators ----

  /** A step slot or budget was freed: the running goal's step, if it sleeps for admission, asks again. */
  noteAdmissionFreed(): void {
    this.runningTask?.noteAdmissionFreed();
  }

  noteSlotFreed(): void {
    this.slotFreed = true;
  }

  taskProgress(): TaskProgress {
    if (!this.runningTask) throw new Error('no task is running on this agent');
    return this.runningTask.snapshot();
  }

  // Approval decisions for the running goal (crew work takes them in TaskWorkflow).
  private runningTaskFor(approvalId: string): TaskRun {
    if (!this.runningTask) throw approvalNotPending(approvalId, 'agent');
    return this.runningTask;
  }

  validateApprovalDecision(request: ApprovalDecisionInput): void {
    this.runningTaskFor(request.approvalId).checkDecision(request);
  }

  decideApproval(request: ApprovalDecisionInput): Promise<ApprovalOutcome> {
    return this.runningTaskFor(request.approvalId).applyDecision(request);
  }

  async decideApprovalBySignal(request: ApprovalDecisionInput): Promise<void> {
    if (this.runningTask) await this.runningTask.applyDecisionSignal(request);
    else log.warn('approval decision signal ignored: no task is running', { approvalId: request.approvalId });
  }

  /** A message from another agent joins the inbox, once per message id; the oldest go when it is full. */
  receiveMessage(message: InboxMessage): void {
    const inbox = (this.state.inbox ??= []);
    if (this.deliveredIds.has(message.messageId)) return;
    this.deliveredIds.add(message.messageId);
    if (this.deliveredIds.size > DELIVERED_IDS_LIMIT)
      this.deliveredIds.delete(this.deliveredIds.values().next().value!);
    inbox.push(message);
    if (inbox.length > INBOX_LIMIT) inbox.splice(0, inbox.length - INBOX_LIMIT);
    if (message.type === 'response' && message.replyTo) {
      const seen = (this.state.repliesSeen ??= []);
      seen.push(message.replyTo);
      if (seen.length > REPLIES_SEEN_LIMIT) seen.splice(0, seen.length - REPLIES_SEEN_LIMIT);
    }
    setCurrentDetails(this.describe());
  }

  /** The inbox as the running goal reads it: shown to the next model call, then removed. */
  private mailbox(): Mailbox {
    return {
      unread: () => [...(this.state.inbox ?? [])],
      remove: (ids) => {
        this.state.inbox = (this.state.inbox ?? []).filter((m) => !ids.includes(m.messageId));
        setCurrentDetails(this.describe());
      },
      replied: (requestId) => this.state.repliesSeen?.includes(requestId) ?? false,
    };
  }

  async ready(): Promise<AgentLiveState> {
    await condition(() => this.recorded);
    return this.snapshot();
  }

  rejectIfArchived(): void {
    if (this.archiveRequested) throw new Error('agent is archived');
  }

  validateSubmitGoal(request: SubmitGoalInput): void {
    this.rejectIfArchived();
    if (!request.taskId || !request.title) throw new Error('taskId and title are required');
    if (request.orgId !== undefined && request.orgId !== this.config.orgId)
      throw new Error(`the goal names organisation ${request.orgId}; agent ${this.config.id} belongs to another`);
    // Queued goals live in this workflow's state (and travel through continue-as-new): bounded per agent.
    const max = this.settings.maxQueuedGoals;
    if (max !== undefined && !this.knows(request.taskId) && this.state.queue.length + this.submitting >= max) {
      throw ApplicationFailure.create({
        type: ErrorType.LimitReached,
        message: `agent ${this.config.id} already has ${max} goals queued (MAX_QUEUED_GOALS_PER_AGENT); try again when some have run`,
      });
    }
  }

  async submitGoal(request: SubmitGoalInput): Promise<GoalReceipt> {
    if (this.knows(request.taskId)) return this.receipt(request.taskId);
    const goal = toGoal(request, this.config.priority);
    const scores = this.settings.priorityScoring;
    const queued = { agentId: this.config.id, orgId: this.config.orgId, goal };
    this.submitting += 1;
    // The cache lookup of the goal's score rides along with its task row: one local activity, not two.
    const { created, status, cachedScore } = await (
      scores
        ? this.acts.recordTaskQueuedWithCachedScore({ ...queued, scoring: this.scoreRequest(goal) })
        : this.acts.recordTaskQueued(queued).then((receipt) => ({ ...receipt, cachedScore: null }))
    ).finally(() => (this.submitting -= 1));
    // A retried submission (same task id) is answered, not queued twice. A row that is still queued but
    // unknown here was written by an earlier run of this very handler whose workflow task was lost (a local
    // activity runs before its task completes; an update's speculative task leaves no trace): queue it.
    const known = !created && status !== 'queued';
    if (known || this.knows(goal.taskId) || this.archiveRequested) return { taskId: goal.taskId, status, position: 0 };
    // No publish here: the status does not change, and the queue length reaches Postgres with the
    // next transition. This keeps a burst of submissions from doubling the history.
    const position = this.enqueue(goal);
    if (cachedScore) this.rescore(goal.taskId, cachedScore.score);
    // About to continue as new: the next run scores what waits (an activity finishing during the
    // continue-as-new would fail that workflow task).
    if (scores && !this.historyTooLong()) {
      // Even a goal with a cached score can make one queued before it wait: that one is scored now.
      if (patched(SCORE_WAITING_GOALS_PATCH)) this.scoreWaitingGoals();
      else if (!cachedScore) this.scoreInBackground(goal, { cacheChecked: true });
    }
    return { taskId: goal.taskId, status: 'queued', position };
  }

  /** Pauses the agent and its running goal. Runs and histories from before LifecycleRequest send no argument: an operator. */
  async pause(request: LifecycleRequest | undefined): Promise<AgentLiveState> {
    if (!this.state.paused) {
      this.state.paused = true;
      this.state.pausedByAgentId = request?.byAgentId ?? null;
      this.runningTask?.pause();
      await this.publish();
    } else if (!request?.byAgentId) {
      // An operator pausing an agent an agent paused makes the pause theirs: no agent may lift it now.
      this.state.pausedByAgentId = null;
    }
    return this.snapshot();
  }

  validateResume(request: LifecycleRequest | undefined): void {
    this.rejectIfArchived();
    if (!request?.byAgentId) return;
    // An agent (agent_manager) lifts only what an agent did: not an operator's pause, not an error stop.
    if (this.state.errorReason)
      throw new Error('it stopped with an error that needs an operator; only an operator can resume it');
    if (this.state.paused && !this.state.pausedByAgentId)
      throw new Error('it was paused by an operator; only an operator can resume it');
  }

  async resume(): Promise<AgentLiveState> {
    if (this.state.paused || this.state.errorReason) {
      this.state.paused = false;
      this.state.pausedByAgentId = null;
      this.state.errorReason = null;
      this.runningTask?.resume();
      await this.publish();
    }
    return this.snapshot();
  }

  validateCancelGoal({ taskId }: { taskId: string }): void {
    this.rejectIfArchived();
    if (!this.knows(taskId)) throw new Error(`task ${taskId} is not queued or running on this agent`);
  }

  async cancelGoal({ taskId, reason }: { taskId: string; reason?: string }): Promise<GoalReceipt> {
    const queued = this.remove(taskId);
    if (queued) {
      const outcome = cancelledOutcome(taskId, reason);
      await this.acts.finishTask({ outcome, decision: { type: 'escalate', reasoning: outcome.error! } });
      this.rememberOutcome(outcome);
      this.state.goalsCancelled += 1;
      await this.publish();
      return { taskId, status: 'cancelled', position: 0 };
    }
    if (this.state.current?.taskId === taskId) {
      // Not started yet (its state is being published): the goal ends before it runs anything.
      if (this.runningScope) this.runningScope.cancel();
      else this.cancelledBeforeStart.add(taskId);
      await condition(() => this.state.current?.taskId !== taskId);
    }
    return this.receipt(taskId);
  }

  validateConfigPatch(patch: AgentConfigPatch): void {
    this.rejectIfArchived();
    if (patch.priority !== undefined && !(patch.priority >= 1 && patch.priority <= 10))
      throw new Error('priority must be 1-10');
  }

  async updateConfig(patch: AgentConfigPatch): Promise<AgentConfig> {
    this.config = { ...this.config, ...patch };
    this.state.stateVersion += 1;
    upsertSearchAttributes([{ key: AgentNameAttr, value: this.config.name }]);
    await this.acts.recordAgent({
      agent: this.config,
      settings: this.settings,
      status: this.deriveStatus(),
      stateVersion: this.state.stateVersion,
    });
    return this.config;
  }

  /** Stops the agent: the running goal and background scorings are cancelled; the goal loop archives. */
  async requestArchive(): Promise<AgentLiveState> {
    this.archiveRequested = true;
    this.runningScope?.cancel();
    for (const scope of this.scoringScopes) scope.cancel();
    await condition(() => this.archived);
    return this.snapshot();
  }

  // ---- Start and end ----

  /** Writes a new agent's row; an agent continued as new has one already. */
  recordNew(): Promise<void> {
    return this.acts.recordAgent({
      agent: this.config,
      settings: this.settings,
      status: 'IDLE',
      stateVersion: ++this.state.stateVersion,
    });
  }

  markRecorded(): void {
    this.recorded = true;
    setCurrentDetails(this.describe());
  }

  /** Goals carried over unscored (they arrived while the last run was about to continue as new) are scored now. */
  async scoreCarriedGoals(): Promise<void> {
    const unscored = this.state.queue.filter((goal) => goal.score === undefined);
    const byRef = unscored.filter((goal) => goal.inputInRow);
    const inputs = byRef.length > 0 ? await this.acts.loadGoalInputs({ taskIds: byRef.map((g) => g.taskId) }) : {};
    for (const goal of unscored)
      this.scoreInBackground(goal.inputInRow ? { ...goal, input: inputs[goal.taskId] ?? {} } : goal);
  }

  /**
   * Archive: cancel what is queued, remove what the agent owns. A submission still writing its task row
   * finishes first, so archiving cancels that row too.
   */
  async archive(): Promise<void> {
    await condition(() => this.submitting === 0 && this.scoring === 0);
    await this.releaseActiveSlot();
    await this.acts.archiveAgentData({ agentId: this.config.id, stateVersion: this.state.stateVersion + 1 });
    await this.reminders.removeAll();
    this.state.queue = [];
    this.archived = true;
    this.state.status = 'ARCHIVED';
    upsertSearchAttributes([{ key: AgentStatusAttr, value: 'ARCHIVED' }]);
    setCurrentDetails(this.describe());
  }

  // ---- Publishing a change ----

  /**
   * Publishes a state change: search attribute, Web UI details and the Postgres projection. With
   * `recordLater`, the caller has the row written by an activity it runs next, and gets the row back.
   */
  private async publish({ recordLater = false } = {}): Promise<AgentStateRecord> {
    const status = this.deriveStatus();
    // Goals run back to back in RUNNING: an unchanged status writes no search attribute (no visibility write).
    if (status !== this.searchedStatus) upsertSearchAttributes([{ key: AgentStatusAttr, value: status }]);
    this.searchedStatus = status;
    this.state.status = status;
    this.state.stateVersion += 1;
    setCurrentDetails(this.describe());
    const record: AgentStateRecord = {
      agentId: this.config.id,
      status,
      currentTaskId: this.state.current?.taskId ?? null,
      queueLength: this.state.queue.length,
      stateVersion: this.state.stateVersion,
      lastActive: this.state.lastActive,
    };
    if (!recordLater) await this.acts.syncAgentState(record);
    await this.reminders.follow(this.state.paused);
    return record;
  }

  // ---- Active slots ----

  /**
   * Waits for one of AGENTS_MAX_ACTIVE slots (shared by every agent of every worker) before the next goal;
   * gives up (false) when the agent is paused, archived, has nothing left to run, or should continue as new.
   */
  async takeActiveSlot(): Promise<boolean> {
    // Holding the slot from the goal before: ask again (and maybe yield to someone more urgent) only now and then.
    if (Date.now() - this.slotConfirmedAt < SLOT_RECHECK_MS) return true;
    const wanted = () => !this.archiveRequested && this.canStartGoal && !this.historyTooLong();
    const granted = await this.waitForSlot(() => rank(this.state.queue[0]), wanted);
    // Not waiting any more: leave the line, or the place kept there holds back the agents behind.
    if (!granted && !this.historyTooLong()) await this.releaseActiveSlot();
    return granted;
  }

  /**
   * Asks for an active slot until it is granted or `wanted` turns false. A refused agent sleeps until the
   * agent that releases a slot wakes it (activeSlotFreedSignal) or a fallback timer fires, so a long wait
   * costs a few events per timer.
   */
  private async waitForSlot(priority: () => number, wanted: () => boolean): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      this.slotFreed = false;
      const { granted, ahead } = await this.acts.acquireAgentSlot({ agentId: this.config.id, priority: priority() });
      if ((this.state.waitingForSlot ?? false) === granted) {
        // Only the Web UI summary changes; the status stays as it is until the goal starts.
        this.state.waitingForSlot = !granted;
        setCurrentDetails(
          this.describe(granted ? '' : ` Waiting for an active slot (AGENTS_MAX_ACTIVE), ${ahead} ahead.`),
        );
      }
      if (granted) {
        this.holdsSlot = true;
        this.slotConfirmedAt = Date.now();
        return true;
      }
      await condition(() => this.slotFreed || !wanted(), this.slotRecheckMs * 2 ** Math.min(attempt, 2));
      if (!wanted()) {
        this.state.waitingForSlot = false;
        return false;
      }
    }
  }

  /** Gives the active slot back and wakes the agent waiting next for one (it asks again anyway, so a lost wake-up only delays it). */
  async releaseActiveSlot(): Promise<void> {
    this.slotConfirmedAt = -Infinity;
    this.holdsSlot = false;
    // The activity wakes the next waiter itself, skipping agents that are gone.
    await this.acts.releaseAgentSlot({ agentId: this.config.id, wakeNext: true });
  }

  /**
   * The running goal's hold on its active slot: given back while it waits (approval, pause, budget) and
   * taken again, by the goal's priority, before it works again. Cancelling the goal ends a wait for it.
   */
  private goalSlot(goal: Goal): ActiveSlot {
    return {
      release: async () => {
        if (this.holdsSlot) await this.releaseActiveSlot();
      },
      take: async () => {
        if (!this.holdsSlot)
          await this.waitForSlot(
            () => rank(goal),
            () => true,
          );
      },
    };
  }

  // ---- Priority scoring ----

  /**
   * Lets scores still arriving reorder the queue first, but a steady stream of submissions must not hold
   * the agent back for longer than one scoring may take. Cache lookups are local activities with their own
   * timeout, so waiting for them needs no timer.
   */
  async scoresLanded(): Promise<void> {
    if (this.cacheLookups > 0) await condition(() => this.cacheLookups === 0);
    if (this.scoring > 0) await condition(() => this.scoring === 0, this.scoringTimeoutMs);
  }

  /**
   * Scores, with the model, the queued goals that wait: behind a running goal, beside another queued goal,
   * or on an agent that cannot start one now (paused, in error). A goal the agent starts at once has
   * nothing to be ranked against, so a scoring call would only spend tokens; if another goal queues before
   * it starts, both are scored then. Each goal is scored once per run; their cache lookups were made with
   * their task rows.
   */
  private scoreWaitingGoals(): void {
    const queue = this.state.queue;
    const startsAtOnce = queue.length === 1 && this.state.current === null && this.canStartGoal;
    if (startsAtOnce) return;
    const queued = new Set(queue.map((g) => g.taskId));
    for (const id of this.scoringAsked) if (!queued.has(id)) this.scoringAsked.delete(id);
    for (const goal of queue) {
      // Carried goals (input kept in their rows) were scored when this run started.
      if (goal.score !== undefined || goal.inputInRow || this.scoringAsked.has(goal.taskId)) continue;
      this.scoringAsked.add(goal.taskId);
      this.scoreInBackground(goal, { cacheChecked: true });
    }
  }

  /** What scoring a goal needs: the goal, the agent's objective and model, and what the goal unblocks. */
  private scoreRequest(goal: Goal): ScoreGoalInput {
    return {
      taskId: goal.taskId,
      agentId: this.config.id,
      orgId: this.config.orgId,
      objective: this.config.objective,
      title: goal.title,
      input: goal.input,
      staticPriority: goal.priority,
      unblocks: this.state.queue.filter(
        (g) => Array.isArray(g.input.dependsOn) && g.input.dependsOn.includes(goal.taskId),
      ).length,
      submittedAt: goal.submittedAt,
      provider: this.config.provider,
      fallbackProviders: this.config.fallbackProviders ?? [],
      model: this.config.model,
      agentBudget: this.config.tokenBudgetPerMinute ?? null,
      timeoutMs: this.scoringTimeoutMs,
    };
  }

  /**
   * Scores a queued goal with the agent's model in the background; the static priority stands meanwhile.
   * `cacheChecked`: the submission already looked the score up in the cache (and missed).
   */
  private scoreInBackground(goal: Goal, { cacheChecked = false } = {}): void {
    this.scoring += 1;
    const request = this.scoreRequest(goal);
    // A cache hit is answered by a local activity in this workflow task; only a miss calls the model.
    const score = () => (cacheChecked ? this.acts.scoreGoal(request) : this.cachedOrScored(request));
    const scope = new CancellationScope();
    this.scoringScopes.add(scope);
    scope
      .run(score)
      .finally(() => this.scoringScopes.delete(scope))
      .then(
        ({ score }) => this.rescore(goal.taskId, score),
        (err) =>
          log.warn('priority scoring failed; the static priority stands', { taskId: goal.taskId, error: String(err) }),
      )
      .finally(() => (this.scoring -= 1));
  }

  private async cachedOrScored(request: ScoreGoalInput): Promise<GoalScore> {
    this.cacheLookups += 1;
    const hit = await this.acts.cachedGoalScore(request).finally(() => (this.cacheLookups -= 1));
    return hit ?? this.acts.scoreGoal(request);
  }

  // ---- Running a goal ----

  /** Runs the next queued goal to its end, inline in this workflow, and counts its outcome. */
  async runGoal(goal: Goal): Promise<void> {
    this.state.current = goal;
    this.state.lastActive = new Date().toISOString();
    // The goal's first model call writes the agent's new state (RUNNING, this task) with the task's start.
    const started = await this.publish({ recordLater: true });
    if (goal.inputInRow) {
      const inputs = await this.acts.loadGoalInputs({ taskIds: [goal.taskId] });
      goal = { ...goal, input: inputs[goal.taskId] ?? {}, inputInRow: undefined };
      if (this.state.current?.taskId === goal.taskId) this.state.current = goal;
    }
    if (goal.validationInRow) {
      const validations = await this.acts.loadGoalValidations({ taskIds: [goal.taskId] });
      goal = { ...goal, validation: validations[goal.taskId], validationInRow: undefined };
      if (this.state.current?.taskId === goal.taskId) this.state.current = goal;
    }
    const scope = new CancellationScope();
    this.runningScope = scope;
    // Cancelled or archived while its state was being published: the goal ends as it is, having run nothing.
    if (this.archiveRequested || this.cancelledBeforeStart.delete(goal.taskId)) scope.cancel();
    const taskInput = { goal, agent: this.config, settings: this.settings, startPaused: this.state.paused };
    let outcome: TaskOutcome;
    try {
      outcome = await scope.run(() => {
        // A cancelled task records its own end and returns it.
        this.runningTask = new TaskRun(
          taskInput,
          this.acts,
          workflowInfo().workflowId,
          started,
          this.goalSlot(goal),
          this.mailbox(),
        );
        return this.runningTask.run();
      });
    } catch (err) {
      if (!isCancellation(err)) throw err;
      outcome = cancelledOutcome(goal.taskId, this.archiveRequested ? 'agent archived' : undefined);
    }
    this.runningScope = null;
    this.runningTask = null;
    this.rememberOutcome(outcome);
    if (outcome.status === 'completed') this.state.goalsCompleted += 1;
    else if (outcome.status === 'failed') this.state.goalsFailed += 1;
    else this.state.goalsCancelled += 1;
    if (outcome.status === 'failed' && outcome.errorType && AGENT_ERROR_TYPES.includes(outcome.errorType)) {
      this.state.errorReason = outcome.error;
    }
    // A request from another agent: its answer (or why there is none) goes back as a response.
    const request = requestOf(goal);
    if (request) {
      await this.acts.answerRequest({
        orgId: this.config.orgId,
        agentId: this.config.id,
        requesterId: request.fromAgentId,
        requestId: request.id,
        taskId: goal.taskId,
        content: answerOf(outcome),
      });
    }
    this.state.current = null;
    this.state.lastActive = new Date().toISOString();
    // When the next goal starts right away, its own publish (RUNNING) covers this transition.
    if (!this.archiveRequested && !this.canStartGoal) await this.publish();
  }
}

/** The request a `message` goal answers (send_message type "request"), or null for any other goal. */
function requestOf(goal: Goal): { id: string; fromAgentId: string } | null {
  if (goal.taskType !== 'message') return null;
  const message = goal.input.message as { id?: unknown; fromAgentId?: unknown; type?: unknown } | undefined;
  if (typeof message?.id !== 'string' || typeof message.fromAgentId !== 'string' || message.type !== 'request')
    return null;
  return { id: message.id, fromAgentId: message.fromAgentId };
}

/** What a request's sender is told: the final answer, or why the goal ended without one. */
function answerOf(outcome: TaskOutcome): string {
  if (outcome.status !== 'completed')
    return `No answer: the request ${outcome.status} (${outcome.error ?? 'no reason given'})`;
  const output = outcome.output as { answer?: unknown } | null;
  return typeof output?.answer === 'string' ? output.answer : JSON.stringify(outcome.output);
}

/**
 * A queued goal as it travels through continue-as-new: its input and output check stay in its row, but what
 * orders the queue stays.
 */
function byReference(goal: QueuedGoal): QueuedGoal {
  const { validation, ...rest } = goal;
  const carried: QueuedGoal = validation ? { ...rest, validationInRow: true } : goal;
  if (goal.inputInRow) return carried;
  const { dependsOn } = goal.input;
  return { ...carried, input: dependsOn === undefined ? {} : { dependsOn }, inputInRow: true };
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
    ...(request.skillId ? { skillId: request.skillId } : {}),
    ...(request.validation ? { validation: request.validation } : {}),
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
