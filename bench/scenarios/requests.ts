/**
 * 3. Prompt-cache stability and 6. bytes to the model, from the requests the scripted model
 * received in a 200-turn session with two compactions (20 KB tool outputs, compaction at
 * 1.5 MiB of transcript): once as Ratchet sends by default (the whole input, `store: false`),
 * once with provider state (`previous_response_id`, only new items).
 */
import { randomUUID } from 'node:crypto';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import type { RecordedRequest } from '../../src/testing/scripted-model.js';
import type { BenchEnv } from '../env.js';
import { sessionConfig, withModel } from '../env.js';
import { benchResponder, benchTask } from '../script.js';
import type { Spread } from '../stats.js';
import { round, spread } from '../stats.js';

export interface RequestBytes {
  requests: number;
  totalBytes: number;
  perTurn: Spread;
  compactionRequests: number;
  compactionBytes: number;
}

export interface RequestsResult {
  turns: number;
  compactions: number;
  cache: {
    /** Requests after the first whose input begins with the previous request's input and output. */
    cacheable: number;
    compared: number;
    share: number;
    /** Request numbers (1-based, model requests only) that did not extend the previous one. */
    breaks: number[];
    /** Model requests that came first after a compaction. */
    afterCompaction: number[];
  };
  bytes: { full: RequestBytes; providerState: RequestBytes };
}

/** An item as the model reads it, without ids and statuses that are not sent back. */
function canonical(item: unknown): string {
  const value = item as Record<string, unknown>;
  if (value.type === 'message' && Array.isArray(value.content)) {
    const text = (value.content as Array<{ text?: string; refusal?: string }>)
      .map((part) => part.text ?? part.refusal ?? '')
      .join('');
    return JSON.stringify(['message', value.role, text]);
  }
  if (value.type === 'function_call') {
    return JSON.stringify(['function_call', value.call_id, value.name, value.arguments]);
  }
  const { id: _id, status: _status, ...rest } = value;
  return JSON.stringify(rest);
}

function cacheStability(requests: RecordedRequest[]): RequestsResult['cache'] {
  let previous: { key: string[]; head: string } | undefined;
  let compared = 0;
  let cacheable = 0;
  const breaks: number[] = [];
  const afterCompaction: number[] = [];
  let compacted = false;
  let n = 0;
  for (const request of requests) {
    if (request.path === '/v1/responses/compact') {
      compacted = true;
      continue;
    }
    if (request.path !== '/v1/responses') continue;
    n += 1;
    const body = request.body as { input: unknown[]; instructions?: unknown; tools?: unknown };
    const input = body.input.map(canonical);
    const head = JSON.stringify([body.instructions, body.tools]);
    if (compacted) afterCompaction.push(n);
    compacted = false;
    if (previous) {
      compared += 1;
      const ok =
        head === previous.head &&
        previous.key.length <= input.length &&
        previous.key.every((key, i) => input[i] === key);
      if (ok) cacheable += 1;
      else breaks.push(n);
    }
    previous = { key: [...input, ...(request.output ?? []).map(canonical)], head };
  }
  return { cacheable, compared, share: round(cacheable / Math.max(1, compared), 4), breaks, afterCompaction };
}

function bytes(requests: RecordedRequest[]): RequestBytes {
  const model = requests.filter((r) => r.path === '/v1/responses');
  const compact = requests.filter((r) => r.path === '/v1/responses/compact');
  return {
    requests: model.length,
    totalBytes: model.reduce((sum, r) => sum + r.rawBytes, 0),
    perTurn: spread(model.map((r) => r.rawBytes)),
    compactionRequests: compact.length,
    compactionBytes: compact.reduce((sum, r) => sum + r.rawBytes, 0),
  };
}

async function session(
  env: BenchEnv,
  turns: number,
  providerState: boolean,
): Promise<{ requests: RecordedRequest[]; result: SessionResult }> {
  return withModel({ responder: benchResponder() }, async (model) => {
    const taskQueue = `bench-requests-${randomUUID()}`;
    const { worker } = await env.worker(taskQueue, model);
    const result = await worker.runUntil(async () => {
      const { sessionId } = await env.ratchet(taskQueue).start(
        sessionConfig(benchTask('big.txt', turns), env.repo, {
          model: { name: 'scripted-model', contextWindow: 1_000_000_000, providerState },
          limits: { maxTranscriptBytes: 1.5 * 1024 * 1024 },
        }),
      );
      return (await env.client.workflow.getHandle(sessionId).result()) as SessionResult;
    });
    return { requests: [...model.requests], result };
  });
}

export async function modelRequests(
  env: BenchEnv,
  options: { turns: number; log: (message: string) => void },
): Promise<RequestsResult> {
  const full = await session(env, options.turns, false);
  const cache = cacheStability(full.requests);
  options.log(
    `cache: ${cache.cacheable}/${cache.compared} requests extend the previous one; breaks at ${JSON.stringify(cache.breaks)}, ` +
      `first after compaction ${JSON.stringify(cache.afterCompaction)} (${full.result.compactions} compactions)`,
  );
  const stateful = await session(env, options.turns, true);
  const result: RequestsResult = {
    turns: full.result.turns,
    compactions: full.result.compactions,
    cache,
    bytes: { full: bytes(full.requests), providerState: bytes(stateful.requests) },
  };
  options.log(
    `bytes: ${result.bytes.full.totalBytes} by default, ${result.bytes.providerState.totalBytes} with provider state ` +
      `(${stateful.result.compactions} compactions)`,
  );
  return result;
}
