import type { Context } from '@temporalio/activity';

/**
 * Heartbeats on a timer (a third of the heartbeat timeout) from the start of an activity, so a
 * lost worker is noticed within the timeout and cancellation is delivered, even while the
 * activity waits on something that reports no progress (a transcript query, a slow first token).
 * Returns a function that stops it.
 */
export function keepHeartbeating(
  context: Context,
  details: () => Record<string, unknown>,
  onTick?: () => void,
): () => void {
  const everyMs = Math.max(200, Math.floor((context.info.heartbeatTimeoutMs ?? 30_000) / 3));
  // A local activity (cheap reads) has no heartbeat: the server does not know it.
  const beat = context.info.isLocal ? () => {} : () => context.heartbeat(details());
  beat();
  const timer = setInterval(() => {
    onTick?.();
    beat();
  }, everyMs);
  return () => clearInterval(timer);
}
