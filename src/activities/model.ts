/**
 * The model activity: one streamed Responses API call (or a Chat Completions call when the
 * endpoint's `api` is "chat", see chat-completions.ts). It rebuilds the request from the
 * transcript reference, heartbeats while the stream runs (a dead worker is noticed within the
 * heartbeat timeout), abandons a stream that sends nothing for the idle timeout (then Temporal
 * retries), and classifies errors at this edge.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import OpenAI from 'openai';
import type { ModelCallInput, ModelReply } from '../shared/activity-types.js';
import { buildChatRequest, streamChatCompletion } from './chat-completions.js';
import { keepHeartbeating } from './heartbeat.js';
import { classifyModelError } from './model-errors.js';
import { buildRequest, outputItems, usageOf } from './model-request.js';
import type { ModelApi } from './openai-client.js';
import type { TranscriptSource } from './transcript-source.js';

export interface ModelDeps {
  /** The configured client; throws a clear error when the worker has no model configuration. */
  openai: () => OpenAI;
  transcript: TranscriptSource;
  /** Stream idle timeout (ms) unless the session sets one. */
  streamIdleTimeoutMs: number;
  /** Which API the endpoint speaks (default: the Responses API); see chat-completions.ts. */
  api?: ModelApi;
}

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

export function createModelActivity(deps: ModelDeps) {
  return async function model(input: ModelCallInput): Promise<ModelReply> {
    const context = Context.current();
    const client = deps.openai();
    const endpoint = client.baseURL;
    const idleTimeoutMs = input.streamIdleTimeoutMs ?? deps.streamIdleTimeoutMs;
    const abort = new AbortController();
    const onCancel = () => abort.abort(context.cancellationSignal.reason);
    context.cancellationSignal.addEventListener('abort', onCancel, { once: true });

    const started = Date.now();
    /** Time of the last stream event; undefined until the request is sent. */
    let lastEventAt: number | undefined;
    let events = 0;
    let tokens = 0;
    const stopHeartbeat = keepHeartbeating(
      context,
      () => ({ turn: input.turn, events, tokens, elapsedMs: Date.now() - started }),
      () => {
        if (lastEventAt !== undefined && Date.now() - lastEventAt > idleTimeoutMs) {
          abort.abort(
            new StreamIdle(`the model stream sent nothing for ${Math.round(idleTimeoutMs / 1000)} s`),
          );
        }
      },
    );

    let completed: OpenAI.Responses.Response | undefined;
    let streaming = false;
    try {
      const entries = await deps.transcript.entries(input, input.upTo, input.tail);
      const items = entries.map((entry) => entry.item);
      if (deps.api === 'chat') {
        const request = buildChatRequest(input.model, items);
        lastEventAt = Date.now();
        const reply = await streamChatCompletion(client, request, abort.signal, {
          opened: () => (streaming = true),
          chunk: (text) => {
            lastEventAt = Date.now();
            events += 1;
            tokens += estimateTokens(text);
          },
        });
        const finished = finishReply(context, input.model.name, reply);
        deps.transcript.proposeReply(input, input.upTo, finished.output);
        return finished;
      }
      const send = (previous: { id: string; upTo: number } | undefined) => {
        const request = buildRequest(
          input.model,
          input.sessionId,
          previous ? items.slice(previous.upTo) : items,
        );
        return client.responses.create(
          { ...request, ...(previous ? { previous_response_id: previous.id } : {}), stream: true },
          { signal: abort.signal },
        );
      };
      const previous =
        input.previousResponse && input.previousResponse.upTo <= items.length
          ? input.previousResponse
          : undefined;
      lastEventAt = Date.now();
      let stream: Awaited<ReturnType<typeof send>>;
      try {
        stream = await send(previous);
      } catch (err) {
        // The provider no longer holds the response (expired, deleted, another project): send
        // the whole conversation instead.
        if (!previous || !isUnknownPreviousResponse(err)) throw err;
        Context.current().log.warn(
          'the provider does not know the previous response; sending the whole input',
          {
            previousResponseId: previous.id,
          },
        );
        lastEventAt = Date.now();
        stream = await send(undefined);
      }
      streaming = true;
      for await (const event of stream) {
        lastEventAt = Date.now();
        events += 1;
        switch (event.type) {
          case 'response.output_text.delta':
          case 'response.function_call_arguments.delta':
          case 'response.reasoning_summary_text.delta':
            tokens += estimateTokens(event.delta);
            break;
          case 'response.completed':
          case 'response.incomplete':
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
            break;
        }
      }
      // An aborted stream ends the loop without an error.
      if (abort.signal.aborted) throw abort.signal.reason;
    } catch (err) {
      if (context.cancellationSignal.aborted) throw context.cancellationSignal.reason;
      if (abort.signal.reason instanceof StreamIdle) {
        throw ApplicationFailure.retryable(abort.signal.reason.message, 'ModelStreamStalled');
      }
      if (
        streaming &&
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

    if (!completed) {
      throw ApplicationFailure.retryable(
        'the model stream ended before the response was complete',
        'ModelStreamCut',
      );
    }
    const reply = finishReply(context, input.model.name, {
      output: outputItems(completed.output),
      usage: usageOf(completed.usage),
      responseId: completed.id ?? null,
    });
    deps.transcript.proposeReply(input, input.upTo, reply.output);
    return reply;
  };
}
