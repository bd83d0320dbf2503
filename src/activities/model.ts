/**
 * The model activity: one Responses API call (or a Chat Completions call when the endpoint's
 * `api` is "chat", see chat-completions.ts). It rebuilds the request from the transcript
 * reference; streams it, or — for an endpoint that cannot stream (stream-support.ts) — sends it
 * whole; heartbeats on a timer all the while (a dead worker is noticed within the heartbeat
 * timeout); abandons a stream that sends nothing for the idle timeout, or a whole request that
 * takes five times as long (then Temporal retries); marks a tool call cut by the output token cap;
 * makes call ids unique in the transcript; and classifies errors at this edge.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import OpenAI from 'openai';
import type { ModelCallInput, ModelReply, TranscriptRef } from '../shared/boundary/activity-types.js';
import type { TranscriptItem } from '../shared/prompt/items.js';
import type { AssembledReply } from './chat-completions.js';
import { buildChatRequest, completeChat, streamChatCompletion } from './chat-completions.js';
import type { BackgroundProgress } from './background.js';
import { BackgroundMemory, backgroundProgress, cannotReattach, refusesBackground } from './background.js';
import { keepHeartbeating } from './heartbeat.js';
import { classifyModelError, withErrorBackoff } from './model-errors.js';
import { buildRequest, outputItems, usageOf } from './model-request.js';
import type { ModelApi } from './openai-client.js';
import { StreamRefused, StreamingMemory, cannotStream, isAnswer } from './stream-support.js';
import type { TranscriptSource } from './transcript-source.js';

export interface ModelDeps {
  /** The configured client; throws a clear error when the worker has no model configuration. */
  openai: () => OpenAI;
  transcript: TranscriptSource;
  /** Stream idle timeout (ms) unless the session sets one. */
  streamIdleTimeoutMs: number;
  /** Which API the endpoint speaks (default: the Responses API); see chat-completions.ts. */
  api?: ModelApi;
  /** Cap on each reply's tokens (`max_output_tokens`, chat `max_tokens`); none when undefined. */
  maxOutputTokens?: number;
  /** Which endpoints stream (shared by the worker's model activities); default: a fresh memory. */
  streaming?: StreamingMemory;
  /** Which endpoints refused background mode (shared likewise); default: a fresh memory. */
  backgroundMemory?: BackgroundMemory;
}

/** How long cancelling a background response at the provider may take before it is left to expire. */
const CANCEL_TIMEOUT_MS = 5_000;

/** Without a stream nothing arrives until the reply is whole: it may take this many idle timeouts. */
const WHOLE_REPLY_IDLE_FACTOR = 5;

class StreamIdle extends Error {
  override name = 'StreamIdle';
}

function isUnknownPreviousResponse(err: unknown): boolean {
  return (
    err instanceof OpenAI.APIError &&
    err.status === 400 &&
    (err.code === 'previous_response_not_found' || err.param === 'previous_response_id')
  );
}

/**
 * Call ids as the transcript needs them: present and unique. Some servers leave them out, or
 * number every reply's calls from the same start (`call_0` each turn); a repeated id would pair a
 * call with another call's output. A missing or repeated id gets a new one.
 */
export function uniqueCallIds(
  output: readonly TranscriptItem[],
  earlier: readonly TranscriptItem[],
  turn: number,
): TranscriptItem[] {
  const seen = new Set(earlier.flatMap((item) => (item.type === 'function_call' ? [item.call_id] : [])));
  return output.map((item, index) => {
    if (item.type !== 'function_call') return item;
    let id = item.call_id;
    for (let n = 0; !id || seen.has(id); n++)
      id = `${item.call_id || 'call'}_t${turn}_${index}${n ? `_${n}` : ''}`;
    seen.add(id);
    return id === item.call_id ? item : { ...item, call_id: id };
  });
}

/**
 * A reply cut by the output token cap: its last tool call (when the cut fell in one) is marked
 * `incomplete`, which the workflow reports to the model instead of running it. A reply cut before
 * any text or call cannot go on: non-retryable, naming the setting.
 */
function markCut(assembled: AssembledReply, cap: number | undefined): ModelReply {
  const { reply } = assembled;
  if (!assembled.cut) return reply;
  const output = [...reply.output];
  const last = output.at(-1);
  if (last?.type === 'function_call') output[output.length - 1] = { ...last, status: 'incomplete' };
  if (!output.some((item) => item.type === 'message' || item.type === 'function_call')) {
    throw ApplicationFailure.nonRetryable(
      `the reply reached the output token limit${cap !== undefined ? ` (max_output_tokens = ${cap})` : ''} ` +
        'before any text or tool call: raise max_output_tokens (RATCHET_MAX_OUTPUT_TOKENS) on the worker',
      'ModelOutputLimit',
    );
  }
  return { ...reply, output };
}

function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/** Counts the reply's tokens in the worker's metrics and refuses a reply with nothing to act on. */
function finishReply(context: Context, modelName: string, reply: ModelReply): ModelReply {
  const { usage, output } = reply;
  // The worker's runtime exports it (Prometheus when configured).
  const tokenCounter = context.metricMeter.createCounter(
    'ratchet_model_tokens',
    'tokens',
    'Model tokens by kind',
  );
  const tags = { model: modelName };
  tokenCounter.add(usage.inputTokens, { ...tags, kind: 'input' });
  tokenCounter.add(usage.cachedInputTokens, { ...tags, kind: 'cached_input' });
  tokenCounter.add(usage.outputTokens, { ...tags, kind: 'output' });
  if (!output.some((item) => item.type === 'message' || item.type === 'function_call')) {
    throw ApplicationFailure.retryable('the model returned an empty response', 'ModelEmptyResponse');
  }
  return reply;
}

/**
 * The session leaves its own id out of the model call's input (it would be in every turn's
 * history): it is the id of the workflow that scheduled the activity.
 */
function sessionIdOf(input: ModelCallInput): string {
  const sessionId = input.sessionId ?? Context.current().info.workflowExecution?.workflowId;
  if (sessionId === undefined) {
    throw ApplicationFailure.nonRetryable('a model call needs a session: none in its input or its workflow');
  }
  return sessionId;
}

export function createModelActivity(deps: ModelDeps) {
  const streaming = deps.streaming ?? new StreamingMemory();
  const backgroundMemory = deps.backgroundMemory ?? new BackgroundMemory();
  const callModel = createModelCall(deps, streaming, backgroundMemory);
  return async function model(input: ModelCallInput): Promise<ModelReply> {
    try {
      return await callModel({ ...input, sessionId: sessionIdOf(input) });
    } catch (err) {
      if (err instanceof ApplicationFailure) throw withErrorBackoff(err, Context.current().info.attempt);
      throw err;
    }
  };
}

function createModelCall(deps: ModelDeps, streaming: StreamingMemory, backgroundMemory: BackgroundMemory) {
  return async function callModel(input: ModelCallInput & TranscriptRef): Promise<ModelReply> {
    const context = Context.current();
    const client = deps.openai();
    const endpoint = client.baseURL;
    const idleTimeoutMs = input.streamIdleTimeoutMs ?? deps.streamIdleTimeoutMs;
    const abort = new AbortController();
    const onCancel = () => abort.abort(context.cancellationSignal.reason);
    context.cancellationSignal.addEventListener('abort', onCancel, { once: true });

    const started = Date.now();
    /** Time of the last stream event (or of sending a whole request); undefined until sent. */
    let lastEventAt: number | undefined;
    let events = 0;
    let tokens = 0;
    /** Whether the request in flight is streamed. */
    let streamed = true;
    const useBackground = input.model.background === true && deps.api !== 'chat';
    /** The background response to re-attach to: an earlier attempt's, then this one's. */
    let progress = useBackground ? backgroundProgress(context.info.heartbeatDetails) : undefined;
    /** Whether the background response has finished (nothing left to cancel). */
    let finished = false;
    const stopHeartbeat = keepHeartbeating(
      context,
      () => ({
        turn: input.turn,
        events,
        tokens,
        elapsedMs: Date.now() - started,
        streamed,
        ...(progress ? { background: progress } : {}),
      }),
      () => {
        const limitMs = streamed ? idleTimeoutMs : idleTimeoutMs * WHOLE_REPLY_IDLE_FACTOR;
        if (lastEventAt !== undefined && Date.now() - lastEventAt > limitMs) {
          abort.abort(
            new StreamIdle(
              streamed
                ? `the model stream sent nothing for ${Math.round(limitMs / 1000)} s`
                : `the model sent no reply for ${Math.round(limitMs / 1000)} s (not streaming)`,
            ),
          );
        }
      },
    );
    const onEvent = (text: string) => {
      lastEventAt = Date.now();
      events += 1;
      tokens += estimateTokens(text);
    };

    let opened = false;
    let items: TranscriptItem[] = [];
    const call = async (stream: boolean): Promise<AssembledReply> => {
      streamed = stream;
      opened = false;
      lastEventAt = Date.now();
      if (deps.api === 'chat') {
        const request = buildChatRequest(input.model, items, {
          stream,
          maxOutputTokens: deps.maxOutputTokens,
          ...(input.agentTools ? { agents: true } : {}),
        });
        return stream
          ? streamChatCompletion(client, request, abort.signal, {
              opened: () => (opened = true),
              chunk: onEvent,
            })
          : completeChat(client, request, abort.signal);
      }
      return callResponses(
        client,
        input,
        items,
        stream,
        deps.maxOutputTokens,
        abort.signal,
        {
          opened: () => (opened = true),
          event: onEvent,
          resent: () => (lastEventAt = Date.now()),
          progress: (next) => {
            const first = next !== undefined && next.responseId !== progress?.responseId;
            progress = next;
            // The id reaches the server at once, so that a worker lost now is re-attached to it.
            if (first) context.heartbeat({ turn: input.turn, events, tokens, streamed, background: next });
          },
        },
        useBackground ? { resume: progress, memory: backgroundMemory, endpoint } : undefined,
      );
    };

    let assembled: AssembledReply;
    try {
      const entries = await deps.transcript.entries(input, input.upTo, input.tail);
      items = entries.map((entry) => entry.item);
      const stream = streaming.streams(endpoint);
      try {
        assembled = await call(stream);
      } catch (err) {
        if (!stream || abort.signal.aborted || !cannotStream(err)) throw err;
        const reason = err instanceof Error ? err.message : String(err);
        context.log.warn('the endpoint did not stream; sending the request whole', { endpoint, reason });
        assembled = await call(false);
        if (streaming.remember(endpoint, reason)) {
          context.log.warn('this worker sends whole requests to the endpoint from now on', { endpoint });
        }
      }
      finished = true;
    } catch (err) {
      if (
        progress &&
        !finished &&
        (context.cancellationSignal.aborted || abort.signal.reason instanceof StreamIdle)
      ) {
        // Interrupted: the provider stops generating. Stalled: the retry starts afresh (it finds
        // the response cancelled) rather than re-attaching to a generation that may be stuck.
        await cancelAtProvider(client, progress.responseId);
      }
      if (context.cancellationSignal.aborted) throw context.cancellationSignal.reason;
      if (abort.signal.reason instanceof StreamIdle) {
        throw ApplicationFailure.retryable(abort.signal.reason.message, 'ModelStreamStalled');
      }
      if (err instanceof StreamRefused) {
        throw ApplicationFailure.retryable(err.message, 'ModelStreamCut');
      }
      if (
        streamed &&
        opened &&
        !(err instanceof ApplicationFailure || err instanceof OpenAI.APIError || err instanceof SyntaxError)
      ) {
        // The connection broke under the stream (undici throws a bare TypeError "terminated").
        throw ApplicationFailure.create({
          type: 'ModelStreamCut',
          nonRetryable: false,
          message: `the model stream broke off after ${events} events: ${err instanceof Error ? err.message : String(err)}`,
          cause: err instanceof Error ? err : undefined,
        });
      }
      throw classifyModelError(err, endpoint);
    } finally {
      stopHeartbeat();
      context.cancellationSignal.removeEventListener('abort', onCancel);
    }

    const cut = markCut(assembled, deps.maxOutputTokens);
    const reply = finishReply(context, input.model.name, {
      ...cut,
      output: uniqueCallIds(cut.output, items, input.turn),
    });
    deps.transcript.proposeReply(input, input.upTo, reply.output);
    return reply;
  };
}

/** Cancels a background response (best effort: one that is not cancelled expires). */
async function cancelAtProvider(client: OpenAI, responseId: string): Promise<void> {
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

interface ResponsesObserver {
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
interface BackgroundCall {
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
async function callResponses(
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
