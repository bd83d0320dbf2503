import { execa } from 'execa';
import type { ResultPromise } from 'execa';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker-process.ts');

/** Starts a worker process and resolves once it polls the task queue. */
export async function startChildWorker(options: {
  address: string;
  taskQueue: string;
  modelBaseUrl: string;
}): Promise<ResultPromise> {
  const child = execa('node', ['--import', 'tsx', script], {
    env: {
      TEMPORAL_ADDRESS: options.address,
      RATCHET_TASK_QUEUE: options.taskQueue,
      WORKFLOW_BUNDLE: inject('workflowBundlePath'),
      OPENAI_BASE_URL: options.modelBaseUrl,
    },
    reject: false,
    buffer: false,
    stdin: 'ignore',
  });
  await new Promise<void>((resolve, reject) => {
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('ready')) resolve();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    void child.then(() => reject(new Error(`worker process exited before it was ready: ${output}`)));
  });
  return child;
}
