/**
 * The git plumbing of checkpoints (checkpoint.ts says what a checkpoint is). Git runs with a git
 * directory of Ratchet's own (a throwaway "shadow" directory: its own config, no hooks, and
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

/** Attributes that would change bytes between the working tree and the object store, all off. */
const NO_CONVERSIONS = '* -text -eol -crlf -ident -filter -working-tree-encoding\n';
const IDENTITY = { name: 'Ratchet', email: 'ratchet@localhost' };
export const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';

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

export interface Git {
  (args: readonly string[], options?: { input?: string; env?: Record<string, string> }): Promise<string>;
}

/** The git command `args` run (what follows the `-c name=value` options), for error messages. */
function subcommand(args: readonly string[]): string {
  for (let i = 0; i < args.length; i += 1) {
    if (args[i] === '-c') i += 1;
    else return args[i]!;
  }
  return '';
}

/** `text` as one word of a POSIX shell command. */
export function shellWord(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

export function runner(
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
      throw new CheckpointError(`git ${subcommand(args)} failed: ${detail || `exit ${result.exitCode}`}`);
    }
    return String(result.stdout);
  };
}

/** Git on the repository itself (refs, HEAD, the user's index read-only). */
export function repositoryGit(scope: CheckpointScope): Git {
  const { location } = scope;
  return runner(location, gitEnvironment(location), [location.workTree, location.gitDir], scope.signal);
}

/** The repository's common git directory (a linked worktree's objects and refs live there). */
export async function commonDir(scope: CheckpointScope): Promise<string> {
  const out = (await repositoryGit(scope)(['rev-parse', '--git-common-dir'])).trim();
  return path.resolve(scope.location.gitDir, out);
}

export interface Shadow {
  git: Git;
  common: string;
  dispose(): Promise<void>;
}

/**
 * A git directory of Ratchet's own over the repository's objects and work tree: its config is
 * empty, its attributes turn conversions off, the repository's info/exclude still applies.
 */
const SHADOW_PREFIX = 'ratchet-shadow-';
/** Older than any checkpoint runs: a shadow directory whose worker cannot be asked any more. */
const STALE_SHADOW_MS = 6 * 60 * 60 * 1000;
let staleSwept = false;

/** Whether the process that made a shadow directory (named `ratchet-shadow-<pid>-…`) is gone. */
function ownerGone(name: string): boolean {
  const pid = /^ratchet-shadow-(\d+)-/.exec(name)?.[1];
  if (!pid || Number(pid) === process.pid) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Removes shadow directories that workers killed mid-checkpoint left in `dir`: those whose worker
 * (named by its pid) is no longer running, and any older than a checkpoint could take.
 */
export async function removeStaleShadows(dir = os.tmpdir(), now = Date.now()): Promise<number> {
  let removed = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(SHADOW_PREFIX)) continue;
    const info = await lstat(path.join(dir, name)).catch(() => undefined);
    if (!info?.isDirectory()) continue;
    if (!ownerGone(name) && now - info.mtimeMs < STALE_SHADOW_MS) continue;
    await rm(path.join(dir, name), { recursive: true, force: true });
    removed += 1;
  }
  return removed;
}

export async function shadow(scope: CheckpointScope): Promise<Shadow> {
  // Once per process: a killed worker's leftovers go when it (or another) checkpoints again.
  if (!staleSwept) {
    staleSwept = true;
    await removeStaleShadows();
  }
  const common = await commonDir(scope);
  const dir = await mkdtemp(path.join(os.tmpdir(), `${SHADOW_PREFIX}${process.pid}-`));
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

export function indexPath(scope: CheckpointScope, common: string): string {
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
export function prefixOf(scope: CheckpointScope): string {
  const rel = path.relative(scope.location.workTree, scope.root);
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new CheckpointError(`${scope.root} is not inside the work tree ${scope.location.workTree}`);
  }
  return rel.split(path.sep).join('/');
}

export function pathspec(prefix: string): string[] {
  return prefix === '' ? [] : ['--', `:(literal)${prefix}`];
}

export async function head(scope: CheckpointScope): Promise<string | null> {
  const out = await repositoryGit(scope)(['rev-parse', '--verify', '-q', 'HEAD']).catch(() => '');
  return out.trim() || null;
}

/**
 * The working tree as a tree object, through a fresh copy of the session's index (seeded, the
 * first time, with the paths of the user's index, so that a tracked file the .gitignore names is
 * kept). Returns the tree and the copy, which matches the working tree; the caller keeps or drops it.
 */
export async function writeWorkingTree(
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
export async function commitAndRef(
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
export async function giveToRepositoryOwner(common: string, euid = process.geteuid?.() ?? -1): Promise<void> {
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

export async function changes(sh: Shadow, from: string, to: string, prefix: string): Promise<FileChange[]> {
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

export async function requireCommit(sh: Shadow, commit: string): Promise<void> {
  if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(commit))
    throw new CheckpointError(`${commit} is not a commit id`);
  await sh.git(['cat-file', '-e', `${commit}^{tree}`]).catch(() => {
    throw new CheckpointError(
      `checkpoint ${commit.slice(0, 12)} is not in the repository (pruned, or another repository)`,
    );
  });
}
