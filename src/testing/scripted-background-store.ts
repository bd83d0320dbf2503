/**
 * The scripted model's background responses over HTTP (the responses themselves are in
 * scripted-background.ts): the store that creates and keeps them, in order of creation, and
 * answers `GET /v1/responses/{id}` (maybe streamed from `starting_after`) and
 * `POST /v1/responses/{id}/cancel` — 404 once a response has expired.
 */
import type { Follower } from './scripted-background.js';
import { BackgroundResponse } from './scripted-background.js';
import type { Exchange } from './scripted-http.js';
import { DEFAULT_CUT_EVENTS, sendError, sendJson, startStream, writeChunk } from './scripted-http.js';
import type { Plan } from './scripted-responses.js';
import type { ErrorStep, GarbageStep, ScriptedModelOptions, ScriptStep } from './scripted-script.js';

/** The id and action of a retrieval or cancel request, or null when the path and method are not one. */
export function retrievalRoute(path: string, method: string): { id: string; cancel: boolean } | null {
  const retrieval = /^\/v1\/responses\/([^/]+)(\/cancel)?$/.exec(path);
  if (!retrieval) return null;
  if ((method === 'GET' && !retrieval[2]) || (method === 'POST' && retrieval[2])) {
    return { id: retrieval[1]!, cancel: Boolean(retrieval[2]) };
  }
  return null;
}

export class BackgroundStore {
  /** Background responses, in order of creation. */
  readonly responses: BackgroundResponse[] = [];

  /** @param closed aborts when the server closes: every generation stops */
  constructor(
    private readonly options: ScriptedModelOptions,
    private readonly closed: AbortSignal,
  ) {}

  /** The background response with this id, if it was created. */
  get(id: string): BackgroundResponse | undefined {
    return this.responses.find((response) => response.id === id);
  }

  /** Makes background responses gone (404) from now on, as when the provider's retention ends. */
  expire(): void {
    for (const response of this.responses) response.expire();
  }

  /**
   * Creates the background response for a planned reply and answers the creating request: a
   * streamed request follows it from the start; a JSON request gets it as it stands (queued).
   */
  async create(
    exchange: Exchange,
    plan: Plan,
    step: Exclude<ScriptStep, ErrorStep | GarbageStep>,
    stream: boolean,
    hold: Promise<void> | undefined,
  ): Promise<void> {
    const id = (plan.response as { id: string }).id;
    const response = new BackgroundResponse(
      id,
      plan,
      this.options.backgroundTtlMs ?? 10 * 60_000,
      { queuedMs: step.delayMs, chunkDelayMs: step.chunkDelayMs, hold },
      this.closed,
    );
    this.responses.push(response);
    if (!stream) {
      sendJson(exchange, 200, response.snapshot());
      return;
    }
    const limit =
      step.kind === 'cut' ? Math.min(step.afterEvents ?? DEFAULT_CUT_EVENTS, plan.cutLimit) : undefined;
    await response.follow(followerOf(exchange), -1, limit);
  }

  /** `GET /v1/responses/{id}` (maybe streamed from `starting_after`) and `POST …/{id}/cancel`. */
  async answerRetrieval(
    exchange: Exchange,
    id: string,
    cancel: boolean,
    query: URLSearchParams,
  ): Promise<void> {
    const response = this.get(id);
    if (!response || response.expired) {
      sendError(exchange, {
        kind: 'error',
        status: 404,
        message: `Response with id '${id}' not found.`,
        code: null,
      });
      return;
    }
    if (cancel) {
      response.cancel();
      sendJson(exchange, 200, response.snapshot());
      return;
    }
    if (query.get('stream') !== 'true') {
      sendJson(exchange, 200, response.snapshot());
      return;
    }
    const after = query.get('starting_after');
    if (after !== null && !/^\d+$/.test(after)) {
      sendError(exchange, {
        kind: 'error',
        status: 400,
        message: `Invalid 'starting_after': expected a sequence number, got '${after}'.`,
        param: 'starting_after',
      });
      return;
    }
    await response.follow(followerOf(exchange), after === null ? -1 : Number(after));
  }
}

/** The exchange as a connection following a background response's events. */
function followerOf(exchange: Exchange): Follower {
  return {
    signal: exchange.signal,
    start: () => startStream(exchange),
    write: (chunk) => writeChunk(exchange.res, chunk, exchange.signal),
    end: () => exchange.res.end(),
    destroy: () => exchange.res.destroy(),
  };
}
