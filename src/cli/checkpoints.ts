/**
 * `ratchet checkpoints`, `diff --turn`, `rewind` and `fork`: a session's checkpoints read from its
 * history (every run, continue-as-new and resets followed back from the current run), and the
 * operations on them (docs/ARCHITECTURE.md, "Rewind and fork").
 *
 * Both replay, here, the history of the run that took the turn's checkpoint and take the state the
 * session had there (the `ratchetCheckpoints` sink). Rewind starts a new run of the same session
 * with that state (the current run, if any, is terminated), whose first step restores the
 * checkpoint on the worker that holds the workspace. Fork puts the checkpoint into a new worktree
 * (or a given directory) and starts a new session carrying the state. Both refuse, before doing
 * anything, what they cannot do well.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type proto from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { RatchetClient } from '../client.js';
import { RatchetError, newSessionId } from '../client.js';
import type { CheckpointScope } from '../activities/checkpoint.js';
import {
  CheckpointError,
  changesSince,
  diffCheckpoints,
  importCheckpoint,
  restoreCheckpoint,
  turnRef,
} from '../activities/checkpoint.js';
import { describeFiles } from '../activities/checkpoint-activities.js';
import type { RepositoryLocation } from '../activities/workspace-git.js';
import { locateRepository } from '../activities/workspace-git.js';
import type { CheckpointRecord } from '../shared/boundary/activity-types.js';
import { userMessage } from '../shared/prompt/items.js';
import type { StatusView } from '../shared/api/session-api.js';
import { statusQuery, workerTaskQueue } from '../shared/api/session-api.js';
import type { CarriedState, Rewind, SessionConfig, SessionInput } from '../shared/api/session-config.js';
import { sessionInputSchema } from '../shared/api/session-config.js';
import { preparedWorkspace } from './diff.js';

type History = proto.temporal.api.history.v1.IHistory;

export interface CheckpointEntry extends CheckpointRecord {
  /** The run whose history recorded it. */
  runId: string;
}

interface Run {
  runId: string;
  history: History;
  /** Checkpoints after this turn in this run belong to a line a rewind abandoned. */
  upToTurn: number;
}

function decode<T>(payload: proto.temporal.api.common.v1.IPayload | null | undefined): T | undefined {
  return payload ? defaultPayloadConverter.fromPayload<T>(payload) : undefined;
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
    runs.unshift({ runId, history, upToTurn });
    const started: proto.temporal.api.history.v1.IWorkflowExecutionStartedEventAttributes | null | undefined =
      history.events?.[0]?.workflowExecutionStartedEventAttributes;
    runId = started?.continuedExecutionRunId || undefined;
    if (runId) continue;
    const input = sessionInputSchema.safeParse(decode<unknown>(started?.input?.payloads?.[0]));
    const rewind = input.success ? input.data.carried?.rewind : undefined;
    if (rewind?.fromRunId) {
      runId = rewind.fromRunId;
      upToTurn = Math.min(upToTurn, rewind.turn);
    }
  }
  return { runs, handle };
}

function checkpointsIn(run: Run): CheckpointEntry[] {
  const scheduled = new Set<string>();
  const found: CheckpointEntry[] = [];
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

function pick(checkpoints: CheckpointEntry[], sessionId: string, turn: number): CheckpointEntry {
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

/** The session's repository, when it is on this machine. */
async function localScope(ratchet: RatchetClient, sessionId: string): Promise<CheckpointScope | null> {
  const prepared = await preparedWorkspace(ratchet, sessionId);
  if (!existsSync(prepared.root)) return null;
  const location = prepared.git ?? (await locateRepository(prepared.root));
  if ('problem' in location)
    throw new RatchetError(`${prepared.root} is not a git working copy: ${location.problem}`);
  return { location, root: prepared.root, sessionId };
}

async function requireLocal(
  ratchet: RatchetClient,
  sessionId: string,
  what: string,
): Promise<CheckpointScope> {
  const scope = await localScope(ratchet, sessionId);
  if (!scope) {
    const prepared = await preparedWorkspace(ratchet, sessionId);
    throw new RatchetError(
      `the workspace ${prepared.root} is not on this machine; run ratchet ${what} where the session's worker runs`,
    );
  }
  return scope;
}

function wrap<T>(run: () => Promise<T>): Promise<T> {
  return run().catch((err: unknown) => {
    if (err instanceof CheckpointError) throw new RatchetError(err.message);
    throw err;
  });
}

/** The diff a turn made (from the checkpoint before it), or between two turns' checkpoints. */
export async function checkpointDiff(
  ratchet: RatchetClient,
  sessionId: string,
  options: { turn: number; to?: number; color: boolean; stat?: boolean },
): Promise<string> {
  const { checkpoints } = await sessionCheckpoints(ratchet, sessionId);
  const at = pick(checkpoints, sessionId, options.turn);
  let from: string;
  let to: string;
  if (options.to !== undefined) {
    from = at.commit;
    to = pick(checkpoints, sessionId, options.to).commit;
  } else {
    const before = checkpoints.filter((c) => c.turn < at.turn).at(-1);
    from = before?.commit ?? at.head ?? '';
    to = at.commit;
    if (!from) {
      throw new RatchetError(`turn ${at.turn} is the session's first checkpoint; name another with --to`);
    }
  }
  const scope = await requireLocal(ratchet, sessionId, 'diff --turn');
  return wrap(() => diffCheckpoints(scope, from, to, { color: options.color, stat: options.stat ?? false }));
}

export interface RewindOutcome {
  turn: number;
  commit: string;
  runId: string;
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
  const view = running ? await handle.query(statusQuery).catch(() => null) : null;
  if (view?.status === 'running' && !options.force) {
    throw new RatchetError(
      `session ${sessionId} is in the middle of turn ${view.turn}${view.current ? ` (${view.current.label})` : ''}; ` +
        `interrupt it first (ratchet interrupt ${sessionId}), or rewind with --force`,
    );
  }
  const scope = await localScope(ratchet, sessionId);
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
  const run = runs.find((r) => r.runId === target.runId)!;
  const state = await stateAt(run.history, turn, options.workflowBundle);
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
  if (running) await handle.terminate(why);
  const started = await ratchet.startCarried(config, carried, sessionId, why, { replace: true });
  return { turn, commit: target.commit, runId: started.runId, checkedHere: scope !== null };
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

/**
 * Run as root for someone else's repository, the worktree made here is theirs: its sessions'
 * commands run as the workspace's owner, and a root-owned workspace gets no sandbox.
 */
async function giveToOwnerOf(reference: string, paths: string[]): Promise<void> {
  if (process.geteuid?.() !== 0) return;
  const owner = await stat(reference);
  if (owner.uid === 0) return;
  for (const target of paths) await execa('chown', ['-R', `${owner.uid}:${owner.gid}`, target]);
}

/** The state the session had at a checkpoint: its run's history replayed here, up to it. */
async function stateAt(
  history: History,
  turn: number,
  workflowBundle: { codePath: string },
): Promise<CarriedState> {
  let captured: CarriedState | undefined;
  await Worker.runReplayHistory(
    {
      workflowBundle,
      replayName: 'ratchet-fork',
      sinks: {
        ratchetCheckpoints: {
          reached: {
            fn: (_info, reachedTurn: number, _commit: string, state: CarriedState) => {
              if (reachedTurn === turn) captured = state;
            },
            callDuringReplay: true,
          },
        },
      },
    },
    history,
  );
  if (!captured) throw new RatchetError(`replaying the session did not reach turn ${turn}'s checkpoint`);
  return captured;
}

function startedInput(run: Run): SessionInput {
  const payload = run.history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  const parsed = sessionInputSchema.safeParse(decode<unknown>(payload));
  if (!parsed.success) throw new RatchetError('cannot read the session configuration from its history');
  return parsed.data;
}

export interface ForkOutcome {
  sessionId: string;
  workspace: string;
  turn: number;
  commit: string;
}

/**
 * Starts a new session from the end of `turn`: its transcript, plan, approvals and usage as they
 * were then, in a new worktree of the repository (or `repo`) holding that checkpoint.
 */
export async function forkSession(
  ratchet: RatchetClient,
  sessionId: string,
  turn: number,
  options: { repo?: string; worker?: string; message?: string; workflowBundle: { codePath: string } },
): Promise<ForkOutcome> {
  const { checkpoints, runs } = await sessionCheckpoints(ratchet, sessionId);
  const target = pick(checkpoints, sessionId, turn);
  const source = await requireLocal(ratchet, sessionId, 'fork');
  if (options.repo !== undefined && !existsSync(options.repo)) {
    throw new RatchetError(`--repo ${options.repo} does not exist`);
  }
  const run = runs.find((r) => r.runId === target.runId)!;
  const config: SessionConfig = startedInput(run).config;
  const forkId = newSessionId(config.task);
  const sub = path.relative(source.location.workTree, source.root);
  const state = await stateAt(run.history, turn, options.workflowBundle);
  // The working copy: the given directory, or a new worktree beside the repository.
  let top: string;
  if (options.repo !== undefined) {
    top = await realpath(options.repo);
    const located = await locateRepository(top);
    if ('problem' in located)
      throw new RatchetError(`--repo ${top} is not a git working copy: ${located.problem}`);
    if (located.workTree !== top)
      throw new RatchetError(`--repo ${top} is not the top of its work tree (${located.workTree})`);
  } else {
    top = `${source.location.workTree}-fork-${turn}-${forkId.slice(-8)}`;
    const add = await execa(
      'git',
      [
        '-C',
        source.location.workTree,
        'worktree',
        'add',
        '-q',
        '--detach',
        top,
        ...(target.head ? [target.head] : []),
      ],
      { reject: false },
    );
    if (add.exitCode !== 0)
      throw new RatchetError(`could not make a worktree at ${top}: ${add.stderr.trim()}`);
  }
  const location = (await locateRepository(top)) as RepositoryLocation;
  await giveToOwnerOf(source.location.workTree, [top, location.gitDir]);
  const root = path.join(top, sub);
  const scope: CheckpointScope = { location, root, sessionId: forkId };
  await wrap(async () => {
    await importCheckpoint(
      scope,
      source.location,
      turnRef(sessionId, turn),
      target.commit,
      turnRef(forkId, turn),
    );
    await restoreCheckpoint(scope, target.commit);
  });

  const note =
    `This session was forked from session ${sessionId} at the end of turn ${turn}. The workspace is now ` +
    `${root} (a copy of the workspace as it was then); work there from now on.`;
  const carried: CarriedState = {
    ...state,
    entries: [...state.entries, { item: userMessage(note), turn: state.turn }],
    workspace: {
      ...state.workspace,
      root,
      gitHead: target.head,
      initiallyDirty: {},
      git: location,
    },
    toolQueue: options.worker ? workerTaskQueue(ratchet.taskQueue, options.worker) : state.toolQueue,
    queuedMessages: options.message ? [options.message] : [],
    idle: options.message === undefined,
    notice:
      options.message === undefined
        ? `forked from ${sessionId} at turn ${turn}; send a message to continue`
        : null,
    runs: 1,
    lastResponse: null,
    lastCheckpoint: { turn, commit: target.commit },
  };
  await ratchet.startCarried(
    { ...config, workspace: root, ...(options.worker ? { worker: options.worker } : {}) },
    carried,
    forkId,
    `forked from ${sessionId} at turn ${turn}`,
    { replace: false },
  );
  return { sessionId: forkId, workspace: root, turn, commit: target.commit };
}
