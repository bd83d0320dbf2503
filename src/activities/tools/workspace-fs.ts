/**
 * Reads and writes files inside a workspace without a race: every directory on the way is opened
 * with O_NOFOLLOW from the workspace root's descriptor, and the file is then named relative to
 * that directory's descriptor (through /proc/self/fd), so a directory or link swapped by a
 * concurrent process after a check cannot send a write outside the workspace.
 *
 * `resolve` turns a path the model gave into its canonical form: a workspace-relative path with
 * every symbolic link replaced by what it points to, refused when any step leaves the workspace
 * or enters a git directory. `read`, `write` and `remove` then take only canonical paths and
 * follow no link at all: a link that appeared since `resolve` makes them fail (ELOOP), never
 * follow it.
 */
import { constants, existsSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { lstat, mkdir, open, readlink, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

/** A path that would leave the workspace or enter a git directory: refused before any I/O. */
export class WorkspacePathError extends Error {
  constructor(
    readonly requested: string,
    readonly reason: 'outside' | 'git',
  ) {
    super(
      reason === 'git'
        ? `path ${JSON.stringify(requested)} is inside a git directory`
        : `path ${JSON.stringify(requested)} is outside the workspace`,
    );
    this.name = 'WorkspacePathError';
  }
}

/** Links followed while resolving one path before giving up (as the kernel's ELOOP). */
const MAX_LINKS = 16;

/** Linux exposes an open directory as /proc/self/fd/N: names under it resolve in that directory. */
const FD_PATHS = process.platform === 'linux' && existsSync('/proc/self/fd');

const DIRECTORY_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

function errorCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** A git directory, or anything inside one, in any letter case (case-insensitive filesystems). */
export function isGitPath(relative: string): boolean {
  return relative.split('/').some((part) => part.toLowerCase() === '.git');
}

/** Components of a workspace-relative path; throws for one that leaves the workspace lexically. */
function components(relative: string, requested: string): string[] {
  const normal = path.posix.normalize(relative.split(path.sep).join('/'));
  if (normal === '.' || normal === '') return [];
  if (normal === '..' || normal.startsWith('../') || path.posix.isAbsolute(normal)) {
    throw new WorkspacePathError(requested, 'outside');
  }
  return normal.split('/').filter((part) => part !== '' && part !== '.');
}

/** An open directory of the workspace, and the name its children are reached by. */
class Dir {
  constructor(
    readonly handle: FileHandle,
    /** Absolute path, used where /proc/self/fd is not available. */
    readonly absolute: string,
  ) {}

  child(name: string): string {
    return FD_PATHS ? `/proc/self/fd/${this.handle.fd}/${name}` : path.join(this.absolute, name);
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

export type FileState =
  { kind: 'absent' } | { kind: 'file'; bytes: Buffer; mode: number } | { kind: 'other'; reason: string };

export class WorkspaceFs {
  constructor(
    /** Absolute real path of the workspace root. */
    readonly root: string,
  ) {}

  /**
   * The canonical workspace-relative form of `requested` (relative to the root or absolute):
   * every link on the way replaced by its target. The part that does not exist yet is kept as
   * written. Throws WorkspacePathError when it leaves the workspace or touches a git directory.
   */
  async resolve(requested: string): Promise<string> {
    if (requested.includes('\0')) throw new WorkspacePathError(requested, 'outside');
    const absolute = path.resolve(this.root, requested);
    let pending = components(path.relative(this.root, absolute), requested);
    const done: string[] = [];
    let links = 0;
    while (pending.length > 0) {
      const [name, ...rest] = pending as [string, ...string[]];
      if (name === '..') {
        if (done.length === 0) throw new WorkspacePathError(requested, 'outside');
        done.pop();
        pending = rest;
        continue;
      }
      if (isGitPath(name)) throw new WorkspacePathError(requested, 'git');
      const here = path.join(this.root, ...done, name);
      let target: string | undefined;
      try {
        if ((await lstat(here)).isSymbolicLink()) target = await readlink(here);
      } catch (err) {
        if (errorCode(err) !== 'ENOENT' && errorCode(err) !== 'ENOTDIR') throw err;
        // Nothing more exists below: the rest is kept as written.
        const whole = [...done, ...pending].join('/');
        if (isGitPath(whole)) throw new WorkspacePathError(requested, 'git');
        return whole;
      }
      if (target === undefined) {
        done.push(name);
        pending = rest;
        continue;
      }
      links += 1;
      if (links > MAX_LINKS) throw new WorkspacePathError(requested, 'outside');
      // `done` holds no links, so ".." in the target can be worked out on the text.
      const linked = path.resolve(this.root, ...done, target);
      const inside = path.relative(this.root, linked);
      pending = [...components(inside, requested), ...rest];
      done.length = 0;
    }
    return done.join('/');
  }

  /** Opens the directories of `parts` from the root, following no link; creates missing ones with `create`. */
  private async openDir(parts: readonly string[], create: boolean): Promise<Dir> {
    let dir = new Dir(await open(this.root, DIRECTORY_FLAGS), this.root);
    try {
      for (const name of parts) {
        const next = dir.child(name);
        let handle: FileHandle;
        try {
          handle = await open(next, DIRECTORY_FLAGS);
        } catch (err) {
          if (!create || errorCode(err) !== 'ENOENT') throw err;
          await mkdir(next).catch((mkdirErr: unknown) => {
            if (errorCode(mkdirErr) !== 'EEXIST') throw mkdirErr;
          });
          handle = await open(next, DIRECTORY_FLAGS);
        }
        const parent = dir;
        dir = new Dir(handle, path.join(parent.absolute, name));
        await parent.close();
      }
      return dir;
    } catch (err) {
      await dir.close();
      throw err;
    }
  }

  private split(canonical: string): { parts: string[]; name: string } {
    if (isGitPath(canonical)) throw new WorkspacePathError(canonical, 'git');
    const parts = components(canonical, canonical);
    const name = parts.pop();
    if (name === undefined) throw new WorkspacePathError(canonical, 'outside');
    return { parts, name };
  }

  /** What is at a canonical path now, read without following any link. */
  async read(canonical: string): Promise<FileState> {
    const { parts, name } = this.split(canonical);
    let dir: Dir;
    try {
      dir = await this.openDir(parts, false);
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return { kind: 'absent' };
      if (errorCode(err) === 'ENOTDIR')
        return { kind: 'other', reason: 'has a file where a directory should be' };
      if (errorCode(err) === 'ELOOP') return { kind: 'other', reason: 'changed while the patch was applied' };
      throw err;
    }
    try {
      const handle = await open(
        dir.child(name),
        constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
      );
      try {
        const stats = await handle.stat();
        if (stats.isDirectory()) return { kind: 'other', reason: 'is a directory' };
        if (!stats.isFile()) return { kind: 'other', reason: 'is not a regular file' };
        return { kind: 'file', bytes: await handle.readFile(), mode: stats.mode & 0o7777 };
      } finally {
        await handle.close();
      }
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ENOENT') return { kind: 'absent' };
      if (code === 'ELOOP') return { kind: 'other', reason: 'changed while the patch was applied' };
      if (code === 'EACCES' || code === 'EPERM')
        return { kind: 'other', reason: 'cannot be read (permission denied)' };
      throw err;
    } finally {
      await dir.close();
    }
  }

  /**
   * Writes `bytes` to a temporary file beside the canonical path, then renames it over it. The
   * temporary file is named by the caller so that a retry can find and remove one left behind.
   */
  async write(
    canonical: string,
    bytes: Buffer | string,
    mode: number | undefined,
    temporary: string,
  ): Promise<void> {
    const { parts, name } = this.split(canonical);
    const dir = await this.openDir(parts, true);
    try {
      const scratch = dir.child(temporary);
      await unlink(scratch).catch(() => undefined);
      const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
      const handle = await open(scratch, flags, mode ?? 0o666);
      try {
        try {
          await handle.writeFile(bytes);
          if (mode !== undefined) await handle.chmod(mode);
          await handle.sync();
        } finally {
          await handle.close();
        }
        // rename replaces whatever is at the name (a link included) and follows nothing.
        await rename(scratch, dir.child(name));
      } catch (err) {
        await unlink(scratch).catch(() => undefined);
        throw err;
      }
    } finally {
      await dir.close();
    }
  }

  /** Removes the file at a canonical path; one already gone is fine. */
  async remove(canonical: string): Promise<void> {
    const { parts, name } = this.split(canonical);
    let dir: Dir;
    try {
      dir = await this.openDir(parts, false);
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return;
      throw err;
    }
    try {
      await unlink(dir.child(name));
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw err;
    } finally {
      await dir.close();
    }
  }

  /** Removes a temporary file left beside a canonical path by an attempt that died. */
  async removeLeftover(canonical: string, temporary: string): Promise<void> {
    const { parts } = this.split(canonical);
    let dir: Dir;
    try {
      dir = await this.openDir(parts, false);
    } catch {
      return;
    }
    try {
      await unlink(dir.child(temporary)).catch(() => undefined);
    } finally {
      await dir.close();
    }
  }

  /** The nearest existing ancestor of a canonical path that is not a directory, if any. */
  async blockingFile(canonical: string): Promise<string | undefined> {
    const parts = components(canonical, canonical);
    for (let end = 1; end < parts.length; end += 1) {
      const prefix = parts.slice(0, end).join('/');
      try {
        const stats = await lstat(path.join(this.root, prefix));
        if (!stats.isDirectory()) return prefix;
      } catch (err) {
        if (errorCode(err) === 'ENOENT') return undefined;
        throw err;
      }
    }
    return undefined;
  }
}
