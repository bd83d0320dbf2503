/**
 * Provider state (`model.providerState`): the provider keeps the conversation, so each request
 * carries only the items added since the response it names with `previous_response_id`. After a
 * compaction (and the continue-as-new that follows) the compacted input is sent whole again.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { createTempRepo } from '../helpers/git-repo.js';
import { Harness } from '../helpers/harness.js';
import { recordHistory } from '../helpers/histories.js';

interface Body {
  input: Array<Record<string, unknown>>;
  previous_response_id?: string;
  store?: boolean;
}

let harness: Harness;
beforeAll(async () => {
  harness = await Harness.create();
});
afterAll(async () => {
  await harness?.close();
});

it('sends only new items while the provider holds the conversation, and everything after a compaction', async () => {
  const repo = await createTempRepo({ 'notes.txt': 'remember the milk\n' });
  const { model } = harness;
  const read = { type: 'function_call' as const, name: 'read_file', arguments: { file_path: 'notes.txt' } };
  model
    .enqueue(
      { kind: 'reply', output: [read], usage: { inputTokens: 100 } },
      // The context fills up: compaction, then continue-as-new.
      { kind: 'reply', output: [read], usage: { inputTokens: 900 } },
      { kind: 'reply', output: [read], usage: { inputTokens: 100 } },
    )
    .reply('Done.');
  const { worker } = await harness.worker();
  const result = await worker.runUntil(async () => {
    const handle = await harness.start({
      task: 'Read the notes',
      workspace: repo.dir,
      approvalPolicy: 'never',
      model: { name: 'scripted-model', contextWindow: 1000, compactAtRatio: 0.8, providerState: true },
    });
    const result = (await handle.result()) as SessionResult;
    await recordHistory(handle, 'provider-state');
    return result;
  });

  expect(result).toMatchObject({ status: 'completed', compactions: 1, runs: 2, turns: 4 });
  expect(model.requests.map((r) => r.path)).toEqual([
    '/v1/responses',
    '/v1/responses',
    '/v1/responses/compact',
    '/v1/responses',
    '/v1/responses',
  ]);
  const bodies = model.requests.map((r) => r.body as Body);
  // 1: the whole input, stored.
  expect(bodies[0]).toMatchObject({ store: true });
  expect(bodies[0]!.previous_response_id).toBeUndefined();
  // 2: only the tool output, after response 1.
  expect(bodies[1]!.previous_response_id).toBe('resp_1');
  expect(bodies[1]!.input).toEqual([expect.objectContaining({ type: 'function_call_output' })]);
  // After the compaction: the compacted transcript whole, no reference to the old conversation.
  expect(bodies[3]!.previous_response_id).toBeUndefined();
  expect(bodies[3]!.input.at(-1)).toMatchObject({ type: 'compaction' });
  // The new run chains again, on the response given after the compaction (resp_3 was the
  // compaction's own).
  expect(bodies[4]!.previous_response_id).toBe('resp_4');
  expect(bodies[4]!.input).toEqual([expect.objectContaining({ type: 'function_call_output' })]);
  model.assertDone();
});
