/**
 * Checkpoints: the whole working tree of a session's repository (tracked, untracked and deleted
 * files, file modes, links, binaries; not ignored files) stored as a git commit nobody sees, under
 * `refs/ratchet/<session>/…`. This module owns snapshot → commit → ref, and the way back:
 * snapshot the present (kept too) → read the checkpoint's tree over the working tree.
 *
 * The user's HEAD, index, branches and stash are never touched. Git runs with a git directory of
 * Ratchet's own (a throwaway "shadow" directory: its own config, no hooks, and
 * `info/attributes` that turn off every conversion, so the bytes stored are the bytes on disk and
 * the bytes restored are the bytes stored), the repository's object store
 * (GIT_OBJECT_DIRECTORY), and an index of Ratchet's own per session (GIT_INDEX_FILE), kept on the
 * worker so that the next snapshot re-reads only files whose stat changed. Refs are written in the
 * repository itself, so `git gc` keeps every object a checkpoint needs. The repository's
 * `.gitignore` files and `info/exclude` decide what is ignored, as they do for the user.
 *
 * Everything else about hardening is workspace-git.ts's: no system or global config, no program
 * the repository names, an environment of git's own.
 */
import { execa } from 'execa';
import { createHash, randomBytes } from 'node:crypto';
import {
  chown,
  copyFile,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  rename,
  rm,
  stat,
  utimes,
  writeFile,
} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FileChange } from '../shared/api/session-api.js';
import type { RepositoryLocation } from './workspace-git.js';
import { gitEnvironment, hardeningArgs } from './workspace-git.js';
import { giveToWorkspaceOwner } from './workspace-owner.js';

/** Attributes that would change bytes between the working tree and the object store, all off. */
const NO_CONVERSIONS = '* -text -eol -crlf -ident -filter -working-tree-encoding\n';
const IDENTITY = { name: 'Ratchet', email: 'ratchet@localhost' };
const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';
/** Most changed files one checkpoint reports (its record is part of the session's history). */
export const MAX_REPORTED_FILES = 200;

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** Where checkpoints of one session in one repository are taken. */
export interface CheckpointScope {
  location: RepositoryLocation;
  /** The workspace (the work tree or a directory in it): restores and reports stay inside it. */
  root: string;
  sessionId: string;
  /** Where this worker keeps its per-session indexes (default: the user's state directory). */
  stateDir?: string;
  signal?: AbortSignal;
}

export function defaultCheckpointStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'ratchet', 'checkpoints');
}

/**
 * A session id as one ref name component: kept when git accepts it as it is, otherwise made safe
 * and made unique again with a hash of the original.
 */
export function refComponent(sessionId: string): string {
  if (/^[A-Za-z0-9][A-Za-z0-9_-]{0,199}$/.test(sessionId)) return sessionId;
  const hash = createHash('sha256').update(sessionId).digest('hex').slice(0, 12);
  const safe = sessionId.replace(/[^A-Za-z0-9_-]+/g, '_').slice(0, 100);
  return `${safe || 'session'}-${hash}`;
}

export function sessionRefPrefix(sessionId: string): string {
  return `refs/ratchet/${refComponent(sessionId)}/`;
}

export function turnRef(sessionId: string, turn: number): string {
  return `${sessionRefPrefix(sessionId)}turn-${turn}`;
}

interface Git {
  (args: readonly string[], options?: { input?: string; env?: Record<string, string> }): Promise<string>;
}

function runner(
  location: RepositoryLocation,
  env: Record<string, string>,
  trusted: readonly string[],
  signal?: AbortSignal,
): Git {
  return async (args, options = {}) => {
    const result = await execa('git', [...hardeningArgs(trusted), ...args], {
      cwd: location.workTree,
      env: { ...env, ...options.env },
      extendEnv: false,
      reject: false,
      stripFinalNewline: false,
      maxBuffer: 512 * 1024 * 1024,
      ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
      ...(signal === undefined ? {} : { cancelSignal: signal }),
    });
    if (result.exitCode !== 0) {
      const detail = String(result.stderr).trim().split('\n').slice(-3).join('; ');
      throw new CheckpointError(`git ${args[0]} failed: ${detail || `exit ${result.exitCode}`}`);
    }
    return String(result.stdout);
  };
}

/** Git on the repository itself (refs, HEAD, the user's index read-only). */
function repositoryGit(scope: CheckpointScope): Git {
  const { location } = scope;
  return runner(location, gitEnvironment(location), [location.workTree, location.gitDir], scope.signal);
}

/** The repository's common git directory (a linked worktree's objects and refs live there). */
async function commonDir(scope: CheckpointScope): Promise<string> {
  const out = (await repositoryGit(scope)(['rev-parse', '--git-common-dir'])).trim();
  return path.resolve(scope.location.gitDir, out);
}

interface Shadow {
  git: Git;
  common: string;
  dispose(): Promise<void>;
}

/**
 * A git directory of Ratchet's own over the repository's objects and work tree: its config is
 * empty, its attributes turn conversions off, the repository's info/exclude still applies.
 */
async function shadow(scope: CheckpointScope): Promise<Shadow> {
  const common = await commonDir(scope);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ratchet-shadow-'));
  await mkdir(path.join(dir, 'refs'));
  await mkdir(path.join(dir, 'objects'));
  await mkdir(path.join(dir, 'info'));
  await writeFile(path.join(dir, 'HEAD'), 'ref: refs/heads/ratchet-shadow\n');
  await writeFile(path.join(dir, 'config'), '[core]\n\trepositoryformatversion = 0\n\tbare = false\n');
  await writeFile(path.join(dir, 'info', 'attributes'), NO_CONVERSIONS);
  const env = {
    ...gitEnvironment(undefined),
    GIT_DIR: dir,
    GIT_WORK_TREE: scope.location.workTree,
    GIT_OBJECT_DIRECTORY: path.join(common, 'objects'),
    GIT_AUTHOR_NAME: IDENTITY.name,
    GIT_AUTHOR_EMAIL: IDENTITY.email,
    GIT_COMMITTER_NAME: IDENTITY.name,
    GIT_COMMITTER_EMAIL: IDENTITY.email,
    // Reads the user's index and objects while their git may be writing: never take a lock we need not.
    GIT_OPTIONAL_LOCKS: '0',
  };
  const exclude = path.join(common, 'info', 'exclude');
  const base = runner(scope.location, env, [scope.location.workTree, dir, common], scope.signal);
  const git: Git = (args, options) => base(['-c', `core.excludesFile=${exclude}`, ...args], options);
  return { git, common, dispose: () => rm(dir, { recursive: true, force: true }) };
}

function indexPath(scope: CheckpointScope, common: string): string {
  const repo = createHash('sha256')
    .update(`${common}\0${scope.location.workTree}`)
    .digest('hex')
    .slice(0, 16);
  const session = createHash('sha256').update(scope.sessionId).digest('hex').slice(0, 24);
  return path.join(scope.stateDir ?? defaultCheckpointStateDir(), repo, `${session}.index`);
}

async function exists(file: string): Promise<boolean> {
  return lstat(file).then(
    () => true,
    () => false,
  );
}

/** The workspace's path relative to the top of the work tree ('' when it is the top). */
function prefixOf(scope: CheckpointScope): string {
  const rel = path.relative(scope.location.workTree, scope.root);
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new CheckpointError(`${scope.root} is not inside the work tree ${scope.location.workTree}`);
  }
  return rel.split(path.sep).join('/');
}

function pathspec(prefix: string): string[] {
  return prefix === '' ? [] : ['--', `:(literal)${prefix}`];
}

async function head(scope: CheckpointScope): Promise<string | null> {
  const out = await repositoryGit(scope)(['rev-parse', '--verify', '-q', 'HEAD']).catch(() => '');
  return out.trim() || null;
}

/**
 * The working tree as a tree object, through a fresh copy of the session's index (seeded, the
 * first time, with the paths of the user's index, so that a tracked file the .gitignore names is
 * kept). Returns the tree and the copy, which matches the working tree; the caller keeps or drops it.
 */
async function writeWorkingTree(
  scope: CheckpointScope,
  sh: Shadow,
): Promise<{ tree: string; index: string; keep: () => Promise<void> }> {
  const saved = indexPath(scope, sh.common);
  await mkdir(path.dirname(saved), { recursive: true });
  const index = `${saved}.${randomBytes(6).toString('hex')}.tmp`;
  const env = { GIT_INDEX_FILE: index };
  try {
    if (await exists(saved)) {
      await copyFile(saved, index);
      // Git's racy-clean check compares each entry's mtime with the index file's: a copy with a
      // newer mtime would hide a same-size change made in the second the index was written.
      const { atime, mtime } = await stat(saved);
      await utimes(index, atime, mtime);
    } else {
      // Paths and blob ids only: without the user's stat data every file is read again, and
      // bytes a conversion of theirs would have changed are stored as they are on disk.
      const listed = await repositoryGit(scope)(['ls-files', '-s', '-z']);
      if (listed.length > 0) await sh.git(['update-index', '-z', '--index-info'], { input: listed, env });
    }
    await sh.git(['add', '-A', '--', '.'], { env });
    const tree = (await sh.git(['write-tree'], { env })).trim();
    return {
      tree,
      index,
      keep: async () => rename(index, saved),
    };
  } catch (err) {
    await rm(index, { force: true });
    throw err;
  }
}

export interface Checkpoint {
  commit: string;
  tree: string;
  ref: string;
  /** The user's HEAD when it was taken (its parent), or null in a repository without commits. */
  head: string | null;
}

/** Writes a commit over `tree` and points `ref` at it. */
async function commitAndRef(
  scope: CheckpointScope,
  sh: Shadow,
  tree: string,
  ref: string,
  message: string,
): Promise<Checkpoint> {
  const parent = await head(scope);
  const commit = (
    await sh.git(['commit-tree', tree, ...(parent ? ['-p', parent] : []), '-F', '-'], { input: message })
  ).trim();
  await repositoryGit(scope)(['update-ref', '--no-deref', ref, commit]);
  return { commit, tree, ref, head: parent };
}

/**
 * A root worker writes objects and refs into a repository that belongs to someone else: give
 * what it created to the repository's owner, or their own git could not prune or repack it.
 */
async function giveToRepositoryOwner(common: string, euid = process.geteuid?.() ?? -1): Promise<void> {
  if (euid !== 0) return;
  const owner = await stat(common);
  if (owner.uid === 0) return;
  const fix = async (file: string) => {
    const info = await lstat(file).catch(() => undefined);
    if (info && info.uid === 0) await chown(file, owner.uid, owner.gid).catch(() => {});
    return info;
  };
  const walk = async (dir: string): Promise<void> => {
    const info = await fix(dir);
    if (!info?.isDirectory()) return;
    for (const name of await readdir(dir).catch(() => [] as string[])) await walk(path.join(dir, name));
  };
  const objects = path.join(common, 'objects');
  for (const name of await readdir(objects).catch(() => [] as string[])) {
    if (/^[0-9a-f]{2}$/.test(name) || name === 'pack') await walk(path.join(objects, name));
  }
  await walk(path.join(common, 'refs', 'ratchet'));
  await fix(path.join(common, 'packed-refs'));
}

async function changes(sh: Shadow, from: string, to: string, prefix: string): Promise<FileChange[]> {
  const out = await sh.git([
    'diff-tree',
    '-r',
    '-z',
    '--no-renames',
    '--name-status',
    from,
    to,
    ...pathspec(prefix),
  ]);
  const fields = out.split('\0');
  const files: FileChange[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) files.push({ status: fields[i]!, path: fields[i + 1]! });
  return files;
}

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

async function requireCommit(sh: Shadow, commit: string): Promise<void> {
  if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(commit))
    throw new CheckpointError(`${commit} is not a commit id`);
  await sh.git(['cat-file', '-e', `${commit}^{tree}`]).catch(() => {
    throw new CheckpointError(
      `checkpoint ${commit.slice(0, 12)} is not in the repository (pruned, or another repository)`,
    );
  });
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
    // Only a local path: the protocol is allowed for this one fetch, every other stays off.
    await git([
      '-c',
      'protocol.file.allow=always',
      'fetch',
      '-q',
      '--no-tags',
      '--no-write-fetch-head',
      source.gitDir,
      `+${sourceRef}:${ref}`,
    ]);
  }
  await git(['update-ref', '--no-deref', ref, commit]);
  await giveToRepositoryOwner(await commonDir(scope));
}
