/**
 * A session outlives its worker: the worker process is killed (SIGKILL: no shutdown) while the
 * model streams, and a new worker finishes the session with nothing lost or repeated.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { transcriptQuery } from '../../src/shared/api/session-api.js';
import { startChildWorker } from '../helpers/child-worker.js';
import { createTempRepo } from '../helpers/git-repo.js';
import { Harness, waitForStatus } from '../helpers/harness.js';
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

async function untilOutput(output: () => string, text: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!output().includes(text)) {
    if (Date.now() > deadline) throw new Error(`worker never printed "${text}": ${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function outputs(body: unknown): string[] {
  return (body as { input: Array<{ type: string; output?: string }> }).input
    .filter((item) => item.type === 'function_call_output')
    .map((item) => item.output ?? '');
}

describe('a worker killed during a tool', () => {
  it('does not run a mutating command again: the model hears its effect is unknown', async () => {
    await harness.freshModel();
    const repo = await createTempRepo({ 'a.txt': 'alpha\n' });
    const { model } = harness;
    model
      .call('shell', { command: ['bash', '-lc', 'echo ran >> runs.log; sleep 20'] })
      .reply('I will check runs.log before doing anything else.');
    const child = await startChildWorker({
      address: harness.address,
      taskQueue: harness.taskQueue,
      modelBaseUrl: model.baseUrl,
    });
    const handle = await harness.start({
      task: 'Run the slow script',
      workspace: repo.dir,
      approvalPolicy: 'never',
    });
    await untilOutput(child.output, 'shell started');
    await new Promise((resolve) => setTimeout(resolve, 500));
    child.process.kill('SIGKILL');
    await child.process;

    // The new worker takes the retried attempt (it holds the workspace now): the command
    // journal says the call started and never ended, so it is reported, not run.
    const { worker } = await harness.worker();
    const result = (await worker.runUntil(handle.result())) as SessionResult;
    expect(result.finalMessage).toBe('I will check runs.log before doing anything else.');
    expect(await readFile(path.join(repo.dir, 'runs.log'), 'utf8')).toBe('ran\n');
    expect(outputs(model.requests.at(-1)!.body)[0]).toMatch(
      /interrupted before it reported a result \(the worker running it stopped before it reported a result \(started .*\)\).*effect on the workspace is unknown/s,
    );
    await recordHistory(handle, 'worker-killed-during-command');
    model.assertDone();
  });

  it('a command whose worker died and never came back: "may have run", not "not run"', async () => {
    await harness.freshModel();
    const repo = await createTempRepo({ 'a.txt': 'alpha\n' });
    const { model } = harness;
    model.call('shell', { command: ['bash', '-lc', 'echo ran >> runs.log; sleep 20'] }, 'c_gone');
    const child = await startChildWorker({
      address: harness.address,
      taskQueue: harness.taskQueue,
      modelBaseUrl: model.baseUrl,
      env: { RATCHET_WORKER_ID: 'box-gone' },
    });
    const handle = await harness.start({
      task: 'Run the slow script',
      workspace: repo.dir,
      approvalPolicy: 'never',
      worker: 'box-gone',
      limits: { toolScheduleToStartTimeoutMs: 3000 },
    });
    await untilOutput(child.output, 'shell started');
    await new Promise((resolve) => setTimeout(resolve, 500));
    child.process.kill('SIGKILL');
    await child.process;

    // Another worker runs the session; nobody polls box-gone's queue again. The retried attempt
    // waits there, is not picked up, and the call's first attempt had started.
    const { worker } = await harness.worker({ workerId: 'box-other' });
    const { idle, output } = await worker.runUntil(async () => {
      const idle = await waitForStatus(handle, (s) => s.status === 'idle', 60_000);
      const page = await harness.ratchet.transcript(handle.workflowId, 0);
      const entry = page.entries.find((e) => e.item.type === 'function_call_output')!;
      return { idle, output: entry.item as { output: string } };
    });
    expect(idle.notice).toMatch(/did not take a tool call for 3 s/);
    expect(output.output).toMatch(
      /^The shell call was interrupted before it reported a result \(the worker running it stopped, and did not take the call up again within 3 s\).*effect on the workspace is unknown/s,
    );
    expect(output.output).not.toMatch(/^The shell call was not run/);
    expect(await readFile(path.join(repo.dir, 'runs.log'), 'utf8')).toBe('ran\n');
    await handle.terminate('test over');
  });

  it('re-applies a patch that was applied before the worker died, without applying it twice', async () => {
    await harness.freshModel();
    const repo = await createTempRepo({ 'list.txt': 'one\ntwo\n' });
    const { model } = harness;
    const patch = [
      '*** Begin Patch',
      '*** Update File: list.txt',
      ' one',
      ' two',
      '+three',
      '*** End Patch',
    ].join('\n');
    model.call('apply_patch', { input: patch }).reply('Added three.');
    const child = await startChildWorker({
      address: harness.address,
      taskQueue: harness.taskQueue,
      modelBaseUrl: model.baseUrl,
      env: { RATCHET_TEST_STALL_AFTER: 'apply_patch' },
    });
    const handle = await harness.start({ task: 'Add three', workspace: repo.dir, approvalPolicy: 'never' });
    await untilOutput(child.output, 'apply_patch started');
    const file = path.join(repo.dir, 'list.txt');
    for (let i = 0; i < 200 && (await readFile(file, 'utf8')) !== 'one\ntwo\nthree\n'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    child.process.kill('SIGKILL');
    await child.process;

    const { worker } = await harness.worker();
    const result = (await worker.runUntil(handle.result())) as SessionResult;
    expect(result.finalMessage).toBe('Added three.');
    expect(await readFile(file, 'utf8')).toBe('one\ntwo\nthree\n');
    const output = outputs(model.requests.at(-1)!.body)[0]!;
    expect(output).toMatch(/^Success/);
    expect(output).toMatch(/already applied/);
    await recordHistory(handle, 'worker-killed-after-patch');
    model.assertDone();
  });
});

describe('a worker killed while a session waits for approval', () => {
  it('keeps the pending approval for the next worker, and never asks again for one given', async () => {
    await harness.freshModel();
    const repo = await createTempRepo({ 'a.txt': 'alpha\n' });
    const { model } = harness;
    model
      .enqueue({
        kind: 'reply',
        output: [
          {
            type: 'function_call',
            name: 'shell',
            arguments: { command: ['bash', '-lc', 'echo A >> log.txt; sleep 20'] },
            callId: 'call_A',
          },
          {
            type: 'function_call',
            name: 'shell',
            arguments: { command: ['touch', 'b.txt'] },
            callId: 'call_B',
          },
        ],
      })
      .reply('Both handled.');
    const first = await startChildWorker({
      address: harness.address,
      taskQueue: harness.taskQueue,
      modelBaseUrl: model.baseUrl,
    });
    const handle = await harness.start({ task: 'Two commands', workspace: repo.dir });
    const waiting = await waitForStatus(handle, (s) => s.pendingApprovals.length === 2);
    expect(waiting.pendingApprovals.map((p) => p.callId)).toEqual(['call_A', 'call_B']);

    // Killed while waiting: the next worker holds the same pending approvals.
    first.process.kill('SIGKILL');
    await first.process;
    const second = await startChildWorker({
      address: harness.address,
      taskQueue: harness.taskQueue,
      modelBaseUrl: model.baseUrl,
    });
    expect((await waitForStatus(handle, (s) => s.pendingApprovals.length === 2)).status).toBe(
      'awaiting_approval',
    );

    // A is approved and starts; its worker dies under it.
    await harness.ratchet.decide(handle.workflowId, 'approve', { callId: 'call_A' });
    await untilOutput(second.output, 'shell started');
    const log = path.join(repo.dir, 'log.txt');
    for (let i = 0; i < 400 && !(await readFile(log, 'utf8').catch(() => '')); i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    second.process.kill('SIGKILL');
    await second.process;

    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      // Only B is still asked for; A's approval is in history and is not asked again.
      const after = await waitForStatus(
        handle,
        (s) => s.current?.kind === 'approval' && s.pendingApprovals.length === 1,
      );
      expect(after.pendingApprovals.map((p) => p.callId)).toEqual(['call_B']);
      await harness.ratchet.decide(handle.workflowId, 'approve');
      return (await handle.result()) as SessionResult;
    });
    expect(result.finalMessage).toBe('Both handled.');
    const [a, b] = outputs(model.requests.at(-1)!.body);
    expect(a).toMatch(/effect on the workspace is unknown/);
    expect(JSON.parse(b!)).toMatchObject({ metadata: { exit_code: 0 } });
    expect(await readFile(path.join(repo.dir, 'log.txt'), 'utf8')).toBe('A\n');
    await recordHistory(handle, 'worker-killed-awaiting-approval');
    model.assertDone();
  });
});
