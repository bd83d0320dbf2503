/**
 * Where a path lies relative to a directory, on the worker's file system: the one check every
 * activity uses before it trusts a path (the workspace, a git directory, a sandbox's mounts).
 * Lexical: resolve links first where they matter (tools/workspace-paths.ts does).
 */
import path from 'node:path';

/** The system's own directories (the file-system hierarchy's top levels): never a workspace, never hidden. */
export const SYSTEM_DIRS: readonly string[] = [
  '/',
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/lib',
  '/lib64',
  '/proc',
  '/sbin',
  '/sys',
  '/usr',
  '/var',
];

/** Whether `candidate` is `root` or lies below it. */
export function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Whether `candidate` lies below `root` (and is not `root` itself). */
export function isBelow(root: string, candidate: string): boolean {
  return path.relative(root, candidate) !== '' && isInside(root, candidate);
}
