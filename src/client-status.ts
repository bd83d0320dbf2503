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

/**
 * The status query. Right after a worker restart, a worker that has not cached the session
 * refuses it while a workflow task is pending (src/workflows/task-guard.ts); that task runs
 * within moments, so the query is asked again until the deadline.
 */
export async function queryStatus(
  client: Client,
  handle: WorkflowHandle,
  deadline: number,
): Promise<StatusView> {
  for (;;) {
    try {
      return await client.connection.withDeadline(deadline, () => handle.query(statusQuery));
    } catch (err) {
      if (!errorMessage(err).includes(AHEAD_OF_TASK) || Date.now() + 250 > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
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
