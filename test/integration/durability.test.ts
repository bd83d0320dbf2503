/**
 * A session outlives its worker: the worker process is killed (SIGKILL: no shutdown) while the
 * model streams, and a new worker finishes the session with nothing lost or repeated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionResult } from '../../src/shared/session-api.js';
import { transcriptQuery } from '../../src/shared/session-api.js';
import { startChildWorker } from '../helpers/child-worker.js';
import { createTempRepo } from '../helpers/git-repo.js';
import { Harness } from '../helpers/harness.js';
import { recordHistory } from '../helpers/histories.js';

let harness: Harness;
beforeAll(async () => {
  harness = await Harness.create();
});
afterAll(async () => {
  await harness?.close();
});

describe('a killed worker', () => {
  it('is replaced by a new worker that finishes the session, mid model call', async () => {
    const repo = await createTempRepo({ 'a.txt': 'alpha\n' });
    const { model } = harness;
    model
      .call('read_file', { file_path: 'a.txt' })
      // The second model call stalls mid-stream; its worker is killed while it streams.
      .enqueue({ kind: 'hang' })
      .reply('Finished on the second worker.');

    const { process: child } = await startChildWorker({
      address: harness.address,
      taskQueue: harness.taskQueue,
      modelBaseUrl: model.baseUrl,
    });
    const handle = await harness.start({ task: 'Read a.txt', workspace: repo.dir, approvalPolicy: 'never' });
    await model.waitForRequest(2, 30_000);
    child.kill('SIGKILL');
    await child;
    const killedAt = Date.now();

    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      const result = (await handle.result()) as SessionResult;
      const page = await handle.query(transcriptQuery, {});
      return { result, page };
    });
    const retried = model.requests[2]!;
    const recoveryMs = retried.receivedAt - killedAt;
    console.log(
      `recovery after SIGKILL: ${recoveryMs} ms until the model call was retried on the new worker`,
    );

    expect(result.result.finalMessage).toBe('Finished on the second worker.');
    expect(result.result.turns).toBe(2);
    // Nothing lost, nothing twice: one call, one output, one final message.
    const types = result.page.entries.map((e) => e.item.type);
    expect(types.filter((t) => t === 'function_call')).toHaveLength(1);
    expect(types.filter((t) => t === 'function_call_output')).toHaveLength(1);
    expect(
      result.page.entries.filter((e) => e.item.type === 'message' && e.item.role === 'assistant'),
    ).toHaveLength(1);
    // The retried request is the same request as the one that was cut off.
    expect(retried.body).toEqual(model.requests[1]!.body);
    await recordHistory(handle, 'worker-killed-mid-model-call');
    model.assertDone();
  });
});
