/**
 * How a session outlives its history: compaction and continue-as-new. This module owns the
 * sequence: the transcript is over its limits (or the server suggests a new run) → the model
 * compacts it → the compacted state, if it fits one payload, continues as new; otherwise, or when
 * compaction fails, the session comes to rest (idle, with a notice; a message resumes) instead of
 * compacting for ever. An interrupt that arrived while no turn ran is honoured at these
 * boundaries too.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  isCancellation,
  log,
  patched,
} from '@temporalio/workflow';
import { PAYLOAD_BUDGET_BYTES, jsonBytes } from '../shared/util/bytes.js';
import type { SessionResult } from '../shared/api/session-api.js';
import type { SessionInput } from '../shared/api/session-config.js';
import { SESSION_SCHEMA_VERSION } from '../shared/api/session-config.js';
import type { SessionContext } from './context.js';
import { carriedState } from './context.js';
import { modelFailureKind, rootMessage } from '../shared/boundary/failures.js';
import { Patch } from './patches.js';

/** Whether the state to carry fits one continue-as-new payload (histories from before: assumed). */
export function carryFits(ctx: SessionContext): boolean {
  const { config, utf8 } = ctx;
  if (!utf8) return true;
  const input = { schemaVersion: SESSION_SCHEMA_VERSION, config, carried: carriedState(ctx) };
  return jsonBytes(input) <= PAYLOAD_BUDGET_BYTES;
}

/**
 * An interrupt that arrived while no turn ran (preparation, compaction, the final collection):
 * the session comes to rest at this boundary. True when it did.
 */
export function honourStop({ state, control }: SessionContext): boolean {
  const request = control.takeStop();
  if (request === null) return false;
  if (state.idle || state.ended || !patched(Patch.interruptAtBoundary)) return false;
  const why = request.reason ? ` (${request.reason})` : '';
  state.goIdle(`interrupted by the user${why}; waiting for a message`);
  return true;
}

export async function continueAsNewNow(ctx: SessionContext): Promise<never> {
  const { config, state, notifier } = ctx;
  // The next run carries the baseline's record (it may still be running beside the first turn).
  const baseline = ctx.checkpoints.pendingBaseline;
  if (baseline) await baseline;
  await notifier.flush();
  await ctx.parentLink?.flush();
  await condition(allHandlersFinished);
  // An interrupt during compaction: the next run starts at rest.
  honourStop(ctx);
  log.info('continuing as new', { turn: state.turn, entries: state.entries.length, bytes: state.bytes });
  return continueAsNew<(input: SessionInput) => Promise<SessionResult>>({
    schemaVersion: SESSION_SCHEMA_VERSION,
    config,
    carried: carriedState(ctx),
  });
}

/**
 * Compacts, then continues as new with the compacted state. Comes to rest (idle, with a notice;
 * a message resumes) instead when compaction fails, or when its result is still over the limits:
 * continuing as new would only compact again, for ever.
 */
export async function compactAndContinue(ctx: SessionContext, reason: string): Promise<void> {
  const { config, state, view, activities, sessionId } = ctx;
  view.setCurrent('compaction', `compaction · ${reason}`);
  log.info('compacting', { reason, entries: state.entries.length, bytes: state.bytes });
  let result: Awaited<ReturnType<typeof activities.compact>>;
  try {
    result = await activities.compact({
      sessionId,
      epoch: state.epoch,
      upTo: state.entries.length,
      model: config.model,
      contextEntries: state.contextEntries,
    });
  } catch (err) {
    if (err instanceof ActivityFailure && !isCancellation(err) && patched(Patch.compactionFailureIdles)) {
      const failure = modelFailureKind(err);
      if (failure.kind === 'fatal') throw ApplicationFailure.nonRetryable(failure.message, failure.type);
      const detail =
        failure.kind === 'overflow' ? 'the transcript is too long even to compact' : rootMessage(err);
      log.warn('compaction failed', { detail });
      state.goIdle(`compaction failed (${detail}); send a message to try again`);
      return;
    }
    throw err;
  }
  state.addUsage(result.usage);
  state.replaceTranscript(result.items);
  const still = state.compactionReason();
  if ((still !== null || !carryFits(ctx)) && patched(Patch.boundedCompaction)) {
    const why = still ?? `the state to carry is over ${PAYLOAD_BUDGET_BYTES} bytes`;
    log.warn('compaction left the transcript over its limits', { why });
    state.goIdle(
      `compaction did not bring the transcript under its limits (${why}); the session will not compact ` +
        'again before the next turn; send a message to continue',
    );
    return;
  }
  return continueAsNewNow(ctx);
}
