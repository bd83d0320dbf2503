/**
 * Re-attaching to a model call instead of paying for it twice (the session's `background`
 * setting). The model activity creates the response in the Responses API's background mode
 * (`background: true, stream: true`): the provider generates it whatever becomes of the
 * connection. The response id and the sequence number of the last event received travel in the
 * activity's heartbeat details, which Temporal hands to the next attempt; a retried attempt (on
 * this worker or another) finds them there and, instead of sending the request again, re-attaches:
 * `GET /responses/{id}` for its status, then `?stream=true&starting_after=N` for the events it has
 * not seen. A response that is gone (404), failed or cancelled, or an endpoint that cannot
 * retrieve responses, gets a fresh request; an endpoint that refuses `background` gets the same
 * request without it, and the worker remembers that.
 *
 * What is resent after a re-attach is at most the events of one heartbeat interval (the details
 * Temporal holds lag the stream by that much); the model generates nothing twice.
 */
import OpenAI from 'openai';

/** Where a background response stands, as the heartbeat details carry it. */
export interface BackgroundProgress {
  responseId: string;
  /** Sequence number of the last event received (-1: none yet). */
  after: number;
}

/** The background progress in an earlier attempt's heartbeat details, when there is one. */
export function backgroundProgress(details: unknown): BackgroundProgress | undefined {
  if (typeof details !== 'object' || details === null) return undefined;
  const value = (details as { background?: unknown }).background;
  if (typeof value !== 'object' || value === null) return undefined;
  const { responseId, after } = value as Record<string, unknown>;
  if (typeof responseId !== 'string' || responseId.length === 0 || responseId.length > 200) return undefined;
  if (typeof after !== 'number' || !Number.isInteger(after) || after < -1) return undefined;
  return { responseId, after };
}

/** An error that says the endpoint does not take `background` (a 400 naming the parameter). */
export function refusesBackground(err: unknown): boolean {
  return (
    err instanceof OpenAI.APIError &&
    (err.status === 400 || err.status === 422) &&
    (err.param === 'background' || /\bbackground\b/i.test(err.message))
  );
}

/**
 * An error from retrieving a response that means "it cannot be re-attached to": gone (404), or an
 * endpoint that has no such route or refuses it (any other 4xx but a rate limit).
 */
export function cannotReattach(err: unknown): boolean {
  return (
    err instanceof OpenAI.APIError &&
    err.status !== undefined &&
    err.status >= 400 &&
    err.status < 500 &&
    err.status !== 408 &&
    err.status !== 429 &&
    err.status !== 401 &&
    err.status !== 403
  );
}

/** The worker's memory of endpoints that refused `background` (until the worker restarts). */
export class BackgroundMemory {
  private readonly refused = new Set<string>();

  supports(endpoint: string): boolean {
    return !this.refused.has(endpoint);
  }

  /** True the first time. */
  remember(endpoint: string): boolean {
    if (this.refused.has(endpoint)) return false;
    this.refused.add(endpoint);
    return true;
  }
}
