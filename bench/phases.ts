/**
 * Where a turn's time goes, read from a workflow's event times: for each activity type, the wait
 * from scheduled to started (dispatch) and the run from started to completed; for workflow tasks
 * the same two; and the local activities' run, from the markers. Summed over the history and
 * divided by the turns. Times are the server's, so a phase includes the RPCs that bound it.
 */
import type proto from '@temporalio/proto';

type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;

function millis(event: HistoryEvent): number {
  const time = event.eventTime;
  if (!time) return NaN;
  return Number(time.seconds ?? 0) * 1000 + (time.nanos ?? 0) / 1e6;
}

/** Milliseconds per turn in each phase ("model: scheduled → started", "workflow task: run", …). */
export function turnPhases(events: readonly HistoryEvent[], turns: number): Record<string, number> {
  const totals: Record<string, number> = {};
  const add = (phase: string, ms: number) => {
    if (Number.isFinite(ms)) totals[phase] = (totals[phase] ?? 0) + ms;
  };
  const byId = new Map<string, HistoryEvent>();
  const typeOf = (scheduledId: unknown) =>
    byId.get(String(scheduledId))?.activityTaskScheduledEventAttributes?.activityType?.name ?? 'activity';
  for (const event of events) {
    byId.set(String(event.eventId), event);
    const started = event.activityTaskStartedEventAttributes;
    if (started) {
      const scheduled = byId.get(String(started.scheduledEventId));
      if (scheduled)
        add(`${typeOf(started.scheduledEventId)}: scheduled → started`, millis(event) - millis(scheduled));
    }
    const completed = event.activityTaskCompletedEventAttributes;
    if (completed) {
      const began = byId.get(String(completed.startedEventId));
      if (began)
        add(`${typeOf(completed.scheduledEventId)}: started → completed`, millis(event) - millis(began));
    }
    const wtStarted = event.workflowTaskStartedEventAttributes;
    if (wtStarted) {
      const scheduled = byId.get(String(wtStarted.scheduledEventId));
      if (scheduled) add('workflow task: scheduled → started', millis(event) - millis(scheduled));
    }
    const wtCompleted = event.workflowTaskCompletedEventAttributes;
    if (wtCompleted) {
      const began = byId.get(String(wtCompleted.startedEventId));
      if (began) add('workflow task: started → completed', millis(event) - millis(began));
    }
  }
  const first = events[0];
  const last = events.at(-1);
  if (first && last) add('the whole history: first → last event', millis(last) - millis(first));
  return Object.fromEntries(Object.entries(totals).map(([phase, ms]) => [phase, ms / turns]));
}
