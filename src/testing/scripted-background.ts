/**
 * Background mode of the scripted model, as the Responses API has it: a request with
 * `background: true` creates a response that is generated on the server whatever becomes of the
 * connection that asked for it. Its status goes queued → in_progress → completed (or incomplete);
 * `GET /v1/responses/{id}` returns it as it stands, `?stream=true&starting_after=N` streams the
 * events after sequence number N (those already generated at once, then the rest as they come),
 * `POST /v1/responses/{id}/cancel` stops it (status cancelled), and after `ttlMs` it is gone
 * (404), as OpenAI deletes background responses after about ten minutes.
 *
 * Every event is generated once, at the pace the step sets, and counted: `generated` against
 * `total`, and `sent` over every connection, so that a test can tell a re-attached client that
 * streamed only what it had not seen from a request sent again.
 */
import type { Plan } from './scripted-responses.js';
import { sleep } from '../shared/util/sleep.js';

/** How the server treats `background: true`. */
export type BackgroundSupport =
  /** As OpenAI does (default). */
  | 'supported'
  /** Refuses it: 400 "Unsupported parameter: 'background'" (as some compatible servers do). */
  | 'unsupported'
  /** Ignores it: the reply is an ordinary one (`background: false`) and cannot be retrieved. */
  | 'ignored';

export type BackgroundStatus = 'queued' | 'in_progress' | 'completed' | 'incomplete' | 'cancelled' | 'failed';

/** How a background response is generated. */
export interface Generation {
  /** Time spent queued before generation starts. */
  queuedMs?: number;
  /** Time between events once it runs. */
  chunkDelayMs?: number;
  /** Resolves when a hung step is released: generation stops after `response.in_progress` until then. */
  hold?: Promise<void>;
}

/** A connection streaming a background response's events. */
export interface Follower {
  signal: AbortSignal;
  /** Sends the stream's headers; false when the connection is already gone. */
  start(): boolean;
  /** Writes one serialised event; false when the connection is gone. */
  write(chunk: string): Promise<boolean>;
  /** Ends the stream normally. */
  end(): void;
  /** Breaks the connection (a cut step). */
  destroy(): void;
}

const TERMINAL: readonly BackgroundStatus[] = ['completed', 'incomplete', 'cancelled', 'failed'];

export class BackgroundResponse {
  status: BackgroundStatus = 'queued';
  /** Events generated so far; each event is generated exactly once. */
  generated = 0;
  /** Events written to clients, over every connection. */
  sent = 0;
  /** Each connection that streamed it: the sequence number it started after (-1: the creating request) and what it got. */
  readonly streams: Array<{ after: number; sent: number }> = [];
  /** When `cancel` was asked for (also when the response had already finished). */
  cancelRequested = false;
  private expiredByHand = false;
  private readonly createdAt = Date.now();
  private readonly stop = new AbortController();
  private waiting: Array<() => void> = [];
  /** Settles when generation has stopped (finished, cancelled or the server closed). */
  readonly done: Promise<void>;

  constructor(
    readonly id: string,
    private readonly plan: Plan,
    private readonly ttlMs: number,
    generation: Generation,
    closing: AbortSignal,
  ) {
    closing.addEventListener('abort', () => this.stop.abort(), { once: true });
    this.done = this.generate(generation);
  }

  /** Events in the whole reply. */
  get total(): number {
    return this.plan.events.length;
  }

  get terminal(): boolean {
    return TERMINAL.includes(this.status);
  }

  /** Gone from the server: older than the time to live, or expired by `expire()`. */
  get expired(): boolean {
    return this.expiredByHand || Date.now() - this.createdAt > this.ttlMs;
  }

  expire(): void {
    this.expiredByHand = true;
  }

  /** The response as `GET /v1/responses/{id}` returns it now. */
  snapshot(): Record<string, unknown> {
    const final = this.plan.response as Record<string, unknown>;
    if (this.status === 'completed' || this.status === 'incomplete') return final;
    return {
      ...final,
      status: this.status,
      output: [],
      usage: null,
      completed_at: null,
      incomplete_details: null,
    };
  }

  /** Stops generation (status cancelled) unless it has finished; followers' streams end. */
  cancel(): void {
    this.cancelRequested = true;
    if (this.terminal) return;
    this.status = 'cancelled';
    this.stop.abort();
    this.wake();
  }

  /**
   * Streams the events after sequence number `after` to `follower`, following the generation
   * until it stops. With `limit`, the connection is broken after that many events.
   */
  async follow(follower: Follower, after: number, limit?: number): Promise<void> {
    if (!follower.start()) return;
    const entry = { after, sent: 0 };
    this.streams.push(entry);
    let next = Math.max(0, after + 1);
    for (;;) {
      while (next < this.generated) {
        if (limit !== undefined && entry.sent >= limit) {
          follower.destroy();
          return;
        }
        if (!(await follower.write(this.plan.events[next]!))) return;
        next += 1;
        entry.sent += 1;
        this.sent += 1;
      }
      if (this.terminal) {
        follower.end();
        return;
      }
      if (!(await this.changed(follower.signal))) return;
    }
  }

  private async generate(generation: Generation): Promise<void> {
    const { signal } = this.stop;
    const events = this.plan.events;
    // response.created and response.queued: at once.
    const queuedEvents = Math.min(2, events.length);
    this.advance(queuedEvents);
    if (generation.queuedMs && !(await sleep(generation.queuedMs, signal))) return;
    if (signal.aborted) return;
    this.status = 'in_progress';
    // response.in_progress
    this.advance(Math.min(queuedEvents + 1, events.length));
    if (generation.hold) {
      const released = await Promise.race([
        generation.hold.then(() => true),
        new Promise<boolean>((resolve) =>
          signal.addEventListener('abort', () => resolve(false), { once: true }),
        ),
      ]);
      if (!released) return;
    }
    while (this.generated < events.length) {
      if (generation.chunkDelayMs && !(await sleep(generation.chunkDelayMs, signal))) return;
      if (signal.aborted) return;
      this.advance(this.generated + 1);
    }
    const final = (this.plan.response as { status?: string }).status;
    this.status = final === 'incomplete' ? 'incomplete' : 'completed';
    this.wake();
  }

  private advance(to: number): void {
    this.generated = to;
    this.wake();
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const go of waiting) go();
  }

  /** Resolves true on the next event or status change, false when `signal` aborts first. */
  private changed(signal: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve(false);
      const onAbort = () => resolve(false);
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(() => {
        signal.removeEventListener('abort', onAbort);
        resolve(true);
      });
    });
  }
}
