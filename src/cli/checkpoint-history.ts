/**
 * A session's checkpoints and states as its history records them. The runs of the session's
 * current line are followed back from the current one (through continue-as-new, and through a
 * rewind to the run that held the turn it went back to); each run's `checkpoint` activity results
 * are its checkpoints, and a fork's first run records in its input the checkpoint it started from.
 * The state at a checkpoint comes from replaying, here, the run that took it (the
 * `ratchetCheckpoints` sink), or, for a fork's starting checkpoint, from that run's input.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type proto from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import type { RatchetClient } from '../client.js';
import { RatchetError } from '../client.js';
import type { CheckpointRecord, PreparedWorkspace } from '../shared/boundary/activity-types.js';
import type { CarriedState, SessionInput } from '../shared/api/session-config.js';
import { sessionInputSchema } from '../shared/api/session-config.js';
import type { PreparedRepository } from './diff.js';

type History = proto.temporal.api.history.v1.IHistory;

export interface CheckpointEntry extends CheckpointRecord {
  /** The run whose history recorded it. */
  runId: string;
  /** For a fork's first checkpoint: the session it was taken in (the fork's run recorded it at its start). */
  forkedFrom?: { sessionId: string; runId: string };
}

export interface Run {
  runId: string;
  history: History;
  /** The run's input, when it parses (every run Ratchet started). */
  input: SessionInput | undefined;
  /** The run continued an earlier one (continue-as-new). */
  continued: boolean;
  /** Checkpoints after this turn in this run belong to a line a rewind abandoned. */
  upToTurn: number;
}

function decode<T>(payload: proto.temporal.api.common.v1.IPayload | null | undefined): T | undefined {
  return payload ? defaultPayloadConverter.fromPayload<T>(payload) : undefined;
}

function inputOf(history: History): SessionInput | undefined {
  const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
  const parsed = sessionInputSchema().safeParse(decode<unknown>(started?.input?.payloads?.[0]));
  return parsed.success ? parsed.data : undefined;
}

/**
 * The runs of a session's current line, oldest first, followed back from the current one: through
 * continue-as-new, and through a rewind to the run that held the turn it went back to.
 */
async function runsOf(
  ratchet: RatchetClient,
  sessionId: string,
): Promise<{ runs: Run[]; handle: WorkflowHandle }> {
  const handle = await ratchet.session(sessionId);
  const runs: Run[] = [];
  let runId: string | undefined = (await handle.describe()).runId;
  let upToTurn = Number.POSITIVE_INFINITY;
  const seen = new Set<string>();
  while (runId && !seen.has(runId)) {
    seen.add(runId);
    const history: History = await ratchet.client.workflow.getHandle(sessionId, runId).fetchHistory();
    const input = inputOf(history);
    const previous = history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
    runs.unshift({ runId, history, input, continued: Boolean(previous), upToTurn });
    runId = previous || undefined;
    if (runId) continue;
    const rewind = input?.carried?.rewind;
    if (rewind?.fromRunId) {
      runId = rewind.fromRunId;
      upToTurn = Math.min(upToTurn, rewind.turn);
    }
  }
  return { runs, handle };
}

function checkpointsIn(run: Run): CheckpointEntry[] {
  const found: CheckpointEntry[] = [];
  // A fork's first run: the checkpoint it started from (a rewound or continued run carries none).
  const base = run.continued || run.input?.carried?.rewind ? undefined : run.input?.carried?.base;
  if (base && base.turn <= run.upToTurn) {
    const { from, ...record } = base;
    found.push({ ...record, runId: run.runId, forkedFrom: from });
  }
  const scheduled = new Set<string>();
  for (const event of run.history.events ?? []) {
    if (event.activityTaskScheduledEventAttributes?.activityType?.name === 'checkpoint') {
      scheduled.add(String(event.eventId));
    }
    const completed = event.activityTaskCompletedEventAttributes;
    if (completed && scheduled.has(String(completed.scheduledEventId))) {
      const record = decode<CheckpointRecord>(completed.result?.payloads?.[0]);
      if (record && record.turn <= run.upToTurn) found.push({ ...record, runId: run.runId });
    }
  }
  return found;
}

/** The session's checkpoints on its current line of runs, by turn. */
export async function sessionCheckpoints(
  ratchet: RatchetClient,
  sessionId: string,
): Promise<{ checkpoints: CheckpointEntry[]; runs: Run[]; handle: WorkflowHandle }> {
  const { runs, handle } = await runsOf(ratchet, sessionId);
  const byTurn = new Map<number, CheckpointEntry>();
  for (const run of runs) for (const entry of checkpointsIn(run)) byTurn.set(entry.turn, entry);
  return { checkpoints: [...byTurn.values()].sort((a, b) => a.turn - b.turn), runs, handle };
}

export function pick(checkpoints: CheckpointEntry[], sessionId: string, turn: number): CheckpointEntry {
  const found = checkpoints.find((c) => c.turn === turn);
  if (found) return found;
  const turns = checkpoints.map((c) => c.turn);
  throw new RatchetError(
    `session ${sessionId} has no checkpoint for turn ${turn}` +
      (turns.length
        ? ` (turns with one: ${turns.join(', ')})`
        : ' (it has none: nothing it ran could have changed the workspace yet)'),
  );
}

/** The run that recorded `entry`. */
export function runOf(runs: Run[], entry: CheckpointEntry): Run {
  const run = runs.find((r) => r.runId === entry.runId);
  if (!run) throw new RatchetError(`the run ${entry.runId} that holds turn ${entry.turn} is gone`);
  return run;
}

export function startedInput(run: Run): SessionInput {
  if (!run.input) throw new RatchetError('cannot read the session configuration from its history');
  return run.input;
}

/**
 * Where the session's line of runs works now: the workspace its latest run carried in, or the one
 * its first run prepared.
 */
export function workspaceOfLine(runs: Run[], sessionId: string): PreparedRepository {
  for (const run of [...runs].reverse()) {
    const carried = run.input?.carried?.workspace;
    if (carried) {
      const { root, gitHead, git } = carried;
      return { root, gitHead, ...(git === undefined ? {} : { git }) };
    }
    const prepares = new Set<string>();
    for (const event of run.history.events ?? []) {
      if (event.activityTaskScheduledEventAttributes?.activityType?.name === 'prepareWorkspace') {
        prepares.add(String(event.eventId));
      }
      const completed = event.activityTaskCompletedEventAttributes;
      if (completed && prepares.has(String(completed.scheduledEventId))) {
        const result = decode<PreparedWorkspace>(completed.result?.payloads?.[0]);
        if (result) {
          const { root, gitHead, git } = result.info;
          return { root, gitHead, ...(git === undefined ? {} : { git }) };
        }
      }
    }
  }
  throw new RatchetError(`session ${sessionId} has not prepared its workspace yet`);
}

/**
 * The state the session had at a checkpoint: its run's history replayed here, up to it; for a
 * fork's first checkpoint, the state the fork started with, waiting for a message (a message the
 * fork was started with began the turn after it).
 */
export async function stateAt(
  runs: Run[],
  entry: CheckpointEntry,
  workflowBundle: { codePath: string },
): Promise<CarriedState> {
  const run = runOf(runs, entry);
  if (entry.forkedFrom) {
    const { base: _recorded, ...started } = startedInput(run).carried!;
    return {
      ...started,
      queuedMessages: [],
      idle: true,
      notice: null,
      runs: started.runs + 1,
    };
  }
  let captured: CarriedState | undefined;
  await Worker.runReplayHistory(
    {
      workflowBundle,
      replayName: 'ratchet-fork',
      sinks: {
        ratchetCheckpoints: {
          reached: {
            fn: (_info, reachedTurn: number, _commit: string, state: CarriedState) => {
              if (reachedTurn === entry.turn) captured = state;
            },
            callDuringReplay: true,
          },
        },
      },
    },
    run.history,
  );
  if (!captured)
    throw new RatchetError(`replaying the session did not reach turn ${entry.turn}'s checkpoint`);
  return captured;
}
