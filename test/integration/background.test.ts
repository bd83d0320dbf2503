/**
 * Background mode end to end: a worker killed (SIGKILL) while the model streams a reply; the
 * retried model call on the next worker re-attaches to the response at the provider and streams
 * only the rest, so the reply is generated once. An interrupt cancels the response at the
 * provider; a response that is gone by the time of the retry is asked for again.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { Buffer } from 'node:buffer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { interruptSignal, transcriptQuery } from '../../src/shared/api/session-api.js';
import type { ScriptedOutput } from '../../src/testing/scripted-model.js';
import { startChildWorker } from '../helpers/child-worker.js';
import { createTempRepo } from '../helpers/git-repo.js';
import { Harness, waitForStatus } from '../helpers/harness.js';
import { recordHistory } from '../helpers/histories.js';
import { until } from '../helpers/waiting.js';

let harness: Harness;
beforeAll(async () => {
  harness = await Harness.create();
});
afterAll(async () => {
  await harness?.close();
});

const background = { name: 'scripted-model', contextWindow: 200_000, background: true };

/** Five messages: 44 events, about 13 s at 300 ms an event. */
const LONG_REPLY: ScriptedOutput[] = [1, 2, 3, 4, 5].map((n) => ({
  type: 'message',
  text: `Part ${n} of a long answer, streamed slowly enough for a worker to die in the middle of it.`,
}));

/** Whether the model activity's heartbeat details, as the server holds them, name `text`. */
async function heartbeatNames(handle: WorkflowHandle, text: string): Promise<boolean> {
  const { raw } = await handle.describe();
  return (raw.pendingActivities ?? []).some((activity) =>
    (activity.heartbeatDetails?.payloads ?? []).some((payload) =>
      Buffer.from(payload.data ?? [])
        .toString('utf8')
        .includes(text),
    ),
  );
}

/** Starts a session on a worker process and kills the process once `events` events are generated. */
async function killMidStream(task: string, events: number, response = 0) {
  const { model } = harness;
  const repo = await createTempRepo({ 'a.txt': 'alpha\n' });
  const child = await startChildWorker({
    address: harness.address,
    taskQueue: harness.taskQueue,
    modelBaseUrl: model.baseUrl,
  });
  const handle = await harness.start({
    task,
    workspace: repo.dir,
    approvalPolicy: 'never',
    model: background,
  });
  await until(() => (model.backgroundResponses[response]?.generated ?? 0) >= events, 30_000, 25);
  // The kill comes once the server holds the response id (the heartbeat carrying it has landed).
  const id = model.backgroundResponses[response]!.id;
  for (const deadline = Date.now() + 10_000; !(await heartbeatNames(handle, id));) {
    if (Date.now() > deadline) throw new Error(`no heartbeat named ${id}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.process.kill('SIGKILL');
  await child.process;
  return handle;
}

describe('background mode: a worker killed mid-stream', () => {
  it('is re-attached to on the next worker: one generation, the rest of the stream only', async () => {
    const model = await harness.freshModel();
    model
      .call('read_file', { file_path: 'a.txt' })
      .enqueue({ kind: 'reply', output: LONG_REPLY, chunkDelayMs: 300 });
    // The second turn's reply, past the first heartbeats.
    const handle = await killMidStream('Explain the repository at length', 12, 1);
    const response = model.backgroundResponses[1]!;
    const sentBeforeKill = response.sent;

    const { worker } = await harness.worker();
    const { result, page } = await worker.runUntil(async () => ({
      result: (await handle.result()) as SessionResult,
      page: await handle.query(transcriptQuery, {}),
    }));

    expect(result.turns).toBe(2);
    const texts = page.entries.flatMap((e) =>
      e.item.type === 'message' && e.item.role === 'assistant'
        ? e.item.content.map((c) => ('text' in c ? c.text : ''))
        : [],
    );
    expect(texts).toEqual(LONG_REPLY.map((o) => (o.type === 'message' ? o.text : '')));
    // Each turn's reply generated once: one request created it, nothing was generated again.
    expect(model.generations).toBe(2);
    expect(model.requests.filter((r) => r.method === 'POST' && r.path === '/v1/responses')).toHaveLength(2);
    expect(response.generated).toBe(response.total);
    // The retry re-attached from a sequence number the first worker had reached, and received
    // only what came after it.
    const resumed = response.streams.at(-1)!;
    expect(response.streams).toHaveLength(2);
    expect(resumed.after).toBeGreaterThan(2);
    expect(resumed.after).toBeLessThan(sentBeforeKill);
    expect(resumed.sent).toBe(response.total - resumed.after - 1);
    console.log(
      `background re-attach: ${response.total} events generated once; the killed worker got ${sentBeforeKill}, ` +
        `the retry resumed after ${resumed.after} (${sentBeforeKill - resumed.after - 1} resent)`,
    );
    await recordHistory(handle, 'background-reattached-after-kill');
    model.assertDone();
  });

  it('asks again when the response is gone by the time of the retry (404)', async () => {
    const model = await harness.freshModel();
    model
      .enqueue({ kind: 'reply', output: LONG_REPLY, chunkDelayMs: 300 })
      .reply('Asked again after the response was gone.');
    const handle = await killMidStream('Explain the repository', 8);
    model.expireBackground();

    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => (await handle.result()) as SessionResult);

    expect(result.finalMessage).toBe('Asked again after the response was gone.');
    expect(model.generations).toBe(2);
    const first = model.backgroundResponses[0]!;
    expect(model.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'POST /v1/responses',
      `GET /v1/responses/${first.id}`,
      'POST /v1/responses',
    ]);
    model.assertDone();
  });
});

describe('background mode: an interrupt', () => {
  it('cancels the response at the provider, which stops generating', async () => {
    const model = await harness.freshModel();
    model.enqueue({ kind: 'hang', output: LONG_REPLY });
    const repo = await createTempRepo({ 'a.txt': 'alpha\n' });
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Explain everything',
        workspace: repo.dir,
        approvalPolicy: 'never',
        model: background,
      });
      await until(() => model.backgroundResponses[0]?.generated === 3, 30_000, 25);
      await handle.signal(interruptSignal, { reason: 'not now' });
      await waitForStatus(handle, (s) => s.status === 'idle');
      await until(() => model.backgroundResponses[0]?.status === 'cancelled', 10_000, 25);
      await handle.cancel();
    });
    const response = model.backgroundResponses[0]!;
    expect(model.requests.at(-1)).toMatchObject({
      method: 'POST',
      path: `/v1/responses/${response.id}/cancel`,
    });
    // Released after the cancel: nothing more is generated.
    model.release();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(response.generated).toBe(3);
    expect(model.generations).toBe(1);
  });
});
