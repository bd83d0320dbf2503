/**
 * The workspace activities and `ratchet diff` on repositories a hostile model prepared: Ratchet's
 * own git runs no program the repository names, finds the repository once, and AGENTS.md is read
 * only as a regular file inside the repository.
 */
import { lstat, mkdir, mkdtemp, readFile, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createWorkspaceActivities } from '../../src/activities/workspace.js';
import { giveToWorkspaceOwner } from '../../src/activities/workspace-owner.js';
import { workspaceDiff } from '../../src/cli/diff.js';
import { AGENTS_MD_MAX_BYTES } from '../../src/shared/prompt/instructions.js';
import { giveToTestUser, runningAsRoot, TEST_USER } from '../helpers/test-user.js';

let repo: string;
let outside: string;
let marker: string;

const activities = createWorkspaceActivities({
  allowedRoots: [],
  sandbox: { available: false, kind: 'none', detail: 'not needed here' },
});

async function git(...args: string[]): Promise<string> {
  return (await execa('git', args, { cwd: repo })).stdout;
}

beforeEach(async () => {
  repo = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-workspace-')));
  outside = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-workspace-outside-')));
  marker = path.join(outside, 'pwned');
  await git('init', '-q', '-b', 'main');
  await git('config', 'user.email', 't@example.com');
  await git('config', 'user.name', 'T');
  await writeFile(path.join(repo, 'a.txt'), 'one\n');
  await git('add', 'a.txt');
  await git('commit', '-q', '-m', 'first');
});

afterEach(async () => {
  await rm(repo, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

async function pwned(): Promise<boolean> {
  return stat(marker).then(
    () => true,
    () => false,
  );
}

describe("Ratchet's own git", () => {
  it('runs no fsmonitor, filter, diff driver, textconv or hook that the repository names', async () => {
    const run = `sh -c 'env > ${marker}; cat'`;
    for (const [key, value] of [
      ['core.fsmonitor', run],
      ['filter.evil.clean', run],
      ['filter.evil.smudge', run],
      ['filter.evil.required', 'true'],
      ['diff.evil.command', run],
      ['diff.evil.textconv', run],
      ['diff.external', run],
      ['core.hooksPath', outside],
    ]) {
      await git('config', key!, value!);
    }
    await writeFile(path.join(repo, '.gitattributes'), '* filter=evil diff=evil\n');
    await writeFile(path.join(repo, 'a.txt'), 'two\n');
    const prepared = await activities.prepareWorkspace({ workspace: repo });
    expect(prepared.info.git).toEqual({ gitDir: path.join(repo, '.git'), workTree: repo });
    expect(Object.keys(prepared.info.initiallyDirty).sort()).toEqual(['.gitattributes', 'a.txt']);

    await writeFile(path.join(repo, 'b.txt'), 'new\n');
    const changes = await activities.workspaceChanges({ workspace: prepared.info });
    expect(changes.map((c) => c.path)).toEqual(['b.txt']);
    const diff = await workspaceDiff(prepared.info, { color: false });
    expect(diff).toContain('+two');
    expect(diff).toContain('+new');
    expect(await pwned()).toBe(false);
  });

  it('keeps to the repository found when the workspace was prepared', async () => {
    const sub = path.join(repo, 'sub');
    await mkdir(sub);
    await writeFile(path.join(sub, 's.txt'), 's\n');
    await git('add', '.');
    await git('commit', '-q', '-m', 'sub');
    const prepared = await activities.prepareWorkspace({ workspace: sub });
    expect(prepared.info.git).toEqual({ gitDir: path.join(repo, '.git'), workTree: repo });
    // A command makes the workspace a repository of its own, with a hostile config.
    await execa('git', ['init', '-q'], { cwd: sub });
    await execa('git', ['config', 'core.fsmonitor', `touch ${marker}`], { cwd: sub });
    await writeFile(path.join(sub, 's.txt'), 'changed\n');
    const changes = await activities.workspaceChanges({ workspace: prepared.info });
    expect(changes.map((c) => c.path)).toContain('sub/s.txt');
    expect(await pwned()).toBe(false);
  });

  it('refuses to take /, a home or an ancestor of the workspace for a git directory', async () => {
    const nested = path.join(repo, 'n');
    await mkdir(nested);
    await writeFile(path.join(nested, '.git'), `gitdir: ${repo}\n`);
    await expect(activities.prepareWorkspace({ workspace: nested })).rejects.toThrow(
      /not a git working copy/,
    );
  });
});

describe('AGENTS.md', () => {
  it('is read only when it is a regular file, never through a link to a file outside', async () => {
    await writeFile(path.join(outside, 'secret.txt'), 'host secret\n');
    await symlink(path.join(outside, 'secret.txt'), path.join(repo, 'AGENTS.md'));
    const linked = await activities.prepareWorkspace({ workspace: repo });
    expect(linked.agentsMd).toBeNull();
    expect(linked.info.agentsMd).toBe(false);

    await rm(path.join(repo, 'AGENTS.md'));
    await execa('mkfifo', [path.join(repo, 'AGENTS.md')]);
    const fifo = await activities.prepareWorkspace({ workspace: repo });
    expect(fifo.agentsMd).toBeNull();
  });

  it('is cut at its size cap', async () => {
    await writeFile(path.join(repo, 'AGENTS.md'), 'x'.repeat(AGENTS_MD_MAX_BYTES * 3));
    const prepared = await activities.prepareWorkspace({ workspace: repo });
    expect(prepared.agentsMd).toBe(
      `${'x'.repeat(AGENTS_MD_MAX_BYTES)}\n[AGENTS.md cut at ${AGENTS_MD_MAX_BYTES} bytes]`,
    );
    expect(await readFile(path.join(repo, 'AGENTS.md'), 'utf8')).toHaveLength(AGENTS_MD_MAX_BYTES * 3);
  });
});

describe('files a root worker writes', () => {
  it("belong to the workspace's owner, directories between included, links not followed", async () => {
    await mkdir(path.join(repo, 'new', 'deep'), { recursive: true });
    await writeFile(path.join(repo, 'new', 'deep', 'f.txt'), 'x\n');
    await writeFile(path.join(outside, 'target.txt'), 'outside\n');
    await symlink(path.join(outside, 'target.txt'), path.join(repo, 'link'));
    await giveToTestUser(repo);
    if (runningAsRoot) {
      await execa('chown', ['-R', '0:0', path.join(repo, 'new')]);
      await execa('chown', ['-h', '0:0', path.join(repo, 'link')]);
    }
    await giveToWorkspaceOwner(repo, ['new/deep/f.txt', 'link', '../escape']);
    const expected = runningAsRoot ? TEST_USER.uid : process.geteuid!();
    for (const file of ['new', 'new/deep', 'new/deep/f.txt']) {
      expect((await stat(path.join(repo, file))).uid, file).toBe(expected);
    }
    expect((await lstat(path.join(repo, 'link'))).uid).toBe(expected);
    expect((await stat(path.join(outside, 'target.txt'))).uid).toBe(process.geteuid!());
  });
});
