/**
 * What the model activity does for servers that are not OpenAI: endpoints that cannot stream,
 * strict message validation, call ids that are missing or repeated, and the output token cap. Each
 * runs the real activity through the real `openai` client against the scripted model, set up to
 * behave as llama-cpp-python's and llama.cpp's servers do.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { createModelActivity, uniqueCallIds } from '../../src/activities/model.js';
import { outputTokenCap } from '../../src/activities/openai-client.js';
import type { ModelApi } from '../../src/activities/openai-client.js';
import { StreamingMemory } from '../../src/activities/stream-support.js';
import { CUT_CALL_OUTPUT } from '../../src/shared/prompt/instructions.js';
import { prepareCall } from '../../src/workflows/tool-calls.js';
import type { ModelCallInput, ModelReply } from '../../src/shared/boundary/activity-types.js';
import { functionOutput, userMessage } from '../../src/shared/prompt/items.js';
import type { TranscriptItem } from '../../src/shared/prompt/items.js';
import type { ScriptedModel } from '../../src/testing/scripted-model.js';
import { scriptedSettings, staticTranscript, useScriptedModel } from '../helpers/model-activities.js';

const startModel = useScriptedModel();
const task = userMessage('List the files.');

interface Options {
  api: ModelApi;
  items?: TranscriptItem[];
  streaming?: StreamingMemory;
  maxOutputTokens?: number;
}

function activityFor(model: ScriptedModel, options: Options) {
  const client = new OpenAI({ apiKey: 'k', baseURL: model.baseUrl, maxRetries: 0, logLevel: 'off' });
  return createModelActivity({
    openai: () => client,
    transcript: staticTranscript(options.items ?? [task]),
    streamIdleTimeoutMs: 120_000,
    api: options.api,
    streaming: options.streaming,
    maxOutputTokens: options.maxOutputTokens,
  });
}

function run(activity: ReturnType<typeof activityFor>, upTo: number): Promise<ModelReply> {
  const input: ModelCallInput = { sessionId: 's-1', epoch: 0, upTo, model: scriptedSettings(), turn: 2 };
  const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
  return env.run<[ModelCallInput], ModelReply, typeof activity>(activity, input);
}

function streamFlags(model: ScriptedModel): unknown[] {
  return model.requests.map((request) => (request.body as { stream?: unknown }).stream);
}

const apis: ModelApi[] = ['chat', 'responses'];

describe('an endpoint that cannot stream', () => {
  it.each(apis)(
    '%s: an empty stream (headers, then nothing) → the same request whole, remembered for the endpoint',
    async (api) => {
      const model = await startModel({ streaming: 'empty' });
      model.reply('a.ts b.ts').reply('done');
      const streaming = new StreamingMemory();
      const activity = activityFor(model, { api, streaming });

      expect((await run(activity, 1)).output).toEqual([
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'a.ts b.ts' }] },
      ]);
      await run(activity, 1);

      // The first request streamed and got nothing; then whole requests only.
      expect(streamFlags(model)).toEqual([true, false, false]);
      expect(streaming.streams(model.baseUrl.replace(/\/$/, ''))).toBe(false);
    },
  );

  it.each(apis)('%s: an error that names streaming → the request whole', async (api) => {
    const model = await startModel({ streaming: 'refused' });
    model.reply('ok');

    const reply = await run(activityFor(model, { api }), 1);

    expect(reply.output).toHaveLength(1);
    expect(streamFlags(model)).toEqual([true, false]);
  });

  it('stream = false sends every request whole from the start', async () => {
    const model = await startModel({ streaming: 'refused' });
    model.reply('ok');

    await run(activityFor(model, { api: 'chat', streaming: new StreamingMemory(false) }), 1);

    expect(streamFlags(model)).toEqual([false]);
  });

  it('a stream cut after some events is still a cut stream, not a reason to stop streaming', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'cut', afterEvents: 3 });
    const streaming = new StreamingMemory();

    const err = await run(activityFor(model, { api: 'chat', streaming }), 1).catch((e: unknown) => e);

    expect((err as ApplicationFailure).type).toBe('ModelStreamCut');
    expect(streamFlags(model)).toEqual([true]);
    expect(streaming.streams(model.baseUrl)).toBe(true);
  });
});

describe('strict chat servers', () => {
  it('a turn whose calls came without text is accepted by a pydantic-validated server (no content: null)', async () => {
    const model = await startModel({ strictChat: true });
    model.reply('Two files.');
    const items: TranscriptItem[] = [
      task,
      { type: 'function_call', call_id: 'call_1', name: 'list_dir', arguments: '{"dir_path":"."}' },
      functionOutput('call_1', ''),
      { type: 'function_call', call_id: 'call_2', name: 'shell', arguments: '{"command": ["ls"' },
      functionOutput('call_2', 'The arguments for shell are not valid JSON'),
    ];

    const reply = await run(activityFor(model, { api: 'chat', items }), items.length);

    expect(reply.output).toHaveLength(1);
    const messages = (model.requests[0]!.body as { messages: Array<Record<string, unknown>> }).messages;
    const assistant = messages.filter((message) => message.role === 'assistant');
    expect(assistant.map((message) => message.content)).toEqual(['', '']);
    // Arguments that are not JSON go back wrapped in a JSON object (templates parse them).
    const calls = assistant.flatMap(
      (message) => message.tool_calls as Array<{ function: { arguments: string } }>,
    );
    expect(calls.map((call) => JSON.parse(call.function.arguments) as unknown)).toEqual([
      { dir_path: '.' },
      { invalid_arguments: '{"command": ["ls"' },
    ]);
    expect(messages.filter((message) => message.role === 'tool').map((message) => message.content)).toEqual([
      '(no output)',
      'The arguments for shell are not valid JSON',
    ]);
  });

  it.each(apis)(
    '%s: call ids the server reuses from an earlier turn, or repeats in one reply, are made unique',
    async (api) => {
      const model = await startModel();
      model.enqueue({
        kind: 'reply',
        output: [
          { type: 'function_call', name: 'list_dir', arguments: { dir_path: '.' }, callId: 'call_0' },
          { type: 'function_call', name: 'list_dir', arguments: { dir_path: 'src' }, callId: 'call_0' },
        ],
      });
      const items: TranscriptItem[] = [
        task,
        { type: 'function_call', call_id: 'call_0', name: 'list_dir', arguments: '{"dir_path":"."}' },
        functionOutput('call_0', 'a.ts'),
      ];

      const reply = await run(activityFor(model, { api, items }), items.length);

      const ids = reply.output.map((item) => (item.type === 'function_call' ? item.call_id : ''));
      expect(new Set([...ids, 'call_0']).size).toBe(3);
    },
  );

  it('uniqueCallIds gives a missing id one and leaves unique ids alone', () => {
    const call = (id: string): TranscriptItem => ({
      type: 'function_call',
      call_id: id,
      name: 'x',
      arguments: '{}',
    });
    const out = uniqueCallIds([call(''), call('call_9'), call('call_9')], [call('call_1')], 4);
    expect(out.map((item) => (item.type === 'function_call' ? item.call_id : ''))).toEqual([
      'call_t4_0',
      'call_9',
      'call_9_t4_2',
    ]);
  });
});

describe('the output token cap', () => {
  it.each([
    ['chat', 'max_tokens'],
    ['responses', 'max_output_tokens'],
  ] as const)('%s: the request carries %s', async (api, field) => {
    const model = await startModel();
    model.reply('ok');

    await run(activityFor(model, { api, maxOutputTokens: 64 }), 1);

    expect(model.requests[0]!.body).toMatchObject({ [field]: 64 });
  });

  it.each(apis)(
    '%s: a reply cut by the cap inside a tool call keeps the turn going; the call is marked incomplete',
    async (api) => {
      const model = await startModel();
      model.enqueue({
        kind: 'reply',
        cutByLimit: true,
        output: [
          { type: 'message', text: 'Writing the file.' },
          { type: 'function_call', name: 'shell', arguments: '{"command":["ec', callId: 'call_cut' },
        ],
      });

      const reply = await run(activityFor(model, { api, maxOutputTokens: 16 }), 1);

      expect(reply.output.at(-1)).toMatchObject({
        type: 'function_call',
        call_id: 'call_cut',
        status: 'incomplete',
      });
    },
  );

  it('the workflow answers a call marked incomplete with what happened, and does not run it', () => {
    const prepared = prepareCall(
      {
        type: 'function_call',
        call_id: 'call_cut',
        name: 'shell',
        arguments: '{"command":["ec',
        status: 'incomplete',
      },
      () => ({ action: 'allow', reason: 'test' }),
    );

    expect(prepared).toMatchObject({ kind: 'rejected', output: CUT_CALL_OUTPUT });
    expect(CUT_CALL_OUTPUT).toMatch(/output token limit/);
  });

  it('a reply cut in its text is an ordinary reply', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'reply', cutByLimit: true, output: [{ type: 'message', text: 'It is a long' }] });

    const reply = await run(activityFor(model, { api: 'chat', maxOutputTokens: 4 }), 1);

    expect(reply.output).toEqual([
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'It is a long' }] },
    ]);
  });

  it('a reply cut before any text or call → non-retryable ModelOutputLimit naming the setting', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'reply', cutByLimit: true, output: [{ type: 'reasoning', summary: 'thinking' }] });

    const err = await run(activityFor(model, { api: 'responses', maxOutputTokens: 8 }), 1).catch(
      (e: unknown) => e,
    );

    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('ModelOutputLimit');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).message).toMatch(/max_output_tokens/);
  });

  it('is off for OpenAI and Azure OpenAI, 4096 for other endpoints, and the setting wins (0: none)', () => {
    expect(outputTokenCap({})).toBeUndefined();
    expect(outputTokenCap({ baseURL: 'https://api.openai.com/v1' })).toBeUndefined();
    expect(outputTokenCap({ baseURL: 'https://r.openai.azure.com/openai/v1' })).toBeUndefined();
    expect(outputTokenCap({ baseURL: 'http://localhost:8080/v1' })).toBe(4096);
    expect(outputTokenCap({ baseURL: 'http://localhost:8080/v1', maxOutputTokens: 0 })).toBeUndefined();
    expect(outputTokenCap({ baseURL: 'https://api.openai.com/v1', maxOutputTokens: 500 })).toBe(500);
  });
});
