/**
 * A session's event history as lines a person reads (`ratchet history`): what started, which
 * activity ran (by its summary) and how it ended, the signals and updates that arrived, and how
 * each run closed. Pure: RatchetClient fetches the runs and feeds them here one by one,
 * following continue-as-new.
 */
import type { temporal } from '@temporalio/proto';
import proto from '@temporalio/proto';

export interface HistoryLine {
  eventId: number;
  time: string;
  runId: string;
  text: string;
}

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

export class HistoryLines {
  readonly lines: HistoryLine[] = [];
  /** Scheduled activities by event id, for the line that says how each one ended. */
  private readonly scheduled = new Map<string, string>();

  /** Adds one run's events; returns the run that continued it as new, if any. */
  addRun(runId: string, events: readonly HistoryEvent[]): string | undefined {
    const EventType = proto.temporal.api.enums.v1.EventType;
    let next: string | undefined;
    for (const event of events) {
      const id = Number(event.eventId ?? 0);
      const time = event.eventTime?.seconds
        ? new Date(
            Number(event.eventTime.seconds) * 1000 + Math.floor((event.eventTime.nanos ?? 0) / 1e6),
          ).toISOString()
        : '';
      const summary = event.userMetadata?.summary?.data
        ? Buffer.from(event.userMetadata.summary.data).toString('utf8')
        : '';
      const label = summary.startsWith('"') ? (JSON.parse(summary) as string) : summary;
      let text: string | undefined;
      switch (event.eventType) {
        case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
          text = this.lines.length === 0 ? 'session started' : 'run continued';
          break;
        case EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: {
          const name = label || event.activityTaskScheduledEventAttributes?.activityType?.name || 'activity';
          this.scheduled.set(String(id), name);
          text = `▸ ${name}`;
          break;
        }
        case EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
          text = `✓ ${this.scheduled.get(String(event.activityTaskCompletedEventAttributes?.scheduledEventId)) ?? 'activity'}`;
          break;
        case EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
          text = `✗ ${this.scheduled.get(String(event.activityTaskFailedEventAttributes?.scheduledEventId)) ?? 'activity'}: ${event.activityTaskFailedEventAttributes?.failure?.message ?? ''}`;
          break;
        case EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
          text = `✗ ${this.scheduled.get(String(event.activityTaskTimedOutEventAttributes?.scheduledEventId)) ?? 'activity'}: timed out`;
          break;
        case EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
          text = `✗ ${this.scheduled.get(String(event.activityTaskCanceledEventAttributes?.scheduledEventId)) ?? 'activity'}: cancelled`;
          break;
        case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
          text = `signal ${event.workflowExecutionSignaledEventAttributes?.signalName ?? ''}`;
          break;
        case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
          text = `update ${event.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name ?? ''}`;
          break;
        case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
          next = event.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
          text = 'continued as new';
          break;
        case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
          text = 'session completed';
          break;
        case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
          text = `session failed: ${event.workflowExecutionFailedEventAttributes?.failure?.message ?? ''}`;
          break;
        case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
          text = 'session cancelled';
          break;
        case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
          text = 'cancellation requested';
          break;
        case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
          text = 'session terminated';
          break;
        default:
          break;
      }
      if (text) this.lines.push({ eventId: id, time, runId, text });
    }
    return next;
  }
}
