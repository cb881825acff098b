/**
 * Every `patched()` (and `deprecatePatch()`) id the workflow code uses, with what it changes, the recorded
 * histories of the old shape that keep the old branch tested, and when it may go. The rule, and how a patch
 * is added and retired, is in docs/workflow-changes.md; test/replay.test.ts checks that the workflow code
 * uses exactly these ids, that the docs list them, and replays every fixture named here.
 *
 * Empty: this is the versioning baseline. The histories in test/histories/*.json are recorded from the
 * current code and every execution runs it; there is no old branch to keep.
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

export const PATCHES = {} as const satisfies Record<string, PatchEntry>;

/** A patch id of the registry; `patched()` calls in workflow code take one of these. */
export type PatchId = keyof typeof PATCHES;
