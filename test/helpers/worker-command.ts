/**
 * `ratchet worker` as an operator runs it: the real command in a process of its own, against a
 * harness's server, task queue and scripted model.
 */
import { execa } from 'execa';
import type { ResultPromise } from 'execa';
import { ratchetBin } from './cli.js';
import type { Harness } from './harness.js';

export async function until(predicate: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Starts `ratchet worker ARGS`; resolves once it polls. RATCHET_HOME keeps its bundle cache. */
export async function startWorkerCommand(
  harness: Harness,
  home: string,
  args: string[],
): Promise<{ child: ResultPromise; output: () => string }> {
  const child = execa(process.execPath, [ratchetBin, 'worker', ...args], {
    env: {
      TEMPORAL_ADDRESS: harness.address,
      RATCHET_TASK_QUEUE: harness.taskQueue,
      OPENAI_BASE_URL: harness.model.baseUrl,
      OPENAI_API_KEY: 'test',
      RATCHET_HOME: home,
      NO_COLOR: '1',
    },
    reject: false,
    buffer: false,
    stdin: 'ignore',
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await until(() => output.includes('worker polling'), `the worker to start: ${output}`, 120_000);
  return { child, output: () => output };
}
