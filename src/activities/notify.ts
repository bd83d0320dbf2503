/**
 * The notify activity: POSTs one session event to each URL this worker is configured with, in
 * the shape the receiver takes — generic JSON, a Slack incoming webhook, or ntfy. Each request
 * has its own short timeout; a URL that failed makes the activity fail (it is retried), and the
 * URLs already served are remembered in the heartbeat, so a retry does not send to them again.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { NotificationEvent, SessionNotification } from '../shared/api/notifications.js';
import { firstLine } from '../shared/util/text.js';

export const notifyFormats = ['json', 'slack', 'ntfy'] as const;
export type NotifyFormat = (typeof notifyFormats)[number];

export interface NotifyTarget {
  url: string;
  format: NotifyFormat;
  /** Events sent to this URL (default: all). */
  events?: NotificationEvent[];
}

export interface NotifyDeps {
  targets: readonly NotifyTarget[];
  /** The inbox's address, for links to the session (RATCHET_INBOX_URL / inbox_url). */
  inboxUrl?: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

const HEADLINE: Record<NotificationEvent, string> = {
  awaiting_approval: 'waiting for you',
  awaiting_budget: 'out of token budget',
  idle: 'idle',
  failed: 'failed',
  completed: 'finished',
};

const NTFY_TAGS: Record<NotificationEvent, string> = {
  awaiting_approval: 'hourglass',
  awaiting_budget: 'moneybag',
  idle: 'zzz',
  failed: 'warning',
  completed: 'white_check_mark',
};

export function sessionLink(inboxUrl: string | undefined, sessionId: string): string | undefined {
  return inboxUrl ? `${inboxUrl.replace(/\/+$/, '')}/s/${encodeURIComponent(sessionId)}` : undefined;
}

/** One line a person reads: what happened, to which task, and what is waiting. */
export function notificationText(n: SessionNotification): string {
  const detail =
    n.event === 'awaiting_approval'
      ? n.pending.map((p) => p.summary).join('; ')
      : n.message
        ? firstLine(n.message, 200)
        : '';
  return `Ratchet session ${HEADLINE[n.event]}: ${firstLine(n.task, 120)}${detail ? ` — ${detail}` : ''}`;
}

function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The request for one target. */
export function notificationRequest(
  target: NotifyTarget,
  n: SessionNotification,
  link: string | undefined,
): { url: string; body: string } {
  const text = notificationText(n);
  if (target.format === 'slack') {
    const linked = link ? ` <${link}|Open>` : '';
    return { url: target.url, body: JSON.stringify({ text: `${slackEscape(text)}${linked}` }) };
  }
  if (target.format === 'ntfy') {
    // ntfy's JSON form: POST to the server's root (what precedes the topic), naming the topic.
    const url = new URL(target.url);
    const parts = url.pathname.split('/').filter(Boolean);
    const topic = parts.pop() ?? '';
    return {
      url: `${url.origin}/${parts.map((part) => `${part}/`).join('')}`,
      body: JSON.stringify({
        topic,
        title: `Ratchet: ${HEADLINE[n.event]}`,
        message: text,
        tags: [NTFY_TAGS[n.event]],
        priority: n.event === 'awaiting_approval' || n.event === 'awaiting_budget' ? 4 : 3,
        ...(link ? { click: link } : {}),
      }),
    };
  }
  return { url: target.url, body: JSON.stringify({ ...n, text, ...(link ? { url: link } : {}) }) };
}

export function createNotifyActivity(deps: NotifyDeps) {
  const send = deps.fetch ?? fetch;
  const timeoutMs = deps.timeoutMs ?? 10_000;
  return {
    async notify(n: SessionNotification): Promise<{ sent: number }> {
      const activity = Context.current();
      const earlier = activity.info.heartbeatDetails as { delivered?: string[] } | undefined;
      const delivered = new Set(earlier?.delivered ?? []);
      const link = sessionLink(deps.inboxUrl, n.sessionId);
      const failures: string[] = [];
      for (const target of deps.targets) {
        if (target.events && !target.events.includes(n.event)) continue;
        if (delivered.has(target.url)) continue;
        const request = notificationRequest(target, n, link);
        try {
          const response = await send(request.url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'idempotency-key': n.id },
            body: request.body,
            signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), activity.cancellationSignal]),
          });
          await response.body?.cancel();
          if (!response.ok) throw new Error(`answered ${response.status}`);
          delivered.add(target.url);
          activity.heartbeat({ delivered: [...delivered] });
        } catch (err) {
          failures.push(`${new URL(target.url).host}: ${(err as Error).message}`);
        }
      }
      if (failures.length > 0) {
        throw ApplicationFailure.retryable(
          `notification ${n.id} not delivered: ${failures.join('; ')}`,
          'NotifyFailed',
        );
      }
      return { sent: delivered.size };
    },
  };
}
