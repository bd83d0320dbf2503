/**
 * list_dir: a directory as an indented tree, two spaces per level, sorted by name; "/" marks
 * directories and "@" symbolic links (never followed). Entries are counted in tree order, and
 * offset and limit page through them.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ToolArgs, ToolOutcome } from '../../shared/tools/specs.js';
import type { ToolContext } from './context.js';
import { resolveInWorkspace, WorkspaceEscapeError, workspaceRelative } from './workspace-paths.js';
import { formatNumber } from '../../shared/util/text.js';
import { toolFailure } from '../../shared/tools/specs.js';

const DEFAULT_DEPTH = 2;
const DEFAULT_LIMIT = 50;
/** Directories listed but never descended into: large, generated, and rarely what the model wants. */
const NOT_EXPANDED = new Set(['.git', 'node_modules']);
/** Entries counted beyond the requested page before the walk gives up counting. */
const MAX_COUNTED_BEYOND_PAGE = 10_000;

interface Entry {
  depth: number;
  label: string;
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Walks depth-first, in name order, until `cap` entries are collected; true when it stopped early. */
async function walk(
  directory: string,
  depth: number,
  maxDepth: number,
  entries: Entry[],
  cap: number,
  signal: AbortSignal,
): Promise<boolean> {
  signal.throwIfAborted();
  const children = (await readdir(directory, { withFileTypes: true })).sort(byName);
  for (const child of children) {
    if (entries.length >= cap) return true;
    if (child.isSymbolicLink()) {
      entries.push({ depth, label: `${child.name}@` });
    } else if (!child.isDirectory()) {
      entries.push({ depth, label: child.name });
    } else if (depth >= maxDepth) {
      entries.push({ depth, label: `${child.name}/` });
    } else if (NOT_EXPANDED.has(child.name)) {
      entries.push({ depth, label: `${child.name}/ (not expanded)` });
    } else {
      const entry = { depth, label: `${child.name}/` };
      entries.push(entry);
      try {
        if (await walk(path.join(directory, child.name), depth + 1, maxDepth, entries, cap, signal))
          return true;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EACCES' && code !== 'EPERM') throw err;
        entry.label += ' (unreadable: permission denied)';
      }
    }
  }
  return false;
}

export async function executeListDir(args: ToolArgs<'list_dir'>, ctx: ToolContext): Promise<ToolOutcome> {
  const depth = args.depth ?? DEFAULT_DEPTH;
  const offset = args.offset ?? 1;
  const limit = args.limit ?? DEFAULT_LIMIT;
  let label = `list_dir · ${args.dir_path}`;

  let absolute: string;
  try {
    absolute = await resolveInWorkspace(ctx.workspace, args.dir_path);
  } catch (err) {
    if (err instanceof WorkspaceEscapeError) {
      return toolFailure(
        label,
        `${err.message}: list_dir only lists directories inside the workspace (${ctx.workspace}).`,
      );
    }
    throw err;
  }
  const relative = workspaceRelative(ctx.workspace, absolute);
  label = `list_dir · ${relative}`;

  const entries: Entry[] = [];
  const cap = offset - 1 + limit + MAX_COUNTED_BEYOND_PAGE;
  let incomplete: boolean;
  try {
    const stats = await stat(absolute);
    if (!stats.isDirectory()) {
      return toolFailure(label, `${relative} is a file, not a directory. Use read_file to read it.`);
    }
    incomplete = await walk(absolute, 1, depth, entries, cap, ctx.signal);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return toolFailure(label, `Directory not found: ${relative}. List its parent to see what exists.`);
    }
    if (code === 'EACCES' || code === 'EPERM')
      return toolFailure(label, `Permission denied: cannot list ${relative}.`);
    throw err;
  }

  const header = `Absolute path: ${absolute}`;
  if (entries.length === 0) {
    return { output: `${header}\n[${relative} is empty.]`, display: `${label} · empty`, success: true };
  }
  if (offset > entries.length) {
    return toolFailure(
      label,
      `Offset ${offset} is past the end: ${relative} has ${formatNumber(entries.length)} entries down to depth ${depth}. ` +
        `Use an offset between 1 and ${entries.length}.`,
    );
  }

  const page = entries.slice(offset - 1, offset - 1 + limit);
  const lines = [header, ...page.map((entry) => `${'  '.repeat(entry.depth - 1)}${entry.label}`)];
  const next = offset + page.length;
  const remaining = entries.length - (next - 1);
  if (incomplete) {
    lines.push(
      `[More than ${formatNumber(remaining)} more entries; continue with offset ${next}, or list a subdirectory.]`,
    );
  } else if (remaining > 0) {
    lines.push(`[${formatNumber(remaining)} more entries; continue with offset ${next}.]`);
  }
  const total = `${formatNumber(entries.length)}${incomplete ? '+' : ''}`;
  return {
    output: lines.join('\n'),
    display: `${label} · ${page.length} of ${total} entries`,
    success: true,
  };
}
