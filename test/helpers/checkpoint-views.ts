/**
 * What the checkpoint tests compare: a working tree file by file (type, exec bit, content hash,
 * link target), a commit's tree extracted independently of Ratchet (`git archive`), and what the
 * user sees of their repository (HEAD, index, branches, stash), which no checkpoint, rewind or
 * fork may change.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import {
  chmod,
  lstat,
  mkdtemp,
  readFile,
  readdir,
  readlink,
  realpath,
  rm,
  writeFile,
} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { StatusView } from '../../src/shared/api/session-api.js';
import type { TempRepo } from './git-repo.js';
import type { Harness } from './harness.js';
import { waitForStatus } from './harness.js';
import { giveToTestUser } from './test-user.js';

/** Every entry of a tree (not .git): type, exec bit, content hash or link target. */
export async function tree(root: string, skip: readonly string[] = []): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    const absolute = path.join(entry.parentPath, entry.name);
    const relative = path.relative(root, absolute);
    if (relative === '.git' || relative.startsWith(`.git${path.sep}`) || skip.includes(relative)) continue;
    const info = await lstat(absolute);
    if (info.isSymbolicLink()) out[relative] = `link → ${await readlink(absolute)}`;
    else if (info.isDirectory()) out[relative] = 'dir';
    else {
      const hash = createHash('sha256')
        .update(await readFile(absolute))
        .digest('hex')
        .slice(0, 16);
      out[relative] = `${info.mode & 0o111 ? 'exec' : 'file'} ${hash}`;
    }
  }
  return out;
}

/** A commit's tree as files, by `git archive` (not by Ratchet's restore). */
export async function archived(repo: string, commit: string): Promise<Record<string, string>> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ratchet-archive-'));
  try {
    await execa('bash', ['-c', `git -C "${repo}" archive "${commit}" | tar -x -C "${dir}"`]);
    return await tree(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** What the user sees of their repository: HEAD, index, branches, stash. */
export async function userView(repo: Pick<TempRepo, 'git'>): Promise<Record<string, string>> {
  return {
    head: await repo.git('rev-parse', 'HEAD'),
    symbolic: await repo.git('symbolic-ref', 'HEAD'),
    index: await repo.git('ls-files', '-s'),
    branches: await repo.git('for-each-ref', '--format=%(refname) %(objectname)', 'refs/heads', 'refs/tags'),
    stash: await repo.git('stash', 'list', '--format=%H %s'),
  };
}

/** A repository with a stash, a second branch, a staged change and an executable. */
export async function busyRepo(
  tempRepo: (files: Record<string, string>) => Promise<TempRepo>,
): Promise<TempRepo> {
  const repo = await tempRepo({
    'a.txt': 'alpha\n',
    'b.txt': 'bravo\n',
    'run.sh': '#!/bin/sh\necho run\n',
    '.gitignore': '*.log\n',
  });
  await chmod(path.join(repo.dir, 'run.sh'), 0o755);
  await repo.git('add', 'run.sh');
  await repo.git('commit', '-q', '-m', 'executable');
  await writeFile(path.join(repo.dir, 'a.txt'), 'stashed\n');
  await repo.git('stash', 'push', '-q', '-m', 'work in progress');
  await repo.git('branch', 'feature');
  await writeFile(path.join(repo.dir, 'staged.txt'), 'staged\n');
  await repo.git('add', 'staged.txt');
  await giveToTestUser(repo.dir);
  return repo;
}

/** A clone of `repo` in a temporary directory of its own, with a branch and a stash of its own. */
export async function cloneOf(repo: TempRepo): Promise<TempRepo> {
  const parent = await realpath(await mkdtemp(path.join(os.tmpdir(), 'ratchet-clone-')));
  const dir = path.join(parent, 'clone');
  // The source belongs to the test user: git clears our safe.directory for the local upload-pack.
  await execa('git', [
    'clone',
    '-q',
    '--upload-pack',
    "git -c safe.directory='*' upload-pack",
    repo.dir,
    dir,
  ]);
  const git = async (...args: string[]) => (await execa('git', args, { cwd: dir })).stdout;
  await git('config', 'user.email', 'test@example.com');
  await git('config', 'user.name', 'Ratchet Test');
  await git('branch', 'theirs');
  await writeFile(path.join(dir, 'b.txt'), 'their own stash\n');
  await git('stash', 'push', '-q', '-m', 'clone work');
  await giveToTestUser(parent);
  return { dir, git, remove: () => rm(parent, { recursive: true, force: true }) };
}

export const ADD_C = ['*** Begin Patch', '*** Add File: c.txt', '+charlie', '*** End Patch'].join('\n');

/** The session's status once a rewind to the end of `turn` has restored it and it waits. */
export function rewoundTo(harness: Harness, sessionId: string, turn: number): Promise<StatusView> {
  return waitForStatus(
    harness.client.workflow.getHandle(sessionId),
    (s) => s.status === 'idle' && (s.notice ?? '').includes(`end of turn ${turn}`),
  );
}
