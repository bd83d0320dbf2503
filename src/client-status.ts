/**
 * How the client reads a session's status from the server: the status query, asked again while a
 * worker's task guard refuses it, and, for a closed session no worker answers for, the
 * configuration its run was started with.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { StatusView } from './shared/api/session-api.js';
import { statusQuery } from './shared/api/session-api.js';
import type { SessionConfig, SessionInput } from './shared/api/session-config.js';
import { sessionConfigSchema } from './shared/api/session-config.js';
import { errorMessage } from './client-errors.js';

/** What a query refused by the task guard says (src/workflows/task-guard.ts). */
const AHEAD_OF_TASK = 'applied without a workflow task';

/** How long a query the task guard refuses is asked again by default. */
export const QUERY_AHEAD_WAIT_MS = 10_000;

/**
 * How long the first ask waits for its answer. A worker can drop a query it was handed: the SDK's
 * core buffers a query that arrives while the session's workflow task is being processed, and
 * when it then evicts the session (a worker that caches no workflows, or the task guard failing
 * an activation) the buffered query goes with it, unanswered. Without a deadline of its own, the
 * ask would wait out the server's (30 s) and whatever waits on it, a model call's transcript
 * fetch or a person's `ratchet status`, with it.
 */
export const QUERY_ANSWER_WAIT_MS = 3_000;

/**
 * Asks a query until it is answered. Asked again:
 * - while a worker's task guard refuses it (src/workflows/task-guard.ts): a worker that has not
 *   cached the session refuses while a workflow task is pending, and that task runs within
 *   moments. Each refusal costs that worker a replay of the whole history, so the waits grow from
 *   `firstWaitMs` to a second;
 * - at once, when no answer came within the ask's own deadline (a query the worker dropped).
 *   That deadline starts at `answerWithinMs` and doubles each time, so a query that is only slow
 *   (a long history replayed on a busy worker) is still answered.
 * `ask` gets the deadline of that one ask. Any other error, the overall deadline passing, or
 * `signal` aborting (an activity cancelled while it waits: its reason) ends it.
 */
export async function askWhileAhead<T>(
  ask: (askDeadline: number) => Promise<T>,
  deadline: number,
  {
    firstWaitMs = 200,
    answerWithinMs = QUERY_ANSWER_WAIT_MS,
    signal,
  }: { firstWaitMs?: number; answerWithinMs?: number; signal?: AbortSignal } = {},
): Promise<T> {
  let waitMs = firstWaitMs;
  let answerMs = answerWithinMs;
  for (;;) {
    const askDeadline = Math.min(deadline, Date.now() + answerMs);
    try {
      return await ask(askDeadline);
    } catch (err) {
      if (signal?.aborted) throw signal.reason as Error;
      if (unanswered(err) && askDeadline < deadline) {
        answerMs *= 2;
        continue;
      }
      if (!errorMessage(err).includes(AHEAD_OF_TASK) || Date.now() + waitMs + 50 > deadline) throw err;
      await pause(waitMs, signal);
      waitMs = Math.min(waitMs * 2, 1000);
    }
  }
}

/** gRPC's status code for a call that outlived its deadline. */
const DEADLINE_EXCEEDED = 4;

/** Whether a query failed for want of an answer in time (DEADLINE_EXCEEDED, perhaps wrapped). */
function unanswered(err: unknown): boolean {
  for (
    let e: unknown = err, depth = 0;
    e instanceof Object && depth < 4;
    e = (e as { cause?: unknown }).cause
  ) {
    if ((e as { code?: unknown }).code === DEADLINE_EXCEEDED) return true;
    depth += 1;
  }
  return false;
}

/** Waits `ms`, or rejects with the signal's reason once it aborts. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason as Error);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The status query, asked again while the task guard refuses it (right after a worker restart). */
export function queryStatus(client: Client, handle: WorkflowHandle, deadline: number): Promise<StatusView> {
  return askWhileAhead(
    (askDeadline) => client.connection.withDeadline(askDeadline, () => handle.query(statusQuery)),
    deadline,
  );
}

/** The session configuration a run was started with, read from its first event; null if unreadable. */
export async function startedConfig(
  client: Client,
  handle: WorkflowHandle,
  runId: string,
): Promise<SessionConfig | null> {
  try {
    const page = await client.workflowService.getWorkflowExecutionHistory({
      namespace: client.options.namespace,
      execution: { workflowId: handle.workflowId, runId },
      maximumPageSize: 1,
    });
    const payload = page.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    if (!payload) return null;
    const input = client.options.loadedDataConverter.payloadConverter.fromPayload<SessionInput>(payload);
    return sessionConfigSchema().parse(input.config);
  } catch {
    return null;
  }
}
