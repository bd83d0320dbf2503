/**
 * Notifications: what a session tells the URLs a worker is configured with (`notify` in
 * ratchet.toml) when it starts waiting for a person, goes idle, fails or finishes. The session
 * only says that it happened; the URLs stay in the workers' configuration, never in a session's
 * history, since a webhook URL is a secret.
 */
export const notificationEvents = ['awaiting_approval', 'idle', 'failed', 'completed'] as const;
export type NotificationEvent = (typeof notificationEvents)[number];

export interface SessionNotification {
  /** Unique per event: a receiver may drop a repeat by it. */
  id: string;
  event: NotificationEvent;
  sessionId: string;
  task: string;
  turn: number;
  /** The calls waiting for a person (awaiting_approval). */
  pending: Array<{ callId: string; summary: string; reason: string }>;
  /** The notice (idle, failed) or the final message (completed). */
  message: string | null;
  /** Workflow time of the event (ISO 8601). */
  at: string;
}

export function isNotificationEvent(status: string): status is NotificationEvent {
  return (notificationEvents as readonly string[]).includes(status);
}
