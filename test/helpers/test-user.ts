/**
 * The ordinary user of the tests. Ratchet never runs a command as root: a root worker runs it as
 * the workspace's owner and refuses a workspace root owns (sandbox.ts). When the tests run as
 * root (as CI does), the workspaces they make are given to `nobody`, which every system has, so
 * that their commands run as an ordinary user; as anyone else, nothing changes.
 */
import { execa } from 'execa';

export const TEST_USER = { uid: 65534, gid: 65534, name: 'nobody' } as const;

export const runningAsRoot = process.geteuid?.() === 0;

/** Gives `dir` and everything in it to the test user when the tests run as root. */
export async function giveToTestUser(dir: string): Promise<void> {
  if (runningAsRoot) await execa('chown', ['-R', `${TEST_USER.uid}:${TEST_USER.gid}`, dir]);
}
