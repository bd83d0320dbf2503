/**
 * Child sessions' worktrees, on the worker that holds the parent's workspace. This module owns
 * snapshot → worktree → (the child works) → commit → three-way merge → apply → remove:
 *
 * - `createAgentWorktree` snapshots the parent's working tree as it is (uncommitted and untracked
 *   files included, ignored files not) into a commit that no branch points to, and adds a git
 *   worktree on a new branch `ratchet/<parent>/<child>` at that commit, beside the repository
 *   (`<dir>/.ratchet-worktrees/<repo>/<parent>/<child>`), never inside the parent's workspace.
 * - `mergeAgentBranch` commits what the child left in its worktree onto its branch, snapshots the
 *   parent's working tree again as a commit whose parent is the child's starting point, merges the
 *   two with `git merge-tree` (nothing in the repository moves), and applies the difference to
 *   the parent's working tree as an edit: the parent's HEAD, index and branches stay as they
 *   are. Conflicting hunks arrive as conflict markers in the files it names.
 * - `removeAgentWorktree` removes the worktree and, unless kept, the branch; a merge of a child
 *   that has ended may do it too, in the same activity (`thenRemove`).
 *
 * Every git command is the hardened one (workspace-git.ts); a root worker runs the commands that
 * write into the repository as the repository's owner, so nothing in the user's `.git` becomes
 * root's. Each step can be repeated: an activity retried after a lost worker finds its own work.
 * The worktrees of one reply's spawns are made at once: a step that finds a git lock of the
 * repository held (another worktree's branch being written) waits a little and runs again.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { randomUUID } from 'node:crypto';
import { chown, mkdir, realpath, rm, rmdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { WorkspaceInfo } from '../shared/api/session-config.js';
import type { GitResult, RepositoryLocation } from './workspace-git.js';
import { locateRepository, sessionGit } from './workspace-git.js';

export interface CreateAgentWorktreeInput {
  workspace: WorkspaceInfo;
  /** The branch to create, `ratchet/<parent>/<child>` (agent-tools.ts `agentBranch`). */
  branch: string;
  /** Directory names for the worktree: the parent's and the child's, already safe for a path. */
  parentDir: string;
  childDir: string;
}

export interface AgentWorktree {
  /** The child's workspace: the worktree, or the same subdirectory of it the parent works in. */
  workspace: string;
  /** The worktree's top directory. */
  worktree: string;
  branch: string;
  /** The commit the branch started at (the parent's working tree then). */
  base: string;
}

export interface MergeAgentInput {
  workspace: WorkspaceInfo;
  worktree: string;
  branch: string;
  base: string;
  /** Names the child in the commit that records what it left uncommitted. */
  label: string;
  /**
   * Then remove the worktree and its branch, in the same activity (marker `merge-then-remove`):
   * the child's work is in the parent's workspace by then. A removal that fails is reported in
   * `removed`, not raised: the merge stands, and the session's end tries the removal again.
   */
  thenRemove?: boolean;
}

export interface MergeOutcome {
  /** Files the merge changed in the parent's working tree. */
  files: string[];
  /** Files left with conflict markers. */
  conflicts: string[];
  /** The branch's commit that was merged. */
  merged: string;
  /** With `thenRemove`: whether the worktree and branch are gone (else why not). */
  removed?: true | { problem: string };
}

export interface RemoveAgentWorktreeInput {
  workspace: WorkspaceInfo;
  worktree: string;
  branch: string;
  /** Keep the branch (its commits stay reachable for a person to look at). */
  keepBranch: boolean;
}

export interface WorktreeDeps {
  /** Where worktrees go; default: `.ratchet-worktrees` beside the repository's work tree. */
  worktreeRoot?: string;
}

const IDENTITY = [
  '-c',
  'user.name=Ratchet',
  '-c',
  'user.email=ratchet@localhost',
  '-c',
  'commit.gpgsign=false',
];

function failed(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, 'AgentWorktree');
}

async function repository(workspace: WorkspaceInfo): Promise<RepositoryLocation> {
  const location = workspace.git ?? (await locateRepository(workspace.root));
  if ('problem' in location) throw failed(`${workspace.root} is no longer a git working copy`);
  return location;
}

/** The owner of the repository, when this worker is root and someone else owns it. */
async function ownerOf(location: RepositoryLocation): Promise<{ uid: number; gid: number } | undefined> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const info = await stat(location.gitDir);
  return info.uid === 0 ? undefined : { uid: info.uid, gid: info.gid };
}

interface Git {
  run(args: readonly string[], options?: { input?: string; indexFile?: string }): Promise<GitResult>;
  ok(args: readonly string[], options?: { input?: string; indexFile?: string }): Promise<string>;
}

async function gitFor(location: RepositoryLocation): Promise<Git> {
  const user = await ownerOf(location);
  const run = (args: readonly string[], options: { input?: string; indexFile?: string } = {}) =>
    sessionGit(location, location.workTree, args, { ...options, ...(user ? { user } : {}) });
  return {
    run,
    async ok(args, options) {
      const result = await run(args, options);
      if (result.exitCode !== 0) {
        throw new Error(`git ${args.join(' ')}: ${result.stderr.trim() || `exit ${result.exitCode}`}`);
      }
      return result.stdout;
    },
  };
}

/** A temporary index file's path (git creates it; it is removed afterwards). */
function scratchIndex(): string {
  return path.join(os.tmpdir(), `ratchet-index-${randomUUID()}`);
}

/**
 * The working tree as a tree object: HEAD's tree with every change, addition and removal of the
 * working tree (ignored files left out), built in a scratch index so the repository's own index
 * is untouched.
 */
async function workingTree(git: Git): Promise<string> {
  const indexFile = scratchIndex();
  try {
    const head = await git.run(['rev-parse', '--verify', '-q', 'HEAD']);
    await git.ok(head.exitCode === 0 ? ['read-tree', 'HEAD'] : ['read-tree', '--empty'], { indexFile });
    await git.ok(['add', '-A', '--', '.'], { indexFile });
    return (await git.ok(['write-tree'], { indexFile })).trim();
  } finally {
    await rm(indexFile, { force: true });
  }
}

/**
 * What git says when another process holds one of its lock files (a ref's, the index's), or when
 * `git worktree add` reads a sibling worktree that another `git worktree add` is still writing.
 */
const LOCK_HELD =
  /Unable to create '[^']*\.lock': File exists|cannot lock ref|failed to read .*\/worktrees\/[^/]+\//;
/** Waits before each new try while a lock is held (3.1 s in all; then the error stands). */
export const LOCK_WAITS_MS = [100, 200, 400, 800, 1600];

/**
 * Runs a step again while git finds one of its locks held by another process, which lets go of
 * it within milliseconds; any other error, or a lock still held after the last wait, is thrown.
 * The step must be repeatable (each step here finds its own earlier work).
 */
async function whileLocked<T>(step: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      const wait = LOCK_WAITS_MS[attempt];
      if (wait === undefined || !(err instanceof Error) || !LOCK_HELD.test(err.message)) throw err;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

async function commitTree(git: Git, tree: string, parents: string[], message: string): Promise<string> {
  const args = [...IDENTITY, 'commit-tree', tree, ...parents.flatMap((p) => ['-p', p]), '-m', message];
  return (await git.ok(args)).trim();
}

async function headOf(git: Git): Promise<string | null> {
  const head = await git.run(['rev-parse', '--verify', '-q', 'HEAD']);
  return head.exitCode === 0 ? head.stdout.trim() : null;
}

async function branchTip(git: Git, branch: string): Promise<string | null> {
  const tip = await git.run(['rev-parse', '--verify', '-q', `refs/heads/${branch}`]);
  return tip.exitCode === 0 ? tip.stdout.trim() : null;
}

async function isDirectory(dir: string): Promise<boolean> {
  try {
    return (await stat(dir)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Whether a worktree made by an earlier attempt is whole: its own work tree, on the branch, and
 * exactly the branch's tip (nothing has worked in it yet: the child starts after the activity).
 */
async function isWhole(worktree: string, branch: string): Promise<boolean> {
  const location = await locateRepository(worktree);
  if ('problem' in location || location.workTree !== (await realpath(worktree))) return false;
  const git = await gitFor(location);
  const head = await git.run(['symbolic-ref', '-q', 'HEAD']);
  if (head.stdout.trim() !== `refs/heads/${branch}`) return false;
  const status = await git.run(['status', '--porcelain', '--untracked-files=all']);
  return status.exitCode === 0 && status.stdout.trim() === '';
}

export function createWorktreeActivities(deps: WorktreeDeps = {}) {
  function worktreePath(location: RepositoryLocation, parentDir: string, childDir: string): string {
    const root =
      deps.worktreeRoot ??
      path.join(path.dirname(location.workTree), '.ratchet-worktrees', path.basename(location.workTree));
    return path.join(root, parentDir, childDir);
  }

  async function createAgentWorktree(input: CreateAgentWorktreeInput): Promise<AgentWorktree> {
    for (const part of [input.parentDir, input.childDir]) {
      if (part === '' || part === '.' || part === '..' || part.includes('/')) {
        throw failed(`"${part}" cannot name a worktree directory`);
      }
    }
    const location = await repository(input.workspace);
    const git = await gitFor(location);
    const worktree = worktreePath(location, input.parentDir, input.childDir);
    const sub = path.relative(location.workTree, input.workspace.root);
    const childWorkspace = sub === '' ? worktree : path.join(worktree, sub);
    const check = await git.run(['check-ref-format', `refs/heads/${input.branch}`]);
    if (check.exitCode !== 0) throw failed(`${input.branch} is not a valid branch name`);
    // The spawns of one reply run together: another git on the repository may hold a lock.
    return whileLocked(() => addWorktree(input, location, git, worktree, childWorkspace));
  }

  async function addWorktree(
    input: CreateAgentWorktreeInput,
    location: RepositoryLocation,
    git: Git,
    worktree: string,
    childWorkspace: string,
  ): Promise<AgentWorktree> {
    // A retried attempt finds the branch (and perhaps the worktree) it made.
    const existing = await branchTip(git, input.branch);
    if (existing !== null) {
      // A worktree whose checkout was cut off (its worker died in `git worktree add`) is made again.
      if ((await isDirectory(worktree)) && !(await isWhole(worktree, input.branch))) {
        const removed = await git.run(['worktree', 'remove', '--force', '--force', worktree]);
        if (removed.exitCode !== 0) await rm(worktree, { recursive: true, force: true });
      }
      if (!(await isDirectory(worktree))) {
        await git.run(['worktree', 'prune']);
        await git.ok(['worktree', 'add', '-q', worktree, input.branch]);
      }
      // Nothing has worked on the branch yet (the child starts after this returns): its tip is the base.
      return { workspace: childWorkspace, worktree, branch: input.branch, base: existing };
    }

    const head = await headOf(git);
    const tree = await workingTree(git);
    const base = await commitTree(
      git,
      tree,
      head === null ? [] : [head],
      `ratchet: the workspace as ${input.branch} started from it`,
    );
    const parentOfWorktrees = path.dirname(worktree);
    await mkdir(parentOfWorktrees, { recursive: true });
    const user = await ownerOf(location);
    if (user) {
      // Directories this worker made for the owner's worktrees are the owner's.
      for (let dir = parentOfWorktrees; dir !== path.dirname(location.workTree); dir = path.dirname(dir)) {
        await chown(dir, user.uid, user.gid);
      }
    }
    if (await isDirectory(worktree)) {
      throw failed(`${worktree} already exists; remove it or choose another session id`);
    }
    await git.ok(['worktree', 'add', '-q', '-b', input.branch, worktree, base]);
    return { workspace: childWorkspace, worktree, branch: input.branch, base };
  }

  async function mergeAgentBranch(input: MergeAgentInput): Promise<MergeOutcome> {
    const location = await repository(input.workspace);
    const git = await gitFor(location);
    // What the child left uncommitted becomes a commit on its branch first.
    if (await isDirectory(input.worktree)) {
      const child = await locateRepository(input.worktree);
      if ('problem' in child) throw failed(`${input.worktree} is not a git worktree: ${child.problem}`);
      const childGit = await gitFor(child);
      const current = (await childGit.run(['symbolic-ref', '-q', 'HEAD'])).stdout.trim();
      if (current !== `refs/heads/${input.branch}`) {
        throw failed(`${input.worktree} is on ${current || 'a detached HEAD'}, not ${input.branch}`);
      }
      await childGit.ok(['add', '-A', '--', '.']);
      const staged = await childGit.run(['diff', '--cached', '--quiet']);
      if (staged.exitCode === 1) {
        await childGit.ok([
          ...IDENTITY,
          'commit',
          '-q',
          '--no-verify',
          '-m',
          `ratchet: work of ${input.label}`,
        ]);
      }
    }
    const theirs = await branchTip(git, input.branch);
    if (theirs === null) throw failed(`the branch ${input.branch} no longer exists`);
    // Ours descends from the child's starting point, so that is the merge base: the parent's own
    // changes since then merge with the child's, and nothing from before counts twice.
    const oursTree = await workingTree(git);
    const ours = await commitTree(git, oursTree, [input.base], 'ratchet: the workspace before a merge');
    const merged = await git.run([
      'merge-tree',
      '--write-tree',
      '--name-only',
      '--no-messages',
      '-z',
      ours,
      theirs,
    ]);
    if (merged.exitCode !== 0 && merged.exitCode !== 1) {
      throw failed(`git merge-tree failed: ${merged.stderr.trim() || `exit ${merged.exitCode}`}`);
    }
    const [resultTree = '', ...conflicted] = merged.stdout.split('\0');
    const conflicts = [...new Set(conflicted.filter((name) => name !== ''))];
    const files = (
      await git.ok([
        'diff',
        '--no-ext-diff',
        '--no-textconv',
        '--name-only',
        '-z',
        oursTree,
        resultTree.trim(),
      ])
    )
      .split('\0')
      .filter((name) => name !== '');
    if (files.length > 0) {
      const patch = await git.ok([
        'diff',
        '--no-ext-diff',
        '--no-textconv',
        '--binary',
        '--full-index',
        oursTree,
        resultTree.trim(),
      ]);
      await git.ok(['apply', '--binary', '--whitespace=nowarn', '-'], { input: patch });
    }
    const outcome: MergeOutcome = { files, conflicts, merged: theirs };
    if (!input.thenRemove) return outcome;
    try {
      await removeAgentWorktree({ ...input, keepBranch: false });
      return { ...outcome, removed: true };
    } catch (err) {
      return { ...outcome, removed: { problem: err instanceof Error ? err.message : String(err) } };
    }
  }

  async function removeAgentWorktree(input: RemoveAgentWorktreeInput): Promise<void> {
    const location = await repository(input.workspace);
    const git = await gitFor(location);
    if (await isDirectory(input.worktree)) {
      const removed = await git.run(['worktree', 'remove', '--force', '--force', input.worktree]);
      if (removed.exitCode !== 0) await rm(input.worktree, { recursive: true, force: true });
    }
    await git.run(['worktree', 'prune']);
    // Directories left empty (the session's, the repository's, .ratchet-worktrees) go too.
    const stop = deps.worktreeRoot ?? path.dirname(location.workTree);
    for (let dir = path.dirname(input.worktree); dir.startsWith(`${stop}/`); dir = path.dirname(dir)) {
      try {
        await rmdir(dir);
      } catch {
        break;
      }
    }
    if (!input.keepBranch && (await branchTip(git, input.branch)) !== null) {
      await whileLocked(() => git.ok(['branch', '-D', '-q', input.branch]));
    }
  }

  return { createAgentWorktree, mergeAgentBranch, removeAgentWorktree };
}
