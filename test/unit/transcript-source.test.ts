/**
 * The worker-side transcript cache under concurrency: two activities of one session on one
 * worker (parallel reads with large arguments, or a retry while the lost attempt still runs)
 * fetch the same pages at once. Found by the randomized harness (issue 11): a model request
 * carried one call and its output twice.
 */
import { describe, expect, it } from 'vitest';
import { createTranscriptSource } from '../../src/activities/transcript-source.js';
import { userMessage } from '../../src/shared/prompt/items.js';
import type { TranscriptPage, TranscriptRequest } from '../../src/shared/api/session-api.js';
import type { TranscriptEntry } from '../../src/shared/api/session-config.js';

const entries: TranscriptEntry[] = Array.from({ length: 6 }, (_, i) => ({
  item: userMessage(`m${i}`),
  turn: 0,
}));

/** Pages of two entries, answered after a pause, so that concurrent readers interleave. */
async function fetchPage(_sessionId: string, request: TranscriptRequest): Promise<TranscriptPage> {
  await new Promise((resolve) => setTimeout(resolve, 10));
  const from = request.fromIndex ?? 0;
  const page = entries.slice(from, from + 2);
  return { epoch: 0, fromIndex: from, entries: page, nextIndex: from + page.length, total: entries.length };
}

describe('transcript source', () => {
  it('gives concurrent readers of one session the transcript once, without duplicated entries', async () => {
    const source = createTranscriptSource(fetchPage);
    const ref = { sessionId: 's', epoch: 0 };
    // Fill the cache partly, so the next readers share the cached object.
    await source.entries(ref, 2);
    const [a, b] = await Promise.all([source.entries(ref, 6), source.entries(ref, 6)]);
    expect(a).toEqual(entries);
    expect(b).toEqual(entries);
    expect(await source.entries(ref, 6)).toEqual(entries);
  });

  it('keeps each run apart: a rewound run (same session, same epoch) never gets the abandoned line', async () => {
    // Run 1 went on past turn N; run 2, started by a rewind, holds turn N's transcript and a new message.
    const lines: Record<string, TranscriptEntry[]> = {
      'run-1': entries,
      'run-2': [...entries.slice(0, 2), { item: userMessage('after the rewind'), turn: 1 }],
    };
    let run = 'run-1';
    const source = createTranscriptSource(
      (_sessionId, request) => {
        const from = request.fromIndex ?? 0;
        const line = lines[run]!;
        const page = line.slice(from);
        return Promise.resolve({
          epoch: 0,
          fromIndex: from,
          entries: page,
          nextIndex: line.length,
          total: line.length,
        });
      },
      100,
      () => run,
    );
    const ref = { sessionId: 's', epoch: 0 };
    expect(await source.entries(ref, 6)).toEqual(entries);
    run = 'run-2';
    expect(await source.entries(ref, 3)).toEqual(lines['run-2']);
  });
});
