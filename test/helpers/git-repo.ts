import { execa } from 'execa';
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { giveToTestUser } from './test-user.js';

/** Repositories created in this test file and not removed yet. */
const created = new Set<string>();

// Under vitest, what a test file did not remove goes when the file ends: a test that fails
// before its own clean-up, or never had one, leaves nothing in the temporary directory. (The
// chaos runner imports this outside vitest and removes its repositories itself.)
if (process.env.VITEST) {
  const { afterAll } = await import('vitest');
  afterAll(async () => {
    const dirs = [...created];
    created.clear();
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });
}

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
  created.add(dir);
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
  const remove = async () => {
    created.delete(dir);
    await rm(dir, { recursive: true, force: true });
  };
  return { dir, git, remove };
}
