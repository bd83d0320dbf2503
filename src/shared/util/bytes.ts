/**
 * Sizes as Temporal counts them: payloads are UTF-8 JSON, so every bound on what enters history
 * (a continue-as-new input, an activity result, a workflow result) is in UTF-8 bytes, never in
 * JavaScript string length (UTF-16 units, a third of the bytes for CJK text). Pure; the workflow
 * uses it too.
 */

/** Temporal's default limit for one payload (and for the blobs of one workflow-task completion). */
export const PAYLOAD_LIMIT_BYTES = 2 * 1024 * 1024;

/**
 * What the session lets into one payload: three quarters of the limit, the rest for the envelope
 * (other fields, metadata, the failure that would describe it).
 */
export const PAYLOAD_BUDGET_BYTES = 1536 * 1024;

/** Bytes of `text` encoded as UTF-8 (a lone surrogate counts as JSON's `\udxxx` escape). */
export function utf8Bytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff) {
      const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i += 1;
      } else bytes += 6;
    } else if (code >= 0xdc00 && code <= 0xdfff) bytes += 6;
    else bytes += 3;
  }
  return bytes;
}

/** Bytes of `value` as a JSON payload. */
export function jsonBytes(value: unknown): number {
  return utf8Bytes(JSON.stringify(value) ?? '');
}

/** `text` cut to at most `maxBytes` UTF-8 bytes (on a character boundary), with a note when cut. */
export function capBytes(text: string, maxBytes: number): string {
  if (utf8Bytes(text) <= maxBytes) return text;
  const note = `\n[… cut to ${maxBytes} bytes of ${utf8Bytes(text)} …]`;
  const budget = Math.max(0, maxBytes - utf8Bytes(note));
  let used = 0;
  let end = 0;
  for (const char of text) {
    const size = utf8Bytes(char);
    if (used + size > budget) break;
    used += size;
    end += char.length;
  }
  return text.slice(0, end) + note;
}
