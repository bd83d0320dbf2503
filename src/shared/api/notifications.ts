/**
 * Notifications: what a session tells the URLs a worker is configured with (`notify` in
 * ratchet.toml) when it starts waiting for a person, goes idle, fails or finishes. The session
 * only says that it happened; the URLs stay in the workers' configuration, never in a session's
 * history, since a webhook URL is a secret.
 */
import { capBytes } from '../util/bytes.js';
export const notificationEvents = [
  'awaiting_approval',
  /** The tree's token budget is spent: a person decides whether it goes on. */
  'awaiting_budget',
  'idle',
  'failed',
  'completed',
] as const;
export type NotificationEvent = (typeof notificationEvents)[number];

export interface SessionNotification {
  /** Unique per event: a receiver may drop a repeat by it. */
  id: string;
  event: NotificationEvent;
  sessionId: string;
  task: string;
  turn: number;
  /** The calls waiting for a person (awaiting_approval), at most MAX_PENDING of them. */
  pending: Array<{ callId: string; summary: string; reason: string }>;
  /** Calls waiting beyond those listed. */
  pendingOmitted?: number;
  /** The notice (idle, failed) or the final message (completed). */
  message: string | null;
  /** Workflow time of the event (ISO 8601). */
  at: string;
}

export function isNotificationEvent(status: string): status is NotificationEvent {
  return (notificationEvents as readonly string[]).includes(status);
}

/** Each notification is a child workflow's input, recorded in the session's history too: kept small. */
const MAX_TASK_BYTES = 2048;
const MAX_MESSAGE_BYTES = 4096;
const MAX_FIELD_BYTES = 512;
export const MAX_PENDING = 20;

/**
 * What a notification carries, whatever the session holds: a final message may be 1.5 MiB and a
 * reply may ask for hundreds of calls, neither of which may reach the workflow task that starts
 * the notification (a payload over 2 MB would fail that task for ever).
 */
export function notificationDetails(details: {
  task: string;
  turn: number;
  pending: ReadonlyArray<{ callId: string; summary: string; reason: string }>;
  message: string | null;
}): Omit<SessionNotification, 'id' | 'event' | 'sessionId' | 'at'> {
  const pending = details.pending.slice(0, MAX_PENDING).map((p) => ({
    callId: capBytes(p.callId, MAX_FIELD_BYTES),
    summary: capBytes(p.summary, MAX_FIELD_BYTES),
    reason: capBytes(p.reason, MAX_FIELD_BYTES),
  }));
  const omitted = details.pending.length - pending.length;
  return {
    task: capBytes(details.task, MAX_TASK_BYTES),
    turn: details.turn,
    pending,
    ...(omitted > 0 ? { pendingOmitted: omitted } : {}),
    message: details.message === null ? null : capBytes(details.message, MAX_MESSAGE_BYTES),
  };
}
