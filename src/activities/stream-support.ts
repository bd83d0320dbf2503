/**
 * Which endpoints cannot stream, and how to tell. Some OpenAI-compatible servers cannot stream
 * every request: llama-cpp-python's server, asked to stream with tools, sends its headers and then
 * nothing; others answer an error that names streaming. The model activity then sends the same
 * request without streaming, and when that works the worker remembers the endpoint and sends it
 * whole requests from then on (until the worker restarts). `stream = false` on the worker skips
 * the first attempt altogether.
 */
import { ApplicationFailure } from '@temporalio/activity';
import OpenAI from 'openai';

/** A stream that ended, or broke, before its first event. */
export class StreamRefused extends Error {
  override name = 'StreamRefused';
  constructor(cause?: unknown) {
    super(
      `the endpoint accepted a streamed request but sent no events${
        cause instanceof Error ? ` (${cause.message})` : ''
      }`,
      { cause },
    );
  }
}

/**
 * An error that is the endpoint's answer (an error event or response, a body that does not
 * parse), not a stream that never started.
 */
export function isAnswer(err: unknown): boolean {
  return err instanceof ApplicationFailure || err instanceof OpenAI.APIError || err instanceof SyntaxError;
}

/** An error answer whose message says the request cannot be streamed. */
function namesStreaming(err: unknown): boolean {
  return (
    err instanceof OpenAI.APIError &&
    err.status !== undefined &&
    err.status !== 401 &&
    err.status !== 403 &&
    err.status !== 429 &&
    /stream/i.test(err.message)
  );
}

/** Whether `err`, from a streamed request, means "send it again without streaming". */
export function cannotStream(err: unknown): boolean {
  return err instanceof StreamRefused || namesStreaming(err);
}

/** The worker's memory of endpoints that cannot stream, and the `stream` setting. */
export class StreamingMemory {
  private readonly refused = new Map<string, string>();

  /** `stream`: false makes every request a whole one (the `stream = false` setting). */
  constructor(private readonly stream = true) {}

  /** Whether to stream requests to `endpoint`. */
  streams(endpoint: string): boolean {
    return this.stream && !this.refused.has(endpoint);
  }

  /** Remembers that `endpoint` cannot stream; true the first time. */
  remember(endpoint: string, reason: string): boolean {
    if (this.refused.has(endpoint)) return false;
    this.refused.set(endpoint, reason);
    return true;
  }
}
