import { execa } from 'execa';
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { giveToTestUser } from './test-user.js';

export interface TempRepo {
  dir: string;
  git(...args: string[]): Promise<string>;
  remove(): Promise<void>;
}

/**
 * A temporary git repository with the given files committed, owned by the test user (see
 * test-user.ts). Files a test adds later as root are root's: give them too before a command must
 * change them.
 */
export async function createTempRepo(files: Record<string, string> = {}): Promise<TempRepo> {
  const dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'ratchet-repo-')));
  const git = async (...args: string[]) => (await execa('git', args, { cwd: dir })).stdout;
  await git('init', '-q', '-b', 'main');
  await git('config', 'user.email', 'test@example.com');
  await git('config', 'user.name', 'Ratchet Test');
  for (const [file, contents] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
    await writeFile(path.join(dir, file), contents);
  }
  if (Object.keys(files).length > 0) {
    await git('add', '-A');
    await git('commit', '-q', '-m', 'initial');
  }
  await giveToTestUser(dir);
  return { dir, git, remove: () => rm(dir, { recursive: true, force: true }) };
}
