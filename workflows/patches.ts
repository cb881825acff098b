/**
 * Every `patched()` (and `deprecatePatch()`) id the workflow code uses, with what it changes, the recorded
 * histories of the old shape that keep the old branch tested, and when it may go. The rule, and how a patch
 * is added and retired, is in docs/workflow-changes.md; test/replay.test.ts checks that the workflow code
 * uses exactly these ids, that the docs list them, and replays every fixture named here.
 */

/** One patch: a change to the commands a workflow emits, decided by `patched(id)` where it happens. */
export interface PatchEntry {
  /** What the new branch does differently (which activities, timers, children, markers; in which workflow). */
  readonly changes: string;
  /**
   * Histories recorded before the change (without the patch marker), as paths from the repository root
   * into a sub-folder of test/histories/, e.g. `test/histories/before-<patch-id>/agent-goal-loop-archived.json`.
   * They replay through the old branch. Emptied when the old branch is deleted (`deprecatePatch`).
   */
  readonly oldShapeFixtures: readonly string[];
  /**
   * When the next retirement step may be taken: the old branch goes (`deprecatePatch(id)`) once no open
   * execution can still be on it; the entry goes with `deprecatePatch(id)` once none recorded the marker.
   */
  readonly retireWhen: string;
}

export const PATCHES = {
  'approval-ids-per-task': {
    changes:
      "AgentWorkflow, TaskWorkflow: a task's approval ids are drawn from the task's own random stream instead " +
      "of the workflow's default one; a patch marker is recorded before the run's first createApproval",
    oldShapeFixtures: [
      'test/histories/before-approval-ids-per-task/agent-approval-edited-rejected.json',
      'test/histories/before-approval-ids-per-task/agent-approval-escalated.json',
      'test/histories/before-approval-ids-per-task/agent-approval-expired.json',
      'test/histories/before-approval-ids-per-task/crew-sequential-task-approved.json',
    ],
    retireWhen:
      'no AgentWorkflow or TaskWorkflow run that asked for an approval before the deploy of this patch is open ' +
      '(an agent that continued as new since then runs the new branch)',
  },
  'score-waiting-goals': {
    changes:
      'AgentWorkflow: a submitted goal whose score is not cached is scored by the model (a scoreGoal activity) ' +
      'only if it waits (behind a running goal, beside another queued goal, or on a paused agent), not when the ' +
      'agent starts it at once; a goal that waited unscored is scored when another goal queues beside it; a ' +
      "patch marker is recorded at the run's first submission while scoring is on",
    oldShapeFixtures: [
      'test/histories/before-score-waiting-goals/agent-continued-as-new.json',
      'test/histories/before-score-waiting-goals/agent-goal-loop-archived.json',
      'test/histories/before-score-waiting-goals/agent-pause-cancel.json',
    ],
    retireWhen:
      'no AgentWorkflow run started before the deploy of this patch is open (an agent that continued as new ' +
      'since then runs the new branch)',
  },
  'compact-when-idle': {
    changes:
      'AgentWorkflow: an agent with nothing running or queued continues as new once its history passes ' +
      'AGENT_IDLE_HISTORY_LIMIT events (a patch marker, then the continue-as-new), instead of waiting with its ' +
      'history as it is',
    oldShapeFixtures: [
      'test/histories/before-compact-when-idle/agent-approval-edited-rejected.json',
      'test/histories/before-compact-when-idle/agent-continued-as-new.json',
      'test/histories/before-compact-when-idle/agent-goal-loop-archived.json',
      'test/histories/before-compact-when-idle/agent-pause-cancel.json',
    ],
    retireWhen:
      'no AgentWorkflow run started before the deploy of this patch is open (an agent that continued as new ' +
      'since then runs the new branch)',
  },
} as const satisfies Record<string, PatchEntry>;

/** A patch id of the registry; `patched()` calls in workflow code take one of these. */
export type PatchId = keyof typeof PATCHES;
