/**
 * A reply whose calls are all cheap reads comes back with their results, read beside it by the
 * model activity (READS_WITH_REPLY): the workflow task that takes the reply runs no local
 * activity for them, and the model reads exactly what the reads would have returned. A reply
 * with a call that may write runs its reads as before, in order with the write.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { createTempRepo } from '../helpers/git-repo.js';
import { Harness } from '../helpers/harness.js';
import { recordHistory } from '../helpers/histories.js';

describe('reads beside the reply', () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await Harness.create();
  });
  afterAll(async () => {
    await harness?.close();
  });

  it('an all-read reply brings its reads; a reply that writes runs them in order with the write', async () => {
    const repo = await createTempRepo({ 'a.txt': 'alpha\n', 'dir/b.txt': 'beta\n' });
    harness.model
      .enqueue({
        kind: 'reply',
        output: [
          { type: 'function_call', name: 'read_file', arguments: { file_path: 'a.txt' } },
          { type: 'function_call', name: 'list_dir', arguments: { dir_path: 'dir' } },
        ],
      })
      .enqueue({
        kind: 'reply',
        output: [
          {
            type: 'function_call',
            name: 'shell',
            arguments: { command: ['bash', '-lc', 'echo gamma >> a.txt'] },
          },
          { type: 'function_call', name: 'read_file', arguments: { file_path: 'a.txt' } },
        ],
      })
      .reply('done');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'read and write',
        workspace: repo.dir,
        approvalPolicy: 'never',
      });
      const result = (await handle.result()) as SessionResult;
      expect(result.finalMessage).toBe('done');

      const page = await harness.ratchet.transcript(handle.workflowId, 0);
      const outputs = page.entries.flatMap((e) =>
        e.item.type === 'function_call_output' ? [(e.item as { output: string }).output] : [],
      );
      expect(outputs).toHaveLength(4);
      expect(outputs[0]).toContain('alpha');
      expect(outputs[1]).toContain('b.txt');
      // The read after the write sees the write: it was not read ahead beside the reply.
      expect(outputs[3]).toContain('gamma');

      const events = (await handle.fetchHistory()).events ?? [];
      const markers = events.flatMap((e) => e.markerRecordedEventAttributes?.markerName ?? []);
      // Only the second reply's read ran as a local activity.
      expect(markers.filter((m) => m === 'core_local_activity')).toHaveLength(1);
      const scheduled = events.flatMap(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? [],
      );
      expect(scheduled).not.toContain('read_file');
      expect(scheduled).not.toContain('list_dir');
      await recordHistory(handle, 'reads-with-reply');
    });
    harness.model.assertDone();
  });
});
