/**
 * The compaction activity against the scripted model server: remote `responses.compact`, the
 * local summary it falls back to, and how each fails.
 */
import { Buffer } from 'node:buffer';
import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { scriptedSettings, staticTranscript, useScriptedModel } from '../helpers/model-activities.js';
import { createCompactActivity } from '../../src/activities/compact.js';
import { openaiClientFactory } from '../../src/activities/openai-client.js';
import type { CompactInput, CompactResult } from '../../src/shared/boundary/activity-types.js';
import { assistantMessage, functionOutput, messageText, userMessage } from '../../src/shared/prompt/items.js';
import type { TranscriptItem } from '../../src/shared/prompt/items.js';
import {
  BASE_INSTRUCTIONS,
  COMPACTION_PROMPT,
  SUMMARY_PREFIX,
} from '../../src/shared/prompt/instructions.js';
import type { ModelSettings } from '../../src/shared/api/session-config.js';
import { toolNames } from '../../src/shared/tools/specs.js';
import type { ScriptedModel } from '../../src/testing/scripted-model.js';
import type { RecordedRequest, ScriptStep } from '../../src/testing/scripted-model.js';
import { rejection } from '../helpers/waiting.js';

const SESSION = 'session-c0ffee';

const startModel = useScriptedModel();
const settings = (compaction: ModelSettings['compaction']) => scriptedSettings({ compaction });
const sourceOf = staticTranscript;

function environment(): MockActivityEnvironment {
  return new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
}

async function runCompact(
  target: ScriptedModel,
  items: readonly TranscriptItem[],
  compaction: ModelSettings['compaction'],
  env: MockActivityEnvironment = environment(),
): Promise<CompactResult> {
  const activity = createCompactActivity({
    openai: openaiClientFactory({ apiKey: 'k', baseURL: target.baseUrl }),
    transcript: sourceOf(items),
  });
  const input: CompactInput = {
    sessionId: SESSION,
    epoch: 0,
    upTo: items.length,
    model: settings(compaction),
    contextEntries: CONTEXT_ENTRIES,
  };
  return env.run(activity, input);
}

async function failure(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await rejection(promise);
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

function body(request: RecordedRequest | undefined): Record<string, unknown> {
  expect(request?.body).toBeTypeOf('object');
  return request!.body as Record<string, unknown>;
}

// A session: two fixed context entries (AGENTS.md, environment), the task, then turns.
const CONTEXT_ENTRIES = 2;
const agentsMd = userMessage('# AGENTS.md instructions for /repo\n\nRun npm test before committing.');
const environmentContext = userMessage('<environment_context>cwd: /repo</environment_context>');
const task = userMessage('Make sum() handle negative numbers.');
const preference = userMessage('Use vitest, not jest.');
const latest = userMessage('Now update the README too.');
const transcript: TranscriptItem[] = [
  agentsMd,
  environmentContext,
  task,
  {
    type: 'message',
    role: 'assistant',
    id: 'msg_3',
    status: 'completed',
    content: [{ type: 'output_text', text: 'Looking at src/sum.ts.' }],
  },
  {
    type: 'function_call',
    id: 'fc_4',
    status: 'completed',
    call_id: 'call_4',
    name: 'read_file',
    arguments: '{"file_path":"src/sum.ts"}',
  },
  functionOutput('call_4', 'L1: export const sum = (a: number, b: number) => Math.abs(a) + b;'),
  preference,
  { type: 'reasoning', id: 'rs_7', summary: [], encrypted_content: 'c2VjcmV0' },
  assistantMessage('Fixed and tested with vitest.'),
  latest,
];
/** The transcript as a request carries it: output-item ids and statuses dropped. */
const sentTranscript = [
  agentsMd,
  environmentContext,
  task,
  assistantMessage('Looking at src/sum.ts.'),
  { type: 'function_call', call_id: 'call_4', name: 'read_file', arguments: '{"file_path":"src/sum.ts"}' },
  functionOutput('call_4', 'L1: export const sum = (a: number, b: number) => Math.abs(a) + b;'),
  preference,
  { type: 'reasoning', id: 'rs_7', summary: [], encrypted_content: 'c2VjcmV0' },
  assistantMessage('Fixed and tested with vitest.'),
  latest,
];

describe('compact activity: remote', () => {
  it('returns the user messages and the compaction item from responses.compact', async () => {
    const model = await startModel();
    model.enqueueCompaction({
      kind: 'compact',
      summary: 'remote summary',
      usage: { inputTokens: 5000, outputTokens: 300, cachedTokens: 4096 },
    });

    const result = await runCompact(model, transcript, 'auto');

    expect(result).toEqual({
      method: 'remote',
      items: [
        agentsMd,
        environmentContext,
        task,
        preference,
        latest,
        {
          id: 'cmp_1',
          type: 'compaction',
          encrypted_content: Buffer.from('remote summary', 'utf8').toString('base64'),
        },
      ],
      usage: {
        inputTokens: 5000,
        cachedInputTokens: 4096,
        outputTokens: 300,
        reasoningTokens: 0,
        totalTokens: 5300,
      },
    });
    expect(model.requests.map((request) => request.path)).toEqual(['/v1/responses/compact']);
    expect(body(model.requests[0])).toEqual({
      model: 'scripted-x',
      input: sentTranscript,
      instructions: BASE_INSTRUCTIONS,
      prompt_cache_key: SESSION,
    });
  });

  it('mode remote against an endpoint without responses.compact fails: non-retryable ModelNotFound', async () => {
    const model = await startModel({ compact: 'unsupported' });

    const err = await failure(runCompact(model, transcript, 'remote'));

    expect(err.type).toBe('ModelNotFound');
    expect(err.nonRetryable).toBe(true);
    expect(model.requests.map((request) => request.path)).toEqual(['/v1/responses/compact']);
  });

  it('mode auto does not fall back to a local summary on a transient failure: retryable ModelUnavailable', async () => {
    const model = await startModel();
    model.enqueueCompaction({ kind: 'error', status: 500 });

    const err = await failure(runCompact(model, transcript, 'auto'));

    expect(err.type).toBe('ModelUnavailable');
    expect(err.nonRetryable).toBe(false);
    expect(model.requests).toHaveLength(1);
  });

  it.each([405, 501])(
    'mode auto treats %i from responses.compact as unsupported and falls back',
    async (status) => {
      const model = await startModel();
      model.enqueueCompaction({ kind: 'error', status });
      model.reply('Local summary.');

      const result = await runCompact(model, transcript, 'auto');

      expect(result.method).toBe('local');
      expect(model.requests.map((request) => request.path)).toEqual([
        '/v1/responses/compact',
        '/v1/responses',
      ]);
    },
  );

  it('rejects with a CancelledFailure when cancelled during a remote compaction', async () => {
    const model = await startModel();
    model.enqueueCompaction({ kind: 'hang' });
    const env = environment();
    const outcome = rejection(runCompact(model, transcript, 'auto', env));

    await model.waitForRequest(1);
    env.cancel();

    expect(await outcome).toBeInstanceOf(CancelledFailure);
    expect(model.requests).toHaveLength(1);
  });
});

describe('compact activity: size', () => {
  it('refuses, without retry, a compacted transcript too large for one payload (issue 11 item 5)', async () => {
    const model = await startModel();
    // Non-ASCII: 700,000 characters are 2.1 MB of UTF-8.
    model.enqueueCompaction({ kind: 'compact', summary: '漢'.repeat(700_000) });

    const err = await failure(runCompact(model, transcript, 'remote'));

    expect(err.type).toBe('CompactionTooLarge');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toMatch(/over the 1572864-byte limit/);
  });
});

describe('compact activity: local summary', () => {
  it('falls back to a summary when responses.compact is unsupported', async () => {
    const model = await startModel({ compact: 'unsupported' });
    model.enqueue({
      kind: 'reply',
      output: [{ type: 'message', text: '  sum() now handles negatives; README is next.  \n' }],
      usage: { inputTokens: 900, outputTokens: 60 },
    });

    const result = await runCompact(model, transcript, 'auto');

    expect(result.method).toBe('local');
    expect(result.items).toEqual([
      agentsMd,
      environmentContext,
      task,
      preference,
      latest,
      userMessage(`${SUMMARY_PREFIX}sum() now handles negatives; README is next.`),
    ]);
    expect(messageText(result.items.at(-1)!)).toMatch(/^Summary of the session so far/);
    expect(result.usage).toEqual({
      inputTokens: 900,
      cachedInputTokens: 0,
      outputTokens: 60,
      reasoningTokens: 0,
      totalTokens: 960,
    });
    expect(model.requests.map((request) => request.path)).toEqual(['/v1/responses/compact', '/v1/responses']);
  });

  it('asks for the summary with the same instructions and tools, and tool_choice none', async () => {
    const model = await startModel();
    model.reply('A summary.');

    await runCompact(model, transcript, 'local');

    // Mode local never tries responses.compact.
    expect(model.requests.map((request) => request.path)).toEqual(['/v1/responses']);
    const sent = body(model.requests[0]);
    expect(sent).toEqual({
      model: 'scripted-x',
      instructions: BASE_INSTRUCTIONS,
      input: [...sentTranscript, userMessage(COMPACTION_PROMPT)],
      tools: expect.any(Array) as unknown,
      tool_choice: 'none',
      store: false,
      prompt_cache_key: SESSION,
    });
    const tools = sent.tools as Array<Record<string, unknown>>;
    expect(tools.map((tool) => tool.name)).toEqual(toolNames);
    for (const tool of tools)
      expect(tool).toMatchObject({ type: 'function', parameters: { type: 'object' } });
  });

  it('keeps the task and the latest user messages within the budget, dropping older ones', async () => {
    const model = await startModel();
    model.reply('Summary.');
    const older = userMessage(`older: ${'a'.repeat(20_000)}`);
    const newer = userMessage(`newer: ${'b'.repeat(10_000)}`);
    const items = [agentsMd, environmentContext, task, older, assistantMessage('ok'), newer];

    const result = await runCompact(model, items, 'local');

    expect(result.items).toEqual([
      agentsMd,
      environmentContext,
      task,
      newer,
      userMessage(`${SUMMARY_PREFIX}Summary.`),
    ]);
  });

  it('skips a user message over the budget but keeps the shorter, earlier ones (issue 11 item 12)', async () => {
    const model = await startModel();
    model.reply('Summary.');
    const huge = userMessage(`paste: ${'x'.repeat(30_000)}`);
    const items = [agentsMd, environmentContext, task, preference, assistantMessage('ok'), huge, latest];

    const result = await runCompact(model, items, 'local');

    expect(result.items).toEqual([
      agentsMd,
      environmentContext,
      task,
      preference,
      latest,
      userMessage(`${SUMMARY_PREFIX}Summary.`),
    ]);
  });

  it('cuts a very long summary', async () => {
    const model = await startModel();
    model.reply('s'.repeat(70_000));

    const result = await runCompact(model, transcript, 'local');

    const text = messageText(result.items.at(-1)!);
    expect(text.startsWith(SUMMARY_PREFIX)).toBe(true);
    expect(text.endsWith('\n[summary cut]')).toBe(true);
    expect(text.length).toBeLessThan(SUMMARY_PREFIX.length + 64_100);
  });

  it('on a context-length error drops the older half of the history and retries', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'error', status: 400, code: 'context_length_exceeded' });
    model.reply('Summary of what is left.');

    const result = await runCompact(model, transcript, 'local');

    expect(model.requests).toHaveLength(2);
    expect(body(model.requests[0]).input).toEqual([...sentTranscript, userMessage(COMPACTION_PROMPT)]);
    // History is entries 2..9; the older half goes, cutting at the first message from the middle.
    expect(body(model.requests[1]).input).toEqual([
      agentsMd,
      environmentContext,
      preference,
      { type: 'reasoning', id: 'rs_7', summary: [], encrypted_content: 'c2VjcmV0' },
      assistantMessage('Fixed and tested with vitest.'),
      latest,
      userMessage(COMPACTION_PROMPT),
    ]);
    // The user's messages are kept from the whole transcript, not only the part summarised.
    expect(result).toMatchObject({
      method: 'local',
      items: [
        agentsMd,
        environmentContext,
        task,
        preference,
        latest,
        userMessage(`${SUMMARY_PREFIX}Summary of what is left.`),
      ],
    });
  });

  it('gives up with ContextLengthExceeded when too little history is left to drop', async () => {
    const model = await startModel();
    for (let i = 0; i < 3; i++)
      model.enqueue({ kind: 'error', status: 400, code: 'context_length_exceeded' });

    const err = await failure(runCompact(model, transcript, 'local'));

    expect(err.type).toBe('ContextLengthExceeded');
    expect(err.nonRetryable).toBe(true);
    // 8 history items, then 4, then 2: no further retry.
    expect(model.requests.map((request) => (body(request).input as unknown[]).length)).toEqual([11, 7, 5]);
  });

  it('does not retry a summary request that fails for another reason', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'error', status: 503 });

    const err = await failure(runCompact(model, transcript, 'local'));

    expect(err.type).toBe('ModelUnavailable');
    expect(err.nonRetryable).toBe(false);
    expect(model.requests).toHaveLength(1);
  });

  const emptySummaries: Array<[string, ScriptStep]> = [
    ['no output at all', { kind: 'empty' }],
    ['only whitespace', { kind: 'reply', output: [{ type: 'message', text: ' \n\t ' }] }],
  ];
  it.each(emptySummaries)('an empty summary (%s) → retryable CompactionEmpty', async (_label, step) => {
    const model = await startModel();
    model.enqueue(step);

    const err = await failure(runCompact(model, transcript, 'local'));

    expect(err.type).toBe('CompactionEmpty');
    expect(err.nonRetryable).toBe(false);
  });
});
