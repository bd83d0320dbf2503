/**
 * Keeps workflow code from running ahead of the session's workflow tasks.
 *
 * A worker that does not have a session cached answers a query by rebuilding the session from
 * the history the query carries, and that history can end with an event no workflow task has
 * processed yet (an activity's result, its workflow task scheduled but not started). The SDK's
 * core applies it (the session's code reacts to the result) and keeps the session cached in that
 * state. The next workflow task is then handled in two activations, the query's and the task's;
 * whatever the task brought (a signal, an update) acts after the result. A replay delivers both
 * in one activation with signals and updates first, so it runs them before the result: the
 * history no longer replays (a nondeterminism error in every later task and query), or a person
 * answers a state no workflow task recorded. docs/RELIABILITY.md, "Randomized sessions".
 *
 * Such an activation is recognisable: it brings new events but no new workflow task, so the
 * workflow time (the start of the current task) has not moved since the last code that ran while
 * the history has grown. `check()` fails it then: the query gets an error, the core drops the
 * session from its cache, and the next workflow task rebuilds it from the whole history, as a
 * replay would. It is called wherever the session resumes (after every activity, in every signal
 * and update handler); it issues no command, and it never fires while replaying.
 */
import { workflowInfo } from '@temporalio/workflow';

/** The activation applied history that no workflow task has processed (a query on a cold cache). */
export class AheadOfWorkflowTask extends Error {
  override name = 'AheadOfWorkflowTask';
}

export interface TaskGuard {
  /**
   * Notes where the session is; fails the activation if it runs ahead of its workflow tasks, and
   * throws (for a handler: it stops before it changes anything).
   */
  check(): void;
  /**
   * Awaits an activity, checking where the session is when its result (or failure) arrives; when
   * it is ahead, the activation fails and what awaits the activity never resumes.
   */
  settled<T>(activity: Promise<T>): Promise<T>;
}

export function createTaskGuard(): TaskGuard {
  let last: { time: number; length: number } | null = null;
  /** The error when the session runs ahead (the activation is already set to fail), else null. */
  const observe = (): AheadOfWorkflowTask | null => {
    const info = workflowInfo();
    const now = { time: Date.now(), length: info.historyLength };
    const before = last;
    last = now;
    if (before === null || info.unsafe.isReplaying) return null;
    if (now.length <= before.length || now.time !== before.time) return null;
    const err = new AheadOfWorkflowTask(
      `history events ${before.length + 1}–${now.length} were applied without a workflow task (a query ` +
        'on a worker that had not cached this session); ask again once the pending workflow task has run',
    );
    // A rejection nobody handles fails the activation, whoever called this; the core then evicts
    // the session and fails the query. Nothing else may run on the way: the catch that publishes
    // a failed session would issue a command in the query's activation, which the core refuses
    // as a malformed completion and shuts the whole worker down for.
    void Promise.reject(err);
    return err;
  };
  /** Where the session's code stops when it is ahead: the evicted run never resumes. */
  const never = () => new Promise<never>(() => undefined);
  return {
    check() {
      const err = observe();
      if (err) throw err;
    },
    settled: <T>(activity: Promise<T>) =>
      activity.then(
        (value) => (observe() ? never() : value),
        (err: unknown) => {
          if (observe()) return never();
          throw err;
        },
      ),
  };
}
