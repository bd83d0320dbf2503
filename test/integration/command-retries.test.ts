/**
 * Which commands may be retried, as the workflow schedules them: a command that may change the
 * workspace is retried only on the queue of a worker that said, when it prepared the workspace,
 * that it keeps a command journal. A worker from before the journal would run a retried
 * attempt's command again, so in a fleet being upgraded, a session prepared by one never
 * retries a command; nor does a session moved to a worker by hand (it has not said).
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { WorkerGroup } from '../../src/worker.js';
import { describe, expect, it } from 'vitest';
import { createWorkspaceActivities } from '../../src/activities/workspace.js';
import { detectSandbox } from '../../src/activities/tools/sandbox-detect.js';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { workerTaskQueue } from '../../src/shared/api/session-api.js';
import type { PrepareWorkspaceInput } from '../../src/shared/boundary/activity-types.js';
import { useHarness, waitForStatus } from '../helpers/harness.js';

const suite = useHarness();

/** Each scheduled shell call's retry attempts, read from the session's history. */
async function shellAttemptsAllowed(handle: WorkflowHandle): Promise<number[]> {
  const history = await handle.fetchHistory();
  return (history.events ?? []).flatMap((event) => {
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled?.activityType?.name !== 'shell') return [];
    return [scheduled.retryPolicy?.maximumAttempts ?? 0];
  });
}

/** A session with no approvals on `worker`, to its end; what each shell call was allowed. */
async function sessionOn(worker: WorkerGroup, workspace: string): Promise<number[]> {
  return worker.runUntil(async () => {
    const handle = await suite.harness.start({ task: 'write', workspace, approvalPolicy: 'never' });
    expect(((await handle.result()) as SessionResult).finalMessage).toBe('Done.');
    return shellAttemptsAllowed(handle);
  });
}

function scriptOneWriteAndOneRead(): void {
  suite.harness.model
    .call('shell', { command: ['bash', '-lc', 'echo x >> out.txt'] })
    .call('shell', { command: ['cat', 'out.txt'] })
    .reply('Done.');
}

describe('a command that may change the workspace', () => {
  it('is retried (3 attempts) on the queue of a worker that keeps a command journal', async () => {
    const repo = await suite.tempRepo();
    scriptOneWriteAndOneRead();
    const { worker } = await suite.harness.worker();
    const allowed = await sessionOn(worker, repo.dir);
    // The write: 3 attempts, its journal deciding; the read (cat): the tools' own 3, run again.
    expect(allowed).toEqual([3, 3]);
    suite.harness.model.assertDone();
  });

  it('runs at most one attempt when the worker that prepared the workspace keeps no journal', async () => {
    const repo = await suite.tempRepo();
    scriptOneWriteAndOneRead();
    const workerId = 'box-before-journals';
    const real = createWorkspaceActivities({
      allowedRoots: [],
      sandbox: await detectSandbox(),
      toolQueue: workerTaskQueue(suite.harness.taskQueue, workerId),
    });
    const { worker } = await suite.harness.worker({
      workerId,
      activityOverrides: {
        // What a worker from before the journal answers: its queue, and nothing about a journal.
        prepareWorkspace: async (input: PrepareWorkspaceInput) => {
          const { commandJournal, ...prepared } = await real.prepareWorkspace(input);
          expect(commandJournal).toBe(true);
          return prepared;
        },
      },
    });
    const allowed = await sessionOn(worker, repo.dir);
    expect(allowed).toEqual([1, 3]);
  });

  it('runs at most one attempt after the session is moved to a worker by hand', async () => {
    const repo = await suite.tempRepo();
    suite.harness.model
      .call('shell', { command: ['bash', '-lc', 'echo one >> out.txt'] })
      .call('shell', { command: ['bash', '-lc', 'echo two >> out.txt'] })
      .reply('Done.');
    const { worker } = await suite.harness.worker({ workerId: 'box-a' });
    const allowed = await worker.runUntil(async () => {
      const handle = await suite.harness.start({ task: 'write', workspace: repo.dir, worker: 'box-a' });
      await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      await suite.harness.ratchet.decide(handle.workflowId, 'approve');
      await waitForStatus(handle, (s) => s.status === 'awaiting_approval' && s.turn === 2);
      // The same worker, named by hand: the session cannot know what it keeps.
      await suite.harness.ratchet.moveToWorker(handle.workflowId, 'box-a');
      await suite.harness.ratchet.decide(handle.workflowId, 'approve');
      expect(((await handle.result()) as SessionResult).finalMessage).toBe('Done.');
      return shellAttemptsAllowed(handle);
    });
    expect(allowed).toEqual([3, 1]);
  });
});
