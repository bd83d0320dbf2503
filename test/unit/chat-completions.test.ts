/**
 * The Chat Completions fallback: the transcript as chat messages, streamed chunks assembled into
 * transcript items, and the model and compaction activities with `api: 'chat'` against the
 * scripted model's `/v1/chat/completions` through the real `openai` client.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import OpenAI from 'openai';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions/completions';
import { describe, expect, it } from 'vitest';
import { scriptedSettings, staticTranscript, useScriptedModel } from '../helpers/model-activities.js';
import { ChatStreamAssembler, chatMessages, chatTools } from '../../src/activities/chat-completions.js';
import { createCompactActivity } from '../../src/activities/compact.js';
import { createModelActivity } from '../../src/activities/model.js';
import { endpointFromEnv } from '../../src/activities/openai-client.js';
import type {
  CompactInput,
  CompactResult,
  ModelCallInput,
  ModelReply,
} from '../../src/shared/boundary/activity-types.js';
import { assistantMessage, functionOutput, userMessage } from '../../src/shared/prompt/items.js';
import type { TranscriptItem } from '../../src/shared/prompt/items.js';
import { BASE_INSTRUCTIONS, SUMMARY_PREFIX } from '../../src/shared/prompt/instructions.js';
import { toolNames } from '../../src/shared/tools/specs.js';
import type { ScriptedModel } from '../../src/testing/scripted-model.js';

const settings = scriptedSettings();
const startModel = useScriptedModel();
const source = staticTranscript;

function chatActivity(target: ScriptedModel, items: TranscriptItem[]) {
  const client = new OpenAI({ apiKey: 'k', baseURL: target.baseUrl, maxRetries: 0, logLevel: 'off' });
  return createModelActivity({
    openai: () => client,
    transcript: source(items),
    streamIdleTimeoutMs: 120_000,
    api: 'chat',
  });
}

function environment(heartbeatTimeoutMs?: number): MockActivityEnvironment {
  return new MockActivityEnvironment(heartbeatTimeoutMs === undefined ? {} : { heartbeatTimeoutMs }, {
    logger: new DefaultLogger('ERROR'),
  });
}

function runModel(activity: ReturnType<typeof chatActivity>, input: ModelCallInput, env = environment()) {
  return env.run<[ModelCallInput], ModelReply, typeof activity>(activity, input);
}

function runCompact(activity: ReturnType<typeof createCompactActivity>, input: CompactInput) {
  return environment().run<[CompactInput], CompactResult, typeof activity>(activity, input);
}

function callInput(upTo: number, extra: Partial<ModelCallInput> = {}): ModelCallInput {
  return { sessionId: 'session-1', epoch: 0, upTo, model: settings, turn: 1, ...extra };
}

async function failure(promise: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  }
  throw new Error('expected a rejection, but the promise resolved');
}

const task = userMessage('Fix the failing test in src/sum.ts');

describe('transcript → chat messages', () => {
  it('puts the instructions first and maps messages, grouped calls and tool results, as strict servers take them', () => {
    const items: TranscriptItem[] = [
      userMessage('<environment_context>cwd: /repo</environment_context>'),
      task,
      { type: 'reasoning', id: 'rs_1', summary: [], encrypted_content: 'b3BhcXVl' },
      {
        type: 'message',
        role: 'assistant',
        id: 'msg_1',
        status: 'completed',
        content: [{ type: 'output_text', text: 'Looking at both files.' }],
      },
      {
        type: 'function_call',
        call_id: 'call_a',
        name: 'read_file',
        arguments: '{"file_path":"src/sum.ts"}',
      },
      { type: 'function_call', call_id: 'call_b', name: 'read_file', arguments: '{"file_path":"test.js"}' },
      functionOutput('call_a', 'L1: export const sum = (a, b) => a + b - 1;'),
      functionOutput('call_b', 'L1: assert(sum(2, 2) === 4)'),
      { type: 'function_call', call_id: 'call_c', name: 'shell', arguments: '{"command":["npm","test"]}' },
      functionOutput('call_c', 'exit 1'),
      { type: 'compaction', encrypted_content: 'c3VtbWFyeQ==' },
      { type: 'message', role: 'developer', content: [{ type: 'input_text', text: 'Be brief.' }] },
      assistantMessage('Fixed.'),
    ];

    expect(chatMessages(items)).toEqual([
      { role: 'system', content: BASE_INSTRUCTIONS },
      {
        role: 'user',
        content:
          '<environment_context>cwd: /repo</environment_context>\n\nFix the failing test in src/sum.ts',
      },
      {
        role: 'assistant',
        content: 'Looking at both files.',
        tool_calls: [
          {
            id: 'call_a',
            type: 'function',
            function: { name: 'read_file', arguments: '{"file_path":"src/sum.ts"}' },
          },
          {
            id: 'call_b',
            type: 'function',
            function: { name: 'read_file', arguments: '{"file_path":"test.js"}' },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'call_a', content: 'L1: export const sum = (a, b) => a + b - 1;' },
      { role: 'tool', tool_call_id: 'call_b', content: 'L1: assert(sum(2, 2) === 4)' },
      {
        role: 'assistant',
        content: '',
        tool_calls: [
          {
            id: 'call_c',
            type: 'function',
            function: { name: 'shell', arguments: '{"command":["npm","test"]}' },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'call_c', content: 'exit 1' },
      { role: 'user', content: 'Be brief.' },
      { role: 'assistant', content: 'Fixed.' },
    ]);
  });

  it('offers every tool as a chat function tool with its JSON schema', () => {
    const tools = chatTools();
    expect(tools.map((tool) => tool.function.name)).toEqual(toolNames);
    const readFile = tools.find((tool) => tool.function.name === 'read_file')!;
    expect(readFile.type).toBe('function');
    expect(readFile.function.description).toMatch(/Reads a text file/);
    expect(readFile.function.parameters).toMatchObject({
      type: 'object',
      properties: { file_path: { type: 'string' } },
      required: ['file_path'],
    });
  });
});

describe('assembling a streamed chat completion', () => {
  function chunk(
    delta: ChatCompletionChunk.Choice['delta'],
    finish: ChatCompletionChunk.Choice['finish_reason'] = null,
  ): ChatCompletionChunk {
    return {
      id: 'chatcmpl_9',
      object: 'chat.completion.chunk',
      created: 0,
      model: 'm',
      choices: [{ index: 0, delta, finish_reason: finish }],
    };
  }

  it('joins interleaved tool-call argument deltas by index and keeps the usage chunk', () => {
    const assembler = new ChatStreamAssembler();
    const parts: ChatCompletionChunk[] = [
      chunk({ role: 'assistant', content: 'Two ' }),
      chunk({ content: 'reads.' }),
      chunk({ tool_calls: [{ index: 0, id: 'call_x', type: 'function', function: { name: 'read_file' } }] }),
      chunk({ tool_calls: [{ index: 1, id: 'call_y', type: 'function', function: { name: 'list_dir' } }] }),
      chunk({ tool_calls: [{ index: 1, function: { arguments: '{"dir_path"' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '{"file_path":' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '"a.ts"}' } }] }),
      chunk({ tool_calls: [{ index: 1, function: { arguments: ':"."}' } }] }),
      chunk({}, 'tool_calls'),
      {
        ...chunk({}),
        choices: [],
        usage: {
          prompt_tokens: 900,
          completion_tokens: 30,
          total_tokens: 930,
          prompt_tokens_details: { cached_tokens: 512 },
          completion_tokens_details: { reasoning_tokens: 4 },
        },
      },
    ];
    const carried = parts.map((part) => assembler.add(part)).join('');

    expect(carried).toBe('Two reads.{"dir_path"{"file_path":"a.ts"}:"."}');
    expect(assembler.finishReason).toBe('tool_calls');
    expect(assembler.reply().reply).toEqual({
      output: [
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Two reads.' }] },
        { type: 'function_call', call_id: 'call_x', name: 'read_file', arguments: '{"file_path":"a.ts"}' },
        { type: 'function_call', call_id: 'call_y', name: 'list_dir', arguments: '{"dir_path":"."}' },
      ],
      usage: {
        inputTokens: 900,
        cachedInputTokens: 512,
        outputTokens: 30,
        reasoningTokens: 4,
        totalTokens: 930,
      },
      responseId: 'chatcmpl_9',
    });
  });

  it('gives a call without an id one, and a call without arguments "{}"', () => {
    const assembler = new ChatStreamAssembler();
    assembler.add(chunk({ tool_calls: [{ index: 0, function: { name: 'list_dir' } }] }));
    assembler.add(chunk({}, 'tool_calls'));
    expect(assembler.reply().reply.output).toEqual([
      { type: 'function_call', call_id: 'call_chatcmpl_9_0', name: 'list_dir', arguments: '{}' },
    ]);
  });
});

describe('model activity with api: chat', () => {
  it('streams a chat completion and returns text, calls with their ids and usage', async () => {
    const model = await startModel();
    model.enqueue({
      kind: 'reply',
      output: [
        { type: 'reasoning', summary: 'not carried by chat' },
        { type: 'message', text: 'Searching.' },
        { type: 'function_call', name: 'shell', arguments: { command: ['rg', 'sum'] }, callId: 'call_abc' },
        { type: 'function_call', name: 'read_file', arguments: '{"file_path":"a.ts"}', callId: 'call_def' },
      ],
      usage: { inputTokens: 1200, outputTokens: 40, cachedTokens: 1024 },
    });

    const reply = await runModel(chatActivity(model, [task]), callInput(1));

    expect(reply.output).toEqual([
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Searching.' }] },
      { type: 'function_call', call_id: 'call_abc', name: 'shell', arguments: '{"command":["rg","sum"]}' },
      { type: 'function_call', call_id: 'call_def', name: 'read_file', arguments: '{"file_path":"a.ts"}' },
    ]);
    expect(reply.usage).toMatchObject({ inputTokens: 1200, cachedInputTokens: 1024, outputTokens: 40 });
    expect(reply.responseId).toMatch(/^chatcmpl_/);
    const request = model.requests[0]!;
    expect(request.path).toBe('/v1/chat/completions');
    expect(request.body).toMatchObject({
      model: 'scripted-x',
      messages: [
        { role: 'system', content: BASE_INSTRUCTIONS },
        { role: 'user', content: 'Fix the failing test in src/sum.ts' },
      ],
      stream: true,
      stream_options: { include_usage: true },
      tool_choice: 'auto',
    });
    expect(request.body).not.toHaveProperty('prompt_cache_key');
  });

  it.each([
    {
      step: { kind: 'error', status: 429, headers: { 'retry-after': '3' } },
      type: 'ModelRateLimited',
      fatal: false,
    },
    { step: { kind: 'error', status: 503 }, type: 'ModelUnavailable', fatal: false },
    { step: { kind: 'error', status: 401 }, type: 'ModelAuthenticationFailed', fatal: true },
    {
      step: { kind: 'error', status: 400, code: 'context_length_exceeded' },
      type: 'ContextLengthExceeded',
      fatal: true,
    },
    { step: { kind: 'garbage' }, type: 'ModelBadResponse', fatal: false },
    { step: { kind: 'cut', afterEvents: 3 }, type: 'ModelStreamCut', fatal: false },
    { step: { kind: 'empty' }, type: 'ModelEmptyResponse', fatal: false },
  ] as const)('$step.kind $step.status → $type', async ({ step, type, fatal }) => {
    const model = await startModel();
    model.enqueue(step);

    const err = await failure(runModel(chatActivity(model, [task]), callInput(1)));

    expect(err.type).toBe(type);
    expect(err.nonRetryable).toBe(fatal);
    if (type === 'ModelRateLimited') expect(err.nextRetryDelay).toBe(3000);
  });

  it('abandons a chat stream that stalls: retryable ModelStreamStalled', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'hang' });

    const err = await failure(
      runModel(chatActivity(model, [task]), callInput(1, { streamIdleTimeoutMs: 300 }), environment(600)),
    );

    expect(err.type).toBe('ModelStreamStalled');
  });
});

describe('compaction with api: chat', () => {
  it('never calls responses.compact and writes the summary through chat completions', async () => {
    const model = await startModel();
    model.reply('We fixed sum; the test passes.');
    const items: TranscriptItem[] = [
      userMessage('<environment_context>cwd: /repo</environment_context>'),
      task,
      {
        type: 'function_call',
        call_id: 'call_a',
        name: 'read_file',
        arguments: '{"file_path":"src/sum.ts"}',
      },
      functionOutput('call_a', 'L1: export const sum = (a, b) => a + b;'),
      assistantMessage('Done.'),
    ];
    const client = new OpenAI({ apiKey: 'k', baseURL: model.baseUrl, maxRetries: 0 });
    const compact = createCompactActivity({ openai: () => client, transcript: source(items), api: 'chat' });

    const result = await runCompact(compact, {
      sessionId: 'session-1',
      epoch: 0,
      upTo: items.length,
      model: settings,
      contextEntries: 1,
    });

    expect(result.method).toBe('local');
    expect(result.items.at(-1)).toEqual(userMessage(`${SUMMARY_PREFIX}We fixed sum; the test passes.`));
    expect(model.requests.map((r) => r.path)).toEqual(['/v1/chat/completions']);
    const body = model.requests[0]!.body as { stream?: boolean; tool_choice: string; messages: unknown[] };
    expect(body.stream).toBeUndefined();
    expect(body.tool_choice).toBe('none');
    // system, the two user messages as one, the call, its output, the answer, the summary request
    expect(body.messages).toHaveLength(6);
  });

  it('refuses compaction "remote" on a chat endpoint', async () => {
    const model = await startModel();
    const client = new OpenAI({ apiKey: 'k', baseURL: model.baseUrl, maxRetries: 0 });
    const compact = createCompactActivity({ openai: () => client, transcript: source([task]), api: 'chat' });

    const err = await failure(
      runCompact(compact, {
        sessionId: 'session-1',
        epoch: 0,
        upTo: 1,
        model: { ...settings, compaction: 'remote' },
        contextEntries: 0,
      }),
    );

    expect(err.type).toBe('CompactionUnsupported');
    expect(err.nonRetryable).toBe(true);
    expect(model.requests).toHaveLength(0);
  });
});

describe('RATCHET_API for a worker configured by its environment', () => {
  it('reads chat, and names the variable for an unknown value', () => {
    expect(endpointFromEnv({ RATCHET_API: 'chat', OPENAI_BASE_URL: 'http://h/v1' })).toEqual({
      apiKey: undefined,
      baseURL: 'http://h/v1',
      api: 'chat',
    });
    expect(endpointFromEnv({}).api).toBeUndefined();
    expect(() => endpointFromEnv({ RATCHET_API: 'soap' })).toThrow(
      /^RATCHET_API: expected "responses" or "chat"/,
    );
  });
});
