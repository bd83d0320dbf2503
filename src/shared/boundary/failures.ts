/**
 * What a failed activity means, read from the failure the workflow receives: a model call
 * overflowed, gave up, or cannot succeed (fatal); a tool call's worker is gone; a local read ran
 * on a worker that does not hold the workspace. It sits beside the types it matches
 * (failure-types.ts), which the activities throw; the workflow acts on the kind. Pure.
 */
import { ActivityFailure, ApplicationFailure, TimeoutFailure } from '@temporalio/common';
import { ActivityFailureType, FATAL_MODEL_FAILURES } from './failure-types.js';

export type ModelFailure =
  | { kind: 'overflow' }
  | { kind: 'fatal'; message: string; type: string }
  | { kind: 'gave_up'; message: string };

export function modelFailureKind(err: ActivityFailure): ModelFailure {
  const cause = err.cause;
  if (cause instanceof ApplicationFailure) {
    if (cause.type === ActivityFailureType.ContextLengthExceeded) return { kind: 'overflow' };
    if (cause.type && FATAL_MODEL_FAILURES.has(cause.type)) {
      return { kind: 'fatal', message: cause.message, type: cause.type };
    }
    return { kind: 'gave_up', message: `the model call failed (${cause.type ?? 'error'}): ${cause.message}` };
  }
  if (cause instanceof TimeoutFailure) {
    return { kind: 'gave_up', message: `the model call timed out (${cause.timeoutType ?? 'timeout'})` };
  }
  return { kind: 'gave_up', message: `the model call failed: ${cause?.message ?? err.message}` };
}

/** Whether a tool activity failed because no worker of its queue took it in time (the worker is gone). */
export function isWorkerLost(err: ActivityFailure): boolean {
  return err.cause instanceof TimeoutFailure && err.cause.timeoutType === 'SCHEDULE_TO_START';
}

/**
 * Whether an attempt before the one that failed had started: the server keeps the last heartbeat
 * across attempts and hands it back with a timeout, and every tool heartbeats as it starts. A
 * retried command whose worker never came back fails "not picked up", but it may have run.
 */
export function startedEarlier(err: ActivityFailure): boolean {
  const details = err.cause instanceof TimeoutFailure ? err.cause.lastHeartbeatDetails : undefined;
  return details !== undefined && details !== null;
}

/**
 * A local read that ran on a worker other than the workspace's holder. A local activity's failure
 * may reach the workflow as the ApplicationFailure itself or wrapped in an ActivityFailure.
 */
export function isNotHolder(err: unknown): boolean {
  const failure = err instanceof ActivityFailure ? err.cause : err;
  return failure instanceof ApplicationFailure && failure.type === ActivityFailureType.NotWorkspaceHolder;
}

/** The innermost message of a failure chain (ActivityFailure → ApplicationFailure → …). */
export function rootMessage(err: unknown): string {
  let current: unknown = err;
  while (current instanceof Error && current.cause instanceof Error) current = current.cause;
  return current instanceof Error ? current.message : String(current);
}
