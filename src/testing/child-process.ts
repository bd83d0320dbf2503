/**
 * A Node script started as a child process (a worker for tests and benchmarks) that prints
 * "ready" on stdout once it is serving. What it prints is kept, to its last MiB, for error
 * messages and for tests that wait for a line.
 */
import { execa } from 'execa';
import type { ResultPromise } from 'execa';

const KEPT_OUTPUT_CHARS = 1024 * 1024;

/**
 * The process is returned inside an object: execa's result is a thenable, and returning it
 * from an async function would wait for the process to exit.
 */
export interface ReadyProcess {
  process: ResultPromise;
  pid: number;
  /** stdout and stderr so far (the last MiB). */
  output: () => string;
}

export async function startReadyProcess(
  script: string,
  env: Record<string, string>,
  options: {
    label: string;
    readyTimeoutMs: number;
    /** Runs it as this user (the caller is root). */ asUser?: { uid: number; gid: number };
  },
): Promise<ReadyProcess> {
  const asUser = options.asUser;
  const [file, ...args] = [
    ...(asUser === undefined
      ? []
      : ['setpriv', `--reuid=${asUser.uid}`, `--regid=${asUser.gid}`, '--clear-groups', '--inh-caps=-all']),
    process.execPath,
    '--import',
    'tsx',
    script,
  ];
  const child = execa(file, args, {
    env,
    reject: false,
    buffer: false,
    stdin: 'ignore',
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-KEPT_OUTPUT_CHARS);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${options.label} not ready after ${options.readyTimeoutMs / 1000} s: ${output}`));
    }, options.readyTimeoutMs);
    child.stdout?.on('data', () => {
      if (output.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void child.then(() => {
      clearTimeout(timer);
      reject(new Error(`${options.label} exited before it was ready: ${output}`));
    });
  });
  return { process: child, pid: child.pid!, output: () => output };
}

/** Asks the process to stop (SIGTERM) and waits; kills it if it has not ended after `graceMs`. */
export async function stopReadyProcess(child: ReadyProcess, graceMs = 15_000): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return;
  child.process.kill('SIGTERM');
  const timer = setTimeout(() => child.process.kill('SIGKILL'), graceMs);
  await child.process;
  clearTimeout(timer);
}
