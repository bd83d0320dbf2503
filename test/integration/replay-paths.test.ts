/**
 * Short sessions down paths the recorded histories did not cover (issue 11): each is recorded
 * as a fixture by `npm run fixtures:record`, so the replay suite guards its command sequence.
 */
import { describe, expect, it } from 'vitest';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { setPolicyUpdate } from '../../src/shared/api/session-api.js';
import { useHarness, waitForStatus } from '../helpers/harness.js';
import { recordHistory } from '../helpers/histories.js';

const suite = useHarness();

describe('paths recorded for the replay suite', () => {
  it('setPolicy approves the waiting call it now allows', async () => {
    const repo = await suite.tempRepo();
    const { harness } = suite;
    harness.model.call('shell', { command: ['bash', '-lc', 'echo x >> a.txt'] }).reply('Done.');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'append', workspace: repo.dir });
      await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      expect(await handle.executeUpdate(setPolicyUpdate, { args: [{ policy: 'never' }] })).toBe('never');
      await handle.result();
      await recordHistory(handle, 'path-set-policy');
    });
    harness.model.assertDone();
  });

  it('abort stops the turn; a message resumes it', async () => {
    const repo = await suite.tempRepo();
    const { harness } = suite;
    harness.model.call('shell', { command: ['bash', '-lc', 'echo x >> a.txt'] }).reply('Not appended.');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'append', workspace: repo.dir });
      await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      await harness.ratchet.decide(handle.workflowId, 'abort', { reason: 'not now' });
      await waitForStatus(handle, (s) => s.status === 'idle');
      await harness.ratchet.send(handle.workflowId, 'leave it');
      await handle.result();
      await recordHistory(handle, 'path-abort');
    });
    harness.model.assertDone();
  });

  it('an interrupt during an approval wait', async () => {
    const repo = await suite.tempRepo();
    const { harness } = suite;
    harness.model.call('shell', { command: ['bash', '-lc', 'echo x >> a.txt'] }).reply('Stopped.');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'append', workspace: repo.dir });
      await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      await harness.ratchet.interrupt(handle.workflowId, 'wait');
      const idle = await waitForStatus(handle, (s) => s.status === 'idle');
      expect(idle.pendingApprovals).toEqual([]);
      await harness.ratchet.send(handle.workflowId, 'go on');
      await handle.result();
      await recordHistory(handle, 'path-interrupt-awaiting-approval');
    });
    harness.model.assertDone();
  });

  it('a context-length error compacts and retries the turn (overflow compaction)', async () => {
    const repo = await suite.tempRepo();
    const { harness } = suite;
    harness.model.enqueue({ kind: 'error', status: 400, code: 'context_length_exceeded' }).reply('Fits now.');
    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'long', workspace: repo.dir });
      const result = (await handle.result()) as SessionResult;
      await recordHistory(handle, 'path-overflow-compaction');
      return result;
    });
    expect(result).toMatchObject({ finalMessage: 'Fits now.', compactions: 1, runs: 2 });
    harness.model.assertDone();
  });

  it('the turn limit stops the session; a message raises it', async () => {
    const repo = await suite.tempRepo();
    const { harness } = suite;
    harness.model.call('read_file', { file_path: 'a.txt' }).reply('Read it.');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'read', workspace: repo.dir, limits: { maxTurns: 1 } });
      const idle = await waitForStatus(handle, (s) => s.status === 'idle');
      expect(idle.notice).toMatch(/turn limit/);
      await harness.ratchet.send(handle.workflowId, 'one more turn');
      await handle.result();
      await recordHistory(handle, 'path-turn-limit');
    });
    harness.model.assertDone();
  });

  it('a message sent mid-turn is delivered before the next model call', async () => {
    const repo = await suite.tempRepo();
    const { harness } = suite;
    const { model } = harness;
    model
      .enqueue({ kind: 'hang', output: [{ type: 'message', text: 'First.' }] })
      .reply('Answered the message.');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'talk', workspace: repo.dir });
      await model.waitForRequest(1);
      await harness.ratchet.send(handle.workflowId, 'also this');
      await waitForStatus(handle, (s) => s.queuedMessages === 1);
      model.release();
      const result = (await handle.result()) as SessionResult;
      expect(result.finalMessage).toBe('Answered the message.');
      await recordHistory(handle, 'path-message-mid-turn');
    });
    model.assertDone();
  });

  it('arguments over the inline limit are read from the transcript', async () => {
    const repo = await suite.tempRepo();
    const { harness } = suite;
    harness.model
      .call('shell', { command: ['bash', '-lc', `true # ${'x'.repeat(3000)}`] })
      .reply('Ran the long command.');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'long args', workspace: repo.dir, approvalPolicy: 'never' });
      await handle.result();
      await recordHistory(handle, 'path-large-arguments');
    });
    harness.model.assertDone();
  });

  it('arguments under the inline limit in UTF-16 units but over it in UTF-8 bytes are not inlined', async () => {
    const repo = await suite.tempRepo();
    const { harness } = suite;
    // 800 characters, 2,400 bytes: a read the old measure ran as a local activity.
    const filePath = `${'漢'.repeat(80)}/`.repeat(10);
    harness.model.call('read_file', { file_path: filePath }).reply('No such file.');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'read it', workspace: repo.dir, approvalPolicy: 'never' });
      await handle.result();
      const events = (await handle.fetchHistory()).events ?? [];
      const scheduled = events.flatMap((e) => {
        const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
        return name ? [name] : [];
      });
      expect(scheduled).toContain('read_file');
      const markers = events.flatMap((e) => {
        const marker = e.markerRecordedEventAttributes;
        return marker?.markerName ? [marker.markerName] : [];
      });
      // The read went to a worker through the task queue, not as a local activity.
      expect(markers).not.toContain('core_local_activity');
      await recordHistory(handle, 'path-inline-utf8-bytes');
    });
    harness.model.assertDone();
  });
});
