/**
 * Cutting long output down to size. The beginning and the end of a command's output are where
 * compilers, test runners and stack traces say what matters, so both are kept and the middle is
 * replaced by one line saying how much was left out:
 *
 *   [… 49,912,345 bytes (812,004 lines) omitted …]
 *
 * Cuts fall on line boundaries when one is near and never split a UTF-8 character.
 */
import { formatNumber } from '../../shared/util/text.js';

const NEWLINE = 0x0a;

/**
 * How far from a cut a line boundary may lie and still be preferred, as a share of the part kept:
 * a head of 8 KiB gives up at most 2 KiB to end on a whole line.
 */
const LINE_BOUNDARY_REACH = 0.25;

/** Share of undecodable bytes above which kept output is shown as a note instead of text. */
const BINARY_INVALID_SHARE = 0.3;

/**
 * Control characters that text output does not contain; tab, newlines, backspace, form feed and
 * ESC (colour codes) are left out because text does contain them.
 */
function isNonTextControl(code: number): boolean {
  if (code === 0x7f) return true;
  if (code > 0x1f) return false;
  return code !== 0x08 && code !== 0x09 && code !== 0x0a && code !== 0x0c && code !== 0x0d && code !== 0x1b;
}

/**
 * Random bytes decode to about 42% replacement characters, Latin-1 prose to a few per cent;
 * output made of control characters is no text either.
 */
function looksBinary(bytes: Buffer): boolean {
  if (bytes.includes(0)) return true;
  const text = bytes.toString('utf8');
  let odd = 0;
  for (const char of text) if (char === '\uFFFD' || isNonTextControl(char.charCodeAt(0))) odd += 1;
  return odd > bytes.length * BINARY_INVALID_SHARE;
}

function omissionMarker(bytes: number, lines: number): string {
  return `[… ${formatNumber(bytes)} bytes (${formatNumber(lines)} lines) omitted …]`;
}

function binaryNote(bytes: number): string {
  return `[binary output: ${formatNumber(bytes)} bytes]`;
}

function countNewlines(bytes: Uint8Array): number {
  let count = 0;
  for (const byte of bytes) if (byte === NEWLINE) count += 1;
  return count;
}

const isContinuationByte = (byte: number): boolean => (byte & 0xc0) === 0x80;

/** Length of `bytes` without a UTF-8 character that the end cuts in two. */
function completeCharactersEnd(bytes: Buffer): number {
  let lead = bytes.length - 1;
  while (lead >= 0 && bytes.length - lead <= 3 && isContinuationByte(bytes[lead] ?? 0)) lead -= 1;
  if (lead < 0) return bytes.length;
  const leadByte = bytes[lead] ?? 0;
  const expected = leadByte >= 0xf0 ? 4 : leadByte >= 0xe0 ? 3 : leadByte >= 0xc0 ? 2 : 1;
  return bytes.length - lead < expected ? lead : bytes.length;
}

/** Index of the first byte of `bytes` that does not continue a character begun before it. */
function completeCharactersStart(bytes: Buffer): number {
  let start = 0;
  while (start < bytes.length && start < 3 && isContinuationByte(bytes[start] ?? 0)) start += 1;
  return start;
}

/** The head, ended after its last newline when that is near the end, else on a character boundary. */
function trimHead(head: Buffer): Buffer {
  const lastNewline = head.lastIndexOf(NEWLINE);
  if (lastNewline >= 0 && head.length - (lastNewline + 1) <= head.length * LINE_BOUNDARY_REACH) {
    return head.subarray(0, lastNewline + 1);
  }
  return head.subarray(0, completeCharactersEnd(head));
}

/** The tail, started after its first newline when that is near the start, else on a character boundary. */
function trimTail(tail: Buffer): Buffer {
  const firstNewline = tail.indexOf(NEWLINE);
  if (firstNewline >= 0 && firstNewline + 1 <= tail.length * LINE_BOUNDARY_REACH) {
    return tail.subarray(firstNewline + 1);
  }
  return tail.subarray(completeCharactersStart(tail));
}

function joinAroundMarker(head: string, marker: string, tail: string): string {
  const beforeMarker = head === '' || head.endsWith('\n') ? head : `${head}\n`;
  return tail === '' ? `${beforeMarker}${marker}` : `${beforeMarker}${marker}\n${tail}`;
}

/**
 * `text` unchanged when its UTF-8 size is at most `maxBytes`; otherwise its head and tail, about
 * half of `maxBytes` each, around a marker line. The result fits in `maxBytes` (marker included)
 * unless `maxBytes` is smaller than the marker itself.
 */
/**
 * Cuts `text` in the middle until its JSON encoding (how the model receives it) fits in
 * `maxEncodedBytes`: quotes, backslashes and control characters take up to six bytes each there.
 */
export function truncateEncoded(text: string, maxEncodedBytes: number): string {
  let result = text;
  let budget = maxEncodedBytes;
  for (let i = 0; i < 8; i++) {
    const encoded = Buffer.byteLength(JSON.stringify(result));
    if (encoded <= maxEncodedBytes) return result;
    budget = Math.max(256, Math.floor((budget * maxEncodedBytes) / encoded) - 64);
    result = truncateMiddle(text, budget);
  }
  return result;
}

export function truncateMiddle(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;

  // The marker's digits depend on what is cut; the whole text's counts bound them from above.
  const markerBudget = Buffer.byteLength(omissionMarker(bytes.length, countNewlines(bytes))) + 2;
  const budget = Math.max(0, maxBytes - markerBudget);
  const headBudget = Math.ceil(budget / 2);
  const tailBudget = budget - headBudget;

  const head = trimHead(bytes.subarray(0, headBudget));
  const tail = trimTail(bytes.subarray(bytes.length - tailBudget));
  const omitted = bytes.subarray(head.length, bytes.length - tail.length);
  return joinAroundMarker(
    head.toString('utf8'),
    omissionMarker(omitted.length, countNewlines(omitted)),
    tail.toString('utf8'),
  );
}

/**
 * Collects a stream of unknown length, keeping only its first `headBytes` and last `tailBytes`
 * bytes: memory stays fixed however much is pushed. Binary-safe: bytes are kept raw and decoded
 * only by `toString`, where output that looks binary becomes a note instead of garbage.
 */
export class HeadTailBuffer {
  private readonly head: Buffer;
  private headLength = 0;
  /** A ring: the next byte goes to `tailEnd`; once full, the oldest byte is at `tailEnd` too. */
  private readonly tail: Buffer;
  private tailEnd = 0;
  private tailLength = 0;
  private total = 0;
  private newlines = 0;

  constructor(headBytes: number, tailBytes: number) {
    this.head = Buffer.alloc(Math.max(0, headBytes));
    this.tail = Buffer.alloc(Math.max(0, tailBytes));
  }

  push(chunk: Buffer): void {
    this.total += chunk.length;
    this.newlines += countNewlines(chunk);

    let rest = chunk;
    if (this.headLength < this.head.length) {
      const taken = rest.copy(this.head, this.headLength);
      this.headLength += taken;
      rest = rest.subarray(taken);
    }
    if (rest.length === 0 || this.tail.length === 0) return;

    if (rest.length > this.tail.length) rest = rest.subarray(rest.length - this.tail.length);
    let written = 0;
    while (written < rest.length) {
      const copied = rest.copy(this.tail, this.tailEnd, written);
      written += copied;
      this.tailEnd = (this.tailEnd + copied) % this.tail.length;
    }
    this.tailLength = Math.min(this.tail.length, this.tailLength + rest.length);
  }

  /** Every byte pushed so far. */
  get totalBytes(): number {
    return this.total;
  }

  /** Bytes pushed but not kept (0 while everything fits). */
  get omittedBytes(): number {
    return this.total - this.headLength - this.tailLength;
  }

  /** Head, marker and tail as text; the marker counts every byte the text does not show. */
  toString(): string {
    const head = this.head.subarray(0, this.headLength);
    const tail = this.keptTail();
    if (this.omittedBytes === 0) {
      const whole = Buffer.concat([head, tail]);
      return looksBinary(whole) ? binaryNote(whole.length) : whole.toString('utf8');
    }

    const shownHead = trimHead(head);
    const shownTail = trimTail(tail);
    const headBinary = looksBinary(shownHead);
    const tailBinary = looksBinary(shownTail);
    if (headBinary && tailBinary) return binaryNote(this.total);

    const omittedBytes = this.total - shownHead.length - shownTail.length;
    const omittedLines = this.newlines - countNewlines(shownHead) - countNewlines(shownTail);
    return joinAroundMarker(
      headBinary ? binaryNote(shownHead.length) : shownHead.toString('utf8'),
      omissionMarker(omittedBytes, omittedLines),
      tailBinary ? binaryNote(shownTail.length) : shownTail.toString('utf8'),
    );
  }

  private keptTail(): Buffer {
    if (this.tailLength < this.tail.length) return this.tail.subarray(0, this.tailLength);
    return Buffer.concat([this.tail.subarray(this.tailEnd), this.tail.subarray(0, this.tailEnd)]);
  }
}
