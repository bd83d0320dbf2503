/**
 * Text a person reads that came from the model or a repository: every control character made
 * visible, so that what is shown is what runs. A terminal obeys escape sequences (`\x1b[22D`
 * moves the cursor back and lets `npm test` overwrite the real command), a carriage return
 * rewrites the line, and bidirectional overrides reorder what a browser shows. Pure; the workflow
 * uses it for summaries and reasons, the CLI for everything it prints.
 */

/**
 * C0 controls but tab and newline, DEL, C1 controls, and the invisible format characters that
 * change how text around them looks: zero-width characters, directional marks, embeddings,
 * overrides and isolates, line and paragraph separators, the byte-order mark.
 */
const HIDDEN =
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]/gu;

function visible(char: string): string {
  const code = char.codePointAt(0)!;
  if (char === '\r') return '\\r';
  if (code <= 0xff) return `\\x${code.toString(16).padStart(2, '0')}`;
  return `\\u${code.toString(16).padStart(4, '0')}`;
}

/** `text` with every hidden character written as an escape (`\x1b`, `\r`, `\u202e`). */
export function escapeControl(text: string, options: { newlines?: boolean; tabs?: boolean } = {}): string {
  let out = text.replace(HIDDEN, visible);
  if (options.newlines === false) out = out.replaceAll('\n', '\\n');
  if (options.tabs === false) out = out.replaceAll('\t', '\\t');
  return out;
}
