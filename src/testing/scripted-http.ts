/**
 * How the scripted model answers on the wire: reading a request body, a JSON body or an error body
 * as OpenAI sends it for each status, and a reply's server-sent events — whole, cut after a number
 * of events, or hung until released — each write waiting until the socket has taken it.
 */
import { Buffer } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Plan, Planner, RequestBody } from './scripted-responses.js';
import type {
  CutStep,
  ErrorStep,
  HangStep,
  RecordedRequest,
  ScriptedOutput,
  ScriptStep,
} from './scripted-script.js';
import { sleep } from '../shared/util/sleep.js';

/** Events a cut stream sends when its step does not say. */
export const DEFAULT_CUT_EVENTS = 5;
/** What a cut reply says when its step does not say. */
export const DEFAULT_CUT_OUTPUT: ScriptedOutput[] = [
  { type: 'message', text: 'This reply is cut off before it completes.' },
];
const GARBAGE = '<html>\n<body>502 Bad Gateway (scripted garbage)</body>\n</html>\ndata: {not json\n\n';

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** Writes and waits until the chunk is handed to the socket; false when the connection is gone. */
export function writeChunk(res: ServerResponse, chunk: string, signal: AbortSignal): Promise<boolean> {
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

export async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const parts: Buffer[] = [];
  try {
    for await (const part of req) parts.push(part as Buffer);
  } catch {
    return undefined;
  }
  return Buffer.concat(parts);
}

export function defaultError(status: number, code: string | null | undefined): ErrorBody['error'] {
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

/** One request being answered. `signal` aborts when the connection closes (client gone, or `close()`). */
export interface Exchange {
  res: ServerResponse;
  signal: AbortSignal;
  record: RecordedRequest;
  requestId: string;
}

export function sendJson(
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

/** An `invalid_request_error` with this message (unknown path, body that does not parse). */
export function sendInvalidRequest(exchange: Exchange, status: number, message: string): void {
  sendJson(exchange, status, {
    error: { message, type: 'invalid_request_error', param: null, code: null },
  } satisfies ErrorBody);
}

export function sendError(exchange: Exchange, step: ErrorStep): void {
  const defaults = defaultError(step.status, step.code);
  const error: ErrorBody['error'] = {
    message: step.message ?? defaults.message,
    type: step.type ?? defaults.type,
    param: step.param !== undefined ? step.param : defaults.param,
    code: defaults.code,
  };
  sendJson(exchange, step.status, { error } satisfies ErrorBody, step.headers);
}

export function startStream(exchange: Exchange): boolean {
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
async function sendEvents(
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

export async function sendPlan(
  exchange: Exchange,
  plan: Plan,
  stream: boolean,
  chunkDelayMs?: number,
): Promise<void> {
  if (!stream) {
    sendJson(exchange, 200, plan.response);
    return;
  }
  if (!startStream(exchange)) return;
  if (await sendEvents(exchange, plan.events, 0, plan.events.length, chunkDelayMs)) exchange.res.end();
}

export async function sendCut(exchange: Exchange, plan: Plan, stream: boolean, step: CutStep): Promise<void> {
  const { res, signal } = exchange;
  if (!stream) {
    if (signal.aborted) return;
    const text = JSON.stringify(plan.response);
    res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': exchange.requestId });
    await writeChunk(res, text.slice(0, Math.floor(text.length / 2)), signal);
    res.destroy();
    return;
  }
  if (!startStream(exchange)) return;
  const count = Math.max(0, Math.min(step.afterEvents ?? DEFAULT_CUT_EVENTS, plan.cutLimit));
  await sendEvents(exchange, plan.events, 0, count, step.chunkDelayMs);
  res.destroy();
}

/** Sends the stream's first event, then waits for `released` before the rest (or nothing). */
export async function sendHang(
  exchange: Exchange,
  plan: Plan,
  stream: boolean,
  step: HangStep,
  released: (signal: AbortSignal) => Promise<boolean>,
): Promise<void> {
  const { res, signal } = exchange;
  if (stream) {
    if (!startStream(exchange)) return;
    if (!(await sendEvents(exchange, plan.events, 0, 1, undefined))) return;
  }
  if (!(await released(signal))) return;
  if (!step.output) {
    if (stream) res.end();
    else res.destroy();
    return;
  }
  if (!stream) {
    sendJson(exchange, 200, plan.response);
    return;
  }
  if (await sendEvents(exchange, plan.events, 1, plan.events.length, step.chunkDelayMs)) res.end();
}

/** How sendStep builds what it sends. */
export interface StepReplies {
  body: RequestBody;
  /** Builds a reply's plan (taking its ids as it is built). */
  plan: Planner;
  /** What becomes of a reply step's plan before it is sent (kept for `previous_response_id`). */
  keep: (reply: Plan) => Plan;
  /** Resolves true when a hung request is released, false when its connection closes first. */
  released: (signal: AbortSignal) => Promise<boolean>;
}

/** Answers a request with one step of the script (not in background mode), after its `delayMs`. */
export async function sendStep(
  exchange: Exchange,
  step: ScriptStep,
  stream: boolean,
  { body, plan, keep, released }: StepReplies,
): Promise<void> {
  if (step.delayMs && !(await sleep(step.delayMs, exchange.signal))) return;
  switch (step.kind) {
    case 'error':
      sendError(exchange, step);
      return;
    case 'garbage':
      exchange.res.writeHead(200, {
        'content-type': stream ? 'text/event-stream; charset=utf-8' : 'application/json',
        'x-request-id': exchange.requestId,
      });
      exchange.res.end(GARBAGE);
      return;
    case 'reply':
      await sendPlan(
        exchange,
        keep(plan(body, step.output, step.usage, step.cutByLimit)),
        stream,
        step.chunkDelayMs,
      );
      return;
    case 'empty':
      await sendPlan(exchange, plan(body, [], step.usage), stream, step.chunkDelayMs);
      return;
    case 'cut':
      await sendCut(exchange, plan(body, step.output ?? DEFAULT_CUT_OUTPUT, undefined), stream, step);
      return;
    case 'hang':
      await sendHang(exchange, plan(body, step.output ?? [], step.usage), stream, step, released);
      return;
  }
}
