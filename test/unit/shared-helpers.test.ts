import { describe, expect, it } from 'vitest';
import { isBelow, isInside } from '../../src/activities/paths.js';
import { sleep } from '../../src/shared/util/sleep.js';
import { cut, firstLine, formatNumber, shorten } from '../../src/shared/util/text.js';
import { toolFailure } from '../../src/shared/tools/specs.js';

describe('isInside / isBelow', () => {
  it('holds for the root itself (isInside only) and for what lies below it', () => {
    expect(isInside('/w', '/w')).toBe(true);
    expect(isBelow('/w', '/w')).toBe(false);
    expect(isInside('/w', '/w/a/b')).toBe(true);
    expect(isBelow('/w', '/w/a/b')).toBe(true);
  });

  it('refuses a sibling with the same prefix, a parent, and a way out through ..', () => {
    for (const candidate of ['/work', '/', '/w/../x', '/x/w']) {
      expect(isInside('/w', candidate)).toBe(false);
      expect(isBelow('/w', candidate)).toBe(false);
    }
  });
});

describe('text helpers', () => {
  it('cuts to the length asked, the ellipsis included', () => {
    expect(cut('abcdef', 6)).toBe('abcdef');
    expect(cut('abcdefg', 6)).toBe('abcde…');
    expect(firstLine('\n\n  first\nsecond', 3)).toBe('fi…');
    expect(shorten('a\x1b[2K\n\tb', 80)).toBe('a\\x1b[2K b');
    expect(formatNumber(1234567)).toBe('1,234,567');
  });

  it('builds a tool failure as "summary · what"', () => {
    expect(toolFailure('read_file · a.ts', 'nope')).toEqual({
      output: 'nope',
      display: 'read_file · a.ts · error',
      success: false,
    });
    expect(toolFailure('apply_patch', 'bad', 'invalid patch').display).toBe('apply_patch · invalid patch');
  });
});

describe('sleep', () => {
  it('resolves true after the time, false at once when aborted, and leaves no listener', async () => {
    expect(await sleep(5)).toBe(true);
    const controller = new AbortController();
    const started = Date.now();
    const slept = sleep(60_000, controller.signal);
    controller.abort();
    expect(await slept).toBe(false);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await sleep(60_000, controller.signal)).toBe(false);
  });

  it('removes its abort listener when it ends, so polling does not pile them up', async () => {
    const controller = new AbortController();
    let added = 0;
    let removed = 0;
    const signal = controller.signal;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = (...args: Parameters<typeof add>) => {
      added += 1;
      add(...args);
    };
    signal.removeEventListener = (...args: Parameters<typeof remove>) => {
      removed += 1;
      remove(...args);
    };
    for (let i = 0; i < 5; i++) await sleep(1, signal);
    expect(added).toBe(5);
    expect(removed).toBe(5);
  });
});
