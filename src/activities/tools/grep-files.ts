/**
 * grep_files: which files contain a match for a regular expression, most recently modified first.
 * The tree is walked here, honouring the .gitignore files it meets: no git runs on the host
 * against a repository the model can write (a planted core.fsmonitor or a nested repository's
 * config would run code here), and no path is taken from a model-writable index. Every file is
 * opened without following a link and then checked, through the descriptor, to be where the walk
 * found it inside the workspace. The pattern runs on RE2 (re2js), whose matching time is linear in
 * the input: no pattern can stall the worker's event loop, as catastrophic backtracking in
 * JavaScript's RegExp did. Files are read newest first and the search stops as soon as the page is
 * full, so a common pattern in a large tree costs little.
 */
import { constants as fsConstants } from 'node:fs';
import { lstat, open, readdir, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import ignoreModule from 'ignore';
import type { Ignore } from 'ignore';
import picomatch from 'picomatch';
import { RE2JS } from 're2js';
import type { ToolArgs, ToolOutcome } from '../../shared/tools/specs.js';
import type { ToolContext } from './context.js';
import { resolveInWorkspace, WorkspaceEscapeError, workspaceRelative } from './workspace-paths.js';
import { toolFailure } from '../../shared/tools/specs.js';

// `ignore` is CommonJS with an ES-style default in its types; at run time both name the factory.
const ignore = ignoreModule.default;

const DEFAULT_LIMIT = 100;
const MAX_FILE_BYTES = 4 * 1024 * 1024;
const MAX_GITIGNORE_BYTES = 256 * 1024;
const BINARY_SNIFF_BYTES = 8 * 1024;
/** Directories a walk never enters. */
const SKIPPED_DIRECTORIES = new Set(['.git', 'node_modules']);
/** Files stat'ed or read at once. */
const CONCURRENCY = 16;

interface Candidate {
  absolute: string;
  relative: string;
  mtimeMs: number;
}

/** The rules of the .gitignore files met on the way down, each relative to its directory. */
interface Rules {
  base: string;
  rules: Ignore;
}

/** A .gitignore that is a regular file of sensible size, or nothing. */
async function gitignoreAt(directory: string): Promise<Rules | undefined> {
  const file = path.join(directory, '.gitignore');
  const text = await readChecked(file, directory, MAX_GITIGNORE_BYTES);
  return text === undefined ? undefined : { base: directory, rules: ignore().add(text.toString('utf8')) };
}

function isIgnored(stack: readonly Rules[], absolute: string, isDirectory: boolean): boolean {
  return stack.some(({ base, rules }) => {
    const relative = path.relative(base, absolute).split(path.sep).join('/');
    return relative !== '' && rules.ignores(isDirectory ? `${relative}/` : relative);
  });
}

/**
 * Every regular file under `directory` that the .gitignore files in `stack` and below do not
 * ignore, skipping symbolic links, .git and node_modules.
 */
async function walkFiles(
  directory: string,
  stack: readonly Rules[],
  signal: AbortSignal,
  files: string[] = [],
): Promise<string[]> {
  signal.throwIfAborted();
  let entries;
  try {
    entries = await readdir(directory, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'ENOENT' || code === 'ENOTDIR') return files;
    throw err;
  }
  const own = await gitignoreAt(directory);
  const rules = own === undefined ? stack : [...stack, own];
  for (const entry of entries) {
    const absolute = path.join(directory, entry.name);
    if (entry.isDirectory()) {
      if (!SKIPPED_DIRECTORIES.has(entry.name) && !isIgnored(rules, absolute, true))
        await walkFiles(absolute, rules, signal, files);
    } else if (entry.isFile() && !isIgnored(rules, absolute, false)) {
      files.push(absolute);
    }
  }
  return files;
}

/**
 * The .gitignore rules from the workspace root down to (not including) `directory`. A directory
 * those rules ignore (say `dist/`) was still asked for by name: it is walked without them.
 */
async function rulesAbove(workspace: string, directory: string): Promise<Rules[]> {
  const stack: Rules[] = [];
  const parts = path.relative(workspace, directory).split(path.sep).filter(Boolean);
  let current = workspace;
  for (const part of parts) {
    const rules = await gitignoreAt(current);
    if (rules !== undefined) stack.push(rules);
    current = path.join(current, part);
  }
  return isIgnored(stack, directory, true) ? [] : stack;
}

/**
 * Up to `maxBytes` of `file`, or undefined unless it is a regular file that really is at
 * `file`, inside `root`: opened without following a final link, and its descriptor's own path
 * checked, so a directory swapped for a link on the way is caught.
 */
async function readChecked(file: string, root: string, maxBytes: number): Promise<Buffer | undefined> {
  let handle;
  try {
    handle = await open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile() || info.size > maxBytes) return undefined;
    const real = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => undefined);
    const rel = real === undefined ? '..' : path.relative(root, real);
    if (real !== file || rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
    const buffer = Buffer.alloc(info.size);
    const { bytesRead } = await handle.read(buffer, 0, info.size, 0);
    return buffer.subarray(0, bytesRead);
  } catch {
    return undefined;
  } finally {
    await handle.close();
  }
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
      // Gone since the walk: nothing to search.
      return undefined;
    }
  });
  return stats
    .filter((candidate) => candidate !== undefined)
    .sort(
      (a, b) => b.mtimeMs - a.mtimeMs || (a.relative < b.relative ? -1 : a.relative > b.relative ? 1 : 0),
    );
}

async function matches(file: string, workspace: string, regex: RE2JS): Promise<boolean> {
  const content = await readChecked(file, workspace, MAX_FILE_BYTES);
  if (content === undefined || content.subarray(0, BINARY_SNIFF_BYTES).includes(0)) return false;
  return regex.matcher(content.toString('utf8')).find();
}

function includeFilter(include: string | undefined): (relative: string) => boolean {
  if (include === undefined) return () => true;
  const isMatch = picomatch(include, { dot: true });
  const byBaseName = !include.includes('/');
  return (relative) => isMatch(relative) || (byBaseName && isMatch(path.posix.basename(relative)));
}

export async function executeGrepFiles(args: ToolArgs<'grep_files'>, ctx: ToolContext): Promise<ToolOutcome> {
  const limit = args.limit ?? DEFAULT_LIMIT;
  const requested = args.path ?? '.';
  const label = `grep_files · /${args.pattern}/${args.path === undefined ? '' : ` in ${args.path}`}`;

  let regex: RE2JS;
  try {
    // Multiline, so that ^ and $ match at line boundaries as they do in grep and ripgrep.
    regex = RE2JS.compile(args.pattern, RE2JS.MULTILINE);
  } catch (err) {
    return toolFailure(
      label,
      `Invalid regular expression: ${(err as Error).message}. The pattern is RE2 syntax, as in ripgrep: ` +
        'no lookaround and no backreferences.',
    );
  }

  let absolute: string;
  try {
    absolute = await resolveInWorkspace(ctx.workspace, requested);
  } catch (err) {
    if (err instanceof WorkspaceEscapeError) {
      return toolFailure(
        label,
        `${err.message}: grep_files only searches inside the workspace (${ctx.workspace}).`,
      );
    }
    throw err;
  }

  let files: string[];
  try {
    files = (await stat(absolute)).isDirectory()
      ? await walkFiles(absolute, await rulesAbove(ctx.workspace, absolute), ctx.signal)
      : [absolute];
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return toolFailure(
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
    const hits = await Promise.all(
      batch.map((candidate) => matches(candidate.absolute, ctx.workspace, regex)),
    );
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
