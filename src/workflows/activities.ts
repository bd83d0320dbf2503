/**
 * Activity stubs for the session, with the options that carry DESIGN.md's decisions: model calls
 * and read-only tools retry; a command that may change the workspace gets one attempt; long
 * activities heartbeat so that a lost worker is noticed within the heartbeat timeout. What a
 * failure means is read by src/shared/boundary/failures.ts, beside the types the activities throw.
 */
import type { ActivityOptions } from '@temporalio/workflow';
import {
  ActivityCancellationType,
  patched,
  proxyActivities,
  proxyLocalActivities,
} from '@temporalio/workflow';
import type { createActivities } from '../activities/index.js';
import type { ModelCallInput, ReadWithReply, ToolCallInput } from '../shared/boundary/activity-types.js';
import { READS_WITH_REPLY } from '../shared/boundary/activity-types.js';
import { ActivityFailureType } from '../shared/boundary/failure-types.js';
import type { SessionLimits } from '../shared/api/session-config.js';
import type { ToolOutcome } from '../shared/tools/specs.js';
import { toolOutcome } from '../shared/tools/shell-output.js';
import type { TaskGuard } from './task-guard.js';
import type { ToolCall } from './tool-calls.js';
import { isNotHolder } from '../shared/boundary/failures.js';
import { Patch } from './patches.js';

type Activities = ReturnType<typeof createActivities>;

/** "model · turn 7 · 42 items in context". */
export function modelCallSummary(turn: number, contextItems: number): string {
  return `model · turn ${turn} · ${contextItems} ${contextItems === 1 ? 'item' : 'items'} in context`;
}

/** Tools cheap and bounded enough to run as local activities (grep may walk a large tree). */

export function createSessionActivities(limits: SessionLimits, guard: TaskGuard) {
  const seconds = (ms: number) => `${Math.ceil(ms / 1000)}s`;
  const modelOptions: ActivityOptions = {
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: seconds(limits.modelHeartbeatTimeoutMs),
    retry: {
      initialInterval: '1s',
      backoffCoefficient: 2,
      maximumInterval: '60s',
      maximumAttempts: limits.modelMaxAttempts,
    },
  };
  const model = proxyActivities<Activities>(modelOptions);
  // A model call retries at once after a lost worker (a heartbeat timeout: nothing to wait for);
  // after an error the activity sets the 1 s, 2 s, 4 s … backoff itself (model-errors.ts).
  const modelCall = proxyActivities<Activities>({
    ...modelOptions,
    retry: { ...modelOptions.retry, initialInterval: '200ms' },
  });
  const workspace = proxyActivities<Activities>({
    startToCloseTimeout: '2 minutes',
    // A worker that dies mid-step is noticed within this, not after the 2 minutes.
    heartbeatTimeout: seconds(limits.toolHeartbeatTimeoutMs),
    retry: {
      initialInterval: '1s',
      maximumAttempts: 5,
      nonRetryableErrorTypes: [ActivityFailureType.WorkspaceRejected],
    },
  });
  const toolBase: ActivityOptions = {
    startToCloseTimeout: '5 minutes',
    heartbeatTimeout: seconds(limits.toolHeartbeatTimeoutMs),
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: '1s', maximumAttempts: 3 },
  };
  const tools = proxyActivities<Activities>(toolBase);
  // Cheap reads run as local activities: in the workflow task that asked for them, without a
  // round trip through the server's task queues (docs/PERFORMANCE.md). Only with inline
  // arguments: fetching them would query this workflow while its task is still open.
  const localReads = proxyLocalActivities<Activities>({
    startToCloseTimeout: '1 minute',
    retry: {
      initialInterval: '1s',
      maximumAttempts: 3,
      nonRetryableErrorTypes: [ActivityFailureType.NotWorkspaceHolder],
    },
  });

  /**
   * On the queue of the worker that holds the workspace, when the session has one: a call that
   * worker does not pick up within the schedule-to-start timeout fails (never retried) instead of
   * waiting for ever for a worker that is gone.
   */
  function routed(queue: string | null | undefined): ActivityOptions {
    if (!queue) return {};
    return { taskQueue: queue, scheduleToStartTimeout: seconds(limits.toolScheduleToStartTimeoutMs) };
  }

  function toolOptions(
    call: ToolCall,
    queue: string | null | undefined,
    journaled: boolean,
  ): ActivityOptions {
    const options: ActivityOptions = { summary: call.summary, ...routed(queue) };
    if (call.tool === 'shell') {
      const timeoutMs = (call.args as { timeout_ms?: number }).timeout_ms ?? limits.commandTimeoutMs;
      options.startToCloseTimeout = seconds(timeoutMs + 60_000);
      // A command that may change the workspace runs at most once (DESIGN.md §4). On the queue of
      // the worker that holds the workspace, when that worker said it keeps a command journal, a
      // lost attempt is tried again: the journal tells the retry whether the command still runs
      // (it attaches), ended (its result), or was lost with its process (reported, never run
      // again); see command-runs.ts. A server down for longer than the heartbeat timeout then
      // costs nothing. An older worker would simply run the command again: never retried there.
      if (!call.readOnly) {
        options.retry =
          queue && journaled
            ? {
                maximumAttempts: 3,
                initialInterval: '1s',
                nonRetryableErrorTypes: [ActivityFailureType.CommandLost, ActivityFailureType.CommandFailed],
              }
            : { maximumAttempts: 1 };
      }
    }
    return options;
  }

  /** The last reply's reads, run beside it (ModelCallInput.reads), by call id; each used once. */
  let offered = new Map<string, ReadWithReply>();

  return {
    /**
     * The reads that came with the reply the turn runs: its read calls take these results
     * instead of running again. Given none (a reply whose call ids the session renamed), they run.
     */
    offerReads(reads: readonly ReadWithReply[] | undefined) {
      offered = new Map((reads ?? []).map((read) => [read.callId, read]));
    },
    /**
     * The summary is fixed when the call is scheduled, before the reply says how many tools it
     * calls; it shows what is known then: the turn and how much context the model reads. The
     * outcome appears in the workflow's current details ("last turn").
     */
    model(turn: number, input: ModelCallInput) {
      return guard.settled(
        modelCall.model.executeWithOptions({ summary: modelCallSummary(turn, input.upTo) }, [input]),
      );
    },
    compact: (input: Parameters<Activities['compact']>[0]) =>
      guard.settled(model.compact.executeWithOptions({ summary: 'compaction' }, [input])),
    /** On the session's queue (any worker), or on a pinned worker's queue. */
    prepareWorkspace: (input: Parameters<Activities['prepareWorkspace']>[0], queue?: string) =>
      guard.settled(
        workspace.prepareWorkspace.executeWithOptions(
          { summary: `workspace · prepare ${input.workspace}`, ...routed(queue) },
          [input],
        ),
      ),
    workspaceChanges: (input: Parameters<Activities['workspaceChanges']>[0], queue?: string | null) =>
      guard.settled(
        workspace.workspaceChanges.executeWithOptions(
          { summary: 'workspace · changed files', ...routed(queue) },
          [input],
        ),
      ),
    /** `journaled`: the worker on `queue` keeps a command journal (a lost command may be retried there). */
    runTool: (
      call: ToolCall,
      input: ToolCallInput,
      queue?: string | null,
      journaled = false,
    ): Promise<ToolOutcome> => guard.settled(runTool(call, input, queue, journaled)),
  };

  async function runTool(
    call: ToolCall,
    input: ToolCallInput,
    queue: string | null | undefined,
    journaled: boolean,
  ): Promise<ToolOutcome> {
    const ready = READS_WITH_REPLY.has(call.tool) ? offered.get(call.call.call_id) : undefined;
    if (ready) {
      offered.delete(call.call.call_id);
      return toolOutcome(ready.result);
    }
    if (
      READS_WITH_REPLY.has(call.tool) &&
      input.arguments !== undefined &&
      // Sessions recorded before reads ran locally replay with regular activities.
      patched(Patch.localReads)
    ) {
      // The worker running this workflow task may not be the one holding the workspace; the
      // read then refuses (recorded, so replay takes the same path) and goes to the holder.
      try {
        return toolOutcome(
          await localReads[call.tool].executeWithOptions({ summary: call.summary }, [
            queue ? { ...input, holder: queue } : input,
          ]),
        );
      } catch (err) {
        if (!isNotHolder(err)) throw err;
      }
    }
    // The shell returns its output's parts (or, recorded by earlier workers, the text): the
    // model reads the same text either way (src/shared/tools/shell-output.ts).
    return toolOutcome(
      await tools[call.tool].executeWithOptions(toolOptions(call, queue, journaled), [input]),
    );
  }
}
export type SessionActivities = ReturnType<typeof createSessionActivities>;
