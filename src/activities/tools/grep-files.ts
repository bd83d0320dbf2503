/**
 * grep_files: which files contain a match for a regular expression, most recently modified first.
 * In a git working copy the candidates are the files git knows or would add (so .gitignore is
 * honoured); elsewhere a walk of the tree. Files are read newest first and the search stops as
 * soon as the page is full, so a common pattern in a large tree costs little.
 */
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import picomatch from 'picomatch';
import type { GrepFilesArgs, ToolOutcome } from '../../shared/tools.js';
import type { ToolContext } from './context.js';
import { resolveInWorkspace, WorkspaceEscapeError, workspaceRelative } from './workspace-paths.js';

const DEFAULT_LIMIT = 100;
const MAX_FILE_BYTES = 4 * 1024 * 1024;
const BINARY_SNIFF_BYTES = 8 * 1024;
/** Directories a walk outside git never enters. */
const SKIPPED_DIRECTORIES = new Set(['.git', 'node_modules']);
/** Files stat'ed or read at once. */
const CONCURRENCY = 16;

interface Candidate {
  absolute: string;
  relative: string;
  mtimeMs: number;
}

function failure(display: string, output: string): ToolOutcome {
  return { output, display: `${display} · error`, success: false };
}

/** Files under `directory` as git sees them, or undefined when it is not in a working copy. */
async function gitFiles(directory: string, signal: AbortSignal): Promise<string[] | undefined> {
  const result = await execa('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
    cwd: directory,
    // A read must not take the index lock that a concurrent git command may need.
    env: { GIT_OPTIONAL_LOCKS: '0' },
    stdin: 'ignore',
    reject: false,
    cancelSignal: signal,
  });
  signal.throwIfAborted();
  if (result.exitCode !== 0) return undefined;
  const names = new Set(result.stdout.split('\0').filter((name) => name !== ''));
  return [...names].map((name) => path.join(directory, name));
}

/** Every file under `directory`, skipping symbolic links, .git and node_modules. */
async function walkFiles(directory: string, signal: AbortSignal, files: string[] = []): Promise<string[]> {
  signal.throwIfAborted();
  let entries;
  try {
    entries = await readdir(directory, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') return files;
    throw err;
  }
  for (const entry of entries) {
    const absolute = path.join(directory, entry.name);
    if (entry.isDirectory()) {
      if (!SKIPPED_DIRECTORIES.has(entry.name)) await walkFiles(absolute, signal, files);
    } else if (entry.isFile()) {
      files.push(absolute);
    }
  }
  return files;
}

/**
 * Candidate files under a directory. When git lists nothing (the directory is ignored, say
 * `dist/`), it was still asked for by name, so it is walked instead.
 */
async function filesUnder(directory: string, signal: AbortSignal): Promise<string[]> {
  const listed = await gitFiles(directory, signal);
  return listed !== undefined && listed.length > 0 ? listed : walkFiles(directory, signal);
}

async function inBatches<T, R>(items: T[], signal: AbortSignal, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let start = 0; start < items.length; start += CONCURRENCY) {
    signal.throwIfAborted();
    results.push(...(await Promise.all(items.slice(start, start + CONCURRENCY).map(work))));
  }
  return results;
}

/** Regular files (symbolic links are not followed) small enough to search, newest first. */
async function searchable(files: string[], workspace: string, signal: AbortSignal): Promise<Candidate[]> {
  const stats = await inBatches(files, signal, async (absolute) => {
    try {
      const info = await lstat(absolute);
      if (!info.isFile() || info.size > MAX_FILE_BYTES) return undefined;
      return { absolute, relative: workspaceRelative(workspace, absolute), mtimeMs: info.mtimeMs };
    } catch {
      // Listed by git but deleted from the working tree, or gone since: nothing to search.
      return undefined;
    }
  });
  return stats
    .filter((candidate) => candidate !== undefined)
    .sort(
      (a, b) => b.mtimeMs - a.mtimeMs || (a.relative < b.relative ? -1 : a.relative > b.relative ? 1 : 0),
    );
}

async function matches(file: string, regex: RegExp): Promise<boolean> {
  let content: Buffer;
  try {
    content = await readFile(file);
  } catch {
    return false;
  }
  if (content.subarray(0, BINARY_SNIFF_BYTES).includes(0)) return false;
  return regex.test(content.toString('utf8'));
}

function includeFilter(include: string | undefined): (relative: string) => boolean {
  if (include === undefined) return () => true;
  const isMatch = picomatch(include, { dot: true });
  const byBaseName = !include.includes('/');
  return (relative) => isMatch(relative) || (byBaseName && isMatch(path.posix.basename(relative)));
}

export async function executeGrepFiles(args: GrepFilesArgs, ctx: ToolContext): Promise<ToolOutcome> {
  const limit = args.limit ?? DEFAULT_LIMIT;
  const requested = args.path ?? '.';
  const label = `grep_files · /${args.pattern}/${args.path === undefined ? '' : ` in ${args.path}`}`;

  let regex: RegExp;
  try {
    // Multiline, so that ^ and $ match at line boundaries as they do in grep and ripgrep.
    regex = new RegExp(args.pattern, 'm');
  } catch (err) {
    return failure(
      label,
      `Invalid regular expression: ${(err as Error).message}. The pattern is a JavaScript RegExp.`,
    );
  }

  let absolute: string;
  try {
    absolute = await resolveInWorkspace(ctx.workspace, requested);
  } catch (err) {
    if (err instanceof WorkspaceEscapeError) {
      return failure(
        label,
        `${err.message}: grep_files only searches inside the workspace (${ctx.workspace}).`,
      );
    }
    throw err;
  }

  let files: string[];
  try {
    files = (await stat(absolute)).isDirectory() ? await filesUnder(absolute, ctx.signal) : [absolute];
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return failure(
        label,
        `Path not found: ${workspaceRelative(ctx.workspace, absolute)}. Use list_dir to check it.`,
      );
    }
    throw err;
  }

  const included = includeFilter(args.include);
  const candidates = (await searchable(files, ctx.workspace, ctx.signal)).filter((c) => included(c.relative));

  // One match beyond the limit tells whether there are more.
  const found: string[] = [];
  for (let start = 0; start < candidates.length && found.length <= limit; start += CONCURRENCY) {
    ctx.signal.throwIfAborted();
    const batch = candidates.slice(start, start + CONCURRENCY);
    const hits = await Promise.all(batch.map((candidate) => matches(candidate.absolute, regex)));
    batch.forEach((candidate, i) => {
      if (hits[i] === true) found.push(candidate.relative);
    });
  }
  ctx.signal.throwIfAborted();

  if (found.length === 0)
    return { output: 'No matches found.', display: `${label} · no matches`, success: true };
  const shown = found.slice(0, limit);
  const lines = [...shown];
  if (found.length > limit) {
    lines.push(
      `[More files match; these are the ${limit} most recently modified. Narrow the search with path or include.]`,
    );
  }
  const count = `${shown.length}${found.length > limit ? '+' : ''} file${shown.length === 1 ? '' : 's'}`;
  return { output: lines.join('\n'), display: `${label} · ${count}`, success: true };
}
