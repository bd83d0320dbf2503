/**
 * Compaction and continue-as-new: a session whose transcript outgrows the model's context is
 * compacted (remotely, or by a summary when the endpoint cannot) and continues as a new run; a
 * session that Temporal asks to continue as new carries its transcript over unchanged.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it, inject } from 'vitest';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { searchAttributeDefinitions } from '../../src/shared/api/search-attributes.js';
import { createTempRepo } from '../helpers/git-repo.js';
import { Harness } from '../helpers/harness.js';
import { recordHistory } from '../helpers/histories.js';

interface Body {
  input: Array<Record<string, unknown>>;
  tool_choice?: string;
}

let harness: Harness;
beforeAll(async () => {
  harness = await Harness.create();
});
afterAll(async () => {
  await harness?.close();
});

async function workflowMetadata(handle: {
  query: (name: string) => Promise<unknown>;
}): Promise<{ currentDetails?: string }> {
  return (await handle.query('__temporal_workflow_metadata')) as { currentDetails?: string };
}

describe('compaction', () => {
  beforeEach(async () => {
    await harness.freshModel();
  });

  it('compacts remotely when the context fills up, and continues as a new run', async () => {
    const repo = await createTempRepo({ 'notes.txt': 'remember the milk\n' });
    const { model } = harness;
    model
      .enqueue({
        kind: 'reply',
        output: [{ type: 'function_call', name: 'read_file', arguments: { file_path: 'notes.txt' } }],
        usage: { inputTokens: 900 },
      })
      .reply('All done after compaction.');
    const { worker } = await harness.worker();
    const { result, handle, details } = await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Read the notes',
        workspace: repo.dir,
        approvalPolicy: 'never',
        model: { name: 'scripted-model', contextWindow: 1000, compactAtRatio: 0.8 },
      });
      const result = (await handle.result()) as SessionResult;
      // A continued run has no start summary of its own: its current details keep it readable.
      const details = (await workflowMetadata(handle)).currentDetails ?? '';
      return { result, handle, details };
    });
    expect(result).toMatchObject({ status: 'completed', compactions: 1, runs: 2, turns: 2 });
    const paths = model.requests.map((r) => r.path);
    expect(paths).toEqual(['/v1/responses', '/v1/responses/compact', '/v1/responses']);
    // The request after compaction carries the compacted transcript: user messages, then the
    // compaction item, and nothing of the tool call or its output.
    const after = (model.requests[2]!.body as Body).input;
    expect(after.at(-1)).toMatchObject({ type: 'compaction' });
    expect(after.some((item) => item.type === 'function_call' || item.type === 'function_call_output')).toBe(
      false,
    );
    expect(JSON.stringify(after)).toContain('Read the notes');
    const description = await handle.describe();
    expect(description.runId).not.toBe(description.raw.workflowExecutionInfo?.firstRunId);
    expect(details).toContain('Read the notes');
    expect(details).toMatch(/run 2/);
    await recordHistory(handle, 'compaction-remote');
    model.assertDone();
  });

  it('writes a summary itself when the endpoint has no compaction', async () => {
    await harness.freshModel({ compact: 'unsupported' });
    const repo = await createTempRepo({ 'notes.txt': 'remember the milk\n' });
    const { model } = harness;
    model
      .enqueue({
        kind: 'reply',
        output: [{ type: 'function_call', name: 'read_file', arguments: { file_path: 'notes.txt' } }],
        usage: { inputTokens: 900 },
      })
      .reply('SUMMARY: the user wants the notes read; notes.txt says to remember the milk.')
      .reply('Done, with a summary behind me.');
    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Read the notes',
        workspace: repo.dir,
        approvalPolicy: 'never',
        model: { name: 'scripted-model', contextWindow: 1000 },
      });
      return (await handle.result()) as SessionResult;
    });
    expect(result).toMatchObject({
      compactions: 1,
      runs: 2,
      finalMessage: 'Done, with a summary behind me.',
    });
    const summaryRequest = model.requests.find(
      (r) => r.path === '/v1/responses' && (r.body as Body).tool_choice === 'none',
    );
    expect(summaryRequest).toBeDefined();
    const last = (model.requests.at(-1)!.body as Body).input;
    const text = JSON.stringify(last);
    expect(text).toContain('Summary of the session so far');
    expect(text).toContain('remember the milk');
    expect(text).toContain('<environment_context>');
    expect(last.some((item) => item.type === 'function_call_output')).toBe(false);
    model.assertDone();
  });

  it('compacts and retries when the model says the request is too long', async () => {
    const repo = await createTempRepo({ 'a.txt': 'a\n' });
    const { model } = harness;
    model
      .call('read_file', { file_path: 'a.txt' })
      .enqueue({ kind: 'error', status: 400, code: 'context_length_exceeded' })
      .reply('Fits now.');
    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'Read a', workspace: repo.dir, approvalPolicy: 'never' });
      return (await handle.result()) as SessionResult;
    });
    expect(result).toMatchObject({ finalMessage: 'Fits now.', compactions: 1, runs: 2, turns: 2 });
    expect(model.requests.map((r) => r.path)).toEqual([
      '/v1/responses',
      '/v1/responses',
      '/v1/responses/compact',
      '/v1/responses',
    ]);
    model.assertDone();
  });
});

describe('when Temporal suggests continuing as new', () => {
  let env: TestWorkflowEnvironment;
  let local: Harness;

  beforeAll(async () => {
    // A server of its own, which suggests continue-as-new after 40 events.
    env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: inject('temporalCliPath') },
        searchAttributes: Object.entries(searchAttributeDefinitions).map(([name, type]) => ({
          name,
          type: type === 'Int' ? 'INT' : 'KEYWORD',
        })),
        extraArgs: ['--dynamic-config-value', 'limit.historyCount.suggestContinueAsNew=40'],
      },
    });
    local = await Harness.create({ address: env.address });
  });
  afterAll(async () => {
    await local?.close();
    await env?.teardown();
  });

  it('carries the transcript over unchanged, keeping the prompt prefix', async () => {
    const repo = await createTempRepo({ 'a.txt': 'alpha\n' });
    const { model } = local;
    const turns = 15;
    for (let i = 0; i < turns - 1; i++) model.call('read_file', { file_path: 'a.txt' });
    model.reply('Read it many times.');
    const { worker } = await local.worker();
    const { result, handle } = await worker.runUntil(async () => {
      const handle = await local.start({
        task: 'Read a.txt again and again',
        workspace: repo.dir,
        approvalPolicy: 'never',
      });
      return { result: (await handle.result()) as SessionResult, handle };
    });
    expect(result.turns).toBe(turns);
    expect(result.compactions).toBe(0);
    expect(result.runs).toBeGreaterThan(2);
    const bodies = model.requests.map((r) => r.body as Body);
    for (let i = 1; i < bodies.length; i++) {
      expect(bodies[i]!.input.slice(0, bodies[i - 1]!.input.length)).toEqual(bodies[i - 1]!.input);
    }
    const outputs = bodies.at(-1)!.input.filter((item) => item.type === 'function_call_output');
    expect(outputs).toHaveLength(turns - 1);
    await recordHistory(handle, 'continue-as-new-suggested', {}, local.address);
    model.assertDone();
  });
});
