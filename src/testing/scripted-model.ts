/**
 * A scripted model: a loopback HTTP server that speaks the OpenAI Responses API (JSON bodies and
 * server-sent events) and answers from a script instead of a model. End-to-end tests, the
 * benchmarks and `ratchet demo` point the real `openai` client at it through `baseURL`, so the
 * whole path (request building, streaming, error classification) runs as it does in production.
 *
 * Besides well-formed replies it can fail the way real endpoints fail: HTTP errors with OpenAI's
 * error body (429 with retry-after, 5xx, 401, context-length 400), a stream that stalls, a stream
 * cut mid-way, a body that does not parse, an empty response. A request the script has no answer
 * for gets a 500 and is remembered, so that `assertDone()` fails the test loudly.
 *
 * Background mode (`background: true`) is implemented as OpenAI has it, in scripted-background.ts:
 * the response is generated on the server whatever becomes of the connection, and can be
 * retrieved, re-attached to from a sequence number, cancelled, and expires.
 *
 * `/v1/chat/completions` answers from the same queue of steps in the Chat Completions format
 * (scripted-chat.ts), so whole sessions can run with `api = "chat"`.
 *
 * Request numbers are 1-based and count every request the server receives, in arrival order
 * (`/v1/responses`, `/v1/responses/compact`, `/v1/chat/completions`, and requests to unknown
 * paths alike):
 * `requests[n - 1].index === n`.
 */
import { Buffer } from 'node:buffer';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BackgroundSupport, Follower } from './scripted-background.js';
import { BackgroundResponse } from './scripted-background.js';
import { chatCompletionPlan, strictChatProblems } from './scripted-chat.js';
import { chunks, estimateInputTokens, nowSeconds, tokensOf } from './scripted-text.js';

export { estimateInputTokens };
import type {
  Response as ApiResponse,
  ResponseContentPartAddedEvent,
  ResponseContentPartDoneEvent,
  ResponseFunctionCallArgumentsDeltaEvent,
  ResponseFunctionCallArgumentsDoneEvent,
  ResponseFunctionToolCall,
  ResponseOutputItem,
  ResponseOutputItemAddedEvent,
  ResponseOutputItemDoneEvent,
  ResponseOutputMessage,
  ResponseReasoningItem,
  ResponseReasoningSummaryPartAddedEvent,
  ResponseReasoningSummaryPartDoneEvent,
  ResponseReasoningSummaryTextDeltaEvent,
  ResponseReasoningSummaryTextDoneEvent,
  ResponseTextDeltaEvent,
  ResponseTextDoneEvent,
  ResponseUsage,
} from 'openai/resources/responses/responses';
import { sleep } from '../shared/util/sleep.js';

// ---------------------------------------------------------------------------------------------
// Script

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

// ---------------------------------------------------------------------------------------------
// Wire shapes

/** A response as sent on the wire: `output_text` is computed by the SDK, and `usage` is null until completion. */
type WireResponse = Omit<ApiResponse, 'output_text' | 'usage'> & { usage: ResponseUsage | null };

type Unsequenced<T> = T extends unknown ? Omit<T, 'sequence_number'> : never;

type StreamEvent =
  | {
      type:
        | 'response.created'
        | 'response.queued'
        | 'response.in_progress'
        | 'response.completed'
        | 'response.incomplete';
      response: WireResponse;
    }
  | Unsequenced<
      | ResponseOutputItemAddedEvent
      | ResponseOutputItemDoneEvent
      | ResponseContentPartAddedEvent
      | ResponseContentPartDoneEvent
      | ResponseTextDeltaEvent
      | ResponseTextDoneEvent
      | ResponseFunctionCallArgumentsDeltaEvent
      | ResponseFunctionCallArgumentsDoneEvent
      | ResponseReasoningSummaryPartAddedEvent
      | ResponseReasoningSummaryPartDoneEvent
      | ResponseReasoningSummaryTextDeltaEvent
      | ResponseReasoningSummaryTextDoneEvent
    >;

/**
 * A reply worked out in full before anything is sent: the final response (for a JSON request) and
 * its server-sent events, serialised. A cut stream sends fewer than `cutLimit` events, so the
 * event that completes the reply is never among them.
 */
export interface Plan {
  response: unknown;
  events: string[];
  cutLimit: number;
}

/** Builds a reply's plan from a request body, the scripted output and usage. */
type Planner = (
  body: RequestBody,
  output: readonly ScriptedOutput[],
  usage: ScriptedUsage | undefined,
  cutByLimit?: boolean,
) => Plan;

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

type RequestBody = Record<string, unknown>;

/** One request being answered. `signal` aborts when the connection closes (client gone, or `close()`). */
interface Exchange {
  res: ServerResponse;
  signal: AbortSignal;
  record: RecordedRequest;
  requestId: string;
}

interface Waiter {
  count: number;
  resolve: (request: RecordedRequest) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

const GARBAGE = '<html>\n<body>502 Bad Gateway (scripted garbage)</body>\n</html>\ndata: {not json\n\n';
const DEFAULT_CUT_EVENTS = 5;
const DEFAULT_CUT_OUTPUT: ScriptedOutput[] = [
  { type: 'message', text: 'This reply is cut off before it completes.' },
];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Writes and waits until the chunk is handed to the socket; false when the connection is gone. */
function writeChunk(res: ServerResponse, chunk: string, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted || res.writableEnded || res.destroyed) {
      resolve(false);
      return;
    }
    const onAbort = () => resolve(false);
    signal.addEventListener('abort', onAbort, { once: true });
    res.write(chunk, (err) => {
      signal.removeEventListener('abort', onAbort);
      resolve(!err);
    });
  });
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const parts: Buffer[] = [];
  try {
    for await (const part of req) parts.push(part as Buffer);
  } catch {
    return undefined;
  }
  return Buffer.concat(parts);
}

function defaultError(status: number, code: string | null | undefined): ErrorBody['error'] {
  if (code === 'context_length_exceeded') {
    return {
      message: 'Your input exceeds the context window of this model. Please adjust your input and try again.',
      type: 'invalid_request_error',
      param: 'input',
      code,
    };
  }
  if (status === 401) {
    return {
      message: 'Incorrect API key provided: test-key.',
      type: 'invalid_request_error',
      param: null,
      code: code === undefined ? 'invalid_api_key' : code,
    };
  }
  if (status === 429) {
    return {
      message: 'Rate limit reached for requests. Please try again later.',
      type: 'requests',
      param: null,
      code: code === undefined ? 'rate_limit_exceeded' : code,
    };
  }
  if (status === 503) {
    return {
      message: 'The server is overloaded or not ready yet.',
      type: 'server_error',
      param: null,
      code: code ?? null,
    };
  }
  if (status >= 500) {
    return {
      message: 'The server had an error while processing your request.',
      type: 'server_error',
      param: null,
      code: code ?? null,
    };
  }
  return {
    message: `scripted error ${status}`,
    type: 'invalid_request_error',
    param: null,
    code: code ?? null,
  };
}

/** The request's input as a list of items (a string input is one user message). */
function inputItems(input: unknown): unknown[] {
  if (typeof input === 'string') return [{ type: 'message', role: 'user', content: input }];
  return Array.isArray(input) ? input : [];
}

function describeStep(step: ScriptStep | CompactionStep): string {
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

// ---------------------------------------------------------------------------------------------
// Server

export class ScriptedModel {
  /** The base URL for the `openai` client (what OPENAI_BASE_URL gets), e.g. `http://127.0.0.1:41234/v1`. */
  readonly baseUrl: string;
  /** Every request received, in order, recorded before it is answered. */
  readonly requests: RecordedRequest[] = [];

  private readonly queue: ScriptStep[] = [];
  private readonly compactions: CompactionStep[] = [];
  private readonly problems: string[] = [];
  private readonly hung = new Set<() => void>();
  private readonly handlers = new Set<Promise<void>>();
  private readonly waiters = new Set<Waiter>();
  private readonly counters = new Map<string, number>();
  /** Responses created with `store` not false, by id: what `previous_response_id` refers to. */
  private readonly stored = new Map<string, { conversation: unknown[]; output: unknown[] }>();
  private closing: Promise<void> | undefined;
  private readonly closed = new AbortController();
  /** Background responses, in order of creation. */
  readonly backgroundResponses: BackgroundResponse[] = [];
  private generationCount = 0;

  private constructor(
    private readonly server: Server,
    baseUrl: string,
    private readonly options: ScriptedModelOptions,
  ) {
    this.baseUrl = baseUrl;
  }

  /** Starts a server on a free loopback port. */
  static async start(options: ScriptedModelOptions = {}): Promise<ScriptedModel> {
    const host = options.host ?? '127.0.0.1';
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const { port } = server.address() as AddressInfo;
    const urlHost = host.includes(':') ? `[${host}]` : host;
    const model = new ScriptedModel(server, `http://${urlHost}:${port}/v1`, options);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => model.track(req, res));
    return model;
  }

  /** Queues steps for `/v1/responses` and `/v1/chat/completions`, answered in order. */
  enqueue(...steps: ScriptStep[]): this {
    this.queue.push(...steps);
    return this;
  }

  /** Queues a reply with one message. */
  reply(text: string): this {
    return this.enqueue({ kind: 'reply', output: [{ type: 'message', text }] });
  }

  /** Queues a reply with one function call. */
  call(name: string, args: Record<string, unknown>, callId?: string): this {
    return this.enqueue({
      kind: 'reply',
      output: [{ type: 'function_call', name, arguments: args, ...(callId !== undefined ? { callId } : {}) }],
    });
  }

  /**
   * Queues steps for `/v1/responses/compact`. This queue is separate from the reply queue, so a
   * compaction never takes a reply meant for a model call; while it is empty, each compaction gets
   * the default answer (the user messages and a compaction item).
   */
  enqueueCompaction(...steps: CompactionStep[]): this {
    this.compactions.push(...steps);
    return this;
  }

  /** Reply steps not yet consumed (compaction steps are not counted; `assertDone` checks both). */
  get remaining(): number {
    return this.queue.length;
  }

  /**
   * Replies the model has generated: one for each reply, hang, cut or empty step answered (a
   * request sent again is a second generation; re-attaching to a background response is not).
   */
  get generations(): number {
    return this.generationCount;
  }

  /** The background response with this id, if it was created. */
  backgroundResponse(id: string): BackgroundResponse | undefined {
    return this.backgroundResponses.find((response) => response.id === id);
  }

  /** Makes background responses gone (404) from now on, as when the provider's retention ends. */
  expireBackground(): void {
    for (const response of this.backgroundResponses) response.expire();
  }

  /** Requests currently held by a `hang` step. */
  get hanging(): number {
    return this.hung.size;
  }

  /** Requests whose answer has not finished (including hung ones). */
  get inFlight(): number {
    return this.handlers.size;
  }

  /** Resolves with the `count`-th request (1-based, over all paths) once it has arrived. */
  waitForRequest(count: number, timeoutMs = 10_000): Promise<RecordedRequest> {
    const arrived = this.requests[count - 1];
    if (arrived) return Promise.resolve(arrived);
    if (this.closing) return Promise.reject(new Error('scripted model: closed'));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        count,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(
            new Error(
              `scripted model: request ${count} did not arrive within ${timeoutMs} ms (${this.requests.length} arrived)`,
            ),
          );
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /**
   * Lets every currently hung request go on (see `HangStep`); steps that hang later are not
   * affected. Returns how many were released.
   */
  release(): number {
    const waiting = [...this.hung];
    this.hung.clear();
    for (const go of waiting) go();
    return waiting.length;
  }

  /** Throws when steps are left unconsumed or a request found no reply (or the server failed). */
  assertDone(): void {
    const lines = [...this.problems];
    if (this.queue.length > 0) {
      lines.push(
        `${this.queue.length} reply step(s) not consumed: ${this.queue.map(describeStep).join('; ')}`,
      );
    }
    if (this.compactions.length > 0) {
      lines.push(
        `${this.compactions.length} compaction step(s) not consumed: ${this.compactions.map(describeStep).join('; ')}`,
      );
    }
    if (lines.length > 0) throw new Error(`scripted model: script not done\n  ${lines.join('\n  ')}`);
  }

  /** Stops the server: open connections (hung ones included) are destroyed, pending waits rejected. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const waiter of this.waiters) {
        clearTimeout(waiter.timer);
        waiter.reject(new Error(`scripted model: closed before request ${waiter.count} arrived`));
      }
      this.waiters.clear();
      this.closed.abort();
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeAllConnections();
      await closed;
      await Promise.allSettled([...this.handlers, ...this.backgroundResponses.map((r) => r.done)]);
    })();
    return this.closing;
  }

  // -------------------------------------------------------------------------------------------

  private track(req: IncomingMessage, res: ServerResponse): void {
    const handler = this.handle(req, res)
      .catch((err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        this.problems.push(`scripted model: internal error: ${message}`);
        if (!res.headersSent && !res.destroyed) {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { message, type: 'server_error', param: null, code: null } }));
        } else {
          res.destroy();
        }
      })
      .finally(() => this.handlers.delete(handler));
    this.handlers.add(handler);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const aborter = new AbortController();
    res.on('close', () => aborter.abort());
    res.on('error', () => aborter.abort());
    req.on('error', () => aborter.abort());

    const raw = await readBody(req);
    if (raw === undefined || aborter.signal.aborted) return;
    const path = new URL(req.url ?? '/', 'http://scripted.invalid').pathname;
    const text = raw.toString('utf8');
    let body: unknown;
    let parsed = true;
    if (raw.length > 0) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
        parsed = false;
      }
    }
    const record: RecordedRequest = {
      index: this.requests.length + 1,
      path,
      method: req.method ?? 'GET',
      headers: { ...req.headers },
      body,
      rawBytes: raw.length,
      receivedAt: Date.now(),
    };
    this.requests.push(record);
    this.notifyWaiters();

    const exchange: Exchange = { res, signal: aborter.signal, record, requestId: `req_${record.index}` };
    const retrieval = /^\/v1\/responses\/([^/]+)(\/cancel)?$/.exec(path);
    if (
      retrieval &&
      this.options.background !== 'unsupported' &&
      ((record.method === 'GET' && !retrieval[2]) || (record.method === 'POST' && retrieval[2]))
    ) {
      const query = new URL(req.url ?? '/', 'http://scripted.invalid').searchParams;
      await this.answerRetrieval(exchange, retrieval[1]!, Boolean(retrieval[2]), query);
      return;
    }
    const known =
      path === '/v1/responses' || path === '/v1/responses/compact' || path === '/v1/chat/completions';
    if (
      record.method !== 'POST' ||
      !known ||
      (path === '/v1/responses/compact' && this.options.compact === 'unsupported')
    ) {
      this.sendJson(exchange, 404, {
        error: {
          message: `Invalid URL (${record.method} ${path})`,
          type: 'invalid_request_error',
          param: null,
          code: null,
        },
      });
      return;
    }
    if (!parsed || !isRecord(body)) {
      this.sendJson(exchange, 400, {
        error: {
          message: 'We could not parse the JSON body of your request.',
          type: 'invalid_request_error',
          param: null,
          code: null,
        },
      });
      return;
    }
    if (path === '/v1/responses') await this.answerStep(exchange, body, this.responsesPlan);
    else if (path === '/v1/chat/completions') await this.answerStep(exchange, body, this.chatPlan);
    else await this.answerCompaction(exchange, body);
  }

  private notifyWaiters(): void {
    for (const waiter of this.waiters) {
      const request = this.requests[waiter.count - 1];
      if (!request) continue;
      clearTimeout(waiter.timer);
      this.waiters.delete(waiter);
      waiter.resolve(request);
    }
  }

  private nextStep(exchange: Exchange): ScriptStep | undefined {
    const queued = this.queue.shift();
    if (queued) return queued;
    if (!this.options.responder) return undefined;
    try {
      return this.options.responder(exchange.record);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.problems.push(
        `scripted model: the responder threw for request ${exchange.record.index}: ${message}`,
      );
      return { kind: 'error', status: 500, message: `scripted model: the responder threw: ${message}` };
    }
  }

  private async answerStep(exchange: Exchange, request: RequestBody, plan: Planner): Promise<void> {
    const { record, signal } = exchange;
    const stream = request.stream === true;
    if (plan === this.chatPlan && this.options.strictChat) {
      const problems = strictChatProblems(request);
      if (problems.length > 0) {
        this.sendError(exchange, {
          kind: 'error',
          status: 500,
          type: 'server_error',
          message: `${problems.length} validation error${problems.length > 1 ? 's' : ''} for CreateChatCompletionRequest\n${problems.join('\n')}`,
        });
        return;
      }
    }
    if (stream && this.options.streaming === 'empty') {
      if (this.startStream(exchange)) exchange.res.end();
      return;
    }
    if (stream && this.options.streaming === 'refused') {
      this.sendError(exchange, {
        kind: 'error',
        status: 400,
        message: 'Streaming is not supported for this request.',
      });
      return;
    }
    if (request.background === true && this.options.background === 'unsupported') {
      this.sendError(exchange, {
        kind: 'error',
        status: 400,
        message: "Unsupported parameter: 'background' is not supported with this model.",
        param: 'background',
      });
      return;
    }
    const background =
      plan === this.responsesPlan && request.background === true && this.options.background !== 'ignored';
    const previous = request.previous_response_id;
    let conversation = inputItems(request.input);
    if (typeof previous === 'string') {
      const prior = this.stored.get(previous);
      if (!prior) {
        // As OpenAI answers for an id it does not hold (expired, never stored, another project).
        this.sendError(exchange, {
          kind: 'error',
          status: 400,
          message: `Previous response with id '${previous}' not found.`,
          code: 'previous_response_not_found',
          param: 'previous_response_id',
        });
        return;
      }
      conversation = [...prior.conversation, ...prior.output, ...conversation];
    }
    record.conversation = conversation;
    // Replies are built from the whole conversation (token estimates, stored state).
    const body: RequestBody = { ...request, input: conversation, background };
    const step = this.nextStep(exchange);
    if (!step) {
      const message = `scripted model: no reply scripted for request ${record.index}`;
      this.problems.push(`${message} (${record.method} ${record.path})`);
      this.sendError(exchange, { kind: 'error', status: 500, message, type: 'server_error' });
      return;
    }
    if (step.kind !== 'error' && step.kind !== 'garbage') this.generationCount += 1;
    if (background && step.kind !== 'error' && step.kind !== 'garbage') {
      await this.answerBackground(exchange, body, step, stream);
      return;
    }
    if (step.delayMs && !(await sleep(step.delayMs, signal))) return;

    switch (step.kind) {
      case 'error':
        this.sendError(exchange, step);
        return;
      case 'garbage':
        exchange.res.writeHead(200, {
          'content-type': stream ? 'text/event-stream; charset=utf-8' : 'application/json',
          'x-request-id': exchange.requestId,
        });
        exchange.res.end(GARBAGE);
        return;
      case 'reply':
        await this.sendPlan(
          exchange,
          plan === this.responsesPlan
            ? this.storing(body, plan(body, step.output, step.usage, step.cutByLimit), record)
            : plan(body, step.output, step.usage, step.cutByLimit),
          stream,
          step.chunkDelayMs,
        );
        return;
      case 'empty':
        await this.sendPlan(exchange, plan(body, [], step.usage), stream, step.chunkDelayMs);
        return;
      case 'cut':
        await this.sendCut(exchange, plan(body, step.output ?? DEFAULT_CUT_OUTPUT, undefined), stream, step);
        return;
      case 'hang':
        await this.sendHang(exchange, plan(body, step.output ?? [], step.usage), stream, step);
        return;
    }
  }

  /**
   * A background response: created, then generated on its own (the step's `delayMs` is time
   * queued, `chunkDelayMs` the pace, a hang holds it after `response.in_progress` until
   * `release()`, a cut breaks the creating connection but not the generation). A streamed request
   * follows it from the start; a JSON request gets it as it stands (queued).
   */
  private async answerBackground(
    exchange: Exchange,
    body: RequestBody,
    step: Exclude<ScriptStep, ErrorStep | GarbageStep>,
    stream: boolean,
  ): Promise<void> {
    const output =
      step.kind === 'cut'
        ? (step.output ?? DEFAULT_CUT_OUTPUT)
        : step.kind === 'empty'
          ? []
          : (step.output ?? []);
    const usage = step.kind === 'cut' ? undefined : step.usage;
    const plan = this.storing(
      body,
      this.responsesPlan(body, output, usage, step.kind === 'reply' ? step.cutByLimit : undefined),
      exchange.record,
    );
    const id = (plan.response as { id: string }).id;
    const hold =
      step.kind === 'hang'
        ? new Promise<void>((resolve) => {
            this.hung.add(resolve);
          })
        : undefined;
    const response = new BackgroundResponse(
      id,
      plan,
      this.options.backgroundTtlMs ?? 10 * 60_000,
      { queuedMs: step.delayMs, chunkDelayMs: step.chunkDelayMs, hold },
      this.closed.signal,
    );
    this.backgroundResponses.push(response);
    if (!stream) {
      this.sendJson(exchange, 200, response.snapshot());
      return;
    }
    const limit =
      step.kind === 'cut' ? Math.min(step.afterEvents ?? DEFAULT_CUT_EVENTS, plan.cutLimit) : undefined;
    await response.follow(this.follower(exchange), -1, limit);
  }

  /** `GET /v1/responses/{id}` (maybe streamed from `starting_after`) and `POST …/{id}/cancel`. */
  private async answerRetrieval(
    exchange: Exchange,
    id: string,
    cancel: boolean,
    query: URLSearchParams,
  ): Promise<void> {
    const response = this.backgroundResponse(id);
    if (!response || response.expired) {
      this.sendError(exchange, {
        kind: 'error',
        status: 404,
        message: `Response with id '${id}' not found.`,
        code: null,
      });
      return;
    }
    if (cancel) {
      response.cancel();
      this.sendJson(exchange, 200, response.snapshot());
      return;
    }
    if (query.get('stream') !== 'true') {
      this.sendJson(exchange, 200, response.snapshot());
      return;
    }
    const after = query.get('starting_after');
    if (after !== null && !/^\d+$/.test(after)) {
      this.sendError(exchange, {
        kind: 'error',
        status: 400,
        message: `Invalid 'starting_after': expected a sequence number, got '${after}'.`,
        param: 'starting_after',
      });
      return;
    }
    await response.follow(this.follower(exchange), after === null ? -1 : Number(after));
  }

  private follower(exchange: Exchange): Follower {
    return {
      signal: exchange.signal,
      start: () => this.startStream(exchange),
      write: (chunk) => writeChunk(exchange.res, chunk, exchange.signal),
      end: () => exchange.res.end(),
      destroy: () => exchange.res.destroy(),
    };
  }

  private async answerCompaction(exchange: Exchange, body: RequestBody): Promise<void> {
    const step: CompactionStep = this.compactions.shift() ?? { kind: 'compact' };
    if (step.delayMs && !(await sleep(step.delayMs, exchange.signal))) return;
    if (step.kind === 'error') {
      this.sendError(exchange, step);
      return;
    }
    if (step.kind === 'hang' && !(await this.waitForRelease(exchange.signal))) return;
    const compact = step.kind === 'compact' ? step : undefined;

    const items = inputItems(body.input);
    const users = items.filter(
      (item): item is Record<string, unknown> =>
        isRecord(item) && item.role === 'user' && (item.type === undefined || item.type === 'message'),
    );
    const summary =
      compact?.summary ??
      `Scripted compaction summary: ${items.length} items compacted, ${users.length} user messages kept.`;
    const output: unknown[] = users.map((item) => ({
      id: this.id('msg'),
      type: 'message',
      role: 'user',
      status: 'completed',
      content: typeof item.content === 'string' ? [{ type: 'input_text', text: item.content }] : item.content,
    }));
    output.push({
      id: this.id('cmp'),
      type: 'compaction',
      encrypted_content: Buffer.from(summary, 'utf8').toString('base64'),
    });
    const usage = compact?.usage;
    const inputTokens = usage?.inputTokens ?? estimateInputTokens(body.input);
    const outputTokens = usage?.outputTokens ?? tokensOf(summary);
    const response = {
      id: this.id('resp'),
      object: 'response.compaction',
      created_at: nowSeconds(),
      output,
      usage: {
        input_tokens: inputTokens,
        input_tokens_details: { cached_tokens: usage?.cachedTokens ?? 0, cache_write_tokens: 0 },
        output_tokens: outputTokens,
        output_tokens_details: { reasoning_tokens: usage?.reasoningTokens ?? 0 },
        total_tokens: inputTokens + outputTokens,
      } satisfies ResponseUsage,
    };
    this.sendJson(exchange, 200, response);
  }

  // -------------------------------------------------------------------------------------------
  // Answers

  private sendJson(
    exchange: Exchange,
    status: number,
    payload: unknown,
    headers: Record<string, string> = {},
  ): void {
    const { res } = exchange;
    if (exchange.signal.aborted || res.headersSent) return;
    const text = JSON.stringify(payload);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(text)),
      'x-request-id': exchange.requestId,
      ...headers,
    });
    res.end(text);
  }

  private sendError(exchange: Exchange, step: ErrorStep): void {
    const defaults = defaultError(step.status, step.code);
    const error: ErrorBody['error'] = {
      message: step.message ?? defaults.message,
      type: step.type ?? defaults.type,
      param: step.param !== undefined ? step.param : defaults.param,
      code: defaults.code,
    };
    this.sendJson(exchange, step.status, { error } satisfies ErrorBody, step.headers);
  }

  private startStream(exchange: Exchange): boolean {
    const { res } = exchange;
    if (exchange.signal.aborted || res.headersSent) return false;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-request-id': exchange.requestId,
    });
    res.flushHeaders();
    return true;
  }

  /** Sends `events[from, to)`. */
  private async sendEvents(
    exchange: Exchange,
    events: readonly string[],
    from: number,
    to: number,
    chunkDelayMs: number | undefined,
  ): Promise<boolean> {
    for (let i = from; i < to; i++) {
      if (i > 0 && chunkDelayMs && !(await sleep(chunkDelayMs, exchange.signal))) return false;
      if (!(await writeChunk(exchange.res, events[i]!, exchange.signal))) return false;
    }
    return true;
  }

  private async sendPlan(
    exchange: Exchange,
    plan: Plan,
    stream: boolean,
    chunkDelayMs?: number,
  ): Promise<void> {
    if (!stream) {
      this.sendJson(exchange, 200, plan.response);
      return;
    }
    if (!this.startStream(exchange)) return;
    if (await this.sendEvents(exchange, plan.events, 0, plan.events.length, chunkDelayMs)) exchange.res.end();
  }

  private async sendCut(exchange: Exchange, plan: Plan, stream: boolean, step: CutStep): Promise<void> {
    const { res, signal } = exchange;
    if (!stream) {
      if (signal.aborted) return;
      const text = JSON.stringify(plan.response);
      res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': exchange.requestId });
      await writeChunk(res, text.slice(0, Math.floor(text.length / 2)), signal);
      res.destroy();
      return;
    }
    if (!this.startStream(exchange)) return;
    const count = Math.max(0, Math.min(step.afterEvents ?? DEFAULT_CUT_EVENTS, plan.cutLimit));
    await this.sendEvents(exchange, plan.events, 0, count, step.chunkDelayMs);
    res.destroy();
  }

  private async sendHang(exchange: Exchange, plan: Plan, stream: boolean, step: HangStep): Promise<void> {
    const { res, signal } = exchange;
    if (stream) {
      if (!this.startStream(exchange)) return;
      if (!(await this.sendEvents(exchange, plan.events, 0, 1, undefined))) return;
    }
    if (!(await this.waitForRelease(signal))) return;
    if (!step.output) {
      if (stream) res.end();
      else res.destroy();
      return;
    }
    if (!stream) {
      this.sendJson(exchange, 200, plan.response);
      return;
    }
    if (await this.sendEvents(exchange, plan.events, 1, plan.events.length, step.chunkDelayMs)) res.end();
  }

  /** Resolves true on `release()`, false when the connection closes first. */
  private waitForRelease(signal: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      if (signal.aborted) {
        resolve(false);
        return;
      }
      const go = () => {
        signal.removeEventListener('abort', onAbort);
        resolve(true);
      };
      const onAbort = () => {
        this.hung.delete(go);
        resolve(false);
      };
      this.hung.add(go);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  // -------------------------------------------------------------------------------------------
  // Building replies

  private readonly chatPlan: Planner = (body, output, usage, cutByLimit) =>
    chatCompletionPlan(body, output, usage, (prefix) => this.id(prefix), cutByLimit);

  /** Keeps a completed response for `previous_response_id`, unless the request said `store: false`. */
  private storing(body: RequestBody, plan: Plan, record: RecordedRequest): Plan {
    // Plans from responsesPlan carry a Responses API response.
    const response = plan.response as WireResponse;
    record.output = response.output;
    if (body.store !== false) {
      this.stored.set(response.id, {
        conversation: inputItems(body.input),
        output: response.output.map((item) => {
          // Output items are sent back without their status, as clients do.
          const { status: _status, ...rest } = item as unknown as Record<string, unknown>;
          return rest;
        }),
      });
    }
    return plan;
  }

  private id(prefix: string): string {
    const n = (this.counters.get(prefix) ?? 0) + 1;
    this.counters.set(prefix, n);
    return `${prefix}_${n}`;
  }

  private readonly responsesPlan: Planner = (body, output, usage, cutByLimit) => {
    const base: WireResponse = {
      id: this.id('resp'),
      object: 'response',
      created_at: nowSeconds(),
      status: 'in_progress',
      background: body.background === true,
      error: null,
      incomplete_details: null,
      instructions: typeof body.instructions === 'string' ? body.instructions : null,
      max_output_tokens: typeof body.max_output_tokens === 'number' ? body.max_output_tokens : null,
      metadata: isRecord(body.metadata) ? (body.metadata as Record<string, string>) : {},
      model: typeof body.model === 'string' ? body.model : 'scripted-model',
      output: [],
      parallel_tool_calls: typeof body.parallel_tool_calls === 'boolean' ? body.parallel_tool_calls : true,
      previous_response_id: typeof body.previous_response_id === 'string' ? body.previous_response_id : null,
      prompt_cache_key: typeof body.prompt_cache_key === 'string' ? body.prompt_cache_key : null,
      reasoning: isRecord(body.reasoning) ? body.reasoning : { effort: null, summary: null },
      temperature: 1,
      text: { format: { type: 'text' } },
      tool_choice: (body.tool_choice ?? 'auto') as WireResponse['tool_choice'],
      tools: Array.isArray(body.tools) ? (body.tools as WireResponse['tools']) : [],
      top_p: 1,
      truncation: 'disabled',
      usage: null,
    };
    // A background response is queued first (and says so), then runs.
    const events: StreamEvent[] =
      body.background === true
        ? [
            { type: 'response.created', response: { ...base, status: 'queued' } },
            { type: 'response.queued', response: { ...base, status: 'queued' } },
            { type: 'response.in_progress', response: base },
          ]
        : [
            { type: 'response.created', response: base },
            { type: 'response.in_progress', response: base },
          ];
    const items: ResponseOutputItem[] = [];
    let outputChars = 0;
    let reasoningTokens = 0;

    output.forEach((scripted, output_index) => {
      if (scripted.type === 'message') {
        const item_id = this.id('msg');
        const { text } = scripted;
        outputChars += text.length;
        const item: ResponseOutputMessage = {
          id: item_id,
          type: 'message',
          role: 'assistant',
          status: 'completed',
          content: [{ type: 'output_text', text, annotations: [], logprobs: [] }],
        };
        events.push(
          {
            type: 'response.output_item.added',
            output_index,
            item: { id: item_id, type: 'message', role: 'assistant', status: 'in_progress', content: [] },
          },
          {
            type: 'response.content_part.added',
            item_id,
            output_index,
            content_index: 0,
            part: { type: 'output_text', text: '', annotations: [], logprobs: [] },
          },
          ...chunks(text).map((delta): StreamEvent => ({
            type: 'response.output_text.delta',
            item_id,
            output_index,
            content_index: 0,
            delta,
            logprobs: [],
          })),
          { type: 'response.output_text.done', item_id, output_index, content_index: 0, text, logprobs: [] },
          {
            type: 'response.content_part.done',
            item_id,
            output_index,
            content_index: 0,
            part: { type: 'output_text', text, annotations: [], logprobs: [] },
          },
          { type: 'response.output_item.done', output_index, item },
        );
        items.push(item);
      } else if (scripted.type === 'function_call') {
        const item_id = this.id('fc');
        const callNumber = this.id('call');
        const args =
          typeof scripted.arguments === 'string' ? scripted.arguments : JSON.stringify(scripted.arguments);
        outputChars += args.length + scripted.name.length;
        const item: ResponseFunctionToolCall = {
          type: 'function_call',
          id: item_id,
          call_id: scripted.callId ?? callNumber,
          name: scripted.name,
          arguments: args,
          status: 'completed',
        };
        events.push(
          {
            type: 'response.output_item.added',
            output_index,
            item: { ...item, arguments: '', status: 'in_progress' },
          },
          ...chunks(args).map((delta): StreamEvent => ({
            type: 'response.function_call_arguments.delta',
            item_id,
            output_index,
            delta,
          })),
          {
            type: 'response.function_call_arguments.done',
            item_id,
            output_index,
            name: scripted.name,
            arguments: args,
          },
          { type: 'response.output_item.done', output_index, item },
        );
        items.push(item);
      } else {
        const item_id = this.id('rs');
        const summary = scripted.summary;
        const itemTokens = Math.max(1, tokensOf(summary ?? ''));
        reasoningTokens += itemTokens;
        const item: ResponseReasoningItem = {
          id: item_id,
          type: 'reasoning',
          summary: summary === undefined ? [] : [{ type: 'summary_text', text: summary }],
          encrypted_content: Buffer.from(`scripted reasoning ${item_id}: ${summary ?? ''}`, 'utf8').toString(
            'base64',
          ),
        };
        events.push({
          type: 'response.output_item.added',
          output_index,
          item: { id: item_id, type: 'reasoning', summary: [] },
        });
        if (summary !== undefined) {
          events.push(
            {
              type: 'response.reasoning_summary_part.added',
              item_id,
              output_index,
              summary_index: 0,
              part: { type: 'summary_text', text: '' },
            },
            ...chunks(summary).map((delta): StreamEvent => ({
              type: 'response.reasoning_summary_text.delta',
              item_id,
              output_index,
              summary_index: 0,
              delta,
            })),
            {
              type: 'response.reasoning_summary_text.done',
              item_id,
              output_index,
              summary_index: 0,
              text: summary,
            },
            {
              type: 'response.reasoning_summary_part.done',
              item_id,
              output_index,
              summary_index: 0,
              part: { type: 'summary_text', text: summary },
            },
          );
        }
        events.push({ type: 'response.output_item.done', output_index, item });
        items.push(item);
      }
    });

    const inputTokens = usage?.inputTokens ?? estimateInputTokens(body.input);
    const reasoning = usage?.reasoningTokens ?? reasoningTokens;
    const outputTokens = usage?.outputTokens ?? Math.ceil(outputChars / 4) + reasoning;
    const response: WireResponse = {
      ...base,
      ...(cutByLimit
        ? { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } }
        : { status: 'completed', completed_at: nowSeconds() }),
      output: items,
      usage: {
        input_tokens: inputTokens,
        input_tokens_details: { cached_tokens: usage?.cachedTokens ?? 0, cache_write_tokens: 0 },
        output_tokens: outputTokens,
        output_tokens_details: { reasoning_tokens: reasoning },
        total_tokens: inputTokens + outputTokens,
      },
    };
    events.push({ type: cutByLimit ? 'response.incomplete' : 'response.completed', response });
    return {
      response,
      // Each event's sequence number is its place in the full stream.
      events: events.map(
        (event, i) => `event: ${event.type}\ndata: ${JSON.stringify({ ...event, sequence_number: i })}\n\n`,
      ),
      cutLimit: events.length - 1,
    };
  };
}
