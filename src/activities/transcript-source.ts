/**
 * Rebuilds a session's transcript on the worker from a reference (session, epoch, length), so the
 * model activity's input stays small and each item is written to history once (DESIGN.md §2).
 * A per-worker cache holds what it has seen; the rest comes from the workflow's `transcript`
 * query, which is answered from workflow state and not recorded in history.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { TranscriptRef } from '../shared/activity-types.js';
import type { TranscriptPage, TranscriptRequest } from '../shared/session-api.js';
import type { TranscriptEntry } from '../shared/session-config.js';

export type FetchTranscriptPage = (sessionId: string, request: TranscriptRequest) => Promise<TranscriptPage>;

export interface TranscriptSource {
  /** Entries [0, upTo) of the transcript in `ref`'s epoch. */
  entries(ref: TranscriptRef, upTo: number): Promise<TranscriptEntry[]>;
  /** Counters for tests and benchmarks. */
  readonly stats: { hits: number; fetchedEntries: number; queries: number };
}

interface Cached {
  epoch: number;
  entries: TranscriptEntry[];
}

export function createTranscriptSource(fetchPage: FetchTranscriptPage, maxSessions = 100): TranscriptSource {
  const cache = new Map<string, Cached>();
  const stats = { hits: 0, fetchedEntries: 0, queries: 0 };

  function remember(sessionId: string, cached: Cached): void {
    cache.delete(sessionId);
    cache.set(sessionId, cached);
    while (cache.size > maxSessions) {
      const oldest = cache.keys().next().value;
      if (oldest === undefined) break;
      cache.delete(oldest);
    }
  }

  return {
    stats,
    async entries(ref, upTo) {
      let cached = cache.get(ref.sessionId);
      if (!cached || cached.epoch !== ref.epoch) cached = { epoch: ref.epoch, entries: [] };
      if (cached.entries.length >= upTo) {
        stats.hits += 1;
        remember(ref.sessionId, cached);
        return cached.entries.slice(0, upTo);
      }
      while (cached.entries.length < upTo) {
        stats.queries += 1;
        const page = await fetchPage(ref.sessionId, { fromIndex: cached.entries.length });
        if (page.epoch !== ref.epoch) {
          // The session compacted since this activity was scheduled; a retry gets a fresh reference.
          throw ApplicationFailure.retryable(
            `transcript of ${ref.sessionId} is at epoch ${page.epoch}, expected ${ref.epoch}`,
            'TranscriptMoved',
          );
        }
        if (page.entries.length === 0) {
          throw ApplicationFailure.retryable(
            `transcript of ${ref.sessionId} has ${page.total} entries, expected at least ${upTo}`,
            'TranscriptShort',
          );
        }
        cached.entries.push(...page.entries);
        stats.fetchedEntries += page.entries.length;
      }
      remember(ref.sessionId, cached);
      return cached.entries.slice(0, upTo);
    },
  };
}
