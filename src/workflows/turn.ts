/**
 * One turn of the Codex loop. This module owns its sequence: the turn's number is taken → the
 * model is called with the transcript (only the new tail when the provider keeps state) → the
 * reply enters the transcript → its tool calls run (tool-scheduler.ts) → the turn ends 'final'
 * (no call), 'continue', 'overflow' (the model's context is full: compact first), or 'stopped'
 * (an interrupt, an abort, a lost worker, a model that gave up). A stopped turn answers every
 * call it opened, truthfully: run, cut while running, or never run.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  log,
  patched,
} from '@temporalio/workflow';
import { itemsDigest } from '../shared/prompt/digest.js';
import type { FunctionCallItem } from '../shared/prompt/items.js';
import { isFunctionCall } from '../shared/prompt/items.js';
import { modelCallSummary } from './activities.js';
import type { SessionContext } from './context.js';
import { modelFailureKind } from '../shared/boundary/failures.js';
import { modelCallSettings } from '../shared/boundary/activity-types.js';
import { stoppedBeforeRunOutput, stoppedWhileRunningOutput } from './model-text.js';
import { Patch } from './patches.js';
import type { StopRequest } from './run-control.js';
import type { OpenCallFate } from './transcript.js';
import { uniqueCallIds } from './transcript.js';
import type { ToolScheduler } from './tool-scheduler.js';
import { TurnCalls } from './tool-scheduler.js';

export type TurnOutcome = 'final' | 'continue' | 'stopped' | 'overflow';

/** What the model reads for a call of an interrupted or aborted turn that has no result. */
function openCallOutput(label: string, why: string) {
  return (call: FunctionCallItem, fate: OpenCallFate): string =>
    fate === 'not_run'
      ? stoppedBeforeRunOutput(label, why)
      : stoppedWhileRunningOutput(label, why, call.name);
}

/** Comes to rest after an interrupt or abort: the turn's open calls are answered truthfully. */
function stopTurn(
  { state }: SessionContext,
  turn: number,
  request: StopRequest,
  calls: FunctionCallItem[],
  book: TurnCalls,
): void {
  const label = request.kind === 'abort' ? 'aborted' : 'interrupted';
  const why = request.reason ? ` (${request.reason})` : '';
  // Results that landed after an earlier call was cut are still the truth about their call.
  for (const call of calls) {
    const result = book.result(call.call_id);
    if (result && !state.hasOutput(call.call_id)) state.appendToolOutput(call.call_id, result);
  }
  state.closeOpenCalls(calls, openCallOutput(label, why), (call) => book.fate(call.call_id));
  state.approvals.clear();
  state.goIdle(`turn ${turn} ${label} by the user${why}; waiting for a message`);
}

export async function runTurn(ctx: SessionContext, scheduler: ToolScheduler): Promise<TurnOutcome> {
  const { config, state, control, view, activities } = ctx;
  const turn = state.beginTurn();
  let calls: FunctionCallItem[] = [];
  const book = new TurnCalls();
  const scope = new CancellationScope();
  control.beginTurn(scope);
  try {
    const outcome = await scope.run(async (): Promise<TurnOutcome> => {
      view.setCurrent('model', modelCallSummary(turn, state.entries.length));
      const lastReply = control.lastReply;
      const tail =
        lastReply && lastReply.epoch === state.epoch && lastReply.from < state.entries.length
          ? {
              from: lastReply.from,
              digest: itemsDigest(state.entries.slice(lastReply.from).map((entry) => entry.item)),
            }
          : undefined;
      // No sessionId: the activity reads its workflow's id (saves ~60 bytes of history a turn).
      const reply = await activities.model(turn, {
        epoch: state.epoch,
        upTo: state.entries.length,
        // Only what the activity reads (~85 bytes less per turn than the whole settings).
        model: modelCallSettings(config.model),
        turn,
        streamIdleTimeoutMs: config.limits.modelStreamIdleTimeoutMs,
        ...(config.model.providerState && state.lastResponse ? { previousResponse: state.lastResponse } : {}),
        ...(tail ? { tail } : {}),
        ...(ctx.agents?.offersTools ? { agentTools: true } : {}),
        ...(state.workspace && patched(Patch.readsWithReply)
          ? {
              reads: {
                workspace: state.workspace.root,
                ...(state.toolQueue ? { holder: state.toolQueue } : {}),
              },
            }
          : {}),
      });
      state.addUsage(reply.usage);
      const firstIndex = state.entries.length;
      control.recordReply(state.epoch, firstIndex);
      // Call ids must be unique in the transcript: a reply that repeats one (chat endpoints that
      // send no ids) gets fresh ones, the same on every replay.
      let output = reply.output;
      const unique = uniqueCallIds(state.callIds(), output);
      if (unique.renamed > 0 && patched(Patch.uniqueCallIds)) {
        log.warn('renamed repeated call ids', { turn, renamed: unique.renamed });
        output = unique.items;
      }
      // Reads run beside the reply are keyed by its call ids: none if the session renamed them.
      activities.offerReads(output === reply.output ? reply.reads : undefined);
      for (const item of output) state.append(item);
      if (config.model.providerState) {
        state.rememberResponse(reply.responseId);
      }
      state.recordAssistantText(output);
      calls = output.filter(isFunctionCall);
      view.showTurn(turn, calls);
      if (calls.length === 0) return 'final';
      const indexOf = new Map<string, number>();
      output.forEach((item, i) => {
        if (isFunctionCall(item)) indexOf.set(item.call_id, firstIndex + i);
      });
      // Nothing may change the workspace before its baseline (begun beside the first model call).
      const baseline = ctx.checkpoints.pendingBaseline;
      if (baseline) await baseline;
      await scheduler.runCalls(calls, indexOf, book);
      const lost = control.takeWorkerLost();
      if (lost !== null) {
        log.warn('the worker holding the workspace is unavailable', { toolQueue: state.toolQueue });
        state.goIdle(lost);
        // Its worker is gone: a checkpoint there would only wait for it.
        ctx.checkpoints.skipTurn();
        return 'stopped';
      }
      return 'continue';
    });
    // An interrupt whose cancellation found nothing left to cancel (the last call had just
    // finished) still stops the session here, at the end of the turn.
    const request = control.stopRequest;
    if (request !== null && outcome !== 'stopped' && patched(Patch.interruptAtBoundary)) {
      stopTurn(ctx, turn, request, calls, book);
      return 'stopped';
    }
    return outcome;
  } catch (err) {
    if (isCancellation(err) && !CancellationScope.current().consideredCancelled) {
      stopTurn(ctx, turn, control.stopRequest ?? { kind: 'interrupt' }, calls, book);
      return 'stopped';
    }
    if (err instanceof ActivityFailure) {
      const failure = modelFailureKind(err);
      if (failure.kind === 'overflow') {
        state.abandonTurn();
        return 'overflow';
      }
      if (failure.kind === 'fatal') {
        throw ApplicationFailure.nonRetryable(failure.message, failure.type);
      }
      state.abandonTurn();
      state.goIdle(`${failure.message}; send a message to try again`);
      return 'stopped';
    }
    throw err;
  } finally {
    control.endTurn();
    state.clearCurrent();
    view.publish();
  }
}
