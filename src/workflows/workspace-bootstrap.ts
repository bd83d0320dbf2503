/**
 * A session's first step, once per session (a run continued as new has a workspace already).
 * This module owns the sequence: the workspace is prepared by a worker (a pinned one when the
 * session names it) → that worker's queue takes the session's tool calls → a worker that cannot
 * sandbox makes every command ask → the transcript opens with AGENTS.md, the environment and the
 * task. A workspace that cannot be prepared fails the session with the reason itself.
 */
import { ActivityFailure, ApplicationFailure, log, patched, workflowInfo } from '@temporalio/workflow';
import { userMessage } from '../shared/prompt/items.js';
import { agentsMdMessage, environmentContextMessage } from '../shared/prompt/instructions.js';
import { ActivityFailureType, SessionFailureType } from '../shared/boundary/failure-types.js';
import { workerTaskQueue } from '../shared/api/session-api.js';
import type { SessionContext } from './context.js';
import { isWorkerLost } from '../shared/boundary/failures.js';
import { Patch } from './patches.js';

export async function bootstrapWorkspace({ config, state, view, activities }: SessionContext): Promise<void> {
  view.setCurrent('workspace', 'workspace · prepare');
  const pinned = config.worker ? workerTaskQueue(workflowInfo().taskQueue, config.worker) : undefined;
  const prepared = await activities
    .prepareWorkspace({ workspace: config.workspace }, pinned)
    .catch((err: unknown) => {
      // The session cannot start: fail with the reason itself, not "Activity task failed".
      if (err instanceof ActivityFailure && isWorkerLost(err)) {
        throw ApplicationFailure.nonRetryable(
          `no worker with RATCHET_WORKER_ID=${config.worker} took the workspace within ` +
            `${Math.round(config.limits.toolScheduleToStartTimeoutMs / 1000)} s`,
          SessionFailureType.WorkerUnavailable,
        );
      }
      if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) {
        throw ApplicationFailure.nonRetryable(
          err.cause.message,
          err.cause.type ?? ActivityFailureType.WorkspaceRejected,
        );
      }
      throw err;
    });
  state.workspacePrepared(prepared.info);
  // The worker that prepared the workspace holds it: tool calls go to its own queue.
  // Sessions recorded before workers had queues of their own run tools on the session's queue.
  if (prepared.toolQueue && patched(Patch.workerTaskQueue)) {
    state.routeToolsTo(prepared.toolQueue, prepared.commandJournal === true);
  }
  // Sessions recorded before workers reported their sandbox replay without the fallback.
  if (
    patched(Patch.sandboxFallback) &&
    config.sandbox !== 'danger-full-access' &&
    !prepared.sandbox.available
  ) {
    state.runUnconfined(prepared.sandbox.detail);
    log.warn('session runs without a sandbox', { detail: prepared.sandbox.detail });
  }
  if (prepared.agentsMd !== null)
    state.append(userMessage(agentsMdMessage(prepared.info.root, prepared.agentsMd)));
  state.append(
    userMessage(
      environmentContextMessage({
        cwd: prepared.info.root,
        approvalPolicy: state.approvalPolicy,
        sandbox: state.sandboxLabel,
        shell: prepared.shell,
      }),
    ),
  );
  state.markFixedContext();
  state.append(userMessage(config.task));
  state.clearCurrent();
}
