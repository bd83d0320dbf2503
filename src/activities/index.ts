/**
 * All of a session's activities, built from narrow dependencies so that tests and benchmarks can
 * substitute any of them. Workflows are typed with `ReturnType<typeof createActivities>`.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type OpenAI from 'openai';
import { PAYLOAD_BUDGET_BYTES, jsonBytes, utf8Bytes } from '../shared/util/bytes.js';
import type {
  ModelCallInput,
  ModelReply,
  ReadWithReply,
  ToolCallInput,
} from '../shared/boundary/activity-types.js';
import { INLINE_ARGUMENTS_MAX_BYTES, READS_WITH_REPLY } from '../shared/boundary/activity-types.js';
import { createCheckpointActivities } from './checkpoint-activities.js';
import { createCompactActivity } from './compact.js';
import { createModelActivity } from './model.js';
import type { NotifyDeps } from './notify.js';
import { createNotifyActivity } from './notify.js';
import type { ModelApi } from './openai-client.js';
import { keepHeartbeating } from './heartbeat.js';
import { StreamingMemory } from './stream-support.js';
import { createToolActivities } from './tool-activities.js';
import type { SandboxInfo } from './tools/sandbox.js';
import type { ToolActivityResult } from '../shared/tools/shell-output.js';
import type { TranscriptSource } from './transcript-source.js';
import { createWorkspaceActivities } from './workspace.js';
import { createWorktreeActivities } from './worktree.js';

export interface ActivityDeps {
  openai: () => OpenAI;
  /** Which API the model endpoint speaks (default: the Responses API). */
  api?: ModelApi;
  /** Cap on each reply's output tokens; none when undefined. */
  maxOutputTokens?: number;
  /** false: never stream model requests (the `stream` setting). */
  stream?: boolean;
  transcript: TranscriptSource;
  commandEnv: Record<string, string>;
  allowedRoots: readonly string[];
  sandbox: SandboxInfo;
  streamIdleTimeoutMs?: number;
  /** This worker's own task queue (tool calls of sessions it prepares are routed there). */
  toolQueue?: string;
  /** Where this worker sends session notifications (none: they are dropped). */
  notify?: NotifyDeps;
  /** Where child sessions' worktrees go (default: beside each repository). */
  worktreeRoot?: string;
  /** Where this worker keeps the sessions' checkpoint indexes (default: the user's state directory). */
  checkpointStateDir?: string;
  /** The reads run beside a reply, when not this worker's own read activities (tests override them). */
  readTools?: Partial<Record<'read_file' | 'list_dir', ReadTool>>;
}

/**
 * A reply too large for one payload would fail to be recorded on every attempt, each one a paid
 * generation; it is refused once, and the session comes to rest with the message.
 */
function refusingOversizedReplies(
  model: (input: ModelCallInput) => Promise<ModelReply>,
): (input: ModelCallInput) => Promise<ModelReply> {
  return async (input) => {
    const reply = await model(input);
    const bytes = jsonBytes(reply);
    if (bytes > PAYLOAD_BUDGET_BYTES) {
      throw ApplicationFailure.nonRetryable(
        `the model's reply is ${bytes} bytes, over the ${PAYLOAD_BUDGET_BYTES}-byte limit of one step; it was not kept`,
        'ModelReplyTooLarge',
      );
    }
    return reply;
  };
}

export type ReadTool = (
  input: ToolCallInput,
  options?: { heartbeat?: boolean },
) => Promise<ToolActivityResult>;

/**
 * Runs a reply's reads beside it (ModelDeps.afterReply, inside the model activity's heartbeat;
 * docs/PERFORMANCE.md, "Reads ride with the reply"): when the input names the workspace and every call of the reply is a cheap read with inline arguments, this worker, if it
 * holds the workspace, reads them now, as the local read activity would, and the results go back
 * with the reply. The workflow uses each for its call (reads are always allowed, and read the
 * same files moments later) and runs any it has none for as before. Nothing here fails the
 * reply: a read that throws, another worker's workspace, or results that would not fit the
 * reply's payload leave the reads to the workflow.
 */
export function readsBeside(
  reads: Record<string, ReadTool>,
): (input: ModelCallInput, reply: ModelReply) => Promise<ModelReply> {
  return async (input, reply) => {
    const where = input.reads;
    if (!where) return reply;
    const calls = reply.output.filter((item) => item.type === 'function_call');
    const readable = (call: (typeof calls)[number]) =>
      READS_WITH_REPLY.has(call.name) && utf8Bytes(call.arguments) <= INLINE_ARGUMENTS_MAX_BYTES;
    if (calls.length === 0 || !calls.every(readable)) return reply;
    const sessionId = input.sessionId ?? Context.current().info.workflowExecution?.workflowId ?? '';
    // At once, as the workflow runs a turn's reads.
    const settled = await Promise.allSettled(
      calls.map((call) =>
        reads[call.name]!(
          {
            sessionId,
            epoch: input.epoch,
            workspace: where.workspace,
            callId: call.call_id,
            itemIndex: input.upTo + reply.output.indexOf(call),
            arguments: call.arguments,
            ...(where.holder ? { holder: where.holder } : {}),
          },
          { heartbeat: false },
        ),
      ),
    );
    const cancelled = Context.current().cancellationSignal;
    if (cancelled.aborted) throw cancelled.reason;
    const results: ReadWithReply[] = [];
    for (const [i, outcome] of settled.entries()) {
      // Another worker's workspace, or a read that failed: the workflow runs them.
      if (outcome.status === 'rejected') return reply;
      // The summary first: it is what a person reads first in the Web UI's event history.
      const { display, ...rest } = outcome.value;
      results.push({ callId: calls[i]!.call_id, result: { display, ...rest } });
    }
    // First in the result, for the same reason: the reads are the turn's only events now.
    const withResults: ModelReply = { reads: results, ...reply };
    return jsonBytes(withResults) <= PAYLOAD_BUDGET_BYTES ? withResults : reply;
  };
}

/**
 * Heartbeats while a workspace step runs, so that a worker killed during preparation or the final
 * collection is noticed within the heartbeat timeout instead of the 2-minute start-to-close one.
 */
function heartbeating<I, O>(step: string, run: (input: I) => Promise<O>): (input: I) => Promise<O> {
  return async (input) => {
    const stop = keepHeartbeating(Context.current(), () => ({ step }));
    try {
      return await run(input);
    } finally {
      stop();
    }
  };
}

export function createActivities(deps: ActivityDeps) {
  const workspace = createWorkspaceActivities({
    allowedRoots: deps.allowedRoots,
    sandbox: deps.sandbox,
    toolQueue: deps.toolQueue,
  });
  const tools = createToolActivities({
    transcript: deps.transcript,
    commandEnv: deps.commandEnv,
    sandbox: deps.sandbox,
    toolQueue: deps.toolQueue,
  });
  return {
    model: refusingOversizedReplies(
      createModelActivity({
        openai: deps.openai,
        transcript: deps.transcript,
        streamIdleTimeoutMs: deps.streamIdleTimeoutMs ?? 120_000,
        api: deps.api,
        maxOutputTokens: deps.maxOutputTokens,
        streaming: new StreamingMemory(deps.stream ?? true),
        afterReply: readsBeside({
          read_file: deps.readTools?.read_file ?? tools.read_file,
          list_dir: deps.readTools?.list_dir ?? tools.list_dir,
        }),
      }),
    ),
    compact: createCompactActivity({ openai: deps.openai, transcript: deps.transcript, api: deps.api }),
    prepareWorkspace: heartbeating('prepare', workspace.prepareWorkspace),
    workspaceChanges: heartbeating('changes', workspace.workspaceChanges),
    ...createNotifyActivity(deps.notify ?? { targets: [] }),
    ...(() => {
      const trees = createWorktreeActivities(deps.worktreeRoot ? { worktreeRoot: deps.worktreeRoot } : {});
      return {
        createAgentWorktree: heartbeating('worktree', trees.createAgentWorktree),
        mergeAgentBranch: heartbeating('merge', trees.mergeAgentBranch),
        removeAgentWorktree: heartbeating('remove worktree', trees.removeAgentWorktree),
      };
    })(),
    ...createCheckpointActivities({
      ...(deps.checkpointStateDir === undefined ? {} : { stateDir: deps.checkpointStateDir }),
    }),
    ...tools,
  };
}

export type Activities = ReturnType<typeof createActivities>;
