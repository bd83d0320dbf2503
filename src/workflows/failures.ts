/**
 * What a failed activity means to the session. The workflow owns this sequence: an activity
 * fails → the failure is classified here (model: compact, give up, or fail the session; tool: a
 * result the model reads; worker gone; not the workspace's holder) → the caller acts on the kind.
 * The types matched are the shared vocabulary in src/shared/failure-types.ts.
 */
import { ActivityFailure, ApplicationFailure, TimeoutFailure } from '@temporalio/workflow';
import { ActivityFailureType, FATAL_MODEL_FAILURES } from '../shared/failure-types.js';
import { toolFailedOutput, unknownEffectOutput } from './model-text.js';
import type { ToolCall } from './tool-calls.js';

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

/** What the model reads when a tool activity failed as infrastructure, not as a tool result. */
export function toolFailureOutput(call: ToolCall, err: ActivityFailure): string {
  const cause = err.cause;
  const detail =
    cause instanceof TimeoutFailure
      ? 'the worker running it stopped responding'
      : (cause?.message ?? err.message);
  return call.readOnly ? toolFailedOutput(call.tool, detail) : unknownEffectOutput(call.tool, detail);
}

/** Whether a tool activity failed because no worker of its queue took it in time (the worker is gone). */
export function isWorkerLost(err: ActivityFailure): boolean {
  return err.cause instanceof TimeoutFailure && err.cause.timeoutType === 'SCHEDULE_TO_START';
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
