/**
 * The model activity: one Responses API call (or a Chat Completions call when the endpoint's
 * `api` is "chat", see chat-completions.ts). It rebuilds the request from the transcript
 * reference; streams it, or — for an endpoint that cannot stream (stream-support.ts) — sends it
 * whole; heartbeats on a timer all the while (a dead worker is noticed within the heartbeat
 * timeout); abandons a stream that sends nothing for the idle timeout, or a whole request that
 * takes five times as long (then Temporal retries); marks a tool call cut by the output token cap;
 * makes call ids unique in the transcript; and classifies errors at this edge. The Responses API
 * request and its events are responses-call.ts.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import OpenAI from 'openai';
import type { ModelCallInput, ModelReply, TranscriptRef } from '../shared/boundary/activity-types.js';
import type { TranscriptItem } from '../shared/prompt/items.js';
import type { AssembledReply } from './chat-completions.js';
import { buildChatRequest, completeChat, streamChatCompletion } from './chat-completions.js';
import { BackgroundMemory, backgroundProgress } from './background.js';
import { keepHeartbeating } from './heartbeat.js';
import { callResponses, cancelAtProvider } from './responses-call.js';
import { classifyModelError, withErrorBackoff } from './model-errors.js';
import type { ModelApi } from './openai-client.js';
import { StreamRefused, StreamingMemory, cannotStream } from './stream-support.js';
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
  /**
   * Work on the reply before the attempt completes (the reads beside it, index.ts), done while
   * the activity still heartbeats: a busy worker may take seconds, more than the timeout.
   */
  afterReply?: (input: ModelCallInput, reply: ModelReply) => Promise<ModelReply>;
}

/** Without a stream nothing arrives until the reply is whole: it may take this many idle timeouts. */
const WHOLE_REPLY_IDLE_FACTOR = 5;

class StreamIdle extends Error {
  override name = 'StreamIdle';
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
      if (!finished) stopHeartbeat();
      context.cancellationSignal.removeEventListener('abort', onCancel);
    }

    try {
      const cut = markCut(assembled, deps.maxOutputTokens);
      const reply = finishReply(context, input.model.name, {
        ...cut,
        output: uniqueCallIds(cut.output, items, input.turn),
      });
      deps.transcript.proposeReply(input, input.upTo, reply.output);
      return deps.afterReply ? await deps.afterReply(input, reply) : reply;
    } finally {
      stopHeartbeat();
    }
  };
}
