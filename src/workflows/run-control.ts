/**
 * What one run of a session knows besides its carried state: a stop asked for, the running
 * turn's cancellation scope, a worker found gone, and where the last model reply begins. It owns
 * the stop sequence: a stop is requested (the interrupt signal, or a person's "abort" decision) →
 * the running turn's scope is cancelled → the turn, or the next boundary when none runs, takes
 * the request and comes to rest. Nothing here is carried across continue-as-new.
 */
import type { CancellationScope } from '@temporalio/workflow';

export interface StopRequest {
  kind: 'interrupt' | 'abort';
  reason?: string;
}

export class RunControl {
  private turnScope: CancellationScope | null = null;
  private stop: StopRequest | null = null;
  private workerGone: string | null = null;
  private reply: { epoch: number; from: number } | null = null;

  // ── stops ─────────────────────────────────────────────────────────────────

  /** Records a stop and cancels the running turn, if any (honoured at the next boundary if none). */
  requestStop(request: StopRequest): void {
    this.stop = request;
    this.turnScope?.cancel();
  }

  get stopRequest(): StopRequest | null {
    return this.stop;
  }

  /** Returns the stop asked for, if any, and forgets it. */
  takeStop(): StopRequest | null {
    const request = this.stop;
    this.stop = null;
    return request;
  }

  // ── the running turn ──────────────────────────────────────────────────────

  beginTurn(scope: CancellationScope): void {
    this.turnScope = scope;
  }

  /** The turn is over: its scope is gone and a stop asked during it has been handled. */
  endTurn(): void {
    this.turnScope = null;
    this.stop = null;
  }

  // ── the workspace's worker ────────────────────────────────────────────────

  /** The worker holding the workspace did not take a call in time; `notice` tells the user what to do. */
  markWorkerLost(notice: string): void {
    this.workerGone = notice;
  }

  get workerLost(): boolean {
    return this.workerGone !== null;
  }

  /** Returns the notice of a lost worker, if any, and forgets it. */
  takeWorkerLost(): string | null {
    const notice = this.workerGone;
    this.workerGone = null;
    return notice;
  }

  // ── the last model reply ──────────────────────────────────────────────────

  /** Where the last model reply begins in the transcript (this run, this epoch). */
  get lastReply(): { epoch: number; from: number } | null {
    return this.reply;
  }

  recordReply(epoch: number, from: number): void {
    this.reply = { epoch, from };
  }
}
