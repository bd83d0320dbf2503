/**
 * The `ApplicationFailure` types that cross the activity/workflow boundary, and the ones the
 * workflow gives callers. An activity throws with one of these types; the workflow (and a client)
 * matches on the same constant, so a rename cannot leave one side matching a string the other no
 * longer sends. Types that only an activity's own retry loop reads stay where they are thrown.
 */

/** Thrown by activities; read by the workflow. */
export const ActivityFailureType = {
  /** The request is longer than the model's context window: the workflow compacts. */
  ContextLengthExceeded: 'ContextLengthExceeded',
  ModelAuthenticationFailed: 'ModelAuthenticationFailed',
  ModelPermissionDenied: 'ModelPermissionDenied',
  ModelNotFound: 'ModelNotFound',
  ModelNotConfigured: 'ModelNotConfigured',
  /** A local read ran on a worker that does not hold the workspace: the workflow sends it to the holder. */
  NotWorkspaceHolder: 'NotWorkspaceHolder',
  /** The workspace cannot be used (not a repository, a system directory, …): never retried. */
  WorkspaceRejected: 'WorkspaceRejected',
  /** A retried command whose earlier attempt may have run it: reported lost, never run again. */
  CommandLost: 'CommandLost',
  /** A command that failed (not as a result) after it was recorded as started: not retried. */
  CommandFailed: 'CommandFailed',
} as const;

/** Model failures that no retry or message can fix: the session fails with the message. */
export const FATAL_MODEL_FAILURES: ReadonlySet<string> = new Set([
  ActivityFailureType.ModelAuthenticationFailed,
  ActivityFailureType.ModelPermissionDenied,
  ActivityFailureType.ModelNotFound,
  ActivityFailureType.ModelNotConfigured,
]);

/** Thrown by the workflow: a caller's update is refused, or the session cannot start. */
export const SessionFailureType = {
  InvalidSessionInput: 'InvalidSessionInput',
  InvalidApproval: 'InvalidApproval',
  InvalidMove: 'InvalidMove',
  InvalidPolicy: 'InvalidPolicy',
  /** A budget decision that cannot apply (malformed, no budget, not the root, nothing to stop). */
  InvalidBudget: 'InvalidBudget',
  SessionEnded: 'SessionEnded',
  NotPrepared: 'NotPrepared',
  /** The pinned worker did not take the workspace within the schedule-to-start timeout. */
  WorkerUnavailable: 'WorkerUnavailable',
} as const;
