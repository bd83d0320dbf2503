/** Starts bench/worker-process.ts and resolves once the worker polls. */
import { fileURLToPath } from 'node:url';
import { startReadyProcess, stopReadyProcess } from '../src/testing/child-process.js';
import type { ReadyProcess } from '../src/testing/child-process.js';

const script = fileURLToPath(new URL('./worker-process.ts', import.meta.url));

export type ChildWorker = ReadyProcess;

export function startChildWorker(options: {
  address: string;
  taskQueue: string;
  bundlePath: string;
  modelBaseUrl: string;
  workerOptions?: Record<string, unknown>;
  /** Where the worker answers bench/probe.ts (none: it does not). */
  probeDir?: string;
  /** A library to preload into the worker (LD_PRELOAD: jemalloc); none: the C library's malloc. */
  preload?: string | null;
}): Promise<ChildWorker> {
  return startReadyProcess(
    script,
    {
      TEMPORAL_ADDRESS: options.address,
      RATCHET_TASK_QUEUE: options.taskQueue,
      WORKFLOW_BUNDLE: options.bundlePath,
      OPENAI_BASE_URL: options.modelBaseUrl,
      BENCH_WORKER_OPTIONS: JSON.stringify(options.workerOptions ?? {}),
      ...(options.probeDir ? { BENCH_PROBE_DIR: options.probeDir } : {}),
      // Set either way, so that a bench started with LD_PRELOAD does not pass it on unasked.
      LD_PRELOAD: options.preload ?? '',
    },
    { label: 'benchmark worker', readyTimeoutMs: 60_000 },
  );
}

/** Asks the worker to shut down and waits; kills it if it does not stop within 15 s. */
export const stopChildWorker = (worker: ChildWorker): Promise<void> => stopReadyProcess(worker);
