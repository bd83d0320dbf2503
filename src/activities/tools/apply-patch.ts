/**
 * apply_patch: applies a patch in the Codex format (src/shared/patch.ts) to the workspace, all or
 * nothing. Every resulting file is computed in memory first; only when every path is inside the
 * workspace and every hunk is found does anything get written, one file at a time, atomically.
 *
 * The activity may be retried after a crash half-way through writing, so an operation whose
 * result is already on disk counts as done: an update whose new lines are there and whose old
 * lines are not, a delete of a file that is gone, a move whose target already holds the result.
 */
import { randomUUID } from 'node:crypto';
import { lstat, mkdir, open, readFile, realpath, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Hunk, Patch } from '../../shared/patch.js';
import { PatchParseError, parsePatch, patchPaths } from '../../shared/patch.js';
import type { ToolOutcome } from '../../shared/tools.js';
import type { ToolContext } from './context.js';
import { resolveInWorkspace, WorkspaceEscapeError, workspaceRelative } from './workspace-paths.js';

/** Old lines of a hunk shown when it cannot be found. */
const SHOWN_HUNK_LINES = 6;

// ---------------------------------------------------------------------------------------------
// Text: lines with their own line endings, so that untouched lines keep theirs.

interface Line {
  text: string;
  /** Ends with "\r\n" rather than "\n" (when it ends at all). */
  cr: boolean;
}

interface TextFile {
  lines: Line[];
  finalNewline: boolean;
  /** Most line breaks are "\r\n": added lines get "\r\n" too. */
  crlf: boolean;
}

function splitText(content: string): TextFile {
  if (content === '') return { lines: [], finalNewline: true, crlf: false };
  const raw = content.split('\n');
  const finalNewline = raw.at(-1) === '';
  if (finalNewline) raw.pop();
  const breaks = finalNewline ? raw.length : raw.length - 1;
  const lines = raw.map((text, index) =>
    index < breaks && text.endsWith('\r') ? { text: text.slice(0, -1), cr: true } : { text, cr: false },
  );
  const crlf = lines.filter((line) => line.cr).length * 2 > breaks;
  // A last line without a break gets the file's usual break if lines are appended below it.
  if (!finalNewline) lines[lines.length - 1]!.cr = crlf;
  return { lines, finalNewline, crlf };
}

function joinText(file: TextFile): string {
  return file.lines
    .map(({ text, cr }, index) =>
      index < file.lines.length - 1 || file.finalNewline ? `${text}${cr ? '\r\n' : '\n'}` : text,
    )
    .join('');
}

// ---------------------------------------------------------------------------------------------
// Locating hunks.

type Side = 'old' | 'new';

/** Exact first, then ignoring trailing whitespace, then ignoring whitespace at both ends. */
const comparisons: ReadonlyArray<(a: string, b: string) => boolean> = [
  (a, b) => a === b,
  (a, b) => a.trimEnd() === b.trimEnd(),
  (a, b) => a.trim() === b.trim(),
];

/** The lines a hunk expects before it is applied (old) or leaves behind (new). */
function sideLines(hunk: Hunk, side: Side): string[] {
  const skipped = side === 'old' ? 'add' : 'remove';
  return hunk.lines.filter((line) => line.kind !== skipped).map((line) => line.text);
}

function isPureAddition(hunk: Hunk): boolean {
  return hunk.lines.every((line) => line.kind === 'add');
}

/**
 * Where `sequence` matches `lines` at or after `from`, the strictest comparison winning over an
 * earlier position; with `pinned`, only that position counts.
 */
function seek(
  lines: readonly string[],
  sequence: readonly string[],
  from: number,
  pinned?: number,
): number | undefined {
  const first = pinned ?? from;
  const last = Math.min(pinned ?? Infinity, lines.length - sequence.length);
  if (first < from) return undefined;
  for (const same of comparisons) {
    for (let at = first; at <= last; at += 1) {
      if (sequence.every((text, k) => same(lines[at + k]!, text))) return at;
    }
  }
  return undefined;
}

function seekHeader(lines: readonly string[], header: string, from: number): number | undefined {
  const exact = lines.indexOf(header, from);
  if (exact !== -1) return exact;
  const trimmed = header.trim();
  const loose = lines.findIndex((line, index) => index >= from && line.trim() === trimmed);
  return loose === -1 ? undefined : loose;
}

interface Placement {
  hunk: Hunk;
  /** Index of the hunk's first line (of the side placed) in the file. */
  at: number;
}

interface Miss {
  index: number;
  reason: 'header' | 'lines';
}

/** Places each hunk's lines of one side, each hunk below the one before it. */
function placeHunks(lines: readonly string[], hunks: readonly Hunk[], side: Side): Placement[] | Miss {
  const placements: Placement[] = [];
  let cursor = 0;
  for (const [index, hunk] of hunks.entries()) {
    let from = cursor;
    if (hunk.header !== undefined) {
      const header = seekHeader(lines, hunk.header, cursor);
      if (header === undefined) return { index, reason: 'header' };
      from = header + 1;
    }
    const sequence = sideLines(hunk, side);
    let at: number | undefined;
    if (isPureAddition(hunk)) {
      // Nothing to find: the lines go right below the header, or else at the end of the file.
      const pinned = hunk.header !== undefined && !hunk.endOfFile ? from : lines.length - sequence.length;
      at = seek(lines, sequence, from, pinned);
    } else {
      const pinned = hunk.endOfFile ? lines.length - sequence.length : undefined;
      at = seek(lines, sequence, from, pinned);
      // A model sometimes repeats the header as the hunk's first context line.
      if (at === undefined && hunk.header !== undefined) at = seek(lines, sequence, from - 1, pinned);
    }
    if (at === undefined) return { index, reason: 'lines' };
    placements.push({ hunk, at });
    cursor = at + sequence.length;
  }
  return placements;
}

function isMiss(placed: Placement[] | Miss): placed is Miss {
  return !Array.isArray(placed);
}

/** Replaces each placed hunk's old lines; context lines keep the file's own text and endings. */
function applyPlacements(file: TextFile, placements: readonly Placement[]): TextFile {
  const lines: Line[] = [];
  let cursor = 0;
  for (const { hunk, at } of placements) {
    lines.push(...file.lines.slice(cursor, at));
    cursor = at;
    for (const line of hunk.lines) {
      if (line.kind === 'add') {
        lines.push({ text: line.text, cr: file.crlf });
      } else {
        if (line.kind === 'context') lines.push(file.lines[cursor]!);
        cursor += 1;
      }
    }
  }
  lines.push(...file.lines.slice(cursor));
  return { ...file, lines };
}

type UpdateResult = { kind: 'applied'; text: string } | { kind: 'present' } | { kind: 'miss'; miss: Miss };

/**
 * `retry`: this is a retry of a call that may have written its result already (the worker died
 * after writing). Then a file that already holds the hunks' new lines counts as done, even where
 * the old lines still match too (an addition after context would otherwise go in twice).
 */
function updateText(text: string, hunks: readonly Hunk[], retry: boolean): UpdateResult {
  const file = splitText(text);
  const lines = file.lines.map((line) => line.text);
  if (retry && !isMiss(placeHunks(lines, hunks, 'new'))) return { kind: 'present' };
  // Pure additions always find a place, so only their new lines show whether they were applied.
  if (hunks.every(isPureAddition) && !isMiss(placeHunks(lines, hunks, 'new'))) return { kind: 'present' };
  const placed = placeHunks(lines, hunks, 'old');
  if (!isMiss(placed)) return { kind: 'applied', text: joinText(applyPlacements(file, placed)) };
  if (!isMiss(placeHunks(lines, hunks, 'new'))) return { kind: 'present' };
  return { kind: 'miss', miss: placed };
}

function holdsResult(text: string, hunks: readonly Hunk[]): boolean {
  const lines = splitText(text).lines.map((line) => line.text);
  return !isMiss(placeHunks(lines, hunks, 'new'));
}

function describeMiss(relative: string, hunks: readonly Hunk[], miss: Miss): string {
  const hunk = hunks[miss.index]!;
  const which = hunks.length > 1 ? `hunk ${miss.index + 1} of ${hunks.length}` : 'the hunk';
  if (miss.reason === 'header') {
    return `${relative}: could not find the line "@@ ${hunk.header ?? ''}" that locates ${which}.`;
  }
  const old = sideLines(hunk, 'old');
  const shown = old.slice(0, SHOWN_HUNK_LINES).map((line) => `    ${line}`);
  if (old.length > SHOWN_HUNK_LINES) shown.push(`    … (${old.length - SHOWN_HUNK_LINES} more lines)`);
  const where = hunk.endOfFile ? ' at the end of the file' : '';
  return `${relative}: could not find the lines of ${which}${where}. Expected:\n${shown.join('\n')}`;
}

// ---------------------------------------------------------------------------------------------
// Files: read once, changed in memory, written at the end.

type Entry =
  | { kind: 'absent' }
  /** `text` is undefined when the file is binary or not UTF-8. */
  | { kind: 'file'; text: string | undefined; mode: number | undefined }
  | { kind: 'unusable'; reason: string };

type Staged = { kind: 'absent' } | { kind: 'file'; text: string; mode: number | undefined };

function errorCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

function decodeText(bytes: Buffer): string | undefined {
  if (bytes.includes(0)) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

async function readEntry(absolute: string): Promise<Entry> {
  try {
    const stats = await stat(absolute);
    if (stats.isDirectory()) return { kind: 'unusable', reason: 'is a directory' };
    if (!stats.isFile()) return { kind: 'unusable', reason: 'is not a regular file' };
    return { kind: 'file', text: decodeText(await readFile(absolute)), mode: stats.mode & 0o7777 };
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'absent' };
    if (code === 'EACCES' || code === 'EPERM')
      return { kind: 'unusable', reason: 'cannot be read (permission denied)' };
    throw err;
  }
}

/** The existing file in the way of creating `absolute`'s parent directories, if any. */
async function blockingFile(workspace: string, absolute: string): Promise<string | undefined> {
  for (
    let dir = path.dirname(absolute);
    dir !== workspace && dir !== path.dirname(dir);
    dir = path.dirname(dir)
  ) {
    try {
      return (await stat(dir)).isDirectory() ? undefined : dir;
    } catch (err) {
      if (errorCode(err) !== 'ENOENT' && errorCode(err) !== 'ENOTDIR') throw err;
    }
  }
  return undefined;
}

/** Follows a symbolic link (already checked to stay inside the workspace) so that it stays a link. */
async function writeTarget(absolute: string): Promise<string> {
  try {
    if ((await lstat(absolute)).isSymbolicLink()) return await realpath(absolute);
  } catch (err) {
    if (errorCode(err) !== 'ENOENT' && errorCode(err) !== 'ENOTDIR') throw err;
  }
  return absolute;
}

async function removeFile(absolute: string): Promise<void> {
  try {
    await unlink(absolute);
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') throw err;
  }
}

/** Writes a temporary file next to the target and renames it over the target. */
async function writeAtomically(absolute: string, text: string, mode: number | undefined): Promise<void> {
  const target = await writeTarget(absolute);
  await mkdir(path.dirname(target), { recursive: true });
  const temporary = path.join(
    path.dirname(target),
    `.${path.basename(target)}.${randomUUID().slice(0, 8)}.tmp`,
  );
  const handle = await open(temporary, 'wx', mode ?? 0o666);
  try {
    try {
      await handle.writeFile(text);
      if (mode !== undefined) await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, target);
  } catch (err) {
    await unlink(temporary).catch(() => undefined);
    throw err;
  }
}

/** What one operation did, for the report. */
interface Done {
  letter: 'A' | 'M' | 'D';
  path: string;
  movedFrom?: string;
  alreadyApplied: boolean;
  note?: string;
}

/** Computes every resulting file before anything is written; collects every problem found. */
class Staging {
  readonly staged = new Map<string, Staged>();
  readonly done: Done[] = [];
  readonly problems: string[] = [];

  constructor(
    private readonly workspace: string,
    private readonly resolved: ReadonlyMap<string, string>,
    private readonly retry: boolean,
  ) {}

  async read(absolute: string): Promise<Entry> {
    return this.staged.get(absolute) ?? (await readEntry(absolute));
  }

  private absolute(requested: string): string {
    return this.resolved.get(requested)!;
  }

  private relative(absolute: string): string {
    return workspaceRelative(this.workspace, absolute);
  }

  /** False (with a problem noted) when `absolute` cannot become a file. */
  private async creatable(absolute: string, entry: Entry): Promise<boolean> {
    if (entry.kind === 'unusable') {
      this.problems.push(`${this.relative(absolute)}: it ${entry.reason}.`);
      return false;
    }
    const blocker = entry.kind === 'absent' ? await blockingFile(this.workspace, absolute) : undefined;
    if (blocker !== undefined) {
      this.problems.push(
        `${this.relative(absolute)}: cannot create it because ${this.relative(blocker)} is a file.`,
      );
      return false;
    }
    return true;
  }

  async add(requested: string, contents: string): Promise<void> {
    const absolute = this.absolute(requested);
    const entry = await this.read(absolute);
    if (!(await this.creatable(absolute, entry))) return;
    const relative = this.relative(absolute);
    if (entry.kind === 'file' && entry.text === contents) {
      this.done.push({
        letter: 'A',
        path: relative,
        alreadyApplied: true,
        note: 'the file already had this content',
      });
      return;
    }
    this.staged.set(absolute, {
      kind: 'file',
      text: contents,
      mode: entry.kind === 'file' ? entry.mode : undefined,
    });
    this.done.push({ letter: 'A', path: relative, alreadyApplied: false });
  }

  async delete(requested: string): Promise<void> {
    const absolute = this.absolute(requested);
    const entry = await this.read(absolute);
    const relative = this.relative(absolute);
    if (entry.kind === 'unusable') {
      this.problems.push(`${relative}: cannot delete it: it ${entry.reason}.`);
    } else if (entry.kind === 'absent') {
      this.done.push({ letter: 'D', path: relative, alreadyApplied: true, note: 'the file did not exist' });
    } else {
      this.staged.set(absolute, { kind: 'absent' });
      this.done.push({ letter: 'D', path: relative, alreadyApplied: false });
    }
  }

  async update(requested: string, moveTo: string | undefined, hunks: readonly Hunk[]): Promise<void> {
    const source = this.absolute(requested);
    const target = moveTo === undefined ? source : this.absolute(moveTo);
    const moving = target !== source;
    const relative = this.relative(source);
    const movedFrom = moving ? relative : undefined;
    const entry = await this.read(source);

    if (entry.kind === 'unusable') {
      this.problems.push(`${relative}: cannot update it: it ${entry.reason}.`);
      return;
    }
    if (entry.kind === 'absent') {
      const moved = moving ? await this.read(target) : undefined;
      if (moved?.kind === 'file' && moved.text !== undefined && holdsResult(moved.text, hunks)) {
        const note = 'the file was already moved and updated';
        this.done.push({ letter: 'M', path: this.relative(target), movedFrom, alreadyApplied: true, note });
      } else {
        this.problems.push(
          `${relative}: cannot update it: the file does not exist. Use "*** Add File:" to create a file.` +
            (moving ? ` (${this.relative(target)} does not hold the updated file either.)` : ''),
        );
      }
      return;
    }
    if (entry.text === undefined) {
      this.problems.push(`${relative}: cannot update it: it is a binary file or not UTF-8 text.`);
      return;
    }
    if (moving && !(await this.creatable(target, await this.read(target)))) return;

    const result = updateText(entry.text, hunks, this.retry);
    if (result.kind === 'miss') {
      this.problems.push(describeMiss(relative, hunks, result.miss));
      return;
    }
    if (result.kind === 'present' && !moving) {
      const note = 'the file already contains these changes';
      this.done.push({ letter: 'M', path: relative, alreadyApplied: true, note });
      return;
    }
    const text = result.kind === 'applied' ? result.text : entry.text;
    this.staged.set(target, { kind: 'file', text, mode: entry.mode });
    if (moving) this.staged.set(source, { kind: 'absent' });
    const note = result.kind === 'present' ? 'the changes were already there; the file was moved' : undefined;
    this.done.push({ letter: 'M', path: this.relative(target), movedFrom, alreadyApplied: false, note });
  }
}

// ---------------------------------------------------------------------------------------------
// The tool.

function failure(display: string, output: string): ToolOutcome {
  return { output, display: `apply_patch · ${display}`, success: false };
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

function report(done: readonly Done[]): ToolOutcome {
  const lines = done.map((d) => {
    const notes = [d.movedFrom === undefined ? undefined : `moved from ${d.movedFrom}`];
    notes.push(d.alreadyApplied ? `already applied: ${d.note}` : d.note);
    const shown = notes.filter((note) => note !== undefined);
    return `${d.letter} ${d.path}${shown.length > 0 ? ` (${shown.join('; ')})` : ''}`;
  });
  const count = (letter: Done['letter'], moved: boolean): number =>
    done.filter((d) => !d.alreadyApplied && d.letter === letter && (d.movedFrom !== undefined) === moved)
      .length;
  const counts = [
    [count('A', false), 'added'],
    [count('M', false), 'updated'],
    [count('M', true), 'moved'],
    [count('D', false), 'deleted'],
  ] as const;
  const already = done.filter((d) => d.alreadyApplied).length;
  const summary = counts.filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}`);
  if (already > 0) summary.push(`${already} already applied`);

  const changed = new Set<string>();
  for (const d of done) {
    if (d.movedFrom !== undefined) changed.add(d.movedFrom);
    changed.add(d.path);
  }
  const output = [`Success. Updated the following files:`, ...lines];
  if (already > 0) {
    output.push(
      `${plural(already, 'operation')} had already been applied (the files already looked as the patch leaves them); nothing was changed for ${already === 1 ? 'it' : 'them'}.`,
    );
  }
  return {
    output: output.join('\n'),
    display: `apply_patch · ${plural(done.length, 'file')} (${summary.join(', ')})`,
    success: true,
    // Already-applied operations count too: a retried call reports what the call changed overall.
    changedFiles: [...changed],
  };
}

async function resolveAll(
  paths: readonly string[],
  workspace: string,
): Promise<Map<string, string> | string[]> {
  const resolved = new Map<string, string>();
  const escapes: string[] = [];
  for (const requested of paths) {
    try {
      resolved.set(requested, await resolveInWorkspace(workspace, requested));
    } catch (err) {
      if (!(err instanceof WorkspaceEscapeError)) throw err;
      escapes.push(requested);
    }
  }
  return escapes.length > 0 ? escapes : resolved;
}

async function stage(patch: Patch, staging: Staging): Promise<void> {
  for (const operation of patch.operations) {
    if (operation.type === 'add') await staging.add(operation.path, operation.contents);
    else if (operation.type === 'delete') await staging.delete(operation.path);
    else await staging.update(operation.path, operation.moveTo, operation.hunks);
  }
}

/** Writes every staged file, then deletes (so that a move's target exists before its source goes). */
async function commit(staged: ReadonlyMap<string, Staged>, workspace: string): Promise<string | undefined> {
  const written: string[] = [];
  const entries = [...staged].sort(([, a], [, b]) => (a.kind === b.kind ? 0 : a.kind === 'file' ? -1 : 1));
  for (const [absolute, state] of entries) {
    try {
      if (state.kind === 'file') await writeAtomically(absolute, state.text, state.mode);
      else await removeFile(absolute);
    } catch (err) {
      const code = errorCode(err);
      if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') throw err;
      const relative = workspaceRelative(workspace, absolute);
      const before =
        written.length > 0
          ? ` These files were already written: ${written.join(', ')}.`
          : ' Nothing was written.';
      return (
        `apply_patch could not ${state.kind === 'file' ? 'write' : 'delete'} ${relative} (${code}: permission denied).${before} ` +
        'Once the permissions are fixed, the same patch can be applied again: changes already made are recognised.'
      );
    }
    written.push(workspaceRelative(workspace, absolute));
  }
  return undefined;
}

/** Applies a patch in the Codex apply_patch format to the workspace, all or nothing. */
export interface ApplyPatchOptions {
  /** This call is a retry (the first attempt may have written before its worker died). */
  retry?: boolean;
}

export async function applyPatch(
  input: string,
  ctx: ToolContext,
  options: ApplyPatchOptions = {},
): Promise<ToolOutcome> {
  let patch: Patch;
  try {
    patch = parsePatch(input);
  } catch (err) {
    if (!(err instanceof PatchParseError)) throw err;
    return failure(
      'invalid patch',
      `The patch is not valid, so nothing was changed: ${err.message}.\n` +
        'A patch starts with "*** Begin Patch", ends with "*** End Patch", and contains "*** Add File: path", ' +
        '"*** Delete File: path" or "*** Update File: path" sections.',
    );
  }

  const resolved = await resolveAll(patchPaths(patch), ctx.workspace);
  if (Array.isArray(resolved)) {
    const listed = resolved.map((p) => `- ${JSON.stringify(p)}`).join('\n');
    return failure(
      'path outside the workspace',
      `apply_patch refused the patch, so nothing was changed: these paths are outside the workspace:\n${listed}\n` +
        `Use paths relative to the workspace root (${ctx.workspace}).`,
    );
  }

  const staging = new Staging(ctx.workspace, resolved, options.retry ?? false);
  await stage(patch, staging);
  if (staging.problems.length > 0) {
    const listed = staging.problems.map((problem) => `- ${problem}`).join('\n');
    return failure(
      staging.problems.length === 1 ? 'failed' : `${staging.problems.length} problems`,
      `apply_patch failed, so nothing was changed:\n${listed}\n` +
        'Read the current contents of the files (read_file) and send a corrected patch.',
    );
  }

  ctx.signal.throwIfAborted();
  const writeProblem = await commit(staging.staged, ctx.workspace);
  if (writeProblem !== undefined) return failure('permission denied', writeProblem);
  return report(staging.done);
}
