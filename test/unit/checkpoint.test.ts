import { spawnSync } from 'node:child_process';
/**
 * Checkpoints against real repositories: what a snapshot holds, that a restore puts back exactly
 * that (bytes, modes, links, deletions) and nothing else, and that the user's HEAD, index,
 * branches and stash are the same before and after.
 */
import { execa } from 'execa';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rm,
  stat,
  symlink,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CheckpointScope } from '../../src/activities/checkpoint.js';
import {
  CheckpointError,
  changesSince,
  diffCheckpoints,
  listCheckpointRefs,
  pruneCheckpoints,
  refComponent,
  restoreCheckpoint,
  takeCheckpoint,
  turnRef,
} from '../../src/activities/checkpoint.js';
import { removeStaleShadows } from '../../src/activities/checkpoint-git.js';
import { locateRepository } from '../../src/activities/workspace-git.js';
import type { TempRepo } from '../helpers/git-repo.js';
import { createTempRepo } from '../helpers/git-repo.js';
import { tree } from '../helpers/checkpoint-views.js';
import { putFile, readText } from '../helpers/files.js';
import { giveToTestUser, runningAsRoot, TEST_USER } from '../helpers/test-user.js';

let repo: TempRepo;
let stateDir: string;
const cleanup: string[] = [];

/** What the user sees of their repository: HEAD, index, branches, stash, status. */
async function userView(r: TempRepo): Promise<Record<string, string>> {
  const safe = (...args: string[]) => r.git(...args).catch((err: Error) => `error: ${err.message}`);
  return {
    head: await safe('rev-parse', 'HEAD'),
    symbolic: await safe('symbolic-ref', '-q', 'HEAD'),
    index: await safe('ls-files', '-s'),
    branches: await safe('for-each-ref', '--format=%(refname) %(objectname)', 'refs/heads', 'refs/tags'),
    stash: await safe('stash', 'list', '--format=%H %s'),
    status: await safe('status', '--porcelain=v1', '--untracked-files=all'),
  };
}

async function scopeOf(r: TempRepo, sessionId = 'ratchet-test-1234', root = r.dir): Promise<CheckpointScope> {
  const location = await locateRepository(root);
  if ('problem' in location) throw new Error(location.problem);
  return { location, root, sessionId, stateDir };
}

beforeEach(async () => {
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'ratchet-checkpoint-state-'));
  repo = await createTempRepo({
    'a.txt': 'alpha\n',
    'src/b.ts': 'export const b = 1;\n',
    'run.sh': '#!/bin/sh\necho hi\n',
    '.gitignore': 'node_modules/\n*.log\n',
  });
  await chmod(path.join(repo.dir, 'run.sh'), 0o755);
  await repo.git('add', 'run.sh');
  await repo.git('commit', '-q', '-m', 'exec bit');
  // A stash, a second branch and a staged change: all must survive every checkpoint operation.
  await writeFile(path.join(repo.dir, 'a.txt'), 'stashed\n');
  await repo.git('stash', 'push', '-q', '-m', 'work in progress');
  await repo.git('branch', 'feature');
  await writeFile(path.join(repo.dir, 'staged.txt'), 'staged\n');
  await repo.git('add', 'staged.txt');
  await giveToTestUser(repo.dir);
});

afterEach(async () => {
  await repo.remove();
  await rm(stateDir, { recursive: true, force: true });
  for (const dir of cleanup.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe('a checkpoint', () => {
  it('holds shell-made changes, untracked, deleted, binary and executable files and links, and leaves HEAD, index, branches and stash alone', async () => {
    const scope = await scopeOf(repo);
    const base = await takeCheckpoint(scope, { turn: 0, message: 'start\n' });
    expect(base.ref).toBe('refs/ratchet/ratchet-test-1234/turn-0');
    const before = await userView(repo);

    // What a turn's commands might do.
    await writeFile(path.join(repo.dir, 'a.txt'), 'changed by sed\n');
    await unlink(path.join(repo.dir, 'src/b.ts'));
    await putFile(repo.dir, 'new/dir/c.txt', 'untracked\n');
    const binary = Buffer.alloc(70_000);
    for (let i = 0; i < binary.length; i++) binary[i] = (i * 7919) % 256;
    await writeFile(path.join(repo.dir, 'blob.bin'), binary);
    await chmod(path.join(repo.dir, 'run.sh'), 0o644);
    await writeFile(path.join(repo.dir, 'tool'), '#!/bin/sh\n');
    await chmod(path.join(repo.dir, 'tool'), 0o755);
    await symlink('a.txt', path.join(repo.dir, 'link-to-a'));
    await putFile(repo.dir, 'node_modules/dep/index.js', 'ignored\n');
    await putFile(repo.dir, 'debug.log', 'ignored too\n');

    const turn1 = await takeCheckpoint(scope, { turn: 1, message: 'turn 1\n', since: base.commit });
    expect(await userView(repo)).toEqual({
      ...before,
      status: await repo.git('status', '--porcelain=v1', '--untracked-files=all'),
    });
    expect(await repo.git('rev-parse', 'HEAD')).toBe(before.head);
    expect(await repo.git('ls-files', '-s')).toBe(before.index);
    const files = Object.fromEntries(turn1.files.map((f) => [f.path, f.status]));
    expect(files).toEqual({
      'a.txt': 'M',
      'src/b.ts': 'D',
      'new/dir/c.txt': 'A',
      'blob.bin': 'A',
      'run.sh': 'M',
      tool: 'A',
      'link-to-a': 'A',
    });
    const listed = await repo.git('ls-tree', '-r', turn1.commit);
    expect(listed).toMatch(/^100644 blob \w+\trun\.sh$/m);
    expect(listed).toMatch(/^100755 blob \w+\ttool$/m);
    expect(listed).toMatch(/^120000 blob \w+\tlink-to-a$/m);
    expect(listed).not.toMatch(/node_modules|debug\.log/);
    expect(
      await repo.git('cat-file', '-p', `${turn1.commit}:blob.bin`).then((s) => s.length),
    ).toBeGreaterThan(0);
    // Its parent is the user's HEAD; it is on no branch.
    expect(await repo.git('rev-parse', `${turn1.commit}^`)).toBe(before.head);
    expect(await repo.git('branch', '--contains', turn1.commit)).toBe('');
  });

  it('keeps a tracked file that .gitignore names, and a file staged but never committed', async () => {
    await putFile(repo.dir, 'tracked.log', 'tracked despite the pattern\n');
    await repo.git('add', '-f', 'tracked.log');
    const scope = await scopeOf(repo);
    const taken = await takeCheckpoint(scope, { turn: 1, message: 'x\n' });
    const names = (await repo.git('ls-tree', '-r', '--name-only', taken.commit)).split('\n');
    expect(names).toEqual(expect.arrayContaining(['tracked.log', 'staged.txt']));
  });

  it('stores the bytes on disk, whatever conversions .gitattributes asks for', async () => {
    await writeFile(path.join(repo.dir, '.gitattributes'), '* text=auto eol=lf\n*.txt filter=evil ident\n');
    await repo.git('config', 'core.autocrlf', 'true');
    const marker = path.join(stateDir, 'filter-ran');
    await repo.git('config', 'filter.evil.clean', `sh -c 'touch ${marker}; cat'`);
    await repo.git('config', 'filter.evil.smudge', `sh -c 'touch ${marker}; cat'`);
    await repo.git('config', 'core.fsmonitor', `sh -c 'touch ${marker}'`);
    await writeFile(path.join(repo.dir, 'crlf.txt'), 'one\r\ntwo\r\n$Id$\r\n');
    const scope = await scopeOf(repo);
    const taken = await takeCheckpoint(scope, { turn: 1, message: 'x\n' });
    const stored = await execa('git', ['cat-file', 'blob', `${taken.commit}:crlf.txt`], {
      cwd: repo.dir,
      stripFinalNewline: false,
    });
    expect(stored.stdout).toBe('one\r\ntwo\r\n$Id$\r\n');
    await writeFile(path.join(repo.dir, 'crlf.txt'), 'other\n');
    await restoreCheckpoint(scope, taken.commit);
    expect(await readFile(path.join(repo.dir, 'crlf.txt'), 'utf8')).toBe('one\r\ntwo\r\n$Id$\r\n');
    await expect(stat(marker)).rejects.toThrow(/ENOENT/);
  });

  it('works in a repository without commits, and in a linked worktree', async () => {
    const empty = await createTempRepo();
    cleanup.push(empty.dir);
    await putFile(empty.dir, 'first.txt', 'first\n');
    const scope = await scopeOf(empty);
    const taken = await takeCheckpoint(scope, { turn: 1, message: 'x\n' });
    expect(taken.head).toBeNull();
    expect(taken.files).toEqual([{ path: 'first.txt', status: 'A' }]);
    await rm(path.join(empty.dir, 'first.txt'));
    await restoreCheckpoint(scope, taken.commit);
    expect(await readText(empty.dir, 'first.txt')).toBe('first\n');

    const linked = path.join(os.tmpdir(), `ratchet-linked-${Date.now()}`);
    cleanup.push(linked);
    await repo.git('worktree', 'add', '-q', '--detach', linked);
    const wt: TempRepo = {
      dir: linked,
      git: async (...args) => (await execa('git', args, { cwd: linked })).stdout,
      remove: async () => {},
    };
    const wtScope = await scopeOf(wt, 'ratchet-linked');
    await putFile(linked, 'w.txt', 'in the worktree\n');
    const w = await takeCheckpoint(wtScope, { turn: 2, message: 'x\n' });
    // The ref lives in the common repository, where gc sees it.
    expect(await repo.git('rev-parse', 'refs/ratchet/ratchet-linked/turn-2')).toBe(w.commit);
  });
});

describe('restoring a checkpoint', () => {
  it('puts the working tree back exactly, removes what came after, never touches ignored files or the user’s HEAD, index, branches and stash', async () => {
    const scope = await scopeOf(repo);
    await putFile(repo.dir, 'untracked.txt', 'was here\n');
    await putFile(repo.dir, 'dir/keep.bin', '\u0000\u0001binary\u00ff');
    const at = await takeCheckpoint(scope, { turn: 3, message: 'turn 3\n' });
    const expected = await tree(repo.dir);
    const before = await userView(repo);

    // Later turns: edits, deletions, new files and directories, a mode change, a file turned into
    // a directory and a directory into a link; ignored files appear.
    await writeFile(path.join(repo.dir, 'a.txt'), 'later\n');
    await rm(path.join(repo.dir, 'untracked.txt'));
    await rm(path.join(repo.dir, 'dir'), { recursive: true });
    await symlink('/etc', path.join(repo.dir, 'dir'));
    await chmod(path.join(repo.dir, 'run.sh'), 0o600);
    await putFile(repo.dir, 'later/deep/new.txt', 'new\n');
    await rm(path.join(repo.dir, 'staged.txt'));
    await mkdir(path.join(repo.dir, 'staged.txt'));
    await putFile(repo.dir, 'staged.txt/inner', 'x\n');
    await putFile(repo.dir, 'node_modules/dep/index.js', 'ignored\n');
    await putFile(repo.dir, 'later/trace.log', 'ignored in a new directory\n');

    const restored = await restoreCheckpoint(scope, at.commit);
    const now = await tree(repo.dir);
    expect({
      ...now,
      node_modules: undefined,
      'node_modules/dep': undefined,
      'node_modules/dep/index.js': undefined,
      later: undefined,
      'later/trace.log': undefined,
    }).toEqual({
      ...expected,
      node_modules: undefined,
      'node_modules/dep': undefined,
      'node_modules/dep/index.js': undefined,
      later: undefined,
      'later/trace.log': undefined,
    });
    expect(now['node_modules/dep/index.js']).toMatch(/^file /);
    expect(now['later/trace.log']).toMatch(/^file /);
    expect(now['later/deep/new.txt']).toBeUndefined();
    expect((await stat(path.join(repo.dir, 'run.sh'))).mode & 0o111).not.toBe(0);
    expect((await lstat(path.join(repo.dir, 'dir'))).isDirectory()).toBe(true);
    expect(await userView(repo)).toEqual({
      ...before,
      status: await repo.git('status', '--porcelain=v1', '--untracked-files=all'),
    });
    expect(await repo.git('ls-files', '-s')).toBe(before.index);
    expect(await repo.git('status', '--porcelain=v1', '--untracked-files=all')).toBe(before.status);

    // What was there is kept, so a restore can be undone.
    expect(restored.saved.ref).toMatch(/^refs\/ratchet\/ratchet-test-1234\/saved-\d+$/);
    expect(await repo.git('cat-file', '-p', `${restored.saved.commit}:later/deep/new.txt`)).toBe('new');
    if (runningAsRoot) {
      expect((await stat(path.join(repo.dir, 'untracked.txt'))).uid).toBe(TEST_USER.uid);
      const git = path.join(repo.dir, '.git');
      const objects = await execa('find', [`${git}/objects`, `${git}/refs/ratchet`, '-uid', '0']);
      expect(objects.stdout).toBe('');
    }
  });

  it('restores only inside the workspace when it is a directory of the repository', async () => {
    const scope = await scopeOf(repo, 'ratchet-sub', path.join(repo.dir, 'src'));
    const at = await takeCheckpoint(scope, { turn: 1, message: 'x\n' });
    await writeFile(path.join(repo.dir, 'src/b.ts'), 'export const b = 2;\n');
    await writeFile(path.join(repo.dir, 'a.txt'), 'the user edits outside the workspace\n');
    const restored = await restoreCheckpoint(scope, at.commit);
    expect(restored.files).toEqual([{ path: 'src/b.ts', status: 'M' }]);
    expect(await readText(repo.dir, 'src/b.ts')).toBe('export const b = 1;\n');
    expect(await readText(repo.dir, 'a.txt')).toBe('the user edits outside the workspace\n');
  });

  it('says which files changed since a checkpoint (changes made outside the session)', async () => {
    const scope = await scopeOf(repo);
    const at = await takeCheckpoint(scope, { turn: 1, message: 'x\n' });
    expect(await changesSince(scope, at.commit)).toEqual([]);
    await writeFile(path.join(repo.dir, 'a.txt'), 'edited by hand\n');
    await putFile(repo.dir, 'notes.md', 'mine\n');
    await putFile(repo.dir, 'ignored.log', 'not counted\n');
    expect(await changesSince(scope, at.commit)).toEqual([
      { path: 'a.txt', status: 'M' },
      { path: 'notes.md', status: 'A' },
    ]);
  });

  it('refuses what is not a checkpoint of this repository, clearly', async () => {
    const scope = await scopeOf(repo);
    await expect(restoreCheckpoint(scope, 'HEAD')).rejects.toThrow(/not a commit id/);
    await expect(restoreCheckpoint(scope, 'a'.repeat(40))).rejects.toThrow(
      /checkpoint aaaaaaaaaaaa is not in the repository/,
    );
    await expect(restoreCheckpoint(scope, 'a'.repeat(40))).rejects.toBeInstanceOf(CheckpointError);
    await expect(takeCheckpoint({ ...scope, root: '/tmp' }, { turn: 1, message: 'x' })).rejects.toThrow(
      /not inside the work tree/,
    );
  });
});

describe('diffs, pruning and gc', () => {
  it('diffs two checkpoints, and a checkpoint against the working tree', async () => {
    const scope = await scopeOf(repo);
    const one = await takeCheckpoint(scope, { turn: 1, message: 'x\n' });
    await writeFile(path.join(repo.dir, 'a.txt'), 'beta\n');
    const two = await takeCheckpoint(scope, { turn: 2, message: 'x\n', since: one.commit });
    const diff = await diffCheckpoints(scope, one.commit, two.commit);
    expect(diff).toContain('-alpha');
    expect(diff).toContain('+beta');
    await putFile(repo.dir, 'c.txt', 'gamma\n');
    expect(await diffCheckpoints(scope, two.commit, null)).toContain('+gamma');
    expect(await diffCheckpoints(scope, one.commit, two.commit, { stat: true })).toMatch(/a\.txt \| 2/);
  });

  it('prunes to the last K, or to none; git gc never loses a checkpoint still referenced', async () => {
    const scope = await scopeOf(repo);
    const taken = [];
    for (let turn = 1; turn <= 5; turn++) {
      await putFile(repo.dir, `t${turn}.txt`, `turn ${turn} ${'x'.repeat(1000)}\n`);
      taken.push(await takeCheckpoint(scope, { turn, message: `turn ${turn}\n` }));
    }
    const other = await scopeOf(repo, 'other session');
    expect(refComponent('other session')).toMatch(/^other_session-[0-9a-f]{12}$/);
    const kept = await takeCheckpoint(other, { turn: 1, message: 'x\n' });

    expect(await pruneCheckpoints(scope, 2)).toEqual([
      turnRef(scope.sessionId, 3),
      turnRef(scope.sessionId, 2),
      turnRef(scope.sessionId, 1),
    ]);
    expect((await listCheckpointRefs(scope)).map((r) => r.turn)).toEqual([4, 5]);
    // Unreferenced: t1–t3's checkpoints; referenced: t4, t5 and the other session's.
    await rm(path.join(repo.dir, 't5.txt'));
    await rm(path.join(repo.dir, 't4.txt'));
    await repo.git(
      '-c',
      'gc.reflogExpire=now',
      '-c',
      'gc.reflogExpireUnreachable=now',
      'gc',
      '-q',
      '--prune=now',
    );
    expect(await repo.git('fsck', '--no-dangling')).toBe('');
    await restoreCheckpoint(scope, taken[4]!.commit);
    expect(await readText(repo.dir, 't5.txt')).toMatch(/^turn 5/);
    expect(await repo.git('cat-file', '-t', kept.commit)).toBe('commit');
    await expect(restoreCheckpoint(scope, taken[0]!.commit)).rejects.toThrow(/not in the repository/);

    expect((await pruneCheckpoints(scope, 0)).length).toBeGreaterThan(0);
    expect(await listCheckpointRefs(scope)).toEqual([]);
    expect((await listCheckpointRefs(other)).map((r) => r.turn)).toEqual([1]);
  });

  it('removes the shadow directories a worker killed mid-checkpoint left, and no live one', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ratchet-tmp-'));
    try {
      for (const name of ['ratchet-shadow-old', 'ratchet-shadow-live', 'other-old']) {
        await mkdir(path.join(dir, name, 'objects'), { recursive: true });
      }
      const hoursAgo = new Date(Date.now() - 7 * 60 * 60 * 1000);
      await utimes(path.join(dir, 'ratchet-shadow-old'), hoursAgo, hoursAgo);
      await utimes(path.join(dir, 'other-old'), hoursAgo, hoursAgo);
      expect(await removeStaleShadows(dir)).toBe(1);
      expect((await readdir(dir)).sort()).toEqual(['other-old', 'ratchet-shadow-live']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('removes at once the shadow directory of a worker that no longer runs, not a running one’s', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ratchet-tmp-'));
    try {
      const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
      const deadPid = Number(gone.stdout.toString());
      const names = [
        `ratchet-shadow-${deadPid}-abc123`,
        `ratchet-shadow-${process.pid}-def456`,
        `ratchet-shadow-${process.ppid}-ghi789`,
      ];
      for (const name of names) await mkdir(path.join(dir, name, 'objects'), { recursive: true });
      expect(await removeStaleShadows(dir)).toBe(1);
      expect((await readdir(dir)).sort()).toEqual(names.slice(1).sort());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
