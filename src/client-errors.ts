/** The errors the client gives a person: one-line messages they can act on. */
import { WorkflowUpdateFailedError } from '@temporalio/client';

/** An error with a message meant for the person at the terminal. */
export class RatchetError extends Error {
  override name = 'RatchetError';
}

/** What went wrong, in one message: an update's rejection says it in its cause. */
export function errorMessage(err: unknown): string {
  if (err instanceof WorkflowUpdateFailedError) return err.cause?.message ?? err.message;
  return err instanceof Error ? err.message : String(err);
}
