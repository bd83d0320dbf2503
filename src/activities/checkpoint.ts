/**
 * Checkpoints: the whole working tree of a session's repository (tracked, untracked and deleted
 * files, file modes, links, binaries; not ignored files) stored as a git commit nobody sees, under
 * `refs/ratchet/<session>/…`. This module owns snapshot → commit → ref, and the way back:
 * snapshot the present (kept too) → read the checkpoint's tree over the working tree. The git
 * plumbing is checkpoint-git.ts's, the refs checkpoint-refs.ts's.
 *
 * The user's HEAD, index, branches and stash are never touched.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FileChange } from '../shared/api/session-api.js';
import { giveToWorkspaceOwner } from './workspace-owner.js';
import type { Checkpoint, CheckpointScope, Shadow } from './checkpoint-git.js';
import {
  EMPTY_TREE,
  changes,
  commitAndRef,
  giveToRepositoryOwner,
  pathspec,
  prefixOf,
  requireCommit,
  sessionRefPrefix,
  shadow,
  turnRef,
  writeWorkingTree,
} from './checkpoint-git.js';

export type { Checkpoint, CheckpointScope } from './checkpoint-git.js';
export {
  CheckpointError,
  defaultCheckpointStateDir,
  refComponent,
  sessionRefPrefix,
  turnRef,
} from './checkpoint-git.js';
export type { CheckpointRef } from './checkpoint-refs.js';
export { importCheckpoint, listCheckpointRefs, pruneCheckpoints } from './checkpoint-refs.js';

/** Most changed files one checkpoint reports (its record is part of the session's history). */
export const MAX_REPORTED_FILES = 200;

export interface TakenCheckpoint extends Checkpoint {
  /** Files that differ from `since` (inside the workspace), at most MAX_REPORTED_FILES of them. */
  files: FileChange[];
  filesOmitted: number;
}

/**
 * Snapshots the working tree as `refs/ratchet/<session>/turn-<turn>`. `since` is the previous
 * checkpoint's commit (the files reported are those that differ from it; without one, from HEAD).
 */
export async function takeCheckpoint(
  scope: CheckpointScope,
  checkpoint: { turn: number; message: string; since?: string | null },
): Promise<TakenCheckpoint> {
  const prefix = prefixOf(scope);
  const sh = await shadow(scope);
  try {
    const written = await writeWorkingTree(scope, sh);
    await written.keep();
    const taken = await commitAndRef(
      scope,
      sh,
      written.tree,
      turnRef(scope.sessionId, checkpoint.turn),
      checkpoint.message,
    );
    await giveToRepositoryOwner(sh.common);
    const base = checkpoint.since ?? taken.head ?? EMPTY_TREE;
    const all = await changes(sh, base, taken.commit, prefix);
    return {
      ...taken,
      files: all.slice(0, MAX_REPORTED_FILES),
      filesOmitted: Math.max(0, all.length - MAX_REPORTED_FILES),
    };
  } finally {
    await sh.dispose();
  }
}

/** What differs between the working tree and a checkpoint, inside the workspace (empty: nothing). */
export async function changesSince(scope: CheckpointScope, commit: string): Promise<FileChange[]> {
  const prefix = prefixOf(scope);
  const sh = await shadow(scope);
  try {
    await requireCommit(sh, commit);
    const written = await writeWorkingTree(scope, sh);
    await written.keep();
    await giveToRepositoryOwner(sh.common);
    return await changes(sh, commit, written.tree, prefix);
  } finally {
    await sh.dispose();
  }
}

/** `tree`, with the paths outside the workspace taken from `outside`. */
async function within(sh: Shadow, prefix: string, tree: string, outside: string): Promise<string> {
  if (prefix === '') return tree;
  const inside = (p: string) => p === prefix || p.startsWith(`${prefix}/`);
  const lines = (out: string) => out.split('\0').filter(Boolean);
  const keep = lines(await sh.git(['ls-tree', '-r', '-z', '--full-tree', outside])).filter(
    (line) => !inside(line.slice(line.indexOf('\t') + 1)),
  );
  const take = lines(await sh.git(['ls-tree', '-r', '-z', '--full-tree', tree])).filter((line) =>
    inside(line.slice(line.indexOf('\t') + 1)),
  );
  const index = path.join(os.tmpdir(), `ratchet-compose-${randomBytes(6).toString('hex')}.index`);
  try {
    const env = { GIT_INDEX_FILE: index };
    const input = [...keep, ...take].map((line) => `${line}\0`).join('');
    if (input.length > 0) await sh.git(['update-index', '-z', '--index-info'], { input, env });
    return (await sh.git(['write-tree'], { env })).trim();
  } finally {
    await rm(index, { force: true });
  }
}

export interface Restored {
  /** The working tree as it was just before, kept as `refs/ratchet/<session>/saved-<time>`. */
  saved: Checkpoint;
  /** What the restore changed. */
  files: FileChange[];
}

/**
 * Puts the workspace back to `commit` exactly: files written, modes set, files created since
 * removed (ignored files are never removed). What was there before is kept as a checkpoint of
 * its own first, so a restore can itself be undone.
 */
export async function restoreCheckpoint(scope: CheckpointScope, commit: string): Promise<Restored> {
  const prefix = prefixOf(scope);
  const sh = await shadow(scope);
  try {
    await requireCommit(sh, commit);
    const written = await writeWorkingTree(scope, sh);
    try {
      const savedRef = `${sessionRefPrefix(scope.sessionId)}saved-${Date.now()}`;
      const saved = await commitAndRef(
        scope,
        sh,
        written.tree,
        savedRef,
        `ratchet: the working tree before restoring ${commit}\n`,
      );
      const target = await within(
        sh,
        prefix,
        (await sh.git(['rev-parse', `${commit}^{tree}`])).trim(),
        written.tree,
      );
      const files = await changes(sh, written.tree, target, prefix);
      if (files.length > 0) {
        // One-tree merge from an index that matches the working tree: git's own checkout removes
        // what the target lacks, writes what differs, and leaves untracked ignored files alone.
        await sh.git(['read-tree', '--reset', '-u', target], { env: { GIT_INDEX_FILE: written.index } });
        await giveToWorkspaceOwner(
          scope.location.workTree,
          files.filter((f) => f.status !== 'D').map((f) => f.path),
        );
      }
      await written.keep();
      await giveToRepositoryOwner(sh.common);
      return { saved, files };
    } finally {
      await rm(written.index, { force: true });
    }
  } finally {
    await sh.dispose();
  }
}

/** A unified diff between two checkpoints (or a checkpoint and the working tree: `to` null). */
export async function diffCheckpoints(
  scope: CheckpointScope,
  from: string,
  to: string | null,
  options: { color?: boolean; stat?: boolean } = {},
): Promise<string> {
  const prefix = prefixOf(scope);
  const sh = await shadow(scope);
  try {
    await requireCommit(sh, from);
    let target = to;
    if (target === null) {
      const written = await writeWorkingTree(scope, sh);
      await written.keep();
      target = written.tree;
    } else {
      await requireCommit(sh, target);
    }
    return await sh.git([
      'diff',
      options.color ? '--color=always' : '--color=never',
      '--no-ext-diff',
      '--no-textconv',
      '--ignore-submodules=all',
      '--binary',
      ...(options.stat ? ['--stat'] : []),
      from,
      target,
      ...(prefix === '' ? ['--'] : pathspec(prefix)),
    ]);
  } finally {
    await sh.dispose();
  }
}
