/**
 * Several workers on one task queue: a session's tool calls stay on the worker that prepared its
 * workspace (that worker's own queue), while model calls go to any worker. Which worker ran what
 * is read from the event history (the `identity` of each ActivityTaskStarted).
 */
import type { WorkflowHandle } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import type { RatchetWorker } from '../../src/worker.js';
import { createTempRepo } from '../helpers/git-repo.js';
import type { TempRepo } from '../helpers/git-repo.js';
import { Harness, waitForStatus } from '../helpers/harness.js';

let harness: Harness;
const repos: TempRepo[] = [];

beforeAll(async () => {
  harness = await Harness.create();
});

afterAll(async () => {
  await harness?.close();
  await Promise.all(repos.map((repo) => repo.remove()));
});

interface ActivityRun {
  type: string;
  taskQueue: string;
  identity: string;
}

/** Every activity of the session with the queue it was scheduled on and the worker that ran it. */
async function activityRuns(handle: WorkflowHandle): Promise<ActivityRun[]> {
  const history = await handle.fetchHistory();
  const scheduled = new Map<string, { type: string; taskQueue: string }>();
  const runs: ActivityRun[] = [];
  for (const event of history.events ?? []) {
    const s = event.activityTaskScheduledEventAttributes;
    if (s) {
      scheduled.set(String(event.eventId), {
        type: s.activityType?.name ?? '?',
        taskQueue: s.taskQueue?.name ?? '?',
      });
    }
    const started = event.activityTaskStartedEventAttributes;
    if (started) {
      const which = scheduled.get(String(started.scheduledEventId));
      runs.push({
        type: which?.type ?? '?',
        taskQueue: which?.taskQueue ?? '?',
        identity: started.identity ?? '?',
      });
    }
  }
  return runs;
}

/**
 * A worker as on a machine of its own: its own connection (the SDK refuses two workers of one
 * queue on one connection), id and identity.
 */
async function startWorker(id: string): Promise<{ worker: RatchetWorker; run: Promise<void> }> {
  const connection = await NativeConnection.connect({ address: harness.address });
  const worker = await harness.worker({
    connection,
    workerId: id,
    workerOptions: { identity: `worker-${id}` },
  });
  return { worker, run: worker.worker.run().finally(() => connection.close()) };
}

/**
 * Runs `ls` until the session has seen `calls` tool outputs, then answers. A command, not list_dir:
 * reads may run as local activities on whichever worker runs the workflow task (checked by the
 * next test), and only activities scheduled on a queue show here where they ran.
 */
function listThenAnswer(calls: number) {
  return (request: { body: unknown }) => {
    const input = (request.body as { input: Array<{ type: string }> }).input;
    const outputs = input.filter((item) => item.type === 'function_call_output').length;
    if (outputs < calls) {
      return {
        kind: 'reply' as const,
        output: [{ type: 'function_call' as const, name: 'shell', arguments: { command: ['ls'] } }],
      };
    }
    return { kind: 'reply' as const, output: [{ type: 'message' as const, text: 'done' }] };
  };
}

describe('two workers', () => {
  it("keep each session's tool calls on the worker that prepared it, and share the model calls", async () => {
    await harness.freshModel({ responder: listThenAnswer(4) });
    const a = await startWorker('a');
    const b = await startWorker('b');
    try {
      const handles: WorkflowHandle[] = [];
      for (let i = 0; i < 4; i++) {
        const repo = await createTempRepo({ [`file-${i}.txt`]: `${i}\n` });
        repos.push(repo);
        handles.push(await harness.start({ task: `look around ${i}`, workspace: repo.dir }));
      }
      const results = (await Promise.all(handles.map((h) => h.result()))) as SessionResult[];
      expect(results.map((r) => r.finalMessage)).toEqual(['done', 'done', 'done', 'done']);

      const modelWorkers = new Set<string>();
      const holders = new Set<string>();
      for (const handle of handles) {
        const runs = await activityRuns(handle);
        const prepare = runs.find((r) => r.type === 'prepareWorkspace')!;
        expect(prepare.taskQueue).toBe(harness.taskQueue);
        const holder = prepare.identity.replace('worker-', '');
        holders.add(holder);
        const tools = runs.filter((r) => r.type === 'shell' || r.type === 'workspaceChanges');
        expect(tools).toHaveLength(5);
        for (const tool of tools) {
          expect(tool).toMatchObject({
            taskQueue: `${harness.taskQueue}@${holder}`,
            identity: `worker-${holder}`,
          });
        }
        for (const model of runs.filter((r) => r.type === 'model')) {
          expect(model.taskQueue).toBe(harness.taskQueue);
          modelWorkers.add(model.identity);
        }
      }
      // 20 model calls of four concurrent sessions: both workers take some.
      expect([...modelWorkers].sort()).toEqual(['worker-a', 'worker-b']);
      harness.model.assertDone();
    } finally {
      a.worker.worker.shutdown();
      b.worker.worker.shutdown();
      await Promise.all([a.run, b.run]);
    }
  });

  it('stop the session with a clear notice when the worker holding its workspace is gone, and go on when it is back', async () => {
    const model = await harness.freshModel();
    const repo = await createTempRepo({ 'a.txt': 'alpha\n' });
    repos.push(repo);
    model.call('shell', { command: ['bash', '-lc', 'echo beta >> a.txt'] });
    const a = await startWorker('a');
    const b = await startWorker('b');
    let a2: Awaited<ReturnType<typeof startWorker>> | undefined;
    try {
      const handle = await harness.start({
        task: 'append beta',
        workspace: repo.dir,
        worker: 'a',
        limits: { toolScheduleToStartTimeoutMs: 2000 },
      });
      await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      a.worker.worker.shutdown();
      await a.run;
      await harness.ratchet.decide(handle.workflowId, 'approve');
      const idle = await waitForStatus(handle, (s) => s.status === 'idle', 20_000);
      expect(idle.notice).toContain(`task queue ${harness.taskQueue}@a`);
      expect(idle.notice).toContain('RATCHET_WORKER_ID');
      expect(idle.toolQueue).toBe(`${harness.taskQueue}@a`);
      // The model is not asked again until a person answers; the command did not run.
      expect(model.requests.filter((r) => r.path === '/v1/responses')).toHaveLength(1);
      const transcript = await harness.ratchet.transcript(handle.workflowId, 0);
      const output = transcript.entries.find((e) => e.item.type === 'function_call_output')!;
      expect(output.display).toContain('not run (worker unavailable)');

      // The worker comes back with the same id; a message resumes the session there.
      a2 = await startWorker('a');
      model.call('read_file', { file_path: 'a.txt' }).reply('a.txt says alpha');
      await harness.ratchet.send(handle.workflowId, 'the worker is back, look again');
      const result = (await handle.result()) as SessionResult;
      expect(result.finalMessage).toBe('a.txt says alpha');
      // The workflow ran on worker b: its local read refused (b does not hold the workspace) and
      // the read went to a's queue.
      const runs = await activityRuns(handle);
      expect(runs.find((r) => r.type === 'read_file')).toMatchObject({
        taskQueue: `${harness.taskQueue}@a`,
        identity: 'worker-a',
      });
      expect(runs.some((r) => r.type === 'shell')).toBe(false);
    } finally {
      b.worker.worker.shutdown();
      a2?.worker.worker.shutdown();
      await Promise.all([b.run, a2?.run]);
    }
  });
});
