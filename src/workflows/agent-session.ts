/**
 * The agent session: the Codex agent loop as a Temporal workflow. Build the request → model →
 * run the tool calls it asks for (after the policy, and a person where the policy asks) → append
 * the results → model again, until the model answers without a tool call.
 *
 * This file wires the state (session-state.ts) and the run's control (run-control.ts) to the
 * handlers (handlers.ts), and reads top to bottom as the loop: prepare the workspace once
 * (workspace-bootstrap.ts), converse turn by turn (turn.ts, tool-scheduler.ts), compact and
 * continue as new when the history is full (continuation.ts), collect the changes and end. What
 * the session shows outside is publish.ts; the words the model reads are model-text.ts. It does
 * no I/O.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ContinueAsNew,
  allHandlersFinished,
  condition,
  isCancellation,
  patched,
  workflowInfo,
} from '@temporalio/workflow';
import { PAYLOAD_BUDGET_BYTES, jsonBytes } from '../shared/util/bytes.js';
import { SessionFailureType } from '../shared/boundary/failure-types.js';
import type { FileChange, SessionResult } from '../shared/api/session-api.js';
import type { SessionInput } from '../shared/api/session-config.js';
import { describeZodError, sessionInputSchema } from '../shared/api/session-config.js';
import { createSessionActivities } from './activities.js';
import { AgentTree, ParentLink } from './agents.js';
import { TreeBudget } from './budget.js';
import type { SessionContext } from './context.js';
import { carryFits, compactAndContinue, continueAsNewNow, honourStop } from './continuation.js';
import { rootMessage } from '../shared/boundary/failures.js';
import { registerHandlers } from './handlers.js';
import { Notifier } from './notification.js';
import { Patch } from './patches.js';
import { SessionView } from './publish.js';
import { RunControl } from './run-control.js';
import { SessionState } from './session-state.js';
import { createTaskGuard } from './task-guard.js';
import { ToolScheduler } from './tool-scheduler.js';
import { runTurn } from './turn.js';
import { bootstrapWorkspace } from './workspace-bootstrap.js';
import { SessionCheckpoints } from './checkpoints.js';

/** Most bytes of changed-file list a session's result carries (the result is one payload). */
const MAX_FILES_CHANGED_BYTES = 256 * 1024;

function capFileList(files: FileChange[]): { kept: FileChange[]; omitted: number } {
  const kept: FileChange[] = [];
  let bytes = 0;
  for (const file of files) {
    bytes += jsonBytes(file) + 1;
    if (bytes > MAX_FILES_CHANGED_BYTES) break;
    kept.push(file);
  }
  return { kept, omitted: files.length - kept.length };
}

export async function agentSession(input: SessionInput): Promise<SessionResult> {
  const parsed = sessionInputSchema().safeParse(input);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(
      `invalid session input: ${describeZodError(parsed.error)}`,
      SessionFailureType.InvalidSessionInput,
    );
  }
  const { config, carried } = parsed.data;
  // Sessions approved before prefixes were narrowed keep the broad rules they were given.
  // Sizes are UTF-8 bytes, as payloads are; histories from before counted UTF-16 units.
  const utf8 = patched(Patch.utf8Bytes);
  const state = new SessionState(
    config,
    carried,
    () => (patched(Patch.narrowSessionPrefix) ? 'narrow' : 'v0.1'),
    utf8 ? 'utf8' : 'utf16',
  );
  const sessionId = workflowInfo().workflowId;
  const notifier = new Notifier(config.notify, sessionId, state.runs);
  const guard = createTaskGuard();
  guard.check();
  // Fan-out (agents.ts): only a session whose configuration has agents, or a child session, asks
  // the marker and issues its commands.
  const fanOut = (config.agents !== undefined || config.parent !== undefined) && patched(Patch.agentSessions);
  const parentLink = fanOut && config.parent ? new ParentLink(config.parent) : null;
  const agents: AgentTree | null = fanOut
    ? new AgentTree(
        {
          sessionId,
          config,
          workspace: () => state.workspace,
          toolQueue: () => state.toolQueue,
          approvalPolicy: () => state.approvalPolicy,
          decide: (request) => state.decidePolicy(request),
          ask: (call, summary, request, reason) => scheduler.askAbout(call, summary, request, reason),
          changed: () => {
            budget?.evaluate();
            ctx.view.publish();
          },
          guard,
          budgetDirective: () => budget?.directiveForNewChild() ?? null,
        },
        carried?.agents,
        config.limits,
      )
    : null;
  // A token budget (budget.ts): only a session whose configuration has one asks the marker.
  const budget: TreeBudget | null =
    config.budget !== undefined && patched(Patch.treeBudget)
      ? new TreeBudget(
          { config, state, control: () => ctx.control, agents, publish: () => ctx.view.publish() },
          config.budget,
          carried?.budget,
        )
      : null;
  const view = new SessionView(config, state, notifier, parentLink, budget ? () => budget.spent() : null);
  const checkpoints = new SessionCheckpoints(
    {
      sessionId,
      config,
      state,
      setCurrent: (label) => view.setCurrent('workspace', label),
      publish: () => view.publish(),
      guard,
    },
    carried?.rewind,
  );
  const ctx: SessionContext = {
    config,
    state,
    sessionId,
    activities: createSessionActivities(config.limits, guard),
    guard,
    control: new RunControl(),
    view,
    checkpoints,
    notifier,
    utf8,
    agents,
    parentLink,
    budget,
  };
  const scheduler = new ToolScheduler(ctx);
  registerHandlers(ctx);

  /** Turns until the model answers without a tool call and no message waits. */
  async function converse(): Promise<void> {
    for (;;) {
      state.deliverQueuedMessages();
      honourStop(ctx);
      if (state.idle) {
        view.publish();
        await condition(() => state.queuedMessages.length > 0);
        continue;
      }
      // The tree's token budget is spent: park here until a person decides (budget.ts).
      if (budget && (await budget.atBoundary())) continue;
      if (state.turn >= state.turnLimit) {
        state.goIdle(`stopped after ${state.turn} turns (the turn limit); send a message to continue`);
        continue;
      }
      const reason = state.compactionReason();
      // Compacted since the last turn and still over: one turn runs before the next compaction.
      if (
        reason &&
        !(
          state.compactions > 0 &&
          state.lastCompactionTurn === state.turn &&
          patched(Patch.boundedCompaction)
        )
      ) {
        await compactAndContinue(ctx, reason);
        continue;
      }
      if (workflowInfo().continueAsNewSuggested) {
        if (carryFits(ctx)) await continueAsNewNow(ctx);
        await compactAndContinue(ctx, `the state to carry is over ${PAYLOAD_BUDGET_BYTES} bytes`);
        continue;
      }

      const outcome = await runTurn(ctx, scheduler);
      // The baseline begun beside the first model call is the state every later one builds on.
      const baseline = checkpoints.pendingBaseline;
      if (baseline) await baseline;
      if (outcome !== 'overflow') await checkpoints.afterTurn(view.lastTurnSummary);
      if (outcome === 'overflow') {
        if (state.lastCompactionTurn === state.turn) {
          state.goIdle(
            'the transcript does not fit the model context even after compaction; send a message to continue',
          );
          continue;
        }
        await compactAndContinue(ctx, 'the model rejected the request as longer than its context window');
        continue;
      }
      if (outcome === 'final' && state.queuedMessages.length === 0) return;
    }
  }

  try {
    if (!state.workspace) {
      await bootstrapWorkspace(ctx);
      // The first model call cannot change the workspace: the baseline is taken beside it.
      if (patched(Patch.baselineBesideModel)) checkpoints.startBaseline();
      else await checkpoints.baseline();
    }
    await checkpoints.restoreRewound();
    view.publish();

    for (;;) {
      await converse();
      view.setCurrent('workspace', 'workspace · collect changes');
      // The conversation is finished; a workspace that vanished only costs the list of changes.
      const filesChanged = await ctx.activities
        .workspaceChanges({ workspace: state.workspace! }, state.toolQueue)
        .catch((err: unknown): FileChange[] => {
          if (err instanceof ActivityFailure && !isCancellation(err)) {
            state.setNotice(`could not list the changed files: ${rootMessage(err)}`);
            return [];
          }
          throw err;
        });
      // A message that arrived while the changes were collected is answered, not dropped.
      if (state.queuedMessages.length > 0 && patched(Patch.deliverLateMessages)) {
        state.clearCurrent();
        continue;
      }
      // Children still open are cancelled, and worktrees removed unless kept (agents.ts).
      if (agents?.hasChildren) await agents.closeAll();
      await checkpoints.atEnd();
      state.end('completed');
      view.publish();
      parentLink?.report({
        status: 'completed',
        turn: state.turn,
        message: state.lastMessage ?? '',
        filesChanged: filesChanged.slice(0, 200).map((file) => file.path),
        ...(budget ? { tokens: budget.spent() } : {}),
      });
      await parentLink?.flush();
      await notifier.flush();
      await condition(allHandlersFinished);
      const files = utf8 ? capFileList(filesChanged) : { kept: filesChanged, omitted: 0 };
      return {
        status: 'completed',
        finalMessage: state.lastMessage ?? '',
        turns: state.turn,
        usage: state.usage,
        filesChanged: files.kept,
        ...(files.omitted > 0 ? { filesChangedOmitted: files.omitted } : {}),
        compactions: state.compactions,
        runs: state.runs,
      };
    }
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    if (isCancellation(err)) state.end('cancelled');
    else state.end('failed', rootMessage(err));
    await CancellationScope.nonCancellable(async () => {
      view.publish();
      // A failed session can still be rewound to its baseline: it is recorded before the end.
      await checkpoints.pendingBaseline?.catch(() => undefined);
      if (agents?.hasChildren) await agents.closeAll();
      parentLink?.report({
        status: state.ended === 'cancelled' ? 'shutdown' : 'errored',
        turn: state.turn,
        ...(state.notice ? { message: state.notice } : {}),
      });
      await parentLink?.flush();
      await notifier.flush();
      await condition(allHandlersFinished);
    });
    throw err;
  }
}
