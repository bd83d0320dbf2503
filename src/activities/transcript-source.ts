/**
 * Rebuilds a session's transcript on the worker from a reference (session, epoch, length), so the
 * model activity's input stays small and each item is written to history once (DESIGN.md §2).
 * A per-worker cache holds what it has seen; the rest comes from the workflow's `transcript`
 * query, which is answered from workflow state and not recorded in history. The cache is kept per
 * run: a run that `ratchet rewind` started has the session's id and epoch but another transcript
 * (the one of turn N, not the abandoned line this worker may have cached).
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { TranscriptRef } from '../shared/boundary/activity-types.js';
import { itemsDigest } from '../shared/prompt/digest.js';
import type { TranscriptItem } from '../shared/prompt/items.js';
import { functionOutput, isFunctionCall } from '../shared/prompt/items.js';
import type { TranscriptPage, TranscriptRequest } from '../shared/api/session-api.js';
import type { TranscriptEntry } from '../shared/api/session-config.js';

export type FetchTranscriptPage = (sessionId: string, request: TranscriptRequest) => Promise<TranscriptPage>;

export interface TranscriptSource {
  /**
   * Entries [0, upTo) of the transcript in `ref`'s epoch. With `tail` (entries [from, upTo) and
   * their digest), entries this worker saw produced are used without asking the workflow, when
   * they rebuild exactly what the workflow holds.
   */
  entries(
    ref: TranscriptRef,
    upTo: number,
    tail?: { from: number; digest: string },
  ): Promise<TranscriptEntry[]>;
  /** The model replied with `items`, to be appended at index `from`. */
  proposeReply(ref: TranscriptRef, from: number, items: TranscriptItem[]): void;
  /** A tool call of that reply produced `output`. */
  proposeOutput(ref: TranscriptRef, callId: string, output: string): void;
  /** Counters for tests and benchmarks. */
  readonly stats: { hits: number; fetchedEntries: number; queries: number; rebuilt: number };
}

interface Cached {
  epoch: number;
  entries: TranscriptEntry[];
  /** What this worker saw produced after `entries`: the last reply and its tool outputs. */
  reply?: { from: number; items: TranscriptItem[]; outputs: Map<string, string> };
}

/** The reply and its tool outputs as the workflow appends them, or undefined if one is missing. */
function rebuild(reply: NonNullable<Cached['reply']>): TranscriptItem[] | undefined {
  const items: TranscriptItem[] = [...reply.items];
  for (const call of reply.items.filter(isFunctionCall)) {
    const output = reply.outputs.get(call.call_id);
    if (output === undefined) return undefined;
    items.push(functionOutput(call.call_id, output));
  }
  return items;
}

/** The run of the workflow whose activity is running ('' outside an activity). */
function activityRunId(): string {
  try {
    return Context.current().info.workflowExecution?.runId ?? '';
  } catch {
    return '';
  }
}

export function createTranscriptSource(
  fetchPage: FetchTranscriptPage,
  maxSessions = 100,
  currentRun: () => string = activityRunId,
): TranscriptSource {
  const cache = new Map<string, Cached>();
  const keyOf = (ref: TranscriptRef) => `${ref.sessionId}\0${currentRun()}`;
  const stats = { hits: 0, fetchedEntries: 0, queries: 0, rebuilt: 0 };

  function remember(key: string, cached: Cached): void {
    cache.delete(key);
    cache.set(key, cached);
    while (cache.size > maxSessions) {
      const oldest = cache.keys().next().value;
      if (oldest === undefined) break;
      cache.delete(oldest);
    }
  }

  return {
    stats,
    proposeReply(ref, from, items) {
      const cached = cache.get(keyOf(ref));
      if (cached?.epoch !== ref.epoch || cached.entries.length !== from) return;
      cached.reply = { from, items, outputs: new Map() };
    },
    proposeOutput(ref, callId, output) {
      const cached = cache.get(keyOf(ref));
      if (cached?.epoch === ref.epoch) cached.reply?.outputs.set(callId, output);
    },
    async entries(ref, upTo, tail) {
      const key = keyOf(ref);
      let cached = cache.get(key);
      if (!cached || cached.epoch !== ref.epoch) cached = { epoch: ref.epoch, entries: [] };
      const reply = cached.reply;
      cached.reply = undefined;
      if (tail && reply && reply.from === tail.from && cached.entries.length === tail.from) {
        const items = rebuild(reply);
        if (items && items.length === upTo - tail.from && itemsDigest(items) === tail.digest) {
          stats.rebuilt += 1;
          cached.entries.push(...items.map((item) => ({ item, turn: 0 })));
        }
      }
      if (cached.entries.length >= upTo) {
        stats.hits += 1;
        remember(key, cached);
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
        // Written at the page's own indexes: another activity of the same session on this worker
        // (parallel reads with large arguments, or a retry while a lost attempt still runs) may
        // have extended the cache while this page was on its way; pushing would duplicate items.
        page.entries.forEach((entry, i) => (cached.entries[page.fromIndex + i] = entry));
        stats.fetchedEntries += page.entries.length;
      }
      remember(key, cached);
      return cached.entries.slice(0, upTo);
    },
  };
}
