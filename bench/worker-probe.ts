/**
 * The worker's side of bench/probe.ts. Installed before the worker is created: the SDK's
 * workflow thread is started through a small wrapper that answers on a broadcast channel with
 * its own heap figures (a worker thread's V8 heap is its own: the main thread's
 * process.memoryUsage() does not include it), after a garbage collection or a heap snapshot
 * when asked. Benchmark instrumentation only; it changes nothing the worker does otherwise.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import workerThreads, { BroadcastChannel } from 'node:worker_threads';
import type { ProbeAnswer, ProbeRequest } from './probe.js';

const CHANNEL = 'ratchet-bench-worker-probe';
const WORKFLOW_THREAD = /workflow-worker-thread(\.js)?$/;

/** Runs in the workflow thread before the SDK's own thread module. */
function threadPrelude(channelName: string, threadFile: string): string {
  return `
const { BroadcastChannel } = require('node:worker_threads');
const v8 = require('node:v8');
const collect = globalThis.gc ?? require('node:vm').runInNewContext('gc');
const channel = new BroadcastChannel(${JSON.stringify(channelName)});
channel.unref();
channel.onmessage = ({ data }) => {
  if (data?.type !== 'ask') return;
  if (data.gc) { collect(); collect(); }
  let snapshot;
  if (data.snapshotDir) snapshot = v8.writeHeapSnapshot(require('node:path').join(data.snapshotDir, 'workflow-thread.heapsnapshot'));
  channel.postMessage({ type: 'answer', id: data.id, usage: process.memoryUsage(), snapshot });
};
require(${JSON.stringify(threadFile)});
`;
}

/**
 * Starts answering probes: SIGUSR2 reads `<dir>/request.json` and writes `<dir>/answer-<id>.json`.
 * Must run before Worker.create (it wraps the workflow thread when the SDK starts it).
 */
export function installWorkerProbe(dir: string): void {
  // `gc` for the main thread and, the flag being process-wide, for the workflow thread's contexts.
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const Original = workerThreads.Worker;
  class ProbedWorker extends Original {
    constructor(filename: string | URL, options?: workerThreads.WorkerOptions) {
      const file = filename instanceof URL ? filename.pathname : filename;
      if (WORKFLOW_THREAD.test(file) && !options?.eval) {
        super(threadPrelude(CHANNEL, file), { ...options, eval: true });
      } else {
        super(filename, options);
      }
    }
  }
  // The SDK reads `Worker` from the module object when it starts its thread.
  (workerThreads as { Worker: typeof Original }).Worker = ProbedWorker;

  const channel = new BroadcastChannel(CHANNEL);
  channel.unref();
  const waiting = new Map<number, (answer: { usage: NodeJS.MemoryUsage; snapshot?: string }) => void>();
  channel.onmessage = (event) => {
    const data = (event as MessageEvent).data as {
      type?: string;
      id: number;
      usage: NodeJS.MemoryUsage;
      snapshot?: string;
    };
    if (data?.type === 'answer') waiting.get(data.id)?.(data);
  };
  const answer = async () => {
    const request = JSON.parse(await readFile(path.join(dir, 'request.json'), 'utf8')) as ProbeRequest & {
      id: number;
    };
    const fromThread = new Promise<{ usage: NodeJS.MemoryUsage; snapshot?: string } | undefined>(
      (resolve) => {
        const timer = setTimeout(() => resolve(undefined), 120_000);
        waiting.set(request.id, (a) => {
          clearTimeout(timer);
          resolve(a);
        });
      },
    );
    channel.postMessage({ type: 'ask', id: request.id, gc: request.gc, snapshotDir: request.snapshotDir });
    const thread = await fromThread;
    waiting.delete(request.id);
    if (request.gc) {
      gc();
      gc();
    }
    const snapshots = thread?.snapshot ? [thread.snapshot] : [];
    if (request.snapshotDir)
      snapshots.push(v8.writeHeapSnapshot(path.join(request.snapshotDir, 'main-thread.heapsnapshot')));
    const result: ProbeAnswer = {
      main: process.memoryUsage(),
      ...(thread ? { workflowThread: thread.usage } : {}),
      ...(snapshots.length ? { snapshots } : {}),
    };
    const file = path.join(dir, `answer-${request.id}.json`);
    await writeFile(`${file}.tmp`, JSON.stringify(result));
    await rename(`${file}.tmp`, file);
  };
  process.on('SIGUSR2', () => {
    answer().catch((err: unknown) => process.stderr.write(`probe failed: ${String(err)}\n`));
  });
}
