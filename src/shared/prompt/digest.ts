/**
 * A digest of transcript items that the workflow and the worker compute alike (pure code, no
 * Node crypto: the workflow runs it). Two 53-bit hashes (cyrb53 with two seeds) of the items'
 * JSON text: it checks that a worker rebuilt the same items the workflow holds, it is not a
 * defence against an adversary.
 */
import type { TranscriptItem } from './items.js';

function cyrb53(text: string, seed: number): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

export function itemsDigest(items: readonly TranscriptItem[]): string {
  const text = items.map((item) => JSON.stringify(item)).join('\n');
  return `${items.length}:${cyrb53(text, 1).toString(36)}:${cyrb53(text, 2).toString(36)}`;
}
