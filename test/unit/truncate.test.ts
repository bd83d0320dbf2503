import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HeadTailBuffer, truncateMiddle } from '../../src/activities/tools/truncate.js';

const MARKER = /\[… ([\d,]+) bytes \(([\d,]+) lines\) omitted …\]/;

function parseMarker(text: string): { bytes: number; lines: number; index: number; length: number } {
  const match = MARKER.exec(text);
  if (match === null) throw new Error(`no omission marker in ${JSON.stringify(text.slice(0, 200))}`);
  return {
    bytes: Number(match[1]?.replaceAll(',', '')),
    lines: Number(match[2]?.replaceAll(',', '')),
    index: match.index,
    length: match[0].length,
  };
}

function numberedLines(count: number): string {
  return Array.from({ length: count }, (_, i) => `line ${String(i + 1).padStart(6, '0')}\n`).join('');
}

describe('truncateMiddle', () => {
  it('returns text that fits unchanged', () => {
    expect(truncateMiddle('short\ntext\n', 100)).toBe('short\ntext\n');
    const exact = 'x'.repeat(64);
    expect(truncateMiddle(exact, 64)).toBe(exact);
  });

  it('keeps a head and a tail on line boundaries, with a marker that counts what is left out', () => {
    const text = numberedLines(10_000);
    const result = truncateMiddle(text, 4096);
    expect(Buffer.byteLength(result)).toBeLessThanOrEqual(4096);
    expect(Buffer.byteLength(result)).toBeGreaterThan(3000);

    const marker = parseMarker(result);
    const head = result.slice(0, marker.index);
    const tail = result.slice(marker.index + marker.length + 1);
    expect(text.startsWith(head)).toBe(true);
    expect(text.endsWith(tail)).toBe(true);
    expect(head.endsWith('\n')).toBe(true);
    expect(tail).toMatch(/^line \d{6}\n/);
    expect(tail.endsWith('line 010000\n')).toBe(true);

    const omitted = text.slice(head.length, text.length - tail.length);
    expect(marker.bytes).toBe(Buffer.byteLength(omitted));
    expect(marker.lines).toBe(omitted.split('\n').length - 1);
    // About half each.
    expect(Math.abs(head.length - tail.length)).toBeLessThan(600);
  });

  it('never splits a UTF-8 character when no line boundary is near', () => {
    for (const char of ['é', '€', '😀']) {
      const text = char.repeat(5000);
      const result = truncateMiddle(text, 1001);
      expect(Buffer.byteLength(result)).toBeLessThanOrEqual(1001);
      expect(result).not.toContain('\uFFFD');
      const marker = parseMarker(result);
      const head = result.slice(0, marker.index).replace(/\n$/, '');
      const tail = result.slice(marker.index + marker.length + 1);
      expect(head.length).toBeGreaterThan(0);
      expect(text.startsWith(head)).toBe(true);
      expect(text.endsWith(tail)).toBe(true);
      expect(marker.bytes).toBe(Buffer.byteLength(text) - Buffer.byteLength(head) - Buffer.byteLength(tail));
    }
  });
});

describe('HeadTailBuffer', () => {
  it('keeps everything, byte for byte, while it fits', () => {
    const buffer = new HeadTailBuffer(16, 16);
    buffer.push(Buffer.from('hello '));
    buffer.push(Buffer.from('wörld\n'));
    expect(buffer.toString()).toBe('hello wörld\n');
    expect(buffer.totalBytes).toBe(13);
    expect(buffer.omittedBytes).toBe(0);
  });

  it('reassembles a character split across pushes', () => {
    const buffer = new HeadTailBuffer(64, 64);
    const bytes = Buffer.from('a😀b€c');
    for (const byte of bytes) buffer.push(Buffer.from([byte]));
    expect(buffer.toString()).toBe('a😀b€c');
  });

  it('keeps the first and last bytes of a long stream and counts the rest', () => {
    const text = numberedLines(100_000);
    const buffer = new HeadTailBuffer(1024, 1024);
    const bytes = Buffer.from(text);
    for (let i = 0; i < bytes.length; i += 777) buffer.push(bytes.subarray(i, i + 777));

    expect(buffer.totalBytes).toBe(bytes.length);
    expect(buffer.omittedBytes).toBe(bytes.length - 2048);
    const result = buffer.toString();
    expect(Buffer.byteLength(result)).toBeLessThan(2048 + 100);
    expect(result.startsWith('line 000001\n')).toBe(true);
    expect(result.endsWith('line 100000\n')).toBe(true);

    const marker = parseMarker(result);
    const head = result.slice(0, marker.index);
    const tail = result.slice(marker.index + marker.length + 1);
    expect(text.startsWith(head)).toBe(true);
    expect(text.endsWith(tail)).toBe(true);
    expect(tail).toMatch(/^line \d{6}\n/);
    const omitted = text.slice(head.length, text.length - tail.length);
    expect(marker.bytes).toBe(omitted.length);
    expect(marker.lines).toBe(omitted.split('\n').length - 1);
  });

  it('copies what it keeps, and keeps no more than head plus tail', () => {
    const buffer = new HeadTailBuffer(8192, 8192);
    // One chunk, refilled and pushed again and again: a buffer that held references would show
    // the last fill everywhere, and one that held copies would grow by the whole stream.
    const chunk = Buffer.alloc(64 * 1024);
    const before = process.memoryUsage().arrayBuffers;
    const pushes = 800; // 50 MiB
    for (let i = 0; i < pushes; i++) {
      chunk.fill(i === 0 ? 'A' : i === pushes - 1 ? 'Z' : 'm');
      buffer.push(chunk);
    }
    const growth = process.memoryUsage().arrayBuffers - before;
    expect(growth).toBeLessThan(4 * 1024 * 1024);
    expect(buffer.totalBytes).toBe(pushes * chunk.length);

    const result = buffer.toString();
    expect(result.startsWith('A'.repeat(8192))).toBe(true);
    expect(result.endsWith('Z'.repeat(8192))).toBe(true);
    expect(parseMarker(result).bytes).toBe(pushes * chunk.length - 16384);
  });

  it('shows binary output as a note instead of garbage', () => {
    const small = new HeadTailBuffer(64 * 1024, 64 * 1024);
    small.push(randomBytes(1234));
    expect(small.toString()).toBe('[binary output: 1,234 bytes]');

    const large = new HeadTailBuffer(4096, 4096);
    large.push(randomBytes(100_000));
    expect(large.toString()).toBe('[binary output: 100,000 bytes]');

    const nul = new HeadTailBuffer(64, 64);
    nul.push(Buffer.from('text\0more'));
    expect(nul.toString()).toBe('[binary output: 9 bytes]');
  });

  it('keeps a text part readable when only the other part is binary', () => {
    const buffer = new HeadTailBuffer(1024, 1024);
    buffer.push(Buffer.from(numberedLines(500)));
    buffer.push(randomBytes(10_000));
    const result = buffer.toString();
    expect(result.startsWith('line 000001\n')).toBe(true);
    expect(result).toMatch(MARKER);
    expect(result).toMatch(/\[binary output: [\d,]+ bytes\]$/);
  });

  it('treats occasional invalid bytes as text with replacement characters', () => {
    const buffer = new HeadTailBuffer(1024, 1024);
    buffer.push(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x6f, 0x6b, 0x0a])); // "café ok" in Latin-1
    expect(buffer.toString()).toBe('caf\uFFFD ok\n');
  });
});

describe('truncateEncoded', () => {
  it('fits the JSON encoding, where control characters take six bytes', async () => {
    const { truncateEncoded } = await import('../../src/activities/tools/truncate.js');
    const noisy = '\x01'.repeat(20_000);
    const cut = truncateEncoded(noisy, 4096);
    expect(Buffer.byteLength(JSON.stringify(cut))).toBeLessThanOrEqual(4096);
    expect(cut).toMatch(/omitted/);
    expect(truncateEncoded('plain text', 4096)).toBe('plain text');
  });
});
