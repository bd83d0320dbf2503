/**
 * One Responses API call, as the model activity makes it: the request (the whole transcript, or
 * only what follows `previous_response_id` — the whole again when the provider has lost that
 * response), streamed or whole, in background mode or re-attached to a background response a lost
 * attempt created (background.ts), its events consumed to the completed response. The activity
 * (model.ts) owns heartbeats, timeouts and error classification around it.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import OpenAI from 'openai';
import type { ModelCallInput, TranscriptRef } from '../shared/boundary/activity-types.js';
import type { TranscriptItem } from '../shared/prompt/items.js';
import type { AssembledReply } from './chat-completions.js';
import type { BackgroundMemory, BackgroundProgress } from './background.js';
import { cannotReattach, refusesBackground } from './background.js';
import { buildRequest, outputItems, usageOf } from './model-request.js';
import { StreamRefused, isAnswer } from './stream-support.js';

/** How long cancelling a background response at the provider may take before it is left to expire. */
const CANCEL_TIMEOUT_MS = 5_000;

function isUnknownPreviousResponse(err: unknown): boolean {
  return (
    err instanceof OpenAI.APIError &&
    err.status === 400 &&
    (err.code === 'previous_response_not_found' || err.param === 'previous_response_id')
  );
}

/** Cancels a background response (best effort: one that is not cancelled expires). */
export async function cancelAtProvider(client: OpenAI, responseId: string): Promise<void> {
  const log = Context.current().log;
  try {
    await client.responses.cancel(responseId, { timeout: CANCEL_TIMEOUT_MS });
    log.info('cancelled the background response at the provider', { responseId });
  } catch (err) {
    log.warn('could not cancel the background response at the provider', {
      responseId,
      reason: err instanceof Error ? err.message : String(err),
    });
  }
}

export interface ResponsesObserver {
  /** The response headers arrived. */
  opened(): void;
  /** A stream event arrived, carrying `text` (maybe ''). */
  event(text: string): void;
  /** The request is sent again (the whole input instead of a previous response). */
  resent(): void;
  /** Where the background response stands (undefined: there is none to re-attach to). */
  progress(progress: BackgroundProgress | undefined): void;
}

/** Background mode for one call (see background.ts). */
export interface BackgroundCall {
  /** Where the previous attempt left the response, from its heartbeat details. */
  resume: BackgroundProgress | undefined;
  memory: BackgroundMemory;
  endpoint: string;
}

const FINISHED = new Set(['completed', 'incomplete']);

/**
 * The events of a streamed response, to its end: the completed (or incomplete) response. Sequence
 * numbers of a background response are reported as its progress. `refusable`: a stream that ends
 * or breaks before its first event is a StreamRefused (the endpoint may not stream).
 */
async function consume(
  events: AsyncIterable<OpenAI.Responses.ResponseStreamEvent>,
  signal: AbortSignal,
  observer: ResponsesObserver,
  refusable: boolean,
  reattached?: string,
): Promise<OpenAI.Responses.Response | undefined> {
  let completed: OpenAI.Responses.Response | undefined;
  let backgroundId = reattached;
  let count = 0;
  try {
    for await (const event of events) {
      count += 1;
      if (backgroundId === undefined && 'response' in event && event.response.background === true) {
        backgroundId = event.response.id;
      }
      if (backgroundId !== undefined && typeof event.sequence_number === 'number') {
        observer.progress({ responseId: backgroundId, after: event.sequence_number });
      }
      switch (event.type) {
        case 'response.output_text.delta':
        case 'response.function_call_arguments.delta':
        case 'response.reasoning_summary_text.delta':
          observer.event(event.delta);
          break;
        case 'response.completed':
        case 'response.incomplete':
          observer.event('');
          completed = event.response;
          break;
        case 'response.failed':
          throw ApplicationFailure.retryable(
            `the model reported a failed response: ${event.response.error?.message ?? 'no reason given'}`,
            'ModelResponseFailed',
          );
        case 'error':
          throw ApplicationFailure.retryable(
            `the model stream reported an error: ${event.message}`,
            'ModelStreamFailed',
          );
        default:
          observer.event('');
          break;
      }
    }
  } catch (err) {
    if (refusable && count === 0 && !signal.aborted && !isAnswer(err)) throw new StreamRefused(err);
    throw err;
  }
  // An aborted stream ends the loop without an error.
  if (signal.aborted) throw signal.reason;
  if (refusable && count === 0) throw new StreamRefused();
  return completed;
}

/**
 * Re-attaches to a background response an earlier attempt created: its status, then the events
 * after the last one that attempt saw. Undefined when it cannot be (gone, failed, cancelled, or an
 * endpoint that cannot retrieve responses): the caller sends the request afresh.
 */
async function reattach(
  client: OpenAI,
  resume: BackgroundProgress,
  signal: AbortSignal,
  observer: ResponsesObserver,
): Promise<OpenAI.Responses.Response | undefined> {
  const log = Context.current().log;
  let current: OpenAI.Responses.Response;
  try {
    current = await client.responses.retrieve(resume.responseId, {}, { signal });
  } catch (err) {
    if (signal.aborted || !cannotReattach(err)) throw err;
    log.warn('the background response cannot be retrieved; sending the request again', {
      responseId: resume.responseId,
      reason: err instanceof Error ? err.message : String(err),
    });
    return undefined;
  }
  observer.opened();
  if (FINISHED.has(current.status ?? '')) {
    log.info('re-attached to a finished background response', { responseId: resume.responseId });
    observer.event('');
    return current;
  }
  if (current.status !== 'queued' && current.status !== 'in_progress') {
    log.warn('the background response ended without a reply; sending the request again', {
      responseId: resume.responseId,
      status: current.status,
    });
    return undefined;
  }
  log.info('re-attaching to the background response', resume);
  const events = await client.responses.retrieve(
    resume.responseId,
    { stream: true, starting_after: resume.after },
    { signal },
  );
  return consume(events, signal, observer, false, resume.responseId);
}

/**
 * One Responses API call, streamed or whole. With provider state the request names the previous
 * response; when the provider no longer holds it (expired, deleted, another project), the whole
 * conversation is sent instead. With `background` the streamed response is created in background
 * mode, or re-attached to (background.ts).
 */
export async function callResponses(
  client: OpenAI,
  input: ModelCallInput & TranscriptRef,
  items: readonly TranscriptItem[],
  stream: boolean,
  maxOutputTokens: number | undefined,
  signal: AbortSignal,
  observer: ResponsesObserver,
  background?: BackgroundCall,
): Promise<AssembledReply> {
  const body = (previous: { id: string; upTo: number } | undefined) => ({
    ...buildRequest(
      input.model,
      input.sessionId,
      previous ? items.slice(previous.upTo) : items,
      maxOutputTokens,
      input.agentTools === true,
    ),
    ...(previous ? { previous_response_id: previous.id } : {}),
  });
  const previous =
    input.previousResponse && input.previousResponse.upTo <= items.length
      ? input.previousResponse
      : undefined;
  const withFallback = async <T>(send: (p: typeof previous) => Promise<T>): Promise<T> => {
    try {
      return await send(previous);
    } catch (err) {
      if (!previous || !isUnknownPreviousResponse(err)) throw err;
      Context.current().log.warn(
        'the provider does not know the previous response; sending the whole input',
        {
          previousResponseId: previous.id,
        },
      );
      observer.resent();
      return send(undefined);
    }
  };

  let completed: OpenAI.Responses.Response | undefined;
  if (!stream) {
    completed = await withFallback((p) => client.responses.create({ ...body(p), stream: false }, { signal }));
  } else if (background && background.memory.supports(background.endpoint)) {
    if (background.resume) completed = await reattach(client, background.resume, signal, observer);
    if (!completed) {
      observer.progress(undefined);
      let events: AsyncIterable<OpenAI.Responses.ResponseStreamEvent>;
      try {
        events = await withFallback((p) =>
          client.responses.create({ ...body(p), stream: true, background: true }, { signal }),
        );
      } catch (err) {
        if (signal.aborted || !refusesBackground(err)) throw err;
        if (background.memory.remember(background.endpoint)) {
          Context.current().log.warn(
            'the endpoint does not take background requests; this worker sends it ordinary ones from now on',
            { endpoint: background.endpoint, reason: err instanceof Error ? err.message : String(err) },
          );
        }
        events = await withFallback((p) => client.responses.create({ ...body(p), stream: true }, { signal }));
      }
      observer.opened();
      completed = await consume(events, signal, observer, true);
    }
  } else {
    const events = await withFallback((p) =>
      client.responses.create({ ...body(p), stream: true }, { signal }),
    );
    observer.opened();
    completed = await consume(events, signal, observer, true);
  }
  if (!completed) {
    throw ApplicationFailure.retryable(
      'the model stream ended before the response was complete',
      'ModelStreamCut',
    );
  }
  return {
    reply: {
      output: outputItems(completed.output),
      usage: usageOf(completed.usage),
      responseId: completed.id ?? null,
    },
    cut: completed.status === 'incomplete' && completed.incomplete_details?.reason === 'max_output_tokens',
  };
}
