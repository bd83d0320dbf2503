/**
 * The apply_patch format that models trained for Codex emit, parsed into operations. Pure (the
 * workflow reads the paths a patch touches to decide approval), so no Node built-ins here; the
 * applier lives in src/activities/tools/apply-patch.ts.
 *
 *   *** Begin Patch
 *   *** Add File: path            every body line starts with "+"
 *   *** Delete File: path
 *   *** Update File: path
 *   *** Move to: new/path         optional
 *   @@ text of a line above       optional for the first hunk; "@@" alone carries no header
 *    context / -removed / +added
 *   *** End of File               optional: the hunk ends at the end of the file
 *   *** End Patch
 *
 * Lenient where Codex is (CRLF, blank lines and whitespace around the markers, a heredoc
 * wrapper), strict everywhere else: an unknown marker or a malformed line is a PatchParseError
 * that names its line.
 */

export interface HunkLine {
  kind: 'context' | 'remove' | 'add';
  text: string;
}

export interface Hunk {
  /** The text after "@@ ": a line above the change that locates the hunk. */
  header?: string;
  lines: HunkLine[];
  /** The hunk's last old line is the file's last line. */
  endOfFile: boolean;
}

export type PatchOperation =
  | { type: 'add'; path: string; contents: string }
  | { type: 'delete'; path: string }
  | { type: 'update'; path: string; moveTo?: string; hunks: Hunk[] };

export interface Patch {
  operations: PatchOperation[];
}

export class PatchParseError extends Error {
  /** 1-based line of the patch text where parsing stopped. */
  readonly line: number;

  constructor(line: number, problem: string) {
    super(`line ${line}: ${problem}`);
    this.name = 'PatchParseError';
    this.line = line;
  }
}

const BEGIN_PATCH = '*** Begin Patch';
const END_PATCH = '*** End Patch';
const ADD_FILE = '*** Add File:';
const DELETE_FILE = '*** Delete File:';
const UPDATE_FILE = '*** Update File:';
const MOVE_TO = '*** Move to:';
const END_OF_FILE = '*** End of File';
const OPERATION_MARKERS = `"${ADD_FILE}", "${UPDATE_FILE}", "${DELETE_FILE}"`;

const HUNK_LINE_KINDS = new Map<string, HunkLine['kind']>([
  [' ', 'context'],
  ['-', 'remove'],
  ['+', 'add'],
]);

/** `<<EOF`, `<<'EOF'`, `<<"EOF"`, optionally after the command name: the opening of a heredoc. */
const HEREDOC_OPENING = /^(?:apply_patch\s+)?<<-?\s*(['"]?)([A-Za-z_][A-Za-z0-9_]*)\1$/;
/** A unified-diff range ("-12,7 +12,8 @@") that some models put after "@@"; it locates nothing. */
const UNIFIED_RANGE = /^-\d+(?:,\d+)? \+\d+(?:,\d+)? @@ ?/;

function quote(line: string): string {
  const shown = line.length > 80 ? `${line.slice(0, 79)}…` : line;
  return JSON.stringify(shown);
}

function isBlank(line: string): boolean {
  return line.trim() === '';
}

/** Reads the lines between "*** Begin Patch" and "*** End Patch"; `lines[i]` is line i + 1. */
class Parser {
  private index: number;
  private readonly operations: PatchOperation[] = [];

  constructor(
    private readonly lines: readonly string[],
    start: number,
    private readonly end: number,
  ) {
    this.index = start;
  }

  parse(): PatchOperation[] {
    while (this.index < this.end) {
      const line = this.current();
      if (isBlank(line)) {
        this.index += 1;
        continue;
      }
      const marker = line.trim();
      if (marker.startsWith(ADD_FILE)) this.parseAdd(this.pathAfter(ADD_FILE));
      else if (marker.startsWith(DELETE_FILE)) this.parseDelete(this.pathAfter(DELETE_FILE));
      else if (marker.startsWith(UPDATE_FILE)) this.parseUpdate(this.pathAfter(UPDATE_FILE));
      else if (marker === END_PATCH) {
        throw this.error(`"${END_PATCH}" must be the last line, but more of the patch follows it`);
      } else {
        throw this.error(`expected ${OPERATION_MARKERS} or "${END_PATCH}", got ${quote(line)}`);
      }
    }
    if (this.operations.length === 0) {
      throw this.error(`expected ${OPERATION_MARKERS} before "${END_PATCH}": the patch changes nothing`);
    }
    return this.operations;
  }

  private current(): string {
    return this.lines[this.index] ?? '';
  }

  private error(problem: string, index = this.index): PatchParseError {
    return new PatchParseError(index + 1, problem);
  }

  /** The path after a marker on the current line, which it consumes. */
  private pathAfter(marker: string): string {
    const path = this.current().trim().slice(marker.length).trim();
    if (path === '') throw this.error(`expected a path after "${marker}"`);
    this.index += 1;
    return path;
  }

  private parseAdd(path: string): void {
    const body: string[] = [];
    // Blank lines count as empty lines of the file only when more "+" lines follow them;
    // before the next marker they separate operations.
    let blanks = 0;
    while (this.index < this.end) {
      const line = this.current();
      if (line.startsWith('+')) {
        for (; blanks > 0; blanks -= 1) body.push('');
        body.push(line.slice(1));
      } else if (isBlank(line)) {
        blanks += 1;
      } else if (line.trim().startsWith('***')) {
        break;
      } else {
        throw this.error(
          `expected a line starting with "+" in the body of "${ADD_FILE} ${path}", got ${quote(line)}`,
        );
      }
      this.index += 1;
    }
    this.operations.push({ type: 'add', path, contents: body.map((line) => `${line}\n`).join('') });
  }

  private parseDelete(path: string): void {
    this.operations.push({ type: 'delete', path });
  }

  private parseUpdate(path: string): void {
    const updateIndex = this.index - 1;
    let moveTo: string | undefined;
    if (this.current().trim().startsWith(MOVE_TO)) moveTo = this.pathAfter(MOVE_TO);

    const hunks: Hunk[] = [];
    let hunk: Hunk | undefined;
    let hunkIndex = this.index;
    let blanks = 0;

    const finish = (): void => {
      if (hunk === undefined) return;
      if (hunk.lines.length === 0) {
        throw this.error(`expected lines starting with " ", "-" or "+" after "@@"`, hunkIndex);
      }
      hunks.push(hunk);
      hunk = undefined;
    };

    while (this.index < this.end) {
      const line = this.current();
      if (line.startsWith('***')) {
        if (line.trim() !== END_OF_FILE) break;
        if (hunk === undefined || hunk.lines.length === 0) {
          throw this.error(`"${END_OF_FILE}" must follow the lines of a hunk`);
        }
        for (; blanks > 0; blanks -= 1) hunk.lines.push({ kind: 'context', text: '' });
        hunk.endOfFile = true;
        finish();
      } else if (line.startsWith('@@')) {
        blanks = 0;
        finish();
        hunk = { ...this.hunkHeader(line), lines: [], endOfFile: false };
        hunkIndex = this.index;
      } else if (isBlank(line) && !line.startsWith(' ')) {
        // An empty context line, unless nothing of this hunk follows it (then it separates).
        blanks += 1;
      } else {
        const kind = HUNK_LINE_KINDS.get(line.charAt(0));
        if (kind === undefined) {
          throw this.error(
            `expected a hunk line starting with " ", "-" or "+", "@@", or a "***" marker, got ${quote(line)}`,
          );
        }
        if (hunk === undefined) {
          // Only the first hunk may start without "@@" (later ones follow "@@" or "*** End of File").
          if (hunks.length > 0)
            throw this.error(`expected "@@" before ${quote(line)}: a new hunk starts with "@@"`);
          hunk = { lines: [], endOfFile: false };
          hunkIndex = this.index;
        }
        for (; blanks > 0; blanks -= 1) hunk.lines.push({ kind: 'context', text: '' });
        hunk.lines.push({ kind, text: line.slice(1) });
      }
      this.index += 1;
    }
    finish();
    if (hunks.length === 0) {
      throw this.error(
        `expected hunk lines after "${UPDATE_FILE} ${path}": an update needs at least one hunk`,
        updateIndex,
      );
    }
    this.operations.push(
      moveTo === undefined ? { type: 'update', path, hunks } : { type: 'update', path, moveTo, hunks },
    );
  }

  private hunkHeader(line: string): { header?: string } {
    if (line.trimEnd() === '@@') return {};
    if (!line.startsWith('@@ ')) {
      throw this.error(`expected "@@" alone or "@@ " followed by a line of the file, got ${quote(line)}`);
    }
    const header = line.slice(3).replace(UNIFIED_RANGE, '');
    return header.trim() === '' ? {} : { header };
  }
}

/** Parses a patch; throws PatchParseError naming the line and what was expected there. */
export function parsePatch(text: string): Patch {
  const lines = text.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  let first = lines.findIndex((line) => !isBlank(line));
  let last = lines.findLastIndex((line) => !isBlank(line));
  if (first === -1) throw new PatchParseError(1, `expected "${BEGIN_PATCH}", got an empty patch`);

  const heredoc = HEREDOC_OPENING.exec(lines[first]!.trim());
  if (heredoc) {
    const delimiter = heredoc[2]!;
    if (last === first || lines[last]!.trim() !== delimiter) {
      throw new PatchParseError(
        last + 1,
        `expected ${quote(delimiter)} to close the heredoc opened on line ${first + 1}`,
      );
    }
    first += 1;
    last -= 1;
    while (first <= last && isBlank(lines[first]!)) first += 1;
    while (last >= first && isBlank(lines[last]!)) last -= 1;
    if (first > last) throw new PatchParseError(first + 1, `expected "${BEGIN_PATCH}", got an empty patch`);
  }

  if (lines[first]!.trim() !== BEGIN_PATCH) {
    throw new PatchParseError(first + 1, `expected "${BEGIN_PATCH}", got ${quote(lines[first]!)}`);
  }
  if (last === first) {
    throw new PatchParseError(
      first + 2,
      `expected "${END_PATCH}" at the end of the patch, got the end of the input`,
    );
  }
  if (lines[last]!.trim() !== END_PATCH) {
    throw new PatchParseError(
      last + 1,
      `expected "${END_PATCH}" as the last line, got ${quote(lines[last]!)}`,
    );
  }
  return { operations: new Parser(lines, first + 1, last).parse() };
}

/** Every path the patch touches, move targets included, in order of appearance, each once. */
export function patchPaths(patch: Patch): string[] {
  const paths = new Set<string>();
  for (const operation of patch.operations) {
    paths.add(operation.path);
    if (operation.type === 'update' && operation.moveTo !== undefined) paths.add(operation.moveTo);
  }
  return [...paths];
}
