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
 * Asks a query again while a worker's task guard refuses it (src/workflows/task-guard.ts): a
 * worker that has not cached the session refuses while a workflow task is pending, and that task
 * runs within moments. Each refusal costs that worker a replay of the whole history, so the waits
 * grow from `firstWaitMs` to a second. Any other error, a refusal that outlasts the deadline, or
 * `signal` aborting (an activity cancelled while it waits: its reason) ends it.
 */
export async function askWhileAhead<T>(
  ask: () => Promise<T>,
  deadline: number,
  { firstWaitMs = 200, signal }: { firstWaitMs?: number; signal?: AbortSignal } = {},
): Promise<T> {
  for (let waitMs = firstWaitMs; ; waitMs = Math.min(waitMs * 2, 1000)) {
    try {
      return await ask();
    } catch (err) {
      if (!errorMessage(err).includes(AHEAD_OF_TASK) || Date.now() + waitMs + 50 > deadline) throw err;
      await pause(waitMs, signal);
    }
  }
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
    () => client.connection.withDeadline(deadline, () => handle.query(statusQuery)),
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
