/**
 * The worker-side transcript cache under concurrency: two activities of one session on one
 * worker (parallel reads with large arguments, or a retry while the lost attempt still runs)
 * fetch the same pages at once. Found by the randomized harness (issue 11): a model request
 * carried one call and its output twice.
 */
import type { Client } from '@temporalio/client';
import { describe, expect, it, vi } from 'vitest';
import { createTranscriptSource } from '../../src/activities/transcript-source.js';
import { transcriptPages } from '../../src/worker.js';
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

  describe('as the worker reads it (the transcript query)', () => {
    // What a worker without the session cached answers while a workflow task is pending: the
    // task guard's refusal (src/workflows/task-guard.ts), as the query's caller sees it.
    const refused = new Error(
      'Unhandled Promise rejection: AheadOfWorkflowTask: history events 15–30 were applied without a ' +
        'workflow task (a query on a worker that had not cached this session); ask again once the ' +
        'pending workflow task has run',
    );
    const clientWith = (query: () => Promise<TranscriptPage>) => {
      const spy = vi.fn(query);
      // As a connection's deadline acts: a call still unanswered when it passes fails with
      // DEADLINE_EXCEEDED, wrapped as the Temporal client wraps it.
      const withDeadline = (deadline: number, fn: () => Promise<unknown>) =>
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            const grpc = Object.assign(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded'), { code: 4 });
            reject(new Error('Failed to query Workflow', { cause: grpc }));
          }, deadline - Date.now());
          fn()
            .then(resolve, reject)
            .finally(() => clearTimeout(timer));
        });
      const client = {
        workflow: { getHandle: () => ({ query: spy }) },
        connection: { withDeadline },
      } as unknown as Client;
      return { client, query: spy };
    };
    const whole: TranscriptPage = { epoch: 0, fromIndex: 0, entries, nextIndex: 6, total: 6 };

    it('asks again while the task guard refuses: the pending task runs, and the attempt does not fail', async () => {
      // Found by the concurrency benchmark: with the baseline checkpoint beside the first model
      // call, its result and the model activity's query met on a worker that had evicted the
      // session; 20 model attempts of 2,000 failed and were retried.
      let calls = 0;
      const { client, query } = clientWith(() => {
        calls += 1;
        return calls <= 3 ? Promise.reject(refused) : Promise.resolve(whole);
      });
      const source = createTranscriptSource(transcriptPages(client, 'default'));
      expect(await source.entries({ sessionId: 's', epoch: 0 }, 6)).toEqual(entries);
      expect(query).toHaveBeenCalledTimes(4);
    });

    it('asks again when a query goes unanswered (a worker dropped it) instead of waiting out the server', async () => {
      // Found by the replay suite's worker that caches no workflows, on a loaded machine: the
      // SDK's core dropped a query it had buffered during a workflow task when it evicted the
      // session, and the model call waited 30 s for it before failing its attempt.
      let calls = 0;
      const { client, query } = clientWith(() => {
        calls += 1;
        return calls === 1 ? new Promise<TranscriptPage>(() => undefined) : Promise.resolve(whole);
      });
      const started = Date.now();
      const source = createTranscriptSource(transcriptPages(client, 'default'));
      expect(await source.entries({ sessionId: 's', epoch: 0 }, 6)).toEqual(entries);
      expect(query).toHaveBeenCalledTimes(2);
      // The first ask's own deadline (5 s), not the server's 30 s.
      expect(Date.now() - started).toBeLessThan(8_000);
    });

    it('fails the attempt on any other error at once, and on a refusal that outlasts its wait', async () => {
      const other = clientWith(() => Promise.reject(new Error('14 UNAVAILABLE: no worker')));
      await expect(
        createTranscriptSource(transcriptPages(other.client, 'default')).entries(
          { sessionId: 's', epoch: 0 },
          6,
        ),
      ).rejects.toThrow(/UNAVAILABLE/);
      expect(other.query).toHaveBeenCalledTimes(1);

      const stuck = clientWith(() => Promise.reject(refused));
      await expect(
        createTranscriptSource(transcriptPages(stuck.client, 'default', 300)).entries(
          { sessionId: 's', epoch: 0 },
          6,
        ),
      ).rejects.toThrow(/applied without a workflow task/);
      expect(stuck.query.mock.calls.length).toBeGreaterThan(1);
      expect(stuck.query.mock.calls.length).toBeLessThan(10);
    });
  });
});
