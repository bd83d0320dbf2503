/**
 * Child sessions' worktrees against real git: a worktree starts from the parent's working tree as
 * it is, a merge brings the child's work into the parent's working tree without moving anything
 * in the repository, a conflict leaves markers in the files it names (and the rest of the merge
 * lands), and every step can be repeated.
 */
import { execa } from 'execa';
import { mkdir, mkdtemp, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createWorkspaceActivities } from '../../src/activities/workspace.js';
import { LOCK_WAITS_MS, createWorktreeActivities } from '../../src/activities/worktree.js';
import type { WorkspaceInfo } from '../../src/shared/api/session-config.js';
import { agentBranch } from '../../src/shared/tools/agent-tools.js';
import { giveToTestUser, runningAsRoot, TEST_USER } from '../helpers/test-user.js';

let repo: string;
let worktreeRoot: string;
let info: WorkspaceInfo;

const workspace = createWorkspaceActivities({
  allowedRoots: [],
  sandbox: { available: false, kind: 'none', detail: 'not needed here' },
});

async function git(cwd: string, ...args: string[]): Promise<string> {
  return (await execa('git', args, { cwd })).stdout;
}

/** Writes a file as the workspace's user would. */
async function put(dir: string, file: string, text: string): Promise<void> {
  await writeFile(path.join(dir, file), text);
  await giveToTestUser(path.join(dir, file));
}

beforeEach(async () => {
  repo = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-wt-repo-')));
  worktreeRoot = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-wt-trees-')));
  await git(repo, 'init', '-q', '-b', 'main');
  await git(repo, 'config', 'user.email', 't@example.com');
  await git(repo, 'config', 'user.name', 'T');
  await writeFile(path.join(repo, 'a.txt'), 'one\ntwo\nthree\n');
  await writeFile(path.join(repo, 'shared.txt'), 'first\nsecond\nthird\n');
  await writeFile(path.join(repo, '.gitignore'), 'secret.env\n');
  await git(repo, 'add', '-A');
  await git(repo, 'commit', '-q', '-m', 'first');
  await giveToTestUser(repo);
  await giveToTestUser(worktreeRoot);
  info = (await workspace.prepareWorkspace({ workspace: repo })).info;
});

afterEach(async () => {
  await rm(repo, { recursive: true, force: true });
  await rm(worktreeRoot, { recursive: true, force: true });
});

function spawnInput(child: string) {
  return { workspace: info, branch: agentBranch('sess 1', child), parentDir: 'sess-1', childDir: child };
}

describe('agent worktrees', () => {
  it('start from the parent workspace as it is, uncommitted and untracked files included', async () => {
    const trees = createWorktreeActivities({ worktreeRoot });
    await put(repo, 'a.txt', 'one\nTWO\nthree\n');
    await put(repo, 'new.txt', 'untracked\n');
    await put(repo, 'secret.env', 'KEY=1\n');
    const indexBefore = await git(repo, 'ls-files', '-s');
    const headBefore = await git(repo, 'rev-parse', 'HEAD');

    const tree = await trees.createAgentWorktree(spawnInput('agent-1'));

    expect(tree.branch).toBe('ratchet/sess-1/agent-1');
    expect(tree.worktree).toBe(path.join(worktreeRoot, 'sess-1', 'agent-1'));
    expect(await readFile(path.join(tree.workspace, 'a.txt'), 'utf8')).toBe('one\nTWO\nthree\n');
    expect(await readFile(path.join(tree.workspace, 'new.txt'), 'utf8')).toBe('untracked\n');
    // Ignored files stay behind, as they would in a clone.
    await expect(stat(path.join(tree.workspace, 'secret.env'))).rejects.toThrow();
    expect(await git(tree.worktree, 'rev-parse', '--abbrev-ref', 'HEAD')).toBe('ratchet/sess-1/agent-1');
    expect(await git(tree.worktree, 'status', '--porcelain')).toBe('');
    // The parent's repository did not move: same HEAD, same index, its changes still uncommitted.
    expect(await git(repo, 'rev-parse', 'HEAD')).toBe(headBefore);
    expect(await git(repo, 'ls-files', '-s')).toBe(indexBefore);
    expect(await git(repo, 'status', '--porcelain')).toContain(' M a.txt');
    if (runningAsRoot) {
      expect((await stat(tree.worktree)).uid).toBe(TEST_USER.uid);
      expect((await stat(path.join(tree.worktree, 'a.txt'))).uid).toBe(TEST_USER.uid);
    }
  });

  it('can be created again by a retried activity without a second worktree', async () => {
    const trees = createWorktreeActivities({ worktreeRoot });
    const first = await trees.createAgentWorktree(spawnInput('agent-1'));
    const again = await trees.createAgentWorktree(spawnInput('agent-1'));
    expect(again).toEqual(first);
    const list = await git(repo, 'worktree', 'list', '--porcelain');
    expect(list.split('\n').filter((line) => line.startsWith('worktree ')).length).toBe(2);
  });

  it('are made together for one reply: eight at once on one repository, each on its branch', async () => {
    const trees = createWorktreeActivities({ worktreeRoot });
    await put(repo, 'a.txt', 'one\nTWO\nthree\n');
    for (let round = 0; round < 3; round++) {
      const names = Array.from({ length: 8 }, (_, i) => `r${round}-agent-${i + 1}`);
      const made = await Promise.all(names.map((name) => trees.createAgentWorktree(spawnInput(name))));
      expect(made.map((tree) => tree.branch)).toEqual(names.map((name) => `ratchet/sess-1/${name}`));
      for (const tree of made) {
        expect(await git(tree.worktree, 'rev-parse', '--abbrev-ref', 'HEAD')).toBe(tree.branch);
        expect(await readFile(path.join(tree.workspace, 'a.txt'), 'utf8')).toBe('one\nTWO\nthree\n');
        expect(await git(tree.worktree, 'status', '--porcelain')).toBe('');
      }
      // Removed together, too: nothing is left of them.
      await Promise.all(
        made.map((tree) =>
          trees.removeAgentWorktree({
            workspace: info,
            worktree: tree.worktree,
            branch: tree.branch,
            keepBranch: false,
          }),
        ),
      );
      expect(await git(repo, 'branch', '--format=%(refname:short)')).toBe('main');
      expect(await git(repo, 'worktree', 'list', '--porcelain')).not.toContain('agent-');
    }
  });

  it('wait for a branch lock another git holds, and fail naming it when it is never let go', async () => {
    const trees = createWorktreeActivities({ worktreeRoot });
    // Another process is writing the branch: its lock file is there, and goes 300 ms later.
    const lockDir = path.join(repo, '.git', 'refs', 'heads', 'ratchet', 'sess-1');
    await mkdir(lockDir, { recursive: true });
    const lock = path.join(lockDir, 'agent-1.lock');
    await writeFile(lock, '');
    await giveToTestUser(path.join(repo, '.git', 'refs', 'heads', 'ratchet'));
    const released = new Promise((resolve) => setTimeout(resolve, 300)).then(() => rm(lock));
    const tree = await trees.createAgentWorktree(spawnInput('agent-1'));
    await released;
    expect(await git(tree.worktree, 'rev-parse', '--abbrev-ref', 'HEAD')).toBe('ratchet/sess-1/agent-1');

    // A lock that stays: the error stands after the waits (about 3 s), and says which lock.
    await writeFile(path.join(lockDir, 'agent-2.lock'), '');
    const started = Date.now();
    await expect(trees.createAgentWorktree(spawnInput('agent-2'))).rejects.toThrow(/agent-2\.lock/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(LOCK_WAITS_MS.reduce((a, b) => a + b, 0));
    expect(await git(repo, 'branch', '--format=%(refname:short)')).not.toContain('agent-2');
  });

  it('are made again by a retried activity when the first checkout was cut off', async () => {
    const trees = createWorktreeActivities({ worktreeRoot });
    const first = await trees.createAgentWorktree(spawnInput('agent-1'));
    // The worker died inside `git worktree add`: files and the worktree's index are missing.
    const gitDir = (await git(first.worktree, 'rev-parse', '--absolute-git-dir')).trim();
    await rm(path.join(gitDir, 'index'));
    await rm(path.join(first.worktree, 'a.txt'));
    const again = await trees.createAgentWorktree(spawnInput('agent-1'));
    expect(again).toEqual(first);
    expect(await readFile(path.join(again.workspace, 'a.txt'), 'utf8')).toBe('one\ntwo\nthree\n');
    expect(await git(again.worktree, 'status', '--porcelain')).toBe('');
    const list = await git(repo, 'worktree', 'list', '--porcelain');
    expect(list.split('\n').filter((line) => line.startsWith('worktree ')).length).toBe(2);
  });

  it('refuse directory names that would leave the worktree root, and bad branch names', async () => {
    const trees = createWorktreeActivities({ worktreeRoot });
    await expect(trees.createAgentWorktree({ ...spawnInput('x'), childDir: '..' })).rejects.toThrow(
      /cannot name a worktree/,
    );
    await expect(trees.createAgentWorktree({ ...spawnInput('x'), parentDir: 'a/b' })).rejects.toThrow(
      /cannot name a worktree/,
    );
    await expect(trees.createAgentWorktree({ ...spawnInput('x'), branch: 'bad..name' })).rejects.toThrow(
      /not a valid branch name/,
    );
  });

  it("merge a child's work into the parent's working tree, leaving HEAD and the index alone", async () => {
    const trees = createWorktreeActivities({ worktreeRoot });
    const tree = await trees.createAgentWorktree(spawnInput('agent-1'));
    await put(tree.workspace, 'shared.txt', 'first\nsecond (child)\nthird\n');
    await put(tree.workspace, 'child.txt', 'from the child\n');
    // Meanwhile the parent edits another file.
    await put(repo, 'a.txt', 'one\ntwo\nthree (parent)\n');
    const headBefore = await git(repo, 'rev-parse', 'HEAD');

    const outcome = await trees.mergeAgentBranch({ ...tree, workspace: info, label: 'agent-1' });

    expect(outcome.conflicts).toEqual([]);
    expect(outcome.files.sort()).toEqual(['child.txt', 'shared.txt']);
    expect(await readFile(path.join(repo, 'shared.txt'), 'utf8')).toBe('first\nsecond (child)\nthird\n');
    expect(await readFile(path.join(repo, 'child.txt'), 'utf8')).toBe('from the child\n');
    expect(await readFile(path.join(repo, 'a.txt'), 'utf8')).toBe('one\ntwo\nthree (parent)\n');
    expect(await git(repo, 'rev-parse', 'HEAD')).toBe(headBefore);
    expect(await git(repo, 'diff', '--cached', '--name-only')).toBe('');
    // What the child left uncommitted is a commit on its branch now.
    expect(await git(repo, 'show', `${tree.branch}:child.txt`)).toBe('from the child');

    // Merging again changes nothing.
    const again = await trees.mergeAgentBranch({ ...tree, workspace: info, label: 'agent-1' });
    expect(again).toMatchObject({ files: [], conflicts: [] });
  });

  it('remove the worktree and branch after a merge when asked; a failed removal leaves the merge standing', async () => {
    const trees = createWorktreeActivities({ worktreeRoot });
    const one = await trees.createAgentWorktree(spawnInput('agent-1'));
    const two = await trees.createAgentWorktree(spawnInput('agent-2'));
    await put(one.workspace, 'one.txt', 'from one\n');
    await put(two.workspace, 'two.txt', 'from two\n');

    const merged = await trees.mergeAgentBranch({
      ...one,
      workspace: info,
      label: 'agent-1',
      thenRemove: true,
    });
    expect(merged).toMatchObject({ files: ['one.txt'], conflicts: [], removed: true });
    expect(await readFile(path.join(repo, 'one.txt'), 'utf8')).toBe('from one\n');
    await expect(stat(one.worktree)).rejects.toThrow();
    expect(await git(repo, 'branch', '--format=%(refname:short)')).not.toContain(one.branch);

    // The branch cannot be deleted (another git holds its lock for good): the merge still counts.
    const first = await trees.mergeAgentBranch({ ...two, workspace: info, label: 'agent-2' });
    expect(first.files).toEqual(['two.txt']);
    await writeFile(path.join(repo, '.git', 'refs', 'heads', 'ratchet', 'sess-1', 'agent-2.lock'), '');
    const stuck = await trees.mergeAgentBranch({
      ...two,
      workspace: info,
      label: 'agent-2',
      thenRemove: true,
    });
    expect(stuck).toMatchObject({ files: [], conflicts: [] });
    expect(stuck.removed).toEqual({ problem: expect.stringMatching(/agent-2\.lock/) as unknown });
    // Merged once already, so nothing new; the worktree is gone, the branch stays for the session's end.
    expect(await readFile(path.join(repo, 'two.txt'), 'utf8')).toBe('from two\n');
    await expect(stat(two.worktree)).rejects.toThrow();
    expect(await git(repo, 'branch', '--format=%(refname:short)')).toContain(two.branch);
  });

  it('report a conflict with the files it names; the rest of the merge still lands', async () => {
    const trees = createWorktreeActivities({ worktreeRoot });
    const one = await trees.createAgentWorktree(spawnInput('agent-1'));
    const two = await trees.createAgentWorktree(spawnInput('agent-2'));
    await put(one.workspace, 'shared.txt', 'first\nsecond (one)\nthird\n');
    await put(two.workspace, 'shared.txt', 'first\nsecond (two)\nthird\n');
    await put(two.workspace, 'two.txt', 'only two\n');

    const first = await trees.mergeAgentBranch({ ...one, workspace: info, label: 'agent-1' });
    expect(first.conflicts).toEqual([]);
    const second = await trees.mergeAgentBranch({ ...two, workspace: info, label: 'agent-2' });

    expect(second.conflicts).toEqual(['shared.txt']);
    expect(second.files.sort()).toEqual(['shared.txt', 'two.txt']);
    const text = await readFile(path.join(repo, 'shared.txt'), 'utf8');
    expect(text).toContain('<<<<<<<');
    expect(text).toContain('second (one)');
    expect(text).toContain('second (two)');
    expect(text).toContain('>>>>>>>');
    expect(await readFile(path.join(repo, 'two.txt'), 'utf8')).toBe('only two\n');
    // The children's branches are untouched by the parent's merge.
    expect(await git(repo, 'show', `${one.branch}:shared.txt`)).toBe('first\nsecond (one)\nthird');
  });

  it('are removed with their branch, or with the branch kept; removing twice is fine', async () => {
    const trees = createWorktreeActivities({ worktreeRoot });
    const one = await trees.createAgentWorktree(spawnInput('agent-1'));
    const two = await trees.createAgentWorktree(spawnInput('agent-2'));
    await put(one.workspace, 'x.txt', 'x\n');

    await trees.removeAgentWorktree({
      workspace: info,
      worktree: one.worktree,
      branch: one.branch,
      keepBranch: false,
    });
    await trees.removeAgentWorktree({
      workspace: info,
      worktree: one.worktree,
      branch: one.branch,
      keepBranch: false,
    });
    await trees.removeAgentWorktree({
      workspace: info,
      worktree: two.worktree,
      branch: two.branch,
      keepBranch: true,
    });

    await expect(stat(one.worktree)).rejects.toThrow();
    await expect(stat(two.worktree)).rejects.toThrow();
    const branches = await git(repo, 'branch', '--format=%(refname:short)');
    expect(branches).not.toContain(one.branch);
    expect(branches).toContain(two.branch);
    expect(await git(repo, 'worktree', 'list', '--porcelain')).not.toContain('agent-');
  });

  it('go beside the repository by default, never inside the workspace', async () => {
    const trees = createWorktreeActivities();
    const tree = await trees.createAgentWorktree(spawnInput('agent-1'));
    try {
      expect(path.relative(repo, tree.worktree).startsWith('..')).toBe(true);
      expect(tree.worktree).toBe(
        path.join(path.dirname(repo), '.ratchet-worktrees', path.basename(repo), 'sess-1', 'agent-1'),
      );
      expect(await git(repo, 'status', '--porcelain')).toBe('');
      await trees.removeAgentWorktree({
        workspace: info,
        worktree: tree.worktree,
        branch: tree.branch,
        keepBranch: false,
      });
      // Nothing is left beside the repository.
      await expect(
        stat(path.join(path.dirname(repo), '.ratchet-worktrees', path.basename(repo))),
      ).rejects.toThrow();
    } finally {
      await trees.removeAgentWorktree({
        workspace: info,
        worktree: tree.worktree,
        branch: tree.branch,
        keepBranch: false,
      });
      await rm(path.join(path.dirname(repo), '.ratchet-worktrees', path.basename(repo)), {
        recursive: true,
        force: true,
      });
    }
  });
});
