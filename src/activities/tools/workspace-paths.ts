import { constants as fsConstants } from 'node:fs';
import { open, readlink, realpath } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { isInside } from '../paths.js';

/** A path that would leave the workspace: refused before anything is read or written. */
export class WorkspaceEscapeError extends Error {
  constructor(readonly requested: string) {
    super(`path ${JSON.stringify(requested)} is outside the workspace`);
    this.name = 'WorkspaceEscapeError';
  }
}

/** realpath of the deepest part of `p` that exists (the rest appended unchanged). */
async function realpathOfExistingPrefix(p: string): Promise<string> {
  let current = p;
  const rest: string[] = [];
  for (;;) {
    try {
      const real = await realpath(current);
      return rest.length === 0 ? real : path.join(real, ...rest.reverse());
    } catch (err) {
      if (
        (err as NodeJS.ErrnoException).code !== 'ENOENT' &&
        (err as NodeJS.ErrnoException).code !== 'ENOTDIR'
      )
        throw err;
      const parent = path.dirname(current);
      if (parent === current) return p;
      rest.push(path.basename(current));
      current = parent;
    }
  }
}

/**
 * Resolves a path the model gave (relative to the workspace root, or absolute) and refuses it when
 * it leaves the workspace: through "..", an absolute path elsewhere, or a symbolic link anywhere
 * along the way that points outside. `workspace` must already be a real path.
 */
export async function resolveInWorkspace(workspace: string, requested: string): Promise<string> {
  if (requested.includes('\0')) throw new WorkspaceEscapeError(requested);
  const candidate = path.resolve(workspace, requested);
  if (!isInside(workspace, candidate)) throw new WorkspaceEscapeError(requested);
  const real = await realpathOfExistingPrefix(candidate);
  if (!isInside(workspace, real)) throw new WorkspaceEscapeError(requested);
  return candidate;
}

/** The workspace-relative form of an absolute path inside the workspace, with forward slashes. */
export function workspaceRelative(workspace: string, absolute: string): string {
  return path.relative(workspace, absolute).split(path.sep).join('/') || '.';
}

/**
 * Opens a regular file inside the workspace for reading, and checks what was opened: the
 * descriptor's own path must be inside the workspace (else WorkspaceEscapeError), and it must be
 * a regular file (else an error with code ENOTREG). A directory swapped for a link after resolveInWorkspace (a
 * concurrent command, another session on the same checkout) is caught, without a race.
 */
export async function openInWorkspace(workspace: string, absolute: string): Promise<FileHandle> {
  // Non-blocking: a FIFO put in the file's place would otherwise hold the worker at open().
  const handle = await open(absolute, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  const opened = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => undefined);
  if (opened === undefined || !isInside(workspace, opened)) {
    await handle.close();
    throw new WorkspaceEscapeError(workspaceRelative(workspace, absolute));
  }
  if (!(await handle.stat()).isFile()) {
    await handle.close();
    throw Object.assign(new Error(`${workspaceRelative(workspace, absolute)} is not a regular file`), {
      code: 'ENOTREG',
    });
  }
  return handle;
}
