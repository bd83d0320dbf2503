/**
 * The repository of a session's checkpoints, when it is on this machine: where its line of runs
 * works now, located as Ratchet's own git locates it. Checkpoint errors become the CLI's errors.
 */
import { existsSync } from 'node:fs';
import { RatchetError } from '../client.js';
import type { CheckpointScope } from '../activities/checkpoint.js';
import { CheckpointError } from '../activities/checkpoint.js';
import { locateRepository } from '../activities/workspace-git.js';
import type { Run } from './checkpoint-history.js';
import { workspaceOfLine } from './checkpoint-history.js';

/** The session's repository, when it is on this machine. */
export async function localScope(runs: Run[], sessionId: string): Promise<CheckpointScope | null> {
  const prepared = workspaceOfLine(runs, sessionId);
  if (!existsSync(prepared.root)) return null;
  const location = prepared.git ?? (await locateRepository(prepared.root));
  if ('problem' in location)
    throw new RatchetError(`${prepared.root} is not a git working copy: ${location.problem}`);
  return { location, root: prepared.root, sessionId };
}

export async function requireLocal(runs: Run[], sessionId: string, what: string): Promise<CheckpointScope> {
  const scope = await localScope(runs, sessionId);
  if (!scope) {
    const { root } = workspaceOfLine(runs, sessionId);
    throw new RatchetError(
      `the workspace ${root} is not on this machine; run ratchet ${what} where the session's worker runs`,
    );
  }
  return scope;
}

export function wrap<T>(run: () => Promise<T>): Promise<T> {
  return run().catch((err: unknown) => {
    if (err instanceof CheckpointError) throw new RatchetError(err.message);
    throw err;
  });
}
