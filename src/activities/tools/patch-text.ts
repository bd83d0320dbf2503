/**
 * The text side of apply_patch: where each hunk of an update goes in a file, and the file it
 * leaves. Pure string work, no I/O.
 *
 * Hunks are placed as Codex places them: each below the one before it; a hunk's lines are found
 * exactly if they can be, else ignoring trailing whitespace, else ignoring whitespace at both
 * ends, else also reading typographic punctuation (dashes, curly quotes, odd spaces) as ASCII.
 * A hunk of pure additions goes right below its "@@" line, or else at the end of the file, and
 * moves no cursor, so a later hunk may still edit lines above it. The file that results always
 * ends with a line break; untouched lines keep their own line endings.
 */
import type { Hunk } from '../../shared/tools/patch.js';

/** Old lines of a hunk shown when it cannot be found. */
const SHOWN_HUNK_LINES = 6;

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
  // A last line without a break gets the file's usual break: the result always ends with one.
  if (!finalNewline) lines[lines.length - 1]!.cr = crlf;
  return { lines, finalNewline, crlf };
}

function joinText(lines: readonly Line[]): string {
  return lines.map(({ text, cr }) => `${text}${cr ? '\r\n' : '\n'}`).join('');
}

const PUNCTUATION: ReadonlyArray<[RegExp, string]> = [
  [/[\u2010-\u2015\u2212]/g, '-'],
  [/[\u2018-\u201b]/g, "'"],
  [/[\u201c-\u201f]/g, '"'],
  [/[\u00a0\u2002-\u200a\u202f\u205f\u3000]/g, ' '],
];

function plainPunctuation(text: string): string {
  let plain = text.trim();
  for (const [pattern, ascii] of PUNCTUATION) plain = plain.replace(pattern, ascii);
  return plain;
}

/** Strictest first: exact, trailing whitespace ignored, both ends ignored, punctuation as ASCII. */
const comparisons: ReadonlyArray<(a: string, b: string) => boolean> = [
  (a, b) => a === b,
  (a, b) => a.trimEnd() === b.trimEnd(),
  (a, b) => a.trim() === b.trim(),
  (a, b) => plainPunctuation(a) === plainPunctuation(b),
];

type Side = 'old' | 'new';

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
  pinned: number | undefined,
  passes: number,
): number | undefined {
  const first = pinned ?? from;
  const last = Math.min(pinned ?? Infinity, lines.length - sequence.length);
  if (first < from) return undefined;
  for (const same of comparisons.slice(0, passes)) {
    for (let at = first; at <= last; at += 1) {
      if (sequence.every((text, k) => same(lines[at + k]!, text))) return at;
    }
  }
  return undefined;
}

function seekHeader(
  lines: readonly string[],
  header: string,
  from: number,
  passes: number,
): number | undefined {
  for (const same of comparisons.slice(0, passes)) {
    const found = lines.findIndex((line, index) => index >= from && same(line, header));
    if (found !== -1) return found;
  }
  return undefined;
}

interface Placement {
  hunk: Hunk;
  /** Index of the hunk's first line (of the side placed) in the file. */
  at: number;
}

export interface Miss {
  index: number;
  reason: 'header' | 'lines';
}

/** Places each hunk's lines of one side, each hunk below the one before it; sorted by position. */
function placeHunks(
  lines: readonly string[],
  hunks: readonly Hunk[],
  side: Side,
  passes = comparisons.length,
): Placement[] | Miss {
  const placements: Placement[] = [];
  let cursor = 0;
  for (const [index, hunk] of hunks.entries()) {
    let from = cursor;
    if (hunk.header !== undefined) {
      const header = seekHeader(lines, hunk.header, cursor, passes);
      if (header === undefined) return { index, reason: 'header' };
      from = header + 1;
    }
    const sequence = sideLines(hunk, side);
    if (isPureAddition(hunk) && side === 'old') {
      // Nothing to find: the lines go right below the header, or else at the end of the file.
      const at = hunk.header !== undefined && !hunk.endOfFile ? from : lines.length;
      placements.push({ hunk, at });
      cursor = from;
      continue;
    }
    const pinned = hunk.endOfFile ? lines.length - sequence.length : undefined;
    let at = seek(lines, sequence, from, pinned, passes);
    // A model sometimes repeats the header as the hunk's first context line.
    if (at === undefined && hunk.header !== undefined) at = seek(lines, sequence, from - 1, pinned, passes);
    if (at === undefined) return { index, reason: 'lines' };
    placements.push({ hunk, at });
    cursor = at + sequence.length;
  }
  // Stable: hunks at the same place keep the patch's order.
  return placements
    .map((p, order) => ({ p, order }))
    .sort((a, b) => a.p.at - b.p.at || a.order - b.order)
    .map(({ p }) => p);
}

function isMiss<T>(placed: T[] | Miss): placed is Miss {
  return !Array.isArray(placed);
}

/** Replaces each placed hunk's old lines; context lines keep the file's own text and endings. */
function applyPlacements(file: TextFile, placements: readonly Placement[]): Line[] | Miss {
  const lines: Line[] = [];
  let cursor = 0;
  for (const [index, { hunk, at }] of placements.entries()) {
    if (at < cursor) return { index, reason: 'lines' };
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
  return lines;
}

export type UpdateResult =
  { kind: 'applied'; text: string } | { kind: 'miss'; miss: Miss; resultPresent: boolean };

/** The file `text` becomes with `hunks` applied, or the first hunk that could not be placed. */
export function updateText(text: string, hunks: readonly Hunk[]): UpdateResult {
  const file = splitText(text);
  const plain = file.lines.map((line) => line.text);
  const placed = placeHunks(plain, hunks, 'old');
  const applied = isMiss(placed) ? placed : applyPlacements(file, placed);
  if (!isMiss(applied)) return { kind: 'applied', text: joinText(applied) };
  return { kind: 'miss', miss: applied, resultPresent: holdsResult(text, hunks) };
}

/** The file already holds every hunk's new lines, exactly: said to the model, never assumed. */
export function holdsResult(text: string, hunks: readonly Hunk[]): boolean {
  const lines = splitText(text).lines.map((line) => line.text);
  return !isMiss(placeHunks(lines, hunks, 'new', 1));
}

export function describeMiss(relative: string, hunks: readonly Hunk[], miss: Miss): string {
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
