/**
 * The session's transcript: its entries in order, their size as payloads measure it, pages of it
 * for readers (the CLI, the Web UI, the model activity's transcript source), and the rules that
 * keep it well-formed (every call answered, no call id used twice). Deterministic; the session
 * state decides when entries are added or the transcript is replaced by a compacted one.
 */
import type { FunctionCallItem, TranscriptItem } from '../shared/prompt/items.js';
import type { TranscriptPage, TranscriptRequest } from '../shared/api/session-api.js';
import type { TranscriptEntry } from '../shared/api/session-config.js';
import { jsonBytes } from '../shared/util/bytes.js';

export const DEFAULT_PAGE_BYTES = 1024 * 1024;

/** How transcript sizes are measured: UTF-8 bytes as payloads are, or (histories from before) UTF-16 units. */
export type ByteMeasure = 'utf8' | 'utf16';

/** A call whose output the transcript does not have yet, and why: never started, or cut mid-run. */
export type OpenCallFate = 'not_run' | 'interrupted';

/** Finds call ids already used in the transcript and gives repeats a fresh, deterministic one. */
export function uniqueCallIds(
  used: ReadonlySet<string>,
  items: readonly TranscriptItem[],
): { items: TranscriptItem[]; renamed: number } {
  const taken = new Set(used);
  let renamed = 0;
  const out = items.map((item) => {
    if (item.type !== 'function_call') return item;
    let id = item.call_id;
    if (taken.has(id)) {
      let n = 2;
      while (taken.has(`${item.call_id}~${n}`)) n += 1;
      id = `${item.call_id}~${n}`;
      renamed += 1;
    }
    taken.add(id);
    return id === item.call_id ? item : { ...item, call_id: id };
  });
  return { items: out, renamed };
}

export class Transcript {
  private list: TranscriptEntry[];
  private size: number;

  /** @param entries the carried entries, appended to in place (no copy of a large transcript) */
  constructor(
    entries: TranscriptEntry[],
    private readonly measure: ByteMeasure,
  ) {
    this.list = entries;
    this.size = entries.reduce((sum, entry) => sum + this.bytesOf(entry), 0);
  }

  get entries(): readonly TranscriptEntry[] {
    return this.list;
  }

  /** The transcript's size, measured as `measure` says. */
  get bytes(): number {
    return this.size;
  }

  push(entry: TranscriptEntry): void {
    this.list.push(entry);
    this.size += this.bytesOf(entry);
  }

  /** Empties the transcript (compaction: the compacted items follow). */
  clear(): void {
    this.list = [];
    this.size = 0;
  }

  /** Every call id in the transcript (a new call must not reuse one). */
  callIds(): Set<string> {
    const ids = new Set<string>();
    for (const { item } of this.list) if (item.type === 'function_call') ids.add(item.call_id);
    return ids;
  }

  /** Whether the transcript has an output for this call. */
  hasOutput(callId: string): boolean {
    return this.list.some((e) => e.item.type === 'function_call_output' && e.item.call_id === callId);
  }

  /** The calls of `calls` that have no output yet, in order. */
  unanswered(calls: readonly FunctionCallItem[]): FunctionCallItem[] {
    const answered = new Set(
      this.list.flatMap((e) => (e.item.type === 'function_call_output' ? [e.item.call_id] : [])),
    );
    return calls.filter((call) => !answered.has(call.call_id));
  }

  /** A page of entries from `fromIndex`, at most `maxBytes` (but always one, so a reader progresses). */
  page(request: TranscriptRequest, epoch: number): TranscriptPage {
    const fromIndex = Math.max(0, Math.min(request.fromIndex ?? 0, this.list.length));
    const maxBytes = request.maxBytes ?? DEFAULT_PAGE_BYTES;
    const limit = request.limit ?? Number.POSITIVE_INFINITY;
    const entries: TranscriptEntry[] = [];
    let bytes = 0;
    for (let i = fromIndex; i < this.list.length && entries.length < limit; i++) {
      const entry = this.list[i]!;
      const size = this.bytesOf(entry);
      // Always return at least one entry, so that a reader makes progress.
      if (entries.length > 0 && bytes + size > maxBytes) break;
      entries.push(entry);
      bytes += size;
    }
    return { epoch, fromIndex, entries, nextIndex: fromIndex + entries.length, total: this.list.length };
  }

  private bytesOf(entry: TranscriptEntry): number {
    return this.measure === 'utf8' ? jsonBytes(entry) : JSON.stringify(entry).length;
  }
}
