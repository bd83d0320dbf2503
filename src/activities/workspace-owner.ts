/**
 * Files a root worker writes into a workspace belong to the workspace's owner. A root worker runs
 * commands as that owner (sandbox.ts); a file apply_patch created as root would otherwise be one
 * the next command cannot change, and a directory one it cannot add to.
 */
import { lchown, lstat, stat } from 'node:fs/promises';
import path from 'node:path';
import { isBelow } from './paths.js';

/**
 * Gives `relativePaths` (workspace-relative, as a patch names them) and the directories between
 * them and the workspace to the workspace's owner, where root owns them. Links are not followed
 * (lchown), and nothing outside the workspace is touched. Nothing happens unless the worker is
 * root and the workspace belongs to someone else.
 */
export async function giveToWorkspaceOwner(
  workspace: string,
  relativePaths: readonly string[],
  euid: number = process.geteuid?.() ?? -1,
): Promise<void> {
  if (euid !== 0) return;
  const owner = await stat(workspace);
  if (owner.uid === 0) return;
  const done = new Set<string>();
  for (const relative of relativePaths) {
    for (
      let current = path.resolve(workspace, relative);
      isBelow(workspace, current);
      current = path.dirname(current)
    ) {
      if (done.has(current)) break;
      done.add(current);
      try {
        if ((await lstat(current)).uid === 0) await lchown(current, owner.uid, owner.gid);
      } catch {
        // Deleted by the patch, or gone since: nothing to give.
      }
    }
  }
}
