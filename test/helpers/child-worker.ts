import { execa } from 'execa';
import type { ResultPromise } from 'execa';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker-process.ts');

/**
 * Starts a worker process and resolves once it polls the task queue. The process is returned
 * inside an object: execa's result is a thenable, and returning it from an async function would
 * wait for the process to exit.
 */
export async function startChildWorker(options: {
  address: string;
  taskQueue: string;
  modelBaseUrl: string;
  env?: Record<string, string>;
}): Promise<{ process: ResultPromise; output: () => string }> {
  const child = execa('node', ['--import', 'tsx', script], {
    env: {
      TEMPORAL_ADDRESS: options.address,
      RATCHET_TASK_QUEUE: options.taskQueue,
      WORKFLOW_BUNDLE: inject('workflowBundlePath'),
      OPENAI_BASE_URL: options.modelBaseUrl,
      ...options.env,
    },
    reject: false,
    buffer: false,
    stdin: 'ignore',
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`worker process not ready after 30 s: ${output}`));
    }, 30_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    void child.then(() => reject(new Error(`worker process exited before it was ready: ${output}`)));
  });
  return { process: child, output: () => output };
}
