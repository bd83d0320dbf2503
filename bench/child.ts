/** Starts bench/worker-process.ts and resolves once the worker polls. */
import { execa } from 'execa';
import type { ResultPromise } from 'execa';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('./worker-process.ts', import.meta.url));

export interface ChildWorker {
  process: ResultPromise;
  pid: number;
  output: () => string;
}

export async function startChildWorker(options: {
  address: string;
  taskQueue: string;
  bundlePath: string;
  modelBaseUrl: string;
  workerOptions?: Record<string, unknown>;
}): Promise<ChildWorker> {
  const child = execa('node', ['--import', 'tsx', script], {
    env: {
      TEMPORAL_ADDRESS: options.address,
      RATCHET_TASK_QUEUE: options.taskQueue,
      WORKFLOW_BUNDLE: options.bundlePath,
      OPENAI_BASE_URL: options.modelBaseUrl,
      BENCH_WORKER_OPTIONS: JSON.stringify(options.workerOptions ?? {}),
    },
    reject: false,
    buffer: false,
    stdin: 'ignore',
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`benchmark worker not ready after 60 s: ${output}`));
    }, 60_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-20_000);
    });
    void child.then(() => reject(new Error(`benchmark worker exited before it was ready: ${output}`)));
  });
  return { process: child, pid: child.pid!, output: () => output };
}

/** Asks the worker to shut down and waits; kills it if it does not stop within 15 s. */
export async function stopChildWorker(worker: ChildWorker): Promise<void> {
  if (worker.process.exitCode !== null || worker.process.signalCode !== null) return;
  worker.process.kill('SIGTERM');
  const timer = setTimeout(() => worker.process.kill('SIGKILL'), 15_000);
  await worker.process;
  clearTimeout(timer);
}
