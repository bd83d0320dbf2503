/**
 * Scripts for a tree of sessions: one scripted model answers every session, each from its own
 * queue, chosen by the request's `prompt_cache_key` (the session id): the parent's steps under
 * `parent`, a child's under its name (`agent-1`, the last part of its id).
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { statusQuery } from '../../src/shared/api/session-api.js';
import type {
  RecordedRequest,
  ReplyStep,
  ScriptStep,
  ScriptedModelOptions,
  ScriptedOutput,
} from '../../src/testing/scripted-model.js';

export type TreeScript = Record<string, ScriptStep[]>;

/** Which queue a request belongs to. */
export function sessionOf(body: unknown): string {
  const raw = (body as { prompt_cache_key?: unknown } | undefined)?.prompt_cache_key;
  const key = typeof raw === 'string' ? raw : '';
  const slash = key.lastIndexOf('/');
  return slash === -1 ? 'parent' : key.slice(slash + 1);
}

/** Model options that answer each session of the tree from its own queue (undefined when it is empty). */
export function treeModel(script: TreeScript, delayMs = 0): ScriptedModelOptions {
  return {
    responder: (request) => {
      const step = script[sessionOf(request.body)]?.shift();
      return step && delayMs > 0 ? { ...step, delayMs } : step;
    },
  };
}

/**
 * A reply with these outputs. Its usage is small and explicit (an estimate would count the whole
 * tool list), so that only a test that says so fills a small context window.
 */
export function reply(...output: ScriptedOutput[]): ReplyStep {
  return { kind: 'reply', output, usage: { inputTokens: 10, outputTokens: 5 } };
}

/** The same reply, sent only after `delayMs`. */
export function slowReply(delayMs: number, ...output: ScriptedOutput[]): ReplyStep {
  return { ...reply(...output), delayMs };
}

export function call(name: string, args: Record<string, unknown>, callId?: string): ScriptedOutput {
  return { type: 'function_call', name, arguments: args, ...(callId ? { callId } : {}) };
}

export function say(text: string): ScriptedOutput {
  return { type: 'message', text };
}

/** Steps left over in any queue: a test's script must be used up. */
export function leftovers(script: TreeScript): Record<string, number> {
  return Object.fromEntries(
    Object.entries(script)
      .filter(([, steps]) => steps.length > 0)
      .map(([name, steps]) => [name, steps.length]),
  );
}

/** A patch that replaces one line of a file. */
export function replaceLine(file: string, from: string, to: string): string {
  return ['*** Begin Patch', `*** Update File: ${file}`, `-${from}`, `+${to}`, '*** End Patch'].join('\n');
}

/**
 * How many replies of the model a request carries (a run of function calls is one reply): the
 * index of the step that answers it. A request retried after a lost worker carries the same
 * input, so it gets the same step again.
 */
export function repliesIn(body: unknown): number {
  const input = (body as { input?: { type?: string }[] } | undefined)?.input ?? [];
  let replies = 0;
  input.forEach((item, i) => {
    const previous = input[i - 1];
    if (item.type === 'function_call' && previous?.type !== 'function_call') replies += 1;
  });
  return replies;
}

/** Like `treeModel`, but each request gets the step for the replies it carries (retries repeat it). */
export function treeModelByTurn(script: TreeScript): ScriptedModelOptions {
  return {
    responder: (request) => script[sessionOf(request.body)]?.[repliesIn(request.body)],
  };
}

/** Which queue a request belongs to, by its path below the root: `parent`, `agent-1`, `agent-1/agent-1`. */
export function pathOf(body: unknown): string {
  const raw = (body as { prompt_cache_key?: unknown } | undefined)?.prompt_cache_key;
  const parts = (typeof raw === 'string' ? raw : '').split('/');
  return parts.length === 1 ? 'parent' : parts.slice(1).join('/');
}

/** The outputs one session's model received, by call id (`queueOf` names a request's session). */
export function outputsOf(
  requests: readonly RecordedRequest[],
  who: string,
  queueOf: (body: unknown) => string = sessionOf,
): Map<string, string> {
  const outputs = new Map<string, string>();
  for (const request of requests) {
    if (request.path !== '/v1/responses' || queueOf(request.body) !== who) continue;
    for (const item of (request.body as { input: Array<Record<string, unknown>> }).input) {
      if (item.type === 'function_call_output') outputs.set(String(item.call_id), String(item.output));
    }
  }
  return outputs;
}

/** The tools one session's first request offered the model. */
export function toolsOf(
  requests: readonly RecordedRequest[],
  who: string,
  queueOf: (body: unknown) => string = sessionOf,
): string[] {
  const request = requests.find((r) => r.path === '/v1/responses' && queueOf(r.body) === who);
  return ((request?.body as { tools?: { name: string }[] } | undefined)?.tools ?? []).map((t) => t.name);
}

/** The session's result, or, after `ms`, a failure that shows where the tree stands. */
export async function resultWithin(
  handle: WorkflowHandle,
  ms: number,
  model?: { requests: readonly RecordedRequest[] },
): Promise<SessionResult> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void (async () => {
        const status = await handle.query(statusQuery).catch((err: unknown) => String(err));
        const seen = (model?.requests ?? []).map((r) => `${r.index} ${sessionOf(r.body)}`);
        reject(
          new Error(
            `no result within ${ms} ms; status ${JSON.stringify(status)}; requests ${seen.join(', ')}`,
          ),
        );
      })();
    }, ms);
  });
  try {
    return (await Promise.race([handle.result(), late])) as SessionResult;
  } finally {
    clearTimeout(timer);
  }
}
