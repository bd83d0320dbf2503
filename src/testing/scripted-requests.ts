/**
 * The scripted model's requests before a step answers them: each recorded as it arrives (and
 * handed to whoever waits for it), refused when the server's options say it cannot serve it, and
 * continued from a stored response when it names `previous_response_id`.
 */
import type { IncomingMessage } from 'node:http';
import { strictChatProblems } from './scripted-chat.js';
import type { Plan, RequestBody, WireResponse } from './scripted-responses.js';
import { inputItems } from './scripted-responses.js';
import type { ErrorStep, RecordedRequest, ScriptedModelOptions } from './scripted-script.js';

/** The request as recorded, with its body parsed when it is JSON (`parsed` false when it is not). */
export function recordRequest(
  req: IncomingMessage,
  raw: Buffer,
  index: number,
): { record: RecordedRequest; parsed: boolean } {
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
    index,
    path,
    method: req.method ?? 'GET',
    headers: { ...req.headers },
    body,
    rawBytes: raw.length,
    receivedAt: Date.now(),
  };
  return { record, parsed };
}

interface Waiter {
  count: number;
  resolve: (request: RecordedRequest) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** Waits for the `count`-th request over the requests recorded so far. */
export class RequestWaiters {
  private readonly waiters = new Set<Waiter>();

  constructor(private readonly requests: readonly RecordedRequest[]) {}

  wait(count: number, timeoutMs: number): Promise<RecordedRequest> {
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

  /** A request arrived: resolves the waits it satisfies. */
  notify(): void {
    for (const waiter of this.waiters) {
      const request = this.requests[waiter.count - 1];
      if (!request) continue;
      clearTimeout(waiter.timer);
      this.waiters.delete(waiter);
      waiter.resolve(request);
    }
  }

  /** The server closed: every pending wait is rejected. */
  rejectAll(): void {
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error(`scripted model: closed before request ${waiter.count} arrived`));
    }
    this.waiters.clear();
  }
}

/**
 * What the server's options refuse of a request to a reply path: an error to send, `'empty'` for
 * a stream that ends at once, or null when the request may be answered from the script.
 */
export function refusal(
  request: RequestBody,
  options: ScriptedModelOptions,
  chat: boolean,
): ErrorStep | 'empty' | null {
  const stream = request.stream === true;
  if (chat && options.strictChat) {
    const problems = strictChatProblems(request);
    if (problems.length > 0) {
      return {
        kind: 'error',
        status: 500,
        type: 'server_error',
        message: `${problems.length} validation error${problems.length > 1 ? 's' : ''} for CreateChatCompletionRequest\n${problems.join('\n')}`,
      };
    }
  }
  if (stream && options.streaming === 'empty') return 'empty';
  if (stream && options.streaming === 'refused') {
    return {
      kind: 'error',
      status: 400,
      message: 'Streaming is not supported for this request.',
    };
  }
  if (request.background === true && options.background === 'unsupported') {
    return {
      kind: 'error',
      status: 400,
      message: "Unsupported parameter: 'background' is not supported with this model.",
      param: 'background',
    };
  }
  return null;
}

/** Responses created with `store` not false, by id: what `previous_response_id` refers to. */
export class StoredResponses {
  private readonly stored = new Map<string, { conversation: unknown[]; output: unknown[] }>();

  /**
   * The whole conversation a request continues: its input after the stored response's, or an
   * error step as OpenAI answers for an id it does not hold (expired, never stored, another project).
   */
  conversation(request: RequestBody): unknown[] | ErrorStep {
    const previous = request.previous_response_id;
    const input = inputItems(request.input);
    if (typeof previous !== 'string') return input;
    const prior = this.stored.get(previous);
    if (!prior) {
      return {
        kind: 'error',
        status: 400,
        message: `Previous response with id '${previous}' not found.`,
        code: 'previous_response_not_found',
        param: 'previous_response_id',
      };
    }
    return [...prior.conversation, ...prior.output, ...input];
  }

  /** Keeps a completed response for `previous_response_id`, unless the request said `store: false`. */
  store(body: RequestBody, plan: Plan, record: RecordedRequest): Plan {
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
}

/** Requests held by a `hang` step until `release()`. */
export class HeldRequests {
  private readonly hung = new Set<() => void>();

  get size(): number {
    return this.hung.size;
  }

  /** Resolves on `release()`. */
  hold(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.hung.add(resolve);
    });
  }

  /** Resolves true on `release()`, false when the connection closes first. */
  waitForRelease(signal: AbortSignal): Promise<boolean> {
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

  /** Lets every request held now go on; returns how many. */
  release(): number {
    const waiting = [...this.hung];
    this.hung.clear();
    for (const go of waiting) go();
    return waiting.length;
  }
}
