import { proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { ErrorType } from '../lib/errors';
import type { AgentSettings } from './definitions';

/** Failures that retrying cannot fix; they end the step at once. */
const NON_RETRYABLE = [
  ErrorType.ProviderAuth,
  ErrorType.ProviderInvalidRequest,
  ErrorType.ProviderContextLength,
  ErrorType.ProviderRefusal,
  ErrorType.Configuration,
];

/**
 * Activity proxies, one per timeout class. Records are quick database writes retried until they
 * succeed (the database may be restarting); LLM and tool steps get the agent's retry budget and a
 * heartbeat timeout so a step lost with a crashed worker is retried elsewhere promptly.
 */
export function activitiesFor(settings: AgentSettings) {
  const records = proxyActivities<Activities>({
    startToCloseTimeout: '30s',
    retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '30s' },
  });
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
    retry: { maximumAttempts: settings.maxRetries + 1, initialInterval: '1s', backoffCoefficient: 2, nonRetryableErrorTypes: NON_RETRYABLE },
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
    setTaskStatus: records.setTaskStatus,
    finishTask: records.finishTask,
    archiveAgentData: records.archiveAgentData,
    acquireAgentSlot: records.acquireAgentSlot,
    releaseAgentSlot: records.releaseAgentSlot,
    scoreGoal: scoring.scoreGoal,
    recordCrewStatus: records.recordCrewStatus,
    recordCrewMessage: records.recordCrewMessage,
    recordCrewTask: records.recordCrewTask,
    designMetaTeam: model.designMetaTeam,
    createMetaTeam: teams.createMetaTeam,
    recordMetaRun: records.recordMetaRun,
    /** A model call with a one-line summary for the Web UI ("thinking, step 2/10"). */
    callModel: (summary: string, input: Parameters<Activities['callModel']>[0]) =>
      model.callModel.executeWithOptions({ ...modelOptions, summary }, [input]),
    /** A tool call with a one-line summary for the Web UI ("memory_write, step 2/10"). */
    runTool: (summary: string, input: Parameters<Activities['runTool']>[0]) =>
      tools.runTool.executeWithOptions({ ...toolOptions, summary }, [input]),
  };
}
