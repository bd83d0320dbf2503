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
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BackgroundResponse } from './scripted-background.js';
import { BackgroundStore, retrievalRoute } from './scripted-background-store.js';
import { chatCompletionPlan } from './scripted-chat.js';
import type { Exchange } from './scripted-http.js';
import {
  DEFAULT_CUT_OUTPUT,
  readBody,
  sendError,
  sendInvalidRequest,
  sendJson,
  sendStep,
  startStream,
} from './scripted-http.js';
import type { Planner, RequestBody } from './scripted-responses.js';
import { compactionResponse, isRecord, responsesPlan } from './scripted-responses.js';
import type {
  CompactionStep,
  ErrorStep,
  GarbageStep,
  RecordedRequest,
  ScriptedModelOptions,
  ScriptStep,
} from './scripted-script.js';
import { describeStep } from './scripted-script.js';
import {
  HeldRequests,
  recordRequest,
  refusal,
  RequestWaiters,
  StoredResponses,
} from './scripted-requests.js';
import { estimateInputTokens } from './scripted-text.js';
import { sleep } from '../shared/util/sleep.js';

export { estimateInputTokens };
export type { Plan } from './scripted-responses.js';
export type {
  CompactStep,
  CompactionStep,
  CutStep,
  EmptyStep,
  ErrorStep,
  GarbageStep,
  HangStep,
  RecordedRequest,
  ReplyStep,
  ScriptStep,
  ScriptedModelOptions,
  ScriptedOutput,
  ScriptedUsage,
} from './scripted-script.js';

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
  private readonly hung = new HeldRequests();
  private readonly handlers = new Set<Promise<void>>();
  private readonly waiters = new RequestWaiters(this.requests);
  private readonly counters = new Map<string, number>();
  private readonly stored = new StoredResponses();
  private closing: Promise<void> | undefined;
  private readonly closed = new AbortController();
  private readonly background: BackgroundStore;
  private generationCount = 0;

  private constructor(
    private readonly server: Server,
    baseUrl: string,
    private readonly options: ScriptedModelOptions,
  ) {
    this.baseUrl = baseUrl;
    this.background = new BackgroundStore(options, this.closed.signal);
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

  /** Background responses, in order of creation. */
  get backgroundResponses(): BackgroundResponse[] {
    return this.background.responses;
  }

  /** The background response with this id, if it was created. */
  backgroundResponse(id: string): BackgroundResponse | undefined {
    return this.background.get(id);
  }

  /** Makes background responses gone (404) from now on, as when the provider's retention ends. */
  expireBackground(): void {
    this.background.expire();
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
    return this.waiters.wait(count, timeoutMs);
  }

  /**
   * Lets every currently hung request go on (see `HangStep`); steps that hang later are not
   * affected. Returns how many were released.
   */
  release(): number {
    return this.hung.release();
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
      this.waiters.rejectAll();
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
    const { record, parsed } = recordRequest(req, raw, this.requests.length + 1);
    const { path, body } = record;
    this.requests.push(record);
    this.waiters.notify();

    const exchange: Exchange = { res, signal: aborter.signal, record, requestId: `req_${record.index}` };
    const retrieval = retrievalRoute(path, record.method);
    if (retrieval && this.options.background !== 'unsupported') {
      const query = new URL(req.url ?? '/', 'http://scripted.invalid').searchParams;
      await this.background.answerRetrieval(exchange, retrieval.id, retrieval.cancel, query);
      return;
    }
    const known =
      path === '/v1/responses' || path === '/v1/responses/compact' || path === '/v1/chat/completions';
    if (
      record.method !== 'POST' ||
      !known ||
      (path === '/v1/responses/compact' && this.options.compact === 'unsupported')
    ) {
      sendInvalidRequest(exchange, 404, `Invalid URL (${record.method} ${path})`);
      return;
    }
    if (!parsed || !isRecord(body)) {
      sendInvalidRequest(exchange, 400, 'We could not parse the JSON body of your request.');
      return;
    }
    if (path === '/v1/responses') await this.answerStep(exchange, body, this.responsesPlan);
    else if (path === '/v1/chat/completions') await this.answerStep(exchange, body, this.chatPlan);
    else await this.answerCompaction(exchange, body);
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
    const { record } = exchange;
    const stream = request.stream === true;
    const refused = refusal(request, this.options, plan === this.chatPlan);
    if (refused === 'empty') {
      if (startStream(exchange)) exchange.res.end();
      return;
    }
    if (refused) {
      sendError(exchange, refused);
      return;
    }
    const background =
      plan === this.responsesPlan && request.background === true && this.options.background !== 'ignored';
    const conversation = this.stored.conversation(request);
    if (!Array.isArray(conversation)) {
      sendError(exchange, conversation);
      return;
    }
    record.conversation = conversation;
    // Replies are built from the whole conversation (token estimates, stored state).
    const body: RequestBody = { ...request, input: conversation, background };
    const step = this.nextStep(exchange);
    if (!step) {
      const message = `scripted model: no reply scripted for request ${record.index}`;
      this.problems.push(`${message} (${record.method} ${record.path})`);
      sendError(exchange, { kind: 'error', status: 500, message, type: 'server_error' });
      return;
    }
    if (step.kind !== 'error' && step.kind !== 'garbage') this.generationCount += 1;
    if (background && step.kind !== 'error' && step.kind !== 'garbage') {
      await this.answerBackground(exchange, body, step, stream);
      return;
    }
    await sendStep(exchange, step, stream, {
      body,
      plan,
      keep: (reply) => (plan === this.responsesPlan ? this.stored.store(body, reply, record) : reply),
      released: (signal) => this.hung.waitForRelease(signal),
    });
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
    const plan = this.stored.store(
      body,
      this.responsesPlan(body, output, usage, step.kind === 'reply' ? step.cutByLimit : undefined),
      exchange.record,
    );
    const hold = step.kind === 'hang' ? this.hung.hold() : undefined;
    await this.background.create(exchange, plan, step, stream, hold);
  }

  private async answerCompaction(exchange: Exchange, body: RequestBody): Promise<void> {
    const step: CompactionStep = this.compactions.shift() ?? { kind: 'compact' };
    if (step.delayMs && !(await sleep(step.delayMs, exchange.signal))) return;
    if (step.kind === 'error') {
      sendError(exchange, step);
      return;
    }
    if (step.kind === 'hang' && !(await this.hung.waitForRelease(exchange.signal))) return;
    sendJson(
      exchange,
      200,
      compactionResponse(body, step.kind === 'compact' ? step : undefined, (prefix) => this.id(prefix)),
    );
  }

  // -------------------------------------------------------------------------------------------
  // Building replies

  private readonly chatPlan: Planner = (body, output, usage, cutByLimit) =>
    chatCompletionPlan(body, output, usage, (prefix) => this.id(prefix), cutByLimit);

  private id(prefix: string): string {
    const n = (this.counters.get(prefix) ?? 0) + 1;
    this.counters.set(prefix, n);
    return `${prefix}_${n}`;
  }

  private readonly responsesPlan: Planner = (body, output, usage, cutByLimit) =>
    responsesPlan(body, output, usage, (prefix) => this.id(prefix), cutByLimit);
}
