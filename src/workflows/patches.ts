/**
 * Every `patched()` marker the session workflow asks, in one list. A marker keeps a history
 * recorded before a change replaying the old way (test/fixtures/histories, and the v0.1/ and
 * v0.2/ folders recorded by earlier releases); a new run records the marker and takes the new
 * path. Markers are never removed or renamed while such histories may still be replayed, and a
 * change to the commands the workflow issues gets a new one here.
 */
export const Patch = {
  /**
   * The search attributes are upserted when the status or the pending approvals change, not on
   * every turn (before: also on every turn, ~0.6 KB of history each): `RatchetTurn` then says the
   * turn of the last status change; the current details show the live turn.
   */
  turnAttributeOnStatus: 'turn-attribute-on-status',
  /** Sizes are UTF-8 bytes, as payloads are (before: UTF-16 units; no payload budget checks). */
  utf8Bytes: 'utf8-bytes',
  /** "Approve for this session" narrows a command's prefix (before: the v0.1 broad prefix). */
  narrowSessionPrefix: 'narrow-session-prefix',
  /** A reply that repeats a call id gets a fresh, deterministic one. */
  uniqueCallIds: 'unique-call-ids',
  /** An interrupt with nothing left to cancel still stops the session at the next boundary. */
  interruptAtBoundary: 'interrupt-at-boundary',
  /** A compaction that leaves the transcript over its limits comes to rest instead of looping. */
  boundedCompaction: 'bounded-compaction',
  /** A failed compaction leaves the session idle instead of failing it. */
  compactionFailureIdles: 'compaction-failure-idles',
  /** Once the workspace's worker is gone, a turn's remaining calls are not scheduled. */
  lostWorkerSkipsRest: 'lost-worker-skips-rest',
  /** A shell call that only applies a patch runs as apply_patch. */
  shellApplyPatch: 'shell-apply-patch',
  /** Tool calls go to the queue of the worker that prepared the workspace. */
  workerTaskQueue: 'worker-task-queue',
  /** A worker that cannot sandbox makes every command ask. */
  sandboxFallback: 'sandbox-fallback',
  /** A message that arrives while the changes are collected is answered, not dropped. */
  deliverLateMessages: 'deliver-late-messages',
  /** Cheap reads with inline arguments run as local activities. */
  localReads: 'local-reads',
  /**
   * Arguments are inlined up to INLINE_ARGUMENTS_MAX_BYTES UTF-8 bytes (before: UTF-16 units).
   * Asked only for arguments the two measures disagree on; it decides whether a read runs locally.
   */
  inlineUtf8Bytes: 'inline-utf8-bytes',
  /**
   * Fan-out (agents.ts). Asked only by a session whose configuration has agents or a parent, so
   * every other session issues exactly the commands it did before.
   */
  agentSessions: 'agent-sessions',
  /** A checkpoint of the workspace at the start and after every turn that may have written. */
  checkpoints: 'checkpoints',
  /**
   * A token budget for the tree (budget.ts): usage reports, park and resume directives, the wait
   * at the turn boundary. Asked only by a session whose configuration has a budget.
   */
  treeBudget: 'tree-budget',
  /**
   * A child that is merged and finished has its worktree removed at once (before: at the session's
   * end), so that continue-as-new can drop it from the carried children (agents.ts, `retire`).
   */
  retireMergedAgents: 'retire-merged-agents',
  /**
   * A malformed budget directive (a `seq` that is no whole number above 0, `parked` that is no
   * boolean) is ignored (before: `parked` taken for its truthiness, any number as `seq`). Asked
   * only for a directive the two ways disagree on.
   */
  budgetDirectiveChecked: 'budget-directive-checked',
  /**
   * The consecutive spawn_agent calls of one reply run together: their worktrees at once, their
   * children's starts together (before: one after another). Asked only for such a run.
   */
  concurrentSpawns: 'concurrent-spawns',
  /**
   * merge_agent of a child that has ended removes its worktree and branch in the merge's own
   * activity (before: a second activity after the merge). Asked only for such a merge.
   */
  mergeThenRemove: 'merge-then-remove',
  /**
   * The baseline checkpoint (turn 0) runs beside the first model call, and the turn's calls wait
   * for it (before: the first model call waited for the baseline).
   */
  baselineBesideModel: 'baseline-beside-model',
  /**
   * A reply whose calls are all cheap reads may come back with their results (READS_WITH_REPLY),
   * read beside it by the model activity; the workflow then runs no local activity for them.
   */
  readsWithReply: 'reads-with-reply',
} as const;
