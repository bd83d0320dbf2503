/**
 * The session's checkpoints: the workspace as the session found it (turn 0), then after every
 * turn that ran a call that may write (a patch, a command not known to be read-only), one
 * checkpoint on the worker that holds the workspace, bounded in time; its record (commit, turn,
 * files) is the activity's result in history. A checkpoint that fails is a notice.
 *
 * Rewind and fork (docs/ARCHITECTURE.md, "Rewind and fork") replay a run's history on the client;
 * at each checkpoint the replay hands the state the session had then to the `ratchetCheckpoints`
 * sink (only while replaying: nothing is recorded). A rewind starts a new run of the session with
 * that state and the checkpoint to restore: the run's first step restores it on the worker that
 * holds the workspace, then the session waits for a message. Sequences owned here: checkpoint →
 * record; and, in a rewound run, restore → idle.
 */
import type { Sinks } from '@temporalio/workflow';
import {
  ActivityFailure,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxySinks,
  workflowInfo,
} from '@temporalio/workflow';
import type { ActivityOptions } from '@temporalio/workflow';
import type { createActivities } from '../activities/index.js';
import type { CheckpointRecord } from '../shared/boundary/activity-types.js';
import type { CarriedState, Rewind, SessionConfig } from '../shared/api/session-config.js';
import { Patch } from './patches.js';
import type { SessionState } from './session-state.js';
import type { TaskGuard } from './task-guard.js';

type Activities = ReturnType<typeof createActivities>;

/**
 * A checkpoint (or a prune) whose worker stops heartbeating for this long is taken again (at most
 * the tools' heartbeat timeout). A snapshot is safe to repeat, unlike a command, and the first
 * turn's calls wait for the baseline: a worker lost while it runs, beside the first model call,
 * would otherwise hold the session up for a command's 15 s. A restore writes the user's working
 * tree, so it keeps the tools' timeout: a second attempt must not start beside a first that is
 * only slow.
 */
const CHECKPOINT_HEARTBEAT_TIMEOUT_MS = 3_000;

/** The sink a replay on the client (`ratchet fork`) gives the state at each checkpoint. */
export interface CheckpointSinks extends Sinks {
  ratchetCheckpoints: {
    reached(turn: number, commit: string, state: CarriedState): void;
  };
}

/** What the turn said of itself when it did nothing a person described. */
const NO_DESCRIPTION = 'the workspace as the session found it';

function rootMessage(err: unknown): string {
  let current: unknown = err;
  while (current instanceof Error && current.cause instanceof Error) current = current.cause;
  return current instanceof Error ? current.message : String(current);
}

function copyCarried(state: CarriedState): CarriedState {
  return JSON.parse(JSON.stringify(state)) as CarriedState;
}

export interface CheckpointHooks {
  sessionId: string;
  config: SessionConfig;
  state: SessionState;
  /** Shows the step in the session's details (and the status query). */
  setCurrent(label: string): void;
  publish(): void;
  /**
   * Where each checkpoint activity's result is checked: a query on a worker that had not cached
   * the session must not apply it ahead of its workflow task (task-guard.ts).
   */
  guard: TaskGuard;
}

/** How a checkpoint is taken beside other work (the baseline beside the first model call). */
interface TakeOptions {
  /** Leave the session's current step alone: the model call running beside it owns it. */
  quiet?: boolean;
  /** The state a replay hands the sink (`ratchet fork`), copied when the checkpoint began. */
  carried?: CarriedState;
}

export class SessionCheckpoints {
  private wrote = false;
  private baselineRun: Promise<void> | null = null;
  private readonly sinks = proxySinks<CheckpointSinks>();

  /** @param rewind what the run that `ratchet rewind` started must restore first, if it is one */
  constructor(
    private readonly hooks: CheckpointHooks,
    private rewind: Rewind | undefined,
  ) {}

  /** A call that may change the workspace started in this turn. */
  noteWrite(): void {
    this.wrote = true;
  }

  /** The turn's checkpoint is not taken (the worker holding the workspace is gone). */
  skipTurn(): void {
    this.wrote = false;
  }

  private enabled(): boolean {
    return this.hooks.config.checkpoints.enabled && patched(Patch.checkpoints);
  }

  private options(summary: string, writesWorkspace = false): ActivityOptions {
    const { limits, checkpoints } = this.hooks.config;
    const queue = this.hooks.state.toolQueue;
    const heartbeatMs = writesWorkspace
      ? limits.toolHeartbeatTimeoutMs
      : Math.min(limits.toolHeartbeatTimeoutMs, CHECKPOINT_HEARTBEAT_TIMEOUT_MS);
    return {
      summary,
      startToCloseTimeout: `${Math.ceil(checkpoints.timeoutMs / 1000)}s`,
      heartbeatTimeout: `${Math.ceil(heartbeatMs / 1000)}s`,
      retry: { initialInterval: '1s', maximumAttempts: 2 },
      ...(queue
        ? {
            taskQueue: queue,
            scheduleToStartTimeout: `${Math.ceil(limits.toolScheduleToStartTimeoutMs / 1000)}s`,
          }
        : {}),
    };
  }

  /** Options are given per call (executeWithOptions): the tool queue may change (moveToWorker). */
  private readonly activities = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes' });

  /** The workspace as the session found it: turn 0, so that even the first turn can be undone. */
  async baseline(): Promise<void> {
    await this.take(0, NO_DESCRIPTION);
  }

  /**
   * The baseline, begun beside the session's first model call (which cannot change the
   * workspace) instead of before it: the first request does not wait for a snapshot of the whole
   * workspace (two git processes, seconds in a large repository). Nothing that may write runs
   * before it has settled: the turn's calls, the checkpoint after the turn and a continue-as-new
   * wait for `pendingBaseline`.
   */
  startBaseline(): void {
    const carried = workflowInfo().unsafe.isReplaying ? copyCarried(this.hooks.state.carry()) : undefined;
    const run = this.take(0, NO_DESCRIPTION, { quiet: true, carried });
    // Awaited where it matters; a cancellation of the whole session reaches those awaits too.
    run.catch(() => undefined);
    this.baselineRun = run;
  }

  /** The baseline begun beside the first model call; null in a session that took it before. */
  get pendingBaseline(): Promise<void> | null {
    return this.baselineRun;
  }

  /** After a turn: a checkpoint when it ran something that may have written. */
  async afterTurn(did: string): Promise<void> {
    const wrote = this.wrote;
    this.wrote = false;
    if (!wrote) return;
    await this.take(this.hooks.state.turn, did);
  }

  /** When the session completes: prune every checkpoint if the settings say so. */
  async atEnd(): Promise<void> {
    const { state, config, sessionId } = this.hooks;
    if (config.checkpoints.afterEnd !== 'prune' || !state.workspace || !this.enabled()) return;
    try {
      await this.hooks.guard.settled(
        this.activities.pruneSessionCheckpoints.executeWithOptions(this.options('checkpoints · prune all'), [
          { workspace: state.workspace, sessionId, keep: 0 },
        ]),
      );
    } catch (err) {
      if (!(err instanceof ActivityFailure) || isCancellation(err)) throw err;
      log.warn('could not prune the checkpoints', { detail: rootMessage(err) });
    }
  }

  private async take(turn: number, did: string, how: TakeOptions = {}): Promise<void> {
    const { state, config, sessionId } = this.hooks;
    if (!state.workspace || !this.enabled()) return;
    if (!how.quiet) this.hooks.setCurrent(`checkpoint · turn ${turn}`);
    let record: CheckpointRecord;
    try {
      record = await this.hooks.guard.settled(
        this.activities.checkpoint.executeWithOptions(this.options(`checkpoint · turn ${turn}`), [
          {
            workspace: state.workspace,
            sessionId,
            turn,
            did,
            since: state.lastCheckpoint?.commit ?? null,
            keep: config.checkpoints.keep,
          },
        ]),
      );
    } catch (err) {
      if (!(err instanceof ActivityFailure) || isCancellation(err)) throw err;
      log.warn('checkpoint failed', { turn, detail: rootMessage(err) });
      if (!state.idle)
        state.setNotice(
          `the checkpoint of turn ${turn} failed (${rootMessage(err)}); the session goes on without it`,
        );
      return;
    } finally {
      if (!how.quiet) {
        state.clearCurrent();
        this.hooks.publish();
      }
    }
    state.recordCheckpoint(turn, record.commit);
    // A copy: sink calls are delivered after the activation, by when the state has moved on.
    if (workflowInfo().unsafe.isReplaying) {
      const carried = how.carried
        ? { ...how.carried, lastCheckpoint: { turn, commit: record.commit } }
        : copyCarried(state.carry());
      this.sinks.ratchetCheckpoints.reached(turn, record.commit, carried);
    }
  }

  /** In a run that `ratchet rewind` started: restore the checkpoint, then wait for a message. */
  async restoreRewound(): Promise<void> {
    const request = this.rewind;
    this.rewind = undefined;
    const { state, sessionId } = this.hooks;
    if (request === undefined || !state.workspace || !this.enabled()) return;
    const { turn, commit } = request;
    log.warn('rewound', { turn, commit, by: request.by });
    state.recordCheckpoint(turn, commit);
    this.hooks.setCurrent(`workspace · restore turn ${turn}`);
    const short = commit.slice(0, 12);
    try {
      const restored = await this.hooks.guard.settled(
        this.activities.restoreSessionCheckpoint.executeWithOptions(
          this.options(`workspace · restore turn ${turn}`, true),
          [
            {
              workspace: state.workspace,
              sessionId,
              turn,
              commit,
              latest: request.latest,
              force: request.force,
            },
          ],
        ),
      );
      state.goIdle(
        `rewound to the end of turn ${turn}: the workspace is back at checkpoint ${short} ` +
          `(${restored.files.length} ${restored.files.length === 1 ? 'file' : 'files'} restored; what was there ` +
          `before is kept as ${restored.savedRef}); send a message to continue`,
      );
    } catch (err) {
      if (!(err instanceof ActivityFailure) || isCancellation(err)) throw err;
      state.goIdle(
        `rewound the conversation to the end of turn ${turn}, but the workspace was NOT restored: ` +
          `${rootMessage(err)}; send a message to continue as it is`,
      );
    } finally {
      this.hooks.publish();
    }
  }
}
