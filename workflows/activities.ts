import {
  ActivityFailure,
  ApplicationFailure,
  proxyActivities,
  proxyLocalActivities,
  type ActivityOptions,
  type LocalActivityOptions,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { ErrorType } from '../contract/errors';
import type { AdmissionWait, AgentSettings } from '../contract/definitions';

/** Failures that retrying cannot fix; they end the step at once. */
const NON_RETRYABLE = [
  ErrorType.ProviderAuth,
  ErrorType.ProviderInvalidRequest,
  ErrorType.ProviderContextLength,
  ErrorType.ProviderRefusal,
  ErrorType.Configuration,
];

/**
 * Runs a workflow's local activities one after another, in the order they were called, across every proxy
 * wrapped by the same queue. Local activities that overlap may finish in one order while the workflow runs
 * and be resolved together when it is replayed, so code waiting on them (an update handler and the main
 * loop) could interleave differently and issue other commands. One at a time, every completion is its own
 * activation, live and in replay.
 */
function oneAtATime(): <T extends object>(activities: T) => T {
  let last: Promise<unknown> = Promise.resolve();
  const inTurn = <R>(run: () => Promise<R>): Promise<R> => {
    const next = last.then(run);
    last = next.catch(() => undefined);
    return next;
  };
  return (activities) =>
    new Proxy(activities, {
      get(target, name) {
        const activity = Reflect.get(target, name) as ActivityFunction;
        return Object.assign((...args: unknown[]) => inTurn(() => activity(...args)), {
          executeWithOptions: (options: LocalActivityOptions, args: unknown[]) =>
            inTurn(() => activity.executeWithOptions(options, args)),
        });
      },
    });
}

type ActivityFunction = ((...args: unknown[]) => Promise<unknown>) & {
  executeWithOptions(options: LocalActivityOptions, args: unknown[]): Promise<unknown>;
};

/**
 * Activity proxies, one per timeout class. Records are quick, idempotent database writes retried until
 * they succeed (the database may be restarting); they run as local activities, inside the workflow task
 * that needs them (one marker event, where an activity costs three events, a hand-off to a worker and
 * another workflow task). LLM and tool steps get the agent's retry budget and a heartbeat timeout so a
 * step lost with a crashed worker is retried elsewhere promptly; tools marked `local` (quick reads of our
 * own database) run as local activities too.
 */
export function activitiesFor(settings: AgentSettings) {
  // Retries stay below the local retry threshold (1 min), so a record retries inside its workflow task
  // (which the SDK keeps alive) while the database restarts; every record is idempotent, so the
  // at-least-once re-run after a worker crash is safe.
  const recordOptions: LocalActivityOptions = {
    startToCloseTimeout: '30s',
    retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '30s' },
  };
  const serially = oneAtATime();
  const records = serially(proxyLocalActivities<Activities>(recordOptions));
  const modelOptions: ActivityOptions = {
    startToCloseTimeout: `${settings.llmTimeoutSeconds + 30}s`,
    heartbeatTimeout: `${settings.heartbeatTimeoutSeconds}s`,
    retry: {
      maximumAttempts: settings.maxRetries + 1,
      initialInterval: '1s',
      backoffCoefficient: 2,
      maximumInterval: '60s',
      nonRetryableErrorTypes: NON_RETRYABLE,
    },
  };
  const model = proxyActivities<Activities>(modelOptions);
  const toolOptions: ActivityOptions = {
    startToCloseTimeout: '2m',
    heartbeatTimeout: `${settings.heartbeatTimeoutSeconds}s`,
    retry: { maximumAttempts: settings.maxRetries + 1, initialInterval: '1s', backoffCoefficient: 2 },
  };
  const tools = proxyActivities<Activities>(toolOptions);
  // A quick read: seconds at most, retried like other tool calls.
  const localToolOptions: LocalActivityOptions = {
    startToCloseTimeout: '30s',
    retry: { maximumAttempts: settings.maxRetries + 1, initialInterval: '1s', backoffCoefficient: 2 },
  };
  const localTools = serially(proxyLocalActivities<Activities>(localToolOptions));
  // Notifications must not hold a task back for long: a few quick attempts, then give up (recorded).
  const notifications = proxyActivities<Activities>({
    startToCloseTimeout: '15s',
    retry: { maximumAttempts: 5, initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s' },
  });
  // Scoring never fails the agent: the activity answers the static priority itself when the model is slow.
  const scoring = proxyActivities<Activities>({
    startToCloseTimeout: `${(settings.priorityScoringTimeoutSeconds ?? 10) + 20}s`,
    retry: { maximumAttempts: 3, initialInterval: '500ms', backoffCoefficient: 2 },
  });
  // Chat calls heartbeat often so a disconnected client's cancellation reaches them within seconds.
  const chat = proxyActivities<Activities>({
    startToCloseTimeout: `${settings.llmTimeoutSeconds + 30}s`,
    heartbeatTimeout: '3s',
    retry: {
      maximumAttempts: settings.maxRetries + 1,
      initialInterval: '1s',
      backoffCoefficient: 2,
      nonRetryableErrorTypes: NON_RETRYABLE,
    },
  });
  // Creating a meta team starts up to five agent workflows: longer than a record, retried until it works.
  const teams = proxyActivities<Activities>({
    startToCloseTimeout: '2m',
    heartbeatTimeout: '30s',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
  });
  return {
    chatModel: chat.chatModel,
    chatTool: chat.chatTool,
    saveChatTurn: records.saveChatTurn,
    loadChatHistory: records.loadChatHistory,
    recordAgent: records.recordAgent,
    recordDecision: records.recordDecision,
    createApproval: records.createApproval,
    recordApprovalDecision: records.recordApprovalDecision,
    notify: notifications.notify,
    syncAgentState: records.syncAgentState,
    recordTaskQueued: records.recordTaskQueued,
    loadGoalInputs: records.loadGoalInputs,
    loadGoalValidations: records.loadGoalValidations,
    recordTaskQueuedWithCachedScore: records.recordTaskQueuedWithCachedScore,
    setTaskStatus: records.setTaskStatus,
    finishTask: records.finishTask,
    archiveAgentData: records.archiveAgentData,
    acquireAgentSlot: records.acquireAgentSlot,
    releaseAgentSlot: records.releaseAgentSlot,
    scoreGoal: scoring.scoreGoal,
    cachedGoalScore: records.cachedGoalScore,
    recordCrewStatus: records.recordCrewStatus,
    recordCrewMessage: records.recordCrewMessage,
    recordCrewTask: records.recordCrewTask,
    designMetaTeam: model.designMetaTeam,
    createMetaTeam: teams.createMetaTeam,
    archiveMetaTeam: teams.archiveMetaTeam,
    recordMetaRun: records.recordMetaRun,
    markMessagesRead: records.markMessagesRead,
    answerRequest: records.answerRequest,
    /** A model call with a one-line summary for the Web UI ("thinking, step 2/10"). */
    callModel: (summary: string, input: Parameters<Activities['callModel']>[0]) =>
      model.callModel.executeWithOptions({ ...modelOptions, summary }, [input]),
    /** The check of a final answer (schema, and a model's review), with a one-line summary for the Web UI. */
    validateOutput: (summary: string, input: Parameters<Activities['validateOutput']>[0]) =>
      model.validateOutput.executeWithOptions({ ...modelOptions, summary }, [input]),
    /** A tool call with a one-line summary for the Web UI ("memory_write, step 2/10"). */
    runTool: (summary: string, input: Parameters<Activities['runTool']>[0]) =>
      tools.runTool.executeWithOptions({ ...toolOptions, summary }, [input]),
    /** The same, as a local activity: for tools whose policy says `local` (see LOCAL_TOOLS_PATCH). */
    runToolLocally: (summary: string, input: Parameters<Activities['runTool']>[0]) =>
      localTools.runTool.executeWithOptions({ ...localToolOptions, summary }, [input]),
  };
}

/**
 * The application failure an activity ended with: an activity's arrives wrapped in an ActivityFailure, a
 * local activity's non-retryable one as it is.
 */
export function applicationFailure(err: unknown): ApplicationFailure | null {
  if (err instanceof ActivityFailure) return err.cause instanceof ApplicationFailure ? err.cause : null;
  return err instanceof ApplicationFailure ? err : null;
}

/** The admission wait (budget, step slot, resource) an activity failed with, if that is why it failed. */
export function admissionWaitOf(err: unknown): AdmissionWait | null {
  const failure = applicationFailure(err);
  if (failure?.type !== ErrorType.AdmissionWait) return null;
  return (failure.details?.[0] as AdmissionWait | undefined) ?? null;
}
