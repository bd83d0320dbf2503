/** Small helpers shared by the scripted model's Responses and Chat Completions replies. */
import { Buffer } from 'node:buffer';

/**
 * The input-token estimate used when a step does not script `inputTokens`: bytes of
 * `JSON.stringify(input)` / 4, rounded. It grows with the transcript, so token-based compaction
 * can be exercised.
 */
export function estimateInputTokens(input: unknown): number {
  return Math.round(Buffer.byteLength(JSON.stringify(input ?? '')) / 4);
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

export function tokensOf(text: string): number {
  return Math.ceil(text.length / 4);
}

/** Up to three pieces, split on code points so no surrogate pair is broken. */
export function chunks(text: string): string[] {
  const chars = Array.from(text);
  if (chars.length === 0) return [];
  const size = Math.max(1, Math.ceil(chars.length / 3));
  const pieces: string[] = [];
  for (let i = 0; i < chars.length; i += size) pieces.push(chars.slice(i, i + size).join(''));
  return pieces;
}
