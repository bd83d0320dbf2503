/**
 * Sending a session's notifications off its critical path. Each event starts a small child
 * workflow (abandoned when the session closes) whose one activity POSTs to the worker's
 * configured URLs and is retried there; the session waits only for the child to start, never for
 * an endpoint. The child's id is derived from the session's and counts the events, so an event
 * is sent at most once even if the session's workflow task runs again.
 */
import {
  ParentClosePolicy,
  WorkflowIdReusePolicy,
  log,
  proxyActivities,
  startChild,
} from '@temporalio/workflow';
import type { createActivities } from '../activities/index.js';
import type { NotificationEvent, SessionNotification } from '../shared/api/notifications.js';

type Activities = ReturnType<typeof createActivities>;

const { notify } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 10 },
});

/** The child workflow: deliver one notification, with the activity's retries. */
export async function sessionNotification(notification: SessionNotification): Promise<void> {
  await notify(notification);
}

export class Notifier {
  private count = 0;
  private starts: Array<Promise<unknown>> = [];

  constructor(
    private readonly enabled: boolean,
    private readonly sessionId: string,
    /** The session's run (continue-as-new count): ids stay unique across runs. */
    private readonly run: number,
  ) {}

  emit(
    event: NotificationEvent,
    details: Omit<SessionNotification, 'id' | 'event' | 'sessionId' | 'at'>,
  ): void {
    if (!this.enabled) return;
    this.count += 1;
    const id = `${this.sessionId}--notify-${this.run}-${this.count}`;
    const notification: SessionNotification = {
      id,
      event,
      sessionId: this.sessionId,
      at: new Date().toISOString(),
      ...details,
    };
    this.starts.push(
      startChild(sessionNotification, {
        workflowId: id,
        args: [notification],
        parentClosePolicy: ParentClosePolicy.ABANDON,
        workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        staticSummary: `notification · ${event}`,
      }).catch((err: unknown) => {
        // Already sent (the same id), or the session is closing: never the session's failure.
        log.warn('notification not started', { event, error: String(err) });
      }),
    );
  }

  /** Waits until every notification emitted has started (before the session closes or continues). */
  async flush(): Promise<void> {
    const starts = this.starts;
    this.starts = [];
    await Promise.all(starts);
  }
}
