/**
 * What a scripted model is told to do: the steps of its script (a reply, an HTTP error, a hang, a
 * cut stream, garbage, an empty response; compaction steps), what it records of each request, and
 * the options of its server. scripted-model.ts serves them.
 */
import type { BackgroundSupport } from './scripted-background.js';

/** One output item of a scripted reply. */
export type ScriptedOutput =
  | { type: 'message'; text: string }
  /** `arguments` given as an object is sent as its JSON text. */
  | { type: 'function_call'; name: string; arguments: string | Record<string, unknown>; callId?: string }
  | { type: 'reasoning'; summary?: string };

/** Token counts to report; each one left out is estimated (see `estimateInputTokens`). */
export interface ScriptedUsage {
  inputTokens?: number;
  outputTokens?: number;
  cachedTokens?: number;
  reasoningTokens?: number;
}

interface Timing {
  /** Wait this long before answering at all (no headers are sent meanwhile). */
  delayMs?: number;
}

interface StreamTiming extends Timing {
  /** Wait this long between server-sent events: a stream that is slow but alive. */
  chunkDelayMs?: number;
}

/** A normal reply: streamed as server-sent events when the request asks for `stream: true`, JSON otherwise. */
export interface ReplyStep extends StreamTiming {
  kind: 'reply';
  output: ScriptedOutput[];
  usage?: ScriptedUsage;
  /**
   * The reply ends as one cut by the request's output token cap: `response.incomplete` with
   * `incomplete_details.reason: "max_output_tokens"`, or chat's `finish_reason: "length"`.
   */
  cutByLimit?: boolean;
}

/** An HTTP error with OpenAI's error body: `{ error: { message, type, param, code } }`. */
export interface ErrorStep extends Timing {
  kind: 'error';
  status: number;
  /** Defaults to a message like OpenAI's for the status (or for `context_length_exceeded`). */
  message?: string;
  /** Defaults: 429 → `rate_limit_exceeded`, 401 → `invalid_api_key`, otherwise null. */
  code?: string | null;
  /** Defaults: 429 → `requests`, 5xx → `server_error`, otherwise `invalid_request_error`. */
  type?: string;
  param?: string | null;
  /** Extra response headers, e.g. `{ 'retry-after': '2' }`. */
  headers?: Record<string, string>;
}

/**
 * A stalled request. A streamed request gets its headers and `response.created`, then nothing; a
 * JSON request gets nothing at all. It ends when the client goes away, when the server closes, or
 * on `release()`: then, if `output` is given, the response carries on as a normal reply with that
 * output; without `output` a stream ends without `response.completed` and a JSON request's
 * connection is dropped.
 */
export interface HangStep extends StreamTiming {
  kind: 'hang';
  output?: ScriptedOutput[];
  usage?: ScriptedUsage;
}

/**
 * A broken connection. A streamed request gets the first `afterEvents` events of a normal reply
 * with `output` (default 5, and never the final `response.completed`), then the socket is
 * destroyed; a JSON request gets its headers and half of the body, then the socket is destroyed.
 */
export interface CutStep extends StreamTiming {
  kind: 'cut';
  afterEvents?: number;
  /** Defaults to one message. */
  output?: ScriptedOutput[];
}

/**
 * A 200 whose body is neither JSON nor a stream of JSON events (an HTML error page with a stray
 * `data:` line). The `openai` client throws a SyntaxError in both modes.
 */
export interface GarbageStep extends Timing {
  kind: 'garbage';
}

/** A completed response with no output items. */
export interface EmptyStep extends StreamTiming {
  kind: 'empty';
  usage?: ScriptedUsage;
}

export type ScriptStep = ReplyStep | ErrorStep | HangStep | CutStep | GarbageStep | EmptyStep;

/** An explicit compaction answer; `summary` replaces the default text inside the compaction item. */
export interface CompactStep extends Timing {
  kind: 'compact';
  summary?: string;
  usage?: ScriptedUsage;
}

/**
 * A step for `POST /v1/responses/compact`. A hang there holds the request (no headers) until the
 * client goes away, the server closes, or `release()`, which then answers with the default
 * compaction.
 */
export type CompactionStep = CompactStep | ErrorStep | (Timing & { kind: 'hang' });

export interface RecordedRequest {
  /** 1-based, in arrival order over all paths. */
  index: number;
  /** The URL path without the query, e.g. `/v1/responses`. */
  path: string;
  method: string;
  headers: Record<string, string | string[] | undefined>;
  /** The parsed JSON body; the raw text when it is not JSON; undefined when the body is empty. */
  body: unknown;
  rawBytes: number;
  /** `Date.now()` when the body had been read. */
  receivedAt: number;
  /**
   * For `/v1/responses`: the whole conversation the request stands for. With
   * `previous_response_id` that is the stored response's input and output followed by this
   * request's input; otherwise the input itself.
   */
  conversation?: unknown[];
  /** For a request answered with a scripted reply: the output items sent. */
  output?: unknown[];
}

export interface ScriptedModelOptions {
  /**
   * Answers `/v1/responses` requests while the queue is empty; returning undefined counts as an
   * exhausted script.
   */
  responder?: (request: RecordedRequest) => ScriptStep | undefined;
  /** Whether `/v1/responses/compact` exists (default 'supported'); 'unsupported' answers 404. */
  compact?: 'supported' | 'unsupported';
  /**
   * How a request with `stream: true` is answered, without using a script step: 'supported'
   * (default) streams; 'empty' sends the stream's headers and ends it without an event (as
   * llama-cpp-python's server does when asked to stream with tools); 'refused' answers 400 with
   * an error that says streaming is not supported.
   */
  streaming?: 'supported' | 'empty' | 'refused';
  /**
   * Checks chat request bodies as a pydantic-validated server (llama-cpp-python) does, and
   * answers 500 with "N validation errors …" for a message shape it refuses (see
   * `strictChatProblems`).
   */
  strictChat?: boolean;
  /** How `background: true` is treated (default 'supported'); see scripted-background.ts. */
  background?: BackgroundSupport;
  /** How long a background response can be retrieved (default ten minutes, as OpenAI keeps them). */
  backgroundTtlMs?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
}

/** One step, as a failure message names it. */
export function describeStep(step: ScriptStep | CompactionStep): string {
  switch (step.kind) {
    case 'reply':
      return `reply [${step.output
        .map((item) =>
          item.type === 'message'
            ? `message ${JSON.stringify(item.text.slice(0, 40))}`
            : item.type === 'function_call'
              ? `function_call ${item.name}`
              : 'reasoning',
        )
        .join(', ')}]`;
    case 'error':
      return `error ${step.status}${step.code ? ` (${step.code})` : ''}`;
    case 'compact':
      return 'compact';
    default:
      return step.kind;
  }
}
