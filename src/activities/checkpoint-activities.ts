/**
 * The checkpoint activities, run on the worker that holds the workspace: take a turn's checkpoint
 * (and prune the oldest), restore one (refusing over changes made outside the session unless
 * forced), prune them all. Their failures are the session's notices, never its end.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { stat } from 'node:fs/promises';
import type {
  CheckpointInput,
  CheckpointRecord,
  PruneCheckpointsInput,
  RestoreCheckpointInput,
  RestoredCheckpoint,
} from '../shared/boundary/activity-types.js';
import type { WorkspaceInfo } from '../shared/api/session-config.js';
import type { CheckpointScope } from './checkpoint.js';
import {
  CheckpointError,
  changesSince,
  pruneCheckpoints,
  restoreCheckpoint,
  takeCheckpoint,
} from './checkpoint.js';
import { keepHeartbeating } from './heartbeat.js';
import { locateRepository } from './workspace-git.js';

export interface CheckpointDeps {
  /** Where this worker keeps the sessions' checkpoint indexes (default: the user's state directory). */
  stateDir?: string;
  /** This worker's own task queue: a checkpoint runs only where the workspace is. */
  toolQueue?: string;
}

/** Most files an OutsideChanges refusal names. */
const NAMED_FILES = 20;

function failed(message: string, type = 'CheckpointFailed'): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, type);
}

export function describeFiles(files: readonly { path: string; status: string }[]): string {
  const named = files.slice(0, NAMED_FILES).map((f) => `${f.status} ${f.path}`);
  const more = files.length > NAMED_FILES ? `, … ${files.length - NAMED_FILES} more` : '';
  return `${named.join(', ')}${more}`;
}

export function createCheckpointActivities(deps: CheckpointDeps = {}) {
  async function scopeOf(workspace: WorkspaceInfo, sessionId: string): Promise<CheckpointScope> {
    try {
      if (!(await stat(workspace.root)).isDirectory()) throw new Error('not a directory');
    } catch {
      throw failed(`the workspace ${workspace.root} is not on this worker`, 'WorkspaceMissing');
    }
    const location = workspace.git ?? (await locateRepository(workspace.root));
    if ('problem' in location) throw failed(`${workspace.root} is no longer a git working copy`);
    return {
      location,
      root: workspace.root,
      sessionId,
      signal: Context.current().cancellationSignal,
      ...(deps.stateDir === undefined ? {} : { stateDir: deps.stateDir }),
    };
  }

  /** Runs `step` heartbeating; git's own errors become non-retryable failures with their message. */
  async function guarded<T>(step: string, run: () => Promise<T>): Promise<T> {
    const stop = keepHeartbeating(Context.current(), () => ({ step }));
    try {
      return await run();
    } catch (err) {
      if (err instanceof CheckpointError) throw failed(err.message);
      throw err;
    } finally {
      stop();
    }
  }

  async function checkpoint(input: CheckpointInput): Promise<CheckpointRecord> {
    return guarded('checkpoint', async () => {
      const scope = await scopeOf(input.workspace, input.sessionId);
      const taken = await takeCheckpoint(scope, {
        turn: input.turn,
        since: input.since,
        message:
          `ratchet checkpoint: ${input.sessionId} turn ${input.turn}\n\n${input.did}\n\n` +
          `Ratchet-Session: ${input.sessionId}\nRatchet-Turn: ${input.turn}\n`,
      });
      if (input.keep > 0) await pruneCheckpoints(scope, input.keep);
      return {
        turn: input.turn,
        commit: taken.commit,
        head: taken.head,
        at: new Date().toISOString(),
        did: input.did,
        files: taken.files,
        filesOmitted: taken.filesOmitted,
      };
    });
  }

  async function restoreSessionCheckpoint(input: RestoreCheckpointInput): Promise<RestoredCheckpoint> {
    return guarded('restore', async () => {
      const scope = await scopeOf(input.workspace, input.sessionId);
      if (!input.force && input.latest !== null) {
        const outside = await changesSince(scope, input.latest);
        if (outside.length > 0) {
          throw failed(
            `the workspace has changes made outside the session since its last checkpoint (${describeFiles(outside)}); ` +
              'it was not restored. Keep them elsewhere first, or rewind with --force (they are kept under refs/ratchet/ either way).',
            'OutsideChanges',
          );
        }
      }
      const restored = await restoreCheckpoint(scope, input.commit);
      return { savedRef: restored.saved.ref, savedCommit: restored.saved.commit, files: restored.files };
    });
  }

  async function pruneSessionCheckpoints(input: PruneCheckpointsInput): Promise<number> {
    return guarded('prune', async () => {
      const scope = await scopeOf(input.workspace, input.sessionId);
      return (await pruneCheckpoints(scope, input.keep)).length;
    });
  }

  return { checkpoint, restoreSessionCheckpoint, pruneSessionCheckpoints };
}
