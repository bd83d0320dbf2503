/**
 * `ratchet rewind ID --turn N`: the session back to the end of turn N (docs/ARCHITECTURE.md,
 * "Checkpoints, rewind and fork"). The sequence: refuse what cannot be done well (a turn in
 * progress, changes made outside the session) → replay the state of turn N → one start request
 * that replaces the running run, if any, with a new run carrying that state (the server's
 * conflict policy terminates the old run and starts the new one together) → the new run restores
 * the checkpoint on the worker that holds the workspace, and waits. Nothing changes before that
 * one request, and nothing after it depends on this process: a rewind interrupted at any point
 * has either not happened or happened whole, and running the command again finishes it.
 */
import type { RatchetClient } from '../client.js';
import { RatchetError } from '../client.js';
import { QUERY_AHEAD_WAIT_MS, askWhileAhead } from '../client-status.js';
import { changesSince } from '../activities/checkpoint.js';
import { describeFiles } from '../activities/checkpoint-activities.js';
import type { StatusView } from '../shared/api/session-api.js';
import { statusQuery } from '../shared/api/session-api.js';
import type { CarriedState, Rewind } from '../shared/api/session-config.js';
import type { CheckpointEntry } from './checkpoint-history.js';
import { pick, sessionCheckpoints, startedInput, stateAt } from './checkpoint-history.js';
import { localScope, wrap } from './checkpoint-local.js';

export interface RewindOutcome {
  turn: number;
  commit: string;
  runId: string;
  /** The run it replaced (terminated by the start of the new one), when one was running. */
  replacedRunId: string | null;
  /** Whether the workspace was checked here for changes made outside the session. */
  checkedHere: boolean;
}

/**
 * Takes the session back to the end of `turn`: refuses (unless forced) a session in the middle
 * of a turn and a workspace changed outside the session since its last checkpoint; then starts a
 * new run with the state of that turn, which restores the checkpoint and waits.
 */
export async function rewindSession(
  ratchet: RatchetClient,
  sessionId: string,
  turn: number,
  options: { force: boolean; by?: string; workflowBundle: { codePath: string } },
): Promise<RewindOutcome> {
  const { checkpoints, runs, handle } = await sessionCheckpoints(ratchet, sessionId);
  const target = pick(checkpoints, sessionId, turn);
  const latest = checkpoints.reduce<CheckpointEntry | undefined>(
    (last, c) => (last === undefined || c.at > last.at ? c : last),
    undefined,
  );
  const description = await handle.describe();
  const running = description.status.name === 'RUNNING';
  const view = running
    ? await askWhileAhead(
        (askDeadline) => handle.client.withDeadline(askDeadline, () => handle.query(statusQuery)),
        Date.now() + QUERY_AHEAD_WAIT_MS,
      ).catch(() => null)
    : null;
  if (view?.status === 'running' && !options.force) {
    throw new RatchetError(
      `session ${sessionId} is in the middle of turn ${view.turn}${view.current ? ` (${view.current.label})` : ''}; ` +
        `interrupt it first (ratchet interrupt ${sessionId}), or rewind with --force`,
    );
  }
  const scope = await localScope(runs, sessionId);
  if (scope && latest && !options.force) {
    const outside = await wrap(() => changesSince(scope, latest.commit));
    if (outside.length > 0) {
      throw new RatchetError(
        `the workspace has changes made outside the session since its last checkpoint (turn ${latest.turn}): ` +
          `${describeFiles(outside)}. Rewinding would overwrite them. Keep them elsewhere first, or rewind with ` +
          '--force (what is overwritten is kept under refs/ratchet/ either way).',
      );
    }
  }
  const state = await stateAt(runs, target, options.workflowBundle);
  const config = startedInput(runs.at(-1)!).config;
  const rewind: Rewind = {
    turn,
    commit: target.commit,
    latest: latest?.commit ?? null,
    force: options.force,
    ...(options.by ? { by: options.by } : {}),
    fromRunId: target.runId,
  };
  const carried: CarriedState = {
    ...state,
    // The worker that holds the workspace now (the session may have moved since turn N).
    toolQueue: view?.toolQueue ?? state.toolQueue,
    lastCheckpoint: { turn, commit: target.commit },
    rewind,
  };
  const why = `rewound to the end of turn ${turn}${options.by ? ` by ${options.by}` : ''}`;
  // One request: a running run is terminated by the start of its replacement, never on its own.
  const started = await ratchet.startCarried(config, carried, sessionId, why, { replace: true });
  return {
    turn,
    commit: target.commit,
    runId: started.runId,
    replacedRunId: running ? description.runId : null,
    checkedHere: scope !== null,
  };
}

/** Waits (up to `timeoutMs`) for a rewound session to come to rest, and says what it says. */
export async function rewoundStatus(
  ratchet: RatchetClient,
  sessionId: string,
  timeoutMs = 60_000,
): Promise<StatusView | null> {
  const deadline = Date.now() + timeoutMs;
  const handle = ratchet.client.workflow.getHandle(sessionId);
  while (Date.now() < deadline) {
    const view = await handle.query(statusQuery).catch(() => null);
    if (view && view.status !== 'running' && view.notice?.includes('rewound')) return view;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return null;
}
