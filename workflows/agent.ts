import { allHandlersFinished, condition, continueAsNew, patched, setHandler } from '@temporalio/workflow';
import {
  activeSlotFreedSignal,
  admissionFreedSignal,
  agentReadyUpdate,
  archiveAgentUpdate,
  cancelGoalUpdate,
  decideApprovalSignal,
  decideApprovalUpdate,
  deliverMessageSignal,
  getAgentStateQuery,
  getTaskProgressQuery,
  pauseAgentUpdate,
  resumeAgentUpdate,
  submitGoalUpdate,
  updateAgentConfigUpdate,
  type AgentLiveState,
  type AgentWorkflowInput,
} from '../contract/definitions';
import { Agent } from './agent-state';

const COMPACT_WHEN_IDLE_PATCH = 'compact-when-idle';

/**
 * A long-lived agent: owns its lifecycle (IDLE, RUNNING, PAUSED, ERROR, ARCHIVED) and its goal queue,
 * and runs one goal at a time (a TaskRun, in this workflow). Continues as new between goals before its
 * history grows large, and when idle past a shorter limit, carrying its queue and state. Postgres is kept
 * current through activities.
 */
export async function AgentWorkflow(input: AgentWorkflowInput): Promise<AgentLiveState> {
  const agent = new Agent(input);

  // Every handler before the first await, in this order: buffered messages are delivered as each is set.
  setHandler(activeSlotFreedSignal, () => agent.noteSlotFreed());
  setHandler(admissionFreedSignal, () => agent.noteAdmissionFreed());
  setHandler(getAgentStateQuery, () => agent.snapshot());
  setHandler(getTaskProgressQuery, () => agent.taskProgress());
  setHandler(decideApprovalUpdate, (request) => agent.decideApproval(request), {
    validator: (request) => agent.validateApprovalDecision(request),
  });
  setHandler(decideApprovalSignal, (request) => agent.decideApprovalBySignal(request));
  setHandler(deliverMessageSignal, (message) => agent.receiveMessage(message));
  setHandler(agentReadyUpdate, () => agent.ready());
  setHandler(submitGoalUpdate, (request) => agent.submitGoal(request), {
    validator: (request) => agent.validateSubmitGoal(request),
  });
  setHandler(pauseAgentUpdate, (request) => agent.pause(request), {
    validator: (_request) => agent.rejectIfArchived(),
  });
  setHandler(resumeAgentUpdate, () => agent.resume(), { validator: (request) => agent.validateResume(request) });
  setHandler(cancelGoalUpdate, (request) => agent.cancelGoal(request), {
    validator: (request) => agent.validateCancelGoal(request),
  });
  setHandler(updateAgentConfigUpdate, (patch) => agent.updateConfig(patch), {
    validator: (patch) => agent.validateConfigPatch(patch),
  });
  setHandler(archiveAgentUpdate, () => agent.requestArchive(), { validator: () => agent.rejectIfArchived() });

  // ---- The agent's life ----
  if (!input.carried) await agent.recordNew();
  agent.markRecorded();
  if (input.carried && input.settings.priorityScoring) await agent.scoreCarriedGoals();

  // Whether this run continues as new when idle; replays of runs from before it existed never do.
  let compactsWhenIdle = true;
  const compactNow = () => agent.historyTooLong() || (compactsWhenIdle && agent.idleHistoryLong());
  for (;;) {
    await condition(() => agent.archiveRequested || agent.canStartGoal || compactNow());
    if (agent.archiveRequested) break;
    if (!agent.canStartGoal && !agent.historyTooLong() && !patched(COMPACT_WHEN_IDLE_PATCH)) {
      compactsWhenIdle = false;
      continue;
    }
    await agent.scoresLanded();
    if (compactNow()) {
      // Between goals nothing runs; let in-flight updates finish so nothing they did is lost, and scorings
      // land (a completion arriving meanwhile would fail the continue-as-new's workflow task).
      // An archive arriving now is itself an unfinished handler: it ends the wait.
      await condition(() => agent.archiveRequested || (allHandlersFinished() && agent.scoring === 0));
      if (agent.archiveRequested) break;
      if (!agent.state.current) {
        return await continueAsNew<typeof AgentWorkflow>({
          agent: agent.config,
          settings: input.settings,
          carried: agent.carriedState(),
        });
      }
    }
    if (agent.canStartGoal && (await agent.takeActiveSlot())) {
      // Goals may have arrived while the slot was taken: let their scores land before choosing.
      await agent.scoresLanded();
      if (!agent.canStartGoal) {
        await agent.releaseActiveSlot();
        continue;
      }
      await agent.runGoal(agent.state.queue.shift()!);
      if (!agent.canStartGoal) await agent.releaseActiveSlot();
    }
  }

  await agent.archive();
  await condition(allHandlersFinished);
  return agent.snapshot();
}
