/**
 * A session's checkpoint refs in a repository (`refs/ratchet/<session>/turn-N`, and `saved-…` for
 * the working trees restores replaced): list them, prune the oldest (the objects go at the next
 * `git gc` once nothing else refers to them), and copy one from another clone.
 */
import { rm } from 'node:fs/promises';
import type { RepositoryLocation } from './workspace-git.js';
import type { CheckpointScope } from './checkpoint-git.js';
import {
  commonDir,
  giveToRepositoryOwner,
  indexPath,
  repositoryGit,
  sessionRefPrefix,
  shadow,
  shellWord,
} from './checkpoint-git.js';

export interface CheckpointRef {
  ref: string;
  commit: string;
  /** The turn, for `turn-N` refs; null for kept states (`saved-…`). */
  turn: number | null;
}

/** The session's checkpoint refs in the repository. */
export async function listCheckpointRefs(scope: CheckpointScope): Promise<CheckpointRef[]> {
  const out = await repositoryGit(scope)([
    'for-each-ref',
    '--format=%(refname)%00%(objectname)',
    sessionRefPrefix(scope.sessionId),
  ]);
  return out
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [ref, commit] = line.split('\0') as [string, string];
      const turn = /\/turn-(\d+)$/.exec(ref);
      return { ref, commit, turn: turn ? Number(turn[1]) : null };
    });
}

/**
 * Drops old checkpoints: keeps the `keep` latest turns (0: none), and with `keep` 0 also the kept
 * states and the session's index. Returns the refs deleted. Their objects go at the next `git gc`
 * once nothing else refers to them.
 */
export async function pruneCheckpoints(scope: CheckpointScope, keep: number): Promise<string[]> {
  const refs = await listCheckpointRefs(scope);
  const turns = refs.filter((r) => r.turn !== null).sort((a, b) => b.turn! - a.turn!);
  const drop = [...turns.slice(keep), ...(keep === 0 ? refs.filter((r) => r.turn === null) : [])];
  if (drop.length > 0) {
    const input = drop.map((r) => `delete ${r.ref} ${r.commit}\n`).join('');
    await repositoryGit(scope)(['update-ref', '--stdin'], { input });
  }
  if (keep === 0) {
    const sh = await shadow(scope);
    try {
      await rm(indexPath(scope, sh.common), { force: true });
    } finally {
      await sh.dispose();
    }
  }
  return drop.map((r) => r.ref);
}

/**
 * Makes `commit` (a checkpoint of another repository, `source`, under `sourceRef`) available in
 * this scope's repository as `ref`: a worktree of the same repository has it already; another
 * clone on this machine fetches it.
 */
export async function importCheckpoint(
  scope: CheckpointScope,
  source: RepositoryLocation,
  sourceRef: string,
  commit: string,
  ref: string,
): Promise<void> {
  const git = repositoryGit(scope);
  const present = await git(['cat-file', '-e', `${commit}^{commit}`]).then(
    () => true,
    () => false,
  );
  if (!present) {
    // Only a local path: the protocol is allowed for this one fetch, every other stays off. Git
    // runs the source's upload-pack without our configuration: it is told the source is safe
    // (it may belong to the user a root worker runs commands as) on its own command line.
    const uploadPack = [source.gitDir, source.workTree]
      .map((dir) => `-c ${shellWord(`safe.directory=${dir}`)}`)
      .join(' ');
    await git([
      '-c',
      'protocol.file.allow=always',
      'fetch',
      '-q',
      '--no-tags',
      '--no-write-fetch-head',
      `--upload-pack=git ${uploadPack} upload-pack`,
      source.gitDir,
      `+${sourceRef}:${ref}`,
    ]);
  }
  await git(['update-ref', '--no-deref', ref, commit]);
  await giveToRepositoryOwner(await commonDir(scope));
}
