import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';
import { startReadyProcess } from '../../src/testing/child-process.js';
import type { ReadyProcess } from '../../src/testing/child-process.js';

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker-process.ts');

/** Starts a worker process on the suite's workflow bundle and resolves once it polls. */
export function startChildWorker(options: {
  address: string;
  taskQueue: string;
  modelBaseUrl: string;
  env?: Record<string, string>;
  /** Runs the worker as this user (the tests run as root): its commands run as that user too. */
  asUser?: { uid: number; gid: number };
}): Promise<ReadyProcess> {
  return startReadyProcess(
    script,
    {
      TEMPORAL_ADDRESS: options.address,
      RATCHET_TASK_QUEUE: options.taskQueue,
      WORKFLOW_BUNDLE: options.env?.WORKFLOW_BUNDLE ?? inject('workflowBundlePath'),
      OPENAI_BASE_URL: options.modelBaseUrl,
      ...options.env,
    },
    {
      label: 'worker process',
      readyTimeoutMs: 30_000,
      ...(options.asUser === undefined ? {} : { asUser: options.asUser }),
    },
  );
}
