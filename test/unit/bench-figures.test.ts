import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compare, comparisonMarkdown, earlierRuns, figuresOf, formatChange } from '../../bench/figures.js';

const spread = (median: number) => ({ median, min: median, max: median, runs: 1 });
let dir = '';
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('bench figures', () => {
  it('reads figures from a results file written before the history had series (one 20 KB list)', () => {
    const figures = figuresOf({
      startedAt: '2026-11-23T16:37:20.732Z',
      machine: { cpus: 2 },
      history: [{ turns: 25, uniqueBytes: 539_648, ratchet: { bytes: 593_920, events: 222, ratio: 1.1 } }],
      overhead: { ratchet: spread(34.5), ratioToFloor: spread(1.37) },
    });
    expect(figures.history).toContainEqual({
      name: '20 KB, 25 turns: Ratchet ÷ content',
      value: 1.1,
      unit: '×',
    });
    expect(figures.overhead).toContainEqual({ name: 'Ratchet', value: 34.5, unit: 'ms/turn' });
    expect(figures.machine).toBeUndefined();
  });

  it('takes the figures a scenario returns itself, and drops values that are not numbers', () => {
    const figures = figuresOf({
      concurrency: {
        figures: [
          { name: 'heap of one parked session', value: 0.4, unit: 'MiB' },
          { name: 'broken', value: Number.NaN, unit: 'MiB' },
        ],
      },
    });
    expect(figures.concurrency).toEqual([{ name: 'heap of one parked session', value: 0.4, unit: 'MiB' }]);
  });

  it('compares each scenario with the newest earlier run that measured it, not a later or unrelated one', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bench-figures-'));
    const write = (name: string, body: unknown) => writeFile(path.join(dir, name), JSON.stringify(body));
    await write('old.json', { startedAt: '2026-11-01T00:00:00Z', overhead: { ratchet: spread(40) } });
    await write('newer.json', { startedAt: '2026-11-20T00:00:00Z', overhead: { ratchet: spread(30) } });
    await write('checkpoints-only.json', { startedAt: '2026-11-30T00:00:00Z', checkpoints: { cases: [] } });
    await write('future.json', { startedAt: '2026-12-31T00:00:00Z', overhead: { ratchet: spread(1) } });
    await writeFile(path.join(dir, 'half-written.json'), '{"startedAt": "2026-11-2');
    const earlier = await earlierRuns(dir, '2026-12-02T00:00:00Z');
    const comparisons = compare(figuresOf({ overhead: { ratchet: spread(33), plain: spread(3) } }), earlier);
    const ratchet = comparisons.find((c) => c.name === 'Ratchet')!;
    expect(ratchet.previous).toMatchObject({ value: 30, file: 'newer.json' });
    expect(formatChange(ratchet)).toBe('+3 ms/turn (+10.0 %)');
    const plain = comparisons.find((c) => c.name === 'plain loop')!;
    expect(plain.previous).toBeUndefined();
    expect(formatChange(plain)).toBe('new');
    expect(comparisonMarkdown(comparisons).join('\n')).toContain(
      '| Ratchet | 33 ms/turn | 30 ms/turn | +3 ms/turn (+10.0 %) |',
    );
  });

  it('finds nothing to compare with in a folder that does not exist', async () => {
    expect(await earlierRuns('/nonexistent/bench-results', '2026-12-02T00:00:00Z')).toEqual([]);
  });
});
