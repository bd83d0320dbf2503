/**
 * apply_patch: applies a patch in the Codex format (src/shared/tools/patch.ts) to the workspace, all or
 * nothing. This module owns the sequence parse → resolve every path → stage every resulting file
 * in memory → journal → write → report:
 *
 * - every path is resolved once, links replaced by their targets, and refused when it leaves the
 *   workspace or names anything under a git directory (src/activities/tools/workspace-fs.ts);
 * - only when every hunk is found is anything written, one file at a time, atomically, through
 *   directory descriptors that follow no link, so a link swapped meanwhile fails the write;
 * - before writing, the attempt journals what it will write (patch-journal.ts), so a retry of
 *   the same call finishes a write that was cut off, and says "already applied" only of a file
 *   whose new content is verifiably there. A first attempt never says it: a patch whose lines
 *   are not found fails, even when the file looks as if it had been applied already.
 */
import type { Hunk, Patch } from '../../shared/tools/patch.js';
import { PatchParseError, parsePatch, patchPaths } from '../../shared/tools/patch.js';
import type { ToolOutcome } from '../../shared/tools/specs.js';
import type { ToolContext } from './context.js';
import type { JournalRecord, PatchJournal } from './patch-journal.js';
import { digest } from './patch-journal.js';
import { describeMiss, updateText } from './patch-text.js';
import type { FileState } from './workspace-fs.js';
import { WorkspaceFs, WorkspacePathError } from './workspace-fs.js';
import { toolFailure } from '../../shared/tools/specs.js';

type Done = JournalRecord['done'][number];
type Staged = { kind: 'absent' } | { kind: 'file'; text: string; mode: number | undefined };

type Entry =
  | { kind: 'absent' }
  /** `text` is undefined when the file is binary or not UTF-8. */
  | { kind: 'file'; text: string | undefined; mode: number | undefined }
  | { kind: 'unusable'; reason: string };

function decodeText(bytes: Buffer): string | undefined {
  if (bytes.includes(0)) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

function entryOf(state: FileState): Entry {
  if (state.kind === 'absent') return state;
  if (state.kind === 'other') return { kind: 'unusable', reason: state.reason };
  return { kind: 'file', text: decodeText(state.bytes), mode: state.mode };
}

function errorCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** Computes every resulting file before anything is written; collects every problem found. */
class Staging {
  readonly staged = new Map<string, Staged>();
  /** Digest of each touched file as it was before the patch (null: no file). */
  readonly before = new Map<string, string | null>();
  readonly done: Done[] = [];
  readonly problems: string[] = [];

  constructor(
    private readonly fs: WorkspaceFs,
    private readonly resolved: ReadonlyMap<string, string>,
  ) {}

  private async read(canonical: string): Promise<Entry> {
    const staged = this.staged.get(canonical);
    if (staged !== undefined) return staged;
    const state = await this.fs.read(canonical);
    if (!this.before.has(canonical)) {
      this.before.set(
        canonical,
        state.kind === 'file' ? digest(state.bytes) : state.kind === 'absent' ? null : 'other',
      );
    }
    return entryOf(state);
  }

  private canonical(requested: string): string {
    return this.resolved.get(requested)!;
  }

  /** False (with a problem noted) when `canonical` cannot become a file. */
  private async creatable(canonical: string, entry: Entry): Promise<boolean> {
    if (entry.kind === 'unusable') {
      this.problems.push(`${canonical}: it ${entry.reason}.`);
      return false;
    }
    const blocker = entry.kind === 'absent' ? await this.fs.blockingFile(canonical) : undefined;
    if (blocker !== undefined) {
      this.problems.push(`${canonical}: cannot create it because ${blocker} is a file.`);
      return false;
    }
    return true;
  }

  async add(requested: string, contents: string): Promise<void> {
    const canonical = this.canonical(requested);
    const entry = await this.read(canonical);
    if (!(await this.creatable(canonical, entry))) return;
    this.staged.set(canonical, {
      kind: 'file',
      text: contents,
      mode: entry.kind === 'file' ? entry.mode : undefined,
    });
    this.done.push({ letter: 'A', path: canonical });
  }

  async delete(requested: string): Promise<void> {
    const canonical = this.canonical(requested);
    const entry = await this.read(canonical);
    if (entry.kind === 'unusable') {
      this.problems.push(`${canonical}: cannot delete it: it ${entry.reason}.`);
    } else if (entry.kind === 'absent') {
      this.problems.push(`${canonical}: cannot delete it: the file does not exist.`);
    } else {
      this.staged.set(canonical, { kind: 'absent' });
      this.done.push({ letter: 'D', path: canonical });
    }
  }

  async update(requested: string, moveTo: string | undefined, hunks: readonly Hunk[]): Promise<void> {
    const source = this.canonical(requested);
    const target = moveTo === undefined ? source : this.canonical(moveTo);
    const moving = target !== source;
    const entry = await this.read(source);
    if (entry.kind === 'unusable') {
      this.problems.push(`${source}: cannot update it: it ${entry.reason}.`);
      return;
    }
    if (entry.kind === 'absent') {
      this.problems.push(
        `${source}: cannot update it: the file does not exist. Use "*** Add File:" to create a file.`,
      );
      return;
    }
    if (entry.text === undefined) {
      this.problems.push(`${source}: cannot update it: it is a binary file or not UTF-8 text.`);
      return;
    }
    if (moving && !(await this.creatable(target, await this.read(target)))) return;
    const result = updateText(entry.text, hunks);
    if (result.kind === 'miss') {
      const hint = result.resultPresent
        ? ' The file already contains the lines this patch would leave: if an earlier patch made this change, nothing needs doing.'
        : '';
      this.problems.push(`${describeMiss(source, hunks, result.miss)}${hint}`);
      return;
    }
    this.staged.set(target, { kind: 'file', text: result.text, mode: entry.mode });
    if (moving) {
      this.staged.set(source, { kind: 'absent' });
      this.done.push({ letter: 'M', path: target, movedFrom: source });
    } else {
      this.done.push({ letter: 'M', path: target });
    }
  }

  record(): JournalRecord {
    const files = [...this.staged].map(([path, state]) => ({
      path,
      before: this.before.get(path) ?? null,
      after: state.kind === 'file' ? state.text : null,
      ...(state.kind === 'file' && state.mode !== undefined ? { mode: state.mode } : {}),
    }));
    return { version: 1, files, done: this.done };
  }
}

// ---------------------------------------------------------------------------------------------
// Writing, and finishing what an earlier attempt started.

type JournalFile = JournalRecord['files'][number];

/** Writes every file, then removes (so that a move's target exists before its source goes). */
async function commit(
  files: readonly JournalFile[],
  fs: WorkspaceFs,
  journal: PatchJournal | undefined,
): Promise<ToolOutcome | undefined> {
  const written: string[] = [];
  const ordered = [...files].sort((a, b) => Number(a.after === null) - Number(b.after === null));
  for (const file of ordered) {
    try {
      if (file.after === null) await fs.remove(file.path);
      else
        await fs.write(
          file.path,
          file.after,
          file.mode,
          journal?.temporaryFor(file.path) ?? `.${file.path.split('/').pop()}.ratchet.tmp`,
        );
    } catch (err) {
      const code = errorCode(err);
      const before =
        written.length > 0
          ? ` These files were already written: ${written.join(', ')}.`
          : ' Nothing was written.';
      const verb = file.after === null ? 'delete' : 'write';
      if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
        return toolFailure(
          'apply_patch',
          `apply_patch could not ${verb} ${file.path} (${code}: permission denied).${before} ` +
            'Once the permissions are fixed, send the patch again for the files not yet written.',
          'permission denied',
        );
      }
      if (code === 'ELOOP' || code === 'ENOTDIR') {
        return toolFailure(
          'apply_patch',
          `apply_patch did not ${verb} ${file.path}: a directory on its way was replaced (by a link or a file) while the patch was applied.${before}`,
          'path changed',
        );
      }
      throw err;
    }
    written.push(file.path);
  }
  return undefined;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/** `already`: paths an earlier attempt of this call had written. */
function report(done: readonly Done[], already: ReadonlySet<string> = new Set()): ToolOutcome {
  const isAlready = (d: Done): boolean =>
    already.has(d.path) && (d.movedFrom === undefined || already.has(d.movedFrom));
  const lines = done.map((d) => {
    const notes: string[] = [];
    if (d.movedFrom !== undefined) notes.push(`moved from ${d.movedFrom}`);
    if (isAlready(d)) notes.push('already applied by an earlier attempt of this call');
    return `${d.letter} ${d.path}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`;
  });
  const count = (letter: Done['letter'], moved: boolean): number =>
    done.filter((d) => d.letter === letter && (d.movedFrom !== undefined) === moved).length;
  const counts = [
    [count('A', false), 'added'],
    [count('M', false), 'updated'],
    [count('M', true), 'moved'],
    [count('D', false), 'deleted'],
  ] as const;
  const summary = counts.filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}`);
  const output = ['Success. Updated the following files:', ...lines];
  const alreadyCount = done.filter(isAlready).length;
  if (alreadyCount > 0) {
    output.push(
      `The worker running this call stopped after writing ${plural(alreadyCount, 'file')}; this retry found ${alreadyCount === 1 ? 'it' : 'them'} as the patch leaves ${alreadyCount === 1 ? 'it' : 'them'} and wrote the rest.`,
    );
    summary.push(`${alreadyCount} already applied`);
  }
  return {
    output: output.join('\n'),
    display: `apply_patch · ${plural(done.length, 'file')} (${summary.join(', ')})`,
    success: true,
  };
}

/** A retry: finish the journaled write, or say what got in the way. */
async function finish(record: JournalRecord, fs: WorkspaceFs, journal: PatchJournal): Promise<ToolOutcome> {
  const inPlace = new Set<string>();
  const pending: JournalFile[] = [];
  const changed: string[] = [];
  for (const file of record.files) {
    const state = await fs.read(file.path);
    const now = state.kind === 'file' ? digest(state.bytes) : state.kind === 'absent' ? null : 'other';
    await fs.removeLeftover(file.path, journal.temporaryFor(file.path));
    if (now === digest(file.after)) inPlace.add(file.path);
    else if (now === file.before) pending.push(file);
    else changed.push(file.path);
  }
  if (changed.length > 0) {
    const done = [...inPlace].join(', ') || 'none';
    return toolFailure(
      'apply_patch',
      `An earlier attempt of this call was cut off while writing, and since then ${changed.join(', ')} ` +
        `changed in a way this patch did not make, so this retry wrote nothing. Files that already hold the patch's result: ${done}. ` +
        'Read the files and send a new patch for what is still missing.',
      'changed meanwhile',
    );
  }
  const problem = await commit(pending, fs, journal);
  return problem ?? report(record.done, inPlace);
}

// ---------------------------------------------------------------------------------------------
// The tool.

async function resolveAll(
  paths: readonly string[],
  fs: WorkspaceFs,
  workdir: string | undefined,
): Promise<Map<string, string> | ToolOutcome> {
  const resolved = new Map<string, string>();
  const outside: string[] = [];
  const git: string[] = [];
  for (const requested of paths) {
    const relativeTo =
      workdir === undefined || requested.startsWith('/') ? requested : `${workdir}/${requested}`;
    try {
      resolved.set(requested, await fs.resolve(relativeTo));
    } catch (err) {
      if (!(err instanceof WorkspacePathError)) throw err;
      (err.reason === 'git' ? git : outside).push(requested);
    }
  }
  const listed = (list: string[]): string => list.map((p) => `- ${JSON.stringify(p)}`).join('\n');
  if (outside.length > 0) {
    return toolFailure(
      'apply_patch',
      `apply_patch refused the patch, so nothing was changed: these paths are outside the workspace:\n${listed(outside)}\n` +
        `Use paths relative to the workspace root (${fs.root}).`,
      'path outside the workspace',
    );
  }
  if (git.length > 0) {
    return toolFailure(
      'apply_patch',
      `apply_patch refused the patch, so nothing was changed: these paths are in a git directory, which apply_patch never edits:\n${listed(git)}`,
      'path in a git directory',
    );
  }
  return resolved;
}

export interface ApplyPatchOptions {
  /** Where this call records what it writes, so that a retry can finish the job. */
  journal?: PatchJournal;
  /** Workspace-relative directory the patch's relative paths start from (a patch sent through the shell). */
  workdir?: string;
}

/** Applies a patch in the Codex apply_patch format to the workspace, all or nothing. */
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
    return toolFailure(
      'apply_patch',
      `The patch is not valid, so nothing was changed: ${err.message}.\n` +
        'A patch starts with "*** Begin Patch", ends with "*** End Patch", and contains "*** Add File: path", ' +
        '"*** Delete File: path" or "*** Update File: path" sections.',
      'invalid patch',
    );
  }
  const fs = new WorkspaceFs(ctx.workspace);
  const resolved = await resolveAll(patchPaths(patch), fs, options.workdir);
  if (!(resolved instanceof Map)) return resolved;

  const earlier = await options.journal?.load();
  if (earlier !== undefined && options.journal !== undefined) {
    ctx.signal.throwIfAborted();
    return finish(earlier, fs, options.journal);
  }

  const staging = new Staging(fs, resolved);
  for (const operation of patch.operations) {
    if (operation.type === 'add') await staging.add(operation.path, operation.contents);
    else if (operation.type === 'delete') await staging.delete(operation.path);
    else await staging.update(operation.path, operation.moveTo, operation.hunks);
  }
  if (staging.problems.length > 0) {
    const listed = staging.problems.map((problem) => `- ${problem}`).join('\n');
    return toolFailure(
      'apply_patch',
      `apply_patch failed, so nothing was changed:\n${listed}\n` +
        'Read the current contents of the files (read_file) and send a corrected patch.',
      staging.problems.length === 1 ? 'failed' : `${staging.problems.length} problems`,
    );
  }

  ctx.signal.throwIfAborted();
  const record = staging.record();
  await options.journal?.save(record);
  return (await commit(record.files, fs, options.journal)) ?? report(record.done);
}
