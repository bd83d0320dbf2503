/**
 * The model activity against the scripted model server: the real `openai` client streams a
 * Responses API call over loopback, inside a MockActivityEnvironment (heartbeats, cancellation).
 */
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { scriptedSettings, useScriptedModel } from '../helpers/model-activities.js';
import { createModelActivity } from '../../src/activities/model.js';
import type { ModelDeps } from '../../src/activities/model.js';
import { openaiClientFactory } from '../../src/activities/openai-client.js';
import { createTranscriptSource } from '../../src/activities/transcript-source.js';
import type { TranscriptSource } from '../../src/activities/transcript-source.js';
import type { ModelCallInput, ModelReply, TranscriptRef } from '../../src/shared/boundary/activity-types.js';
import { assistantMessage, functionOutput, userMessage } from '../../src/shared/prompt/items.js';
import type { TranscriptItem } from '../../src/shared/prompt/items.js';
import { BASE_INSTRUCTIONS } from '../../src/shared/prompt/instructions.js';
import { itemsDigest } from '../../src/shared/prompt/digest.js';
import { requestItems as requestItemsOf } from '../../src/activities/model-request.js';
import type { TranscriptPage, TranscriptRequest } from '../../src/shared/api/session-api.js';
import type { ModelSettings, TranscriptEntry } from '../../src/shared/api/session-config.js';
import { toolNames } from '../../src/shared/tools/specs.js';
import type { ScriptedModel } from '../../src/testing/scripted-model.js';
import { rejection, until } from '../helpers/waiting.js';

const SESSION = 'session-7f3a';
const settings = scriptedSettings();
const startModel = useScriptedModel();

/** The workflow's side of the transcript: entries it holds, and every query the worker made. */
interface FakeSession {
  entries: TranscriptEntry[];
  queries: Array<{ sessionId: string; request: TranscriptRequest }>;
  source: TranscriptSource;
  append(...items: TranscriptItem[]): void;
}

function fakeSession(items: TranscriptItem[], epoch = 0): FakeSession {
  const entries: TranscriptEntry[] = items.map((item) => ({ item, turn: 0 }));
  const queries: FakeSession['queries'] = [];
  const source = createTranscriptSource((sessionId, request) => {
    queries.push({ sessionId, request });
    const fromIndex = request.fromIndex ?? 0;
    const page: TranscriptPage = {
      epoch,
      fromIndex,
      entries: entries.slice(fromIndex),
      nextIndex: entries.length,
      total: entries.length,
    };
    return Promise.resolve(page);
  });
  return {
    entries,
    queries,
    source,
    append: (...more) => entries.push(...more.map((item) => ({ item, turn: 1 }))),
  };
}

/** A client that does not print the chunks it cannot parse (the SDK logs them by default). */
function quietClient(baseURL: string): () => OpenAI {
  const client = new OpenAI({ apiKey: 'k', baseURL, maxRetries: 0, logLevel: 'off' });
  return () => client;
}

function activityFor(
  target: ScriptedModel | string,
  session: FakeSession,
  overrides: Partial<ModelDeps> = {},
): ReturnType<typeof createModelActivity> {
  const baseURL = typeof target === 'string' ? target : target.baseUrl;
  return createModelActivity({
    openai: openaiClientFactory({ apiKey: 'k', baseURL }),
    transcript: session.source,
    streamIdleTimeoutMs: 120_000,
    ...overrides,
  });
}

/** Activity failures are expected here: keep the environment's "Activity failed" warnings out. */
function environment(heartbeatTimeoutMs?: number): MockActivityEnvironment {
  return new MockActivityEnvironment(heartbeatTimeoutMs === undefined ? {} : { heartbeatTimeoutMs }, {
    logger: new DefaultLogger('ERROR'),
  });
}

function callInput(upTo: number, extra: Partial<ModelCallInput> = {}): ModelCallInput & TranscriptRef {
  return { sessionId: SESSION, epoch: 0, upTo, model: settings, turn: 1, ...extra };
}

async function runModel(
  activity: ReturnType<typeof createModelActivity>,
  input: ModelCallInput,
  env: MockActivityEnvironment = environment(),
): Promise<ModelReply> {
  return env.run(activity, input);
}

async function failure(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await rejection(promise);
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  return port;
}

function body(request: { body: unknown } | undefined): Record<string, unknown> {
  expect(request?.body).toBeTypeOf('object');
  return request!.body as Record<string, unknown>;
}

const task = userMessage('Fix the failing test in src/sum.ts');

describe('model activity: replies', () => {
  it('turns a streamed text reply into transcript items and usage', async () => {
    const model = await startModel();
    model.enqueue({
      kind: 'reply',
      output: [
        { type: 'reasoning', summary: 'Looking at the test first.' },
        { type: 'message', text: 'The test expects 5, and sum returns 4. ' },
      ],
      usage: { inputTokens: 1200, outputTokens: 40, cachedTokens: 1024, reasoningTokens: 12 },
    });
    const session = fakeSession([task]);

    const reply = await runModel(activityFor(model, session), callInput(1));

    expect(reply).toEqual({
      output: [
        {
          id: 'rs_1',
          type: 'reasoning',
          summary: [{ type: 'summary_text', text: 'Looking at the test first.' }],
          encrypted_content: expect.any(String) as unknown,
        },
        {
          type: 'message',
          role: 'assistant',
          content: [{ type: 'output_text', text: 'The test expects 5, and sum returns 4. ' }],
        },
      ],
      usage: {
        inputTokens: 1200,
        cachedInputTokens: 1024,
        outputTokens: 40,
        reasoningTokens: 12,
        totalTokens: 1240,
      },
      responseId: 'resp_1',
    });
  });

  it('returns function calls with their call id and arguments exactly as the model sent them', async () => {
    const model = await startModel();
    const args = {
      command: ['bash', '-lc', 'grep -rn "héllo \\"wörld\\"" src && echo \'✓ 🎉\''],
      workdir: 'src/lib',
      timeout_ms: 30_000,
    };
    model.enqueue({
      kind: 'reply',
      output: [
        { type: 'message', text: 'Searching.' },
        { type: 'function_call', name: 'shell', arguments: args, callId: 'call_abc' },
        { type: 'function_call', name: 'read_file', arguments: '{"file_path":"a.ts"}', callId: 'call_def' },
      ],
    });

    const reply = await runModel(activityFor(model, fakeSession([task])), callInput(1));

    expect(reply.output).toEqual([
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Searching.' }] },
      { type: 'function_call', call_id: 'call_abc', name: 'shell', arguments: JSON.stringify(args) },
      { type: 'function_call', call_id: 'call_def', name: 'read_file', arguments: '{"file_path":"a.ts"}' },
    ]);
    const call = reply.output[1];
    if (call?.type !== 'function_call') throw new Error('expected a function call');
    expect(JSON.parse(call.arguments)).toEqual(args);
  });

  it('sends instructions, the tools, store: false, the session as cache key and the transcript without output ids', async () => {
    const model = await startModel();
    model.reply('Done.');
    const transcript: TranscriptItem[] = [
      userMessage('<environment_context>cwd: /repo</environment_context>'),
      task,
      {
        type: 'reasoning',
        id: 'rs_9',
        summary: [],
        encrypted_content: 'b3BhcXVl',
      },
      {
        type: 'message',
        role: 'assistant',
        id: 'msg_9',
        status: 'completed',
        content: [{ type: 'output_text', text: 'Let me look.' }],
      },
      {
        type: 'function_call',
        id: 'fc_9',
        status: 'completed',
        call_id: 'call_9',
        name: 'read_file',
        arguments: '{"file_path":"src/sum.ts"}',
      },
      functionOutput('call_9', 'L1: export const sum = (a, b) => a + b - 1;'),
      userMessage('also run the linter'),
    ];

    await runModel(activityFor(model, fakeSession(transcript)), callInput(transcript.length));

    expect(model.requests).toHaveLength(1);
    const request = model.requests[0]!;
    expect(request.path).toBe('/v1/responses');
    expect(request.headers.authorization).toBe('Bearer k');
    const sent = body(request);
    // toEqual lists every key: no `reasoning` or `include` without a reasoning effort.
    expect(sent).toEqual({
      model: 'scripted-x',
      instructions: BASE_INSTRUCTIONS,
      input: [
        userMessage('<environment_context>cwd: /repo</environment_context>'),
        task,
        { type: 'reasoning', id: 'rs_9', summary: [], encrypted_content: 'b3BhcXVl' },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Let me look.' }] },
        {
          type: 'function_call',
          call_id: 'call_9',
          name: 'read_file',
          arguments: '{"file_path":"src/sum.ts"}',
        },
        functionOutput('call_9', 'L1: export const sum = (a, b) => a + b - 1;'),
        userMessage('also run the linter'),
      ],
      tools: expect.any(Array) as unknown,
      tool_choice: 'auto',
      parallel_tool_calls: true,
      store: false,
      prompt_cache_key: SESSION,
      stream: true,
    });
    expect(BASE_INSTRUCTIONS.length).toBeGreaterThan(100);

    const tools = sent.tools as Array<Record<string, unknown>>;
    expect(tools.map((tool) => tool.name)).toEqual(toolNames);
    for (const tool of tools) {
      expect(tool).toMatchObject({ type: 'function', strict: false, parameters: { type: 'object' } });
      expect(tool.description).toBeTypeOf('string');
      expect(tool.parameters).not.toHaveProperty('$schema');
    }
    const shell = tools.find((tool) => tool.name === 'shell');
    expect(shell?.parameters).toMatchObject({
      type: 'object',
      properties: {
        command: {
          type: 'array',
          items: { type: 'string' },
          minItems: 1,
          description: expect.any(String) as unknown,
        },
        workdir: { type: 'string' },
        timeout_ms: { type: 'integer' },
      },
      required: ['command'],
      additionalProperties: false,
    });
  });

  it('asks for a reasoning summary and the encrypted reasoning only when a reasoning effort is set', async () => {
    const model = await startModel();
    model.reply('Done.');

    await runModel(
      activityFor(model, fakeSession([task])),
      callInput(1, { model: { ...settings, reasoningEffort: 'high' } }),
    );

    const sent = body(model.requests[0]);
    expect(sent.reasoning).toEqual({ effort: 'high', summary: 'auto' });
    expect(sent.include).toEqual(['reasoning.encrypted_content']);
  });

  it('sends entries [0, upTo) only, even when the workflow already holds more', async () => {
    const model = await startModel();
    model.reply('ok');
    const session = fakeSession([task, userMessage('second'), userMessage('third')]);

    await runModel(activityFor(model, session), callInput(2));

    expect(body(model.requests[0]).input).toEqual([task, userMessage('second')]);
  });
});

describe('model activity: provider state (previous_response_id)', () => {
  const providerSettings: ModelSettings = { ...settings, providerState: true };

  it('stores the response and sends only the entries after the previous response, referring to it', async () => {
    const model = await startModel();
    model.call('read_file', { file_path: 'a.txt' }, 'call_1').reply('done');
    const session = fakeSession([task]);

    const first = await runModel(activityFor(model, session), callInput(1, { model: providerSettings }));
    expect(body(model.requests[0]).store).toBe(true);
    expect(body(model.requests[0]).previous_response_id).toBeUndefined();
    expect(first.responseId).toBeTruthy();

    session.append(...first.output, functionOutput('call_1', 'alpha'));
    await runModel(
      activityFor(model, session),
      callInput(3, { model: providerSettings, previousResponse: { id: first.responseId!, upTo: 2 } }),
    );
    const second = body(model.requests[1]);
    expect(second.previous_response_id).toBe(first.responseId);
    expect(second.input).toEqual([functionOutput('call_1', 'alpha')]);
    // The provider sees the whole conversation: the first input, its output, the new item.
    expect(model.requests[1]!.conversation).toHaveLength(3);
  });

  it('sends the whole input again when the provider does not know the previous response', async () => {
    const model = await startModel();
    model.reply('done');
    const session = fakeSession([task, userMessage('second')]);

    const reply = await runModel(
      activityFor(model, session),
      callInput(2, { model: providerSettings, previousResponse: { id: 'resp_expired', upTo: 1 } }),
    );

    expect(reply.output).toEqual([assistantMessage('done')]);
    expect(model.requests).toHaveLength(2);
    expect(model.requests[0]!.body).toMatchObject({ previous_response_id: 'resp_expired' });
    const retry = body(model.requests[1]);
    expect(retry.previous_response_id).toBeUndefined();
    expect(retry.input).toEqual([task, userMessage('second')]);
  });
});

describe('model activity: transcript source', () => {
  it('reads the transcript of the workflow that scheduled it when the input names no session', async () => {
    const model = await startModel();
    model.reply('Fine.');
    const session = fakeSession([task]);
    const activity = activityFor(model, session);
    const { sessionId: _omitted, ...withoutSession } = callInput(1);
    const env = new MockActivityEnvironment(
      { workflowExecution: { workflowId: SESSION, runId: 'run-1' } },
      { logger: new DefaultLogger('ERROR') },
    );

    await runModel(activity, withoutSession, env);

    expect(session.queries).toEqual([{ sessionId: SESSION, request: { fromIndex: 0 } }]);
    expect(body(model.requests[0]).prompt_cache_key).toBe(SESSION);
  });

  it('queries the workflow once per call, and the second call fetches only the new entries', async () => {
    const model = await startModel();
    model.call('read_file', { file_path: 'src/sum.ts' }, 'call_1').reply('Fixed.');
    const session = fakeSession([userMessage('<environment_context/>'), task]);
    const activity = activityFor(model, session);

    const first = await runModel(activity, callInput(2));
    expect(session.queries).toEqual([{ sessionId: SESSION, request: { fromIndex: 0 } }]);

    // The workflow appends the reply and the tool's output, then schedules the next turn.
    session.append(...first.output, functionOutput('call_1', 'L1: export const sum = 1;'));
    await runModel(activity, callInput(4, { turn: 2 }));

    expect(session.queries).toEqual([
      { sessionId: SESSION, request: { fromIndex: 0 } },
      { sessionId: SESSION, request: { fromIndex: 2 } },
    ]);
    expect(session.source.stats).toMatchObject({ queries: 2, fetchedEntries: 4 });
    expect(body(model.requests[1]).input).toEqual([
      userMessage('<environment_context/>'),
      task,
      {
        type: 'function_call',
        call_id: 'call_1',
        name: 'read_file',
        arguments: '{"file_path":"src/sum.ts"}',
      },
      functionOutput('call_1', 'L1: export const sum = 1;'),
    ]);
  });

  it('rebuilds the reply and the tool output it saw, without a query, when their digest matches', async () => {
    const model = await startModel();
    model.call('read_file', { file_path: 'src/sum.ts' }, 'call_1').reply('fine').reply('again');
    const session = fakeSession([task]);
    const activity = activityFor(model, session);

    const first = await runModel(activity, callInput(1));
    // The tool activity of the same run on this worker reports its output; the workflow appends both.
    await environment().run(() =>
      Promise.resolve(session.source.proposeOutput(callInput(1), 'call_1', 'L1: export const sum = 1;')),
    );
    session.append(...first.output, functionOutput('call_1', 'L1: export const sum = 1;'));
    const tail = { from: 1, digest: itemsDigest(session.entries.slice(1).map((e) => e.item)) };
    await runModel(activity, callInput(3, { turn: 2, tail }));

    expect(session.queries).toHaveLength(1);
    expect(session.source.stats.rebuilt).toBe(1);
    expect(body(model.requests[1]).input).toEqual(requestItemsOf(session.entries.map((e) => e.item)));

    // When the workflow holds something else (here: another output), the digest differs and the
    // worker asks the workflow.
    session.append(userMessage('a person wrote this'));
    const stale = { from: 3, digest: itemsDigest([userMessage('not what the workflow holds')]) };
    await runModel(activity, callInput(4, { turn: 3, tail: stale }));
    expect(session.queries).toHaveLength(2);
    expect(body(model.requests[2]).input).toContainEqual(userMessage('a person wrote this'));
  });

  it('answers a repeated call from the cache without asking the workflow', async () => {
    const model = await startModel();
    model.reply('one').reply('two');
    const session = fakeSession([task, userMessage('more')]);
    const activity = activityFor(model, session);

    await runModel(activity, callInput(2));
    await runModel(activity, callInput(2));

    expect(session.queries).toHaveLength(1);
    expect(session.source.stats.hits).toBe(1);
    expect(body(model.requests[1]).input).toEqual([task, userMessage('more')]);
  });

  it('fails retryably, without calling the model, when the transcript moved to another epoch', async () => {
    const model = await startModel();
    const session = fakeSession([task], 3);

    const err = await failure(runModel(activityFor(model, session), callInput(1, { epoch: 2 })));

    expect(err.type).toBe('TranscriptMoved');
    expect(err.nonRetryable).toBe(false);
    expect(model.requests).toHaveLength(0);
  });
});

describe('model activity: heartbeats and stalls', () => {
  it('heartbeats on a timer while a slow stream runs, reporting progress', async () => {
    const model = await startModel();
    // 11 events 100 ms apart: about a second of streaming, longer than the idle timeout below,
    // which counts silence, not duration.
    model.enqueue({
      kind: 'reply',
      output: [{ type: 'message', text: 'A slow but steady reply.' }],
      chunkDelayMs: 100,
    });
    const env = environment(600); // heartbeat every 200 ms
    const beats: unknown[] = [];
    env.on('heartbeat', (details: unknown) => beats.push(details));

    const reply = await runModel(
      activityFor(model, fakeSession([task])),
      callInput(1, { turn: 4, streamIdleTimeoutMs: 900 }),
      env,
    );

    expect(reply.output).toHaveLength(1);
    expect(beats.length).toBeGreaterThanOrEqual(3);
    const progress = beats as Array<{ turn: number; events: number; tokens: number; elapsedMs: number }>;
    expect(progress[0]).toMatchObject({ turn: 4, events: 0, tokens: 0 });
    const last = progress.at(-1)!;
    expect(last.events).toBeGreaterThan(0);
    expect(last.tokens).toBeGreaterThan(0);
    expect(last.elapsedMs).toBeGreaterThan(progress[0]!.elapsedMs);
  });

  it('keeps heartbeating while it works on the reply (the reads beside it), then stops', async () => {
    // Found by the concurrency benchmark: the reads beside a reply ran after the heartbeat had
    // stopped, and on a busy worker 106 model attempts of 2,000 timed out their 2 s heartbeat.
    const model = await startModel();
    model.enqueue({ kind: 'reply', output: [{ type: 'message', text: 'Read these.' }] });
    const env = environment(600); // heartbeat every 200 ms
    let beats = 0;
    env.on('heartbeat', () => (beats += 1));
    let during = 0;
    const reply = await runModel(
      activityFor(model, fakeSession([task]), {
        afterReply: async (_input, got) => {
          const before = beats;
          await new Promise((resolve) => setTimeout(resolve, 700));
          during = beats - before;
          return { ...got, responseId: 'after' };
        },
      }),
      callInput(1),
      env,
    );
    expect(reply.responseId).toBe('after');
    expect(during).toBeGreaterThanOrEqual(2);
    const after = beats;
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(beats).toBe(after);
  });

  it('abandons a stream that sends nothing for the idle timeout: retryable ModelStreamStalled', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'hang' });
    const env = environment(600);
    const started = Date.now();

    const err = await failure(
      runModel(activityFor(model, fakeSession([task])), callInput(1, { streamIdleTimeoutMs: 300 }), env),
    );
    const elapsed = Date.now() - started;

    expect(err.type).toBe('ModelStreamStalled');
    expect(err.nonRetryable).toBe(false);
    expect(elapsed).toBeGreaterThanOrEqual(300);
    expect(elapsed).toBeLessThan(2500);
    // The connection was dropped, not left hanging on the server.
    await until(() => model.hanging === 0);
  });

  it('also abandons a request that gets no response headers within the idle timeout', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'reply', output: [{ type: 'message', text: 'too late' }], delayMs: 5000 });
    const started = Date.now();

    const err = await failure(
      runModel(
        activityFor(model, fakeSession([task])),
        callInput(1, { streamIdleTimeoutMs: 300 }),
        environment(600),
      ),
    );

    expect(err.type).toBe('ModelStreamStalled');
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it("uses the worker's idle timeout when the session sets none", async () => {
    const model = await startModel();
    model.enqueue({ kind: 'hang' });
    const activity = activityFor(model, fakeSession([task]), { streamIdleTimeoutMs: 250 });

    const err = await failure(runModel(activity, callInput(1), environment(600)));

    expect(err.type).toBe('ModelStreamStalled');
  });

  it('rejects with a CancelledFailure promptly when cancelled during a stalled stream', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'hang' });
    const env = environment(600);
    const pending = runModel(activityFor(model, fakeSession([task])), callInput(1), env);
    const outcome = rejection(pending);

    await model.waitForRequest(1);
    await until(() => model.hanging === 1);
    const cancelledAt = Date.now();
    env.cancel();
    const err = await outcome;

    expect(err).toBeInstanceOf(CancelledFailure);
    expect(Date.now() - cancelledAt).toBeLessThan(1000);
    await until(() => model.hanging === 0);
  });
});

describe('model activity: errors', () => {
  it('429 with retry-after: 7 → retryable ModelRateLimited that waits 7 s', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'error', status: 429, headers: { 'retry-after': '7' } });

    const err = await failure(runModel(activityFor(model, fakeSession([task])), callInput(1)));

    expect(err.type).toBe('ModelRateLimited');
    expect(err.nonRetryable).toBe(false);
    expect(err.nextRetryDelay).toBe(7000);
    expect(err.cause).toBeInstanceOf(OpenAI.RateLimitError);
  });

  it.each([500, 503])('%i → retryable ModelUnavailable', async (status) => {
    const model = await startModel();
    model.enqueue({ kind: 'error', status });

    const err = await failure(runModel(activityFor(model, fakeSession([task])), callInput(1)));

    expect(err.type).toBe('ModelUnavailable');
    expect(err.nonRetryable).toBe(false);
    expect(err.message).toContain(String(status));
  });

  it('401 → non-retryable ModelAuthenticationFailed that says to check OPENAI_API_KEY', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'error', status: 401 });

    const err = await failure(runModel(activityFor(model, fakeSession([task])), callInput(1)));

    expect(err.type).toBe('ModelAuthenticationFailed');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toContain('OPENAI_API_KEY');
    expect(err.message).toContain(model.baseUrl);
  });

  it('404 → non-retryable ModelNotFound naming the model setting', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'error', status: 404, message: 'The model `scripted-x` does not exist' });

    const err = await failure(runModel(activityFor(model, fakeSession([task])), callInput(1)));

    expect(err.type).toBe('ModelNotFound');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toContain('RATCHET_MODEL');
  });

  it('400 context_length_exceeded → non-retryable ContextLengthExceeded', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'error', status: 400, code: 'context_length_exceeded' });

    const err = await failure(runModel(activityFor(model, fakeSession([task])), callInput(1)));

    expect(err.type).toBe('ContextLengthExceeded');
    expect(err.nonRetryable).toBe(true);
  });

  it('another 400 → non-retryable ModelBadRequest carrying the endpoint message', async () => {
    const model = await startModel();
    model.enqueue({
      kind: 'error',
      status: 400,
      message: "Invalid value for 'tool_choice'.",
      param: 'tool_choice',
    });

    const err = await failure(runModel(activityFor(model, fakeSession([task])), callInput(1)));

    expect(err.type).toBe('ModelBadRequest');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toContain("Invalid value for 'tool_choice'.");
  });

  it('a stream cut mid-way (socket destroyed) → retryable', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'cut', afterEvents: 5 });

    const err = await failure(runModel(activityFor(model, fakeSession([task])), callInput(1)));

    // undici's body reader throws TypeError("terminated") (cause: SocketError "other side
    // closed"), which the SDK's stream iterator passes through unwrapped.
    expect(err.nonRetryable).toBe(false);
    expect(err.cause).toBeInstanceOf(TypeError);
  });

  it('a stream cut mid-way is classified as ModelStreamCut', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'cut', afterEvents: 5 });

    const err = await failure(runModel(activityFor(model, fakeSession([task])), callInput(1)));

    expect(err.type).toBe('ModelStreamCut');
    expect(err.nonRetryable).toBe(false);
  });

  it('a stream that ends cleanly without response.completed → retryable ModelStreamCut', async () => {
    const model = await startModel();
    // A hang without output, released: the server ends the stream after `response.created`.
    model.enqueue({ kind: 'hang' });
    const pending = rejection(runModel(activityFor(model, fakeSession([task])), callInput(1)));
    await until(() => model.hanging === 1);
    model.release();

    const err = await pending;

    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('ModelStreamCut');
    expect((err as ApplicationFailure).nonRetryable).toBe(false);
  });

  it('a body that does not parse → retryable ModelBadResponse', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'garbage' });
    const activity = activityFor(model, fakeSession([task]), { openai: quietClient(model.baseUrl) });

    const err = await failure(runModel(activity, callInput(1)));

    expect(err.type).toBe('ModelBadResponse');
    expect(err.nonRetryable).toBe(false);
  });

  it('a completed response without a message or function call → retryable ModelEmptyResponse', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'empty' });

    const err = await failure(runModel(activityFor(model, fakeSession([task])), callInput(1)));

    expect(err.type).toBe('ModelEmptyResponse');
    expect(err.nonRetryable).toBe(false);
  });

  it('a reply with only reasoning is empty too', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'reply', output: [{ type: 'reasoning', summary: 'hmm' }] });

    const err = await failure(runModel(activityFor(model, fakeSession([task])), callInput(1)));

    expect(err.type).toBe('ModelEmptyResponse');
  });

  it('an unreachable endpoint → retryable ModelUnavailable naming the endpoint', async () => {
    const baseURL = `http://127.0.0.1:${await closedPort()}/v1`;

    const err = await failure(runModel(activityFor(baseURL, fakeSession([task])), callInput(1)));

    expect(err.type).toBe('ModelUnavailable');
    expect(err.nonRetryable).toBe(false);
    expect(err.message).toContain(baseURL);
  });

  it('no API key and no base URL → non-retryable ModelNotConfigured, before the transcript is read', async () => {
    const session = fakeSession([task]);
    const activity = createModelActivity({
      openai: openaiClientFactory({}),
      transcript: session.source,
      streamIdleTimeoutMs: 120_000,
    });

    const err = await failure(runModel(activity, callInput(1)));

    expect(err.type).toBe('ModelNotConfigured');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toContain('OPENAI_API_KEY');
    expect(session.queries).toHaveLength(0);
  });
});
