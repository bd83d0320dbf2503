/**
 * Runs the `ratchet` command the way a user does: `node bin/ratchet.js …` in a process of its own,
 * with the environment it is given. It never rejects: a failed command is a result to assert on.
 */
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

export const ratchetBin = fileURLToPath(new URL('../../bin/ratchet.js', import.meta.url));

export interface CliOptions {
  /** Added to (and overriding) the test process's environment; undefined removes a variable. */
  env?: Record<string, string | undefined>;
  /** Written to stdin; without it stdin is empty (never a terminal). */
  input?: string;
  /** Kills the command after this long (default 60 s); the result then has `timedOut`. */
  timeoutMs?: number;
  cwd?: string;
}

export interface CliResult {
  /** -1 when the process did not exit by itself (killed on timeout, or by a signal). */
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const result = await execa(process.execPath, [ratchetBin, ...args], {
    env: options.env,
    extendEnv: true,
    input: options.input ?? '',
    cwd: options.cwd,
    reject: false,
    timeout: options.timeoutMs ?? 60_000,
    stripFinalNewline: false,
  });
  return {
    exitCode: result.exitCode ?? -1,
    stdout: result.stdout,
    stderr: result.stderr,
    timedOut: result.timedOut,
  };
}

export interface RunningCli {
  /** Everything the command has written to stdout so far. */
  stdout(): string;
  /** Resolves once stdout matches `pattern`; rejects if the command ends or `timeoutMs` passes first. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
  result: Promise<CliResult>;
}

/** Like runCli, for a command that runs a while (`ratchet watch`): its output can be awaited as it comes. */
export function startCli(args: string[], options: CliOptions = {}): RunningCli {
  const child = execa(process.execPath, [ratchetBin, ...args], {
    env: options.env,
    extendEnv: true,
    input: options.input ?? '',
    cwd: options.cwd,
    reject: false,
    timeout: options.timeoutMs ?? 60_000,
    stripFinalNewline: false,
  });
  let stdout = '';
  const listeners = new Set<() => void>();
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
    for (const listener of listeners) listener();
  });
  const result = child.then((done) => ({
    exitCode: done.exitCode ?? -1,
    stdout,
    stderr: String(done.stderr),
    timedOut: done.timedOut,
  }));
  return {
    stdout: () => stdout,
    result,
    waitForOutput(pattern, timeoutMs = 30_000) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!pattern.test(stdout)) return;
          cleanup();
          resolve();
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no ${pattern} in the output within ${timeoutMs} ms:\n${stdout}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        void result.then((done) => {
          if (!listeners.has(check)) return;
          cleanup();
          reject(
            new Error(
              `the command ended (exit ${done.exitCode}) before ${pattern}:\n${stdout}\n${done.stderr}`,
            ),
          );
        });
        listeners.add(check);
        check();
      });
    },
  };
}

/** The environment a `ratchet` command needs to reach a test harness's server and queue (and no profile). */
export function harnessCliEnv(harness: {
  address: string;
  taskQueue: string;
}): Record<string, string | undefined> {
  return {
    TEMPORAL_ADDRESS: harness.address,
    TEMPORAL_NAMESPACE: undefined,
    TEMPORAL_PROFILE: undefined,
    TEMPORAL_API_KEY: undefined,
    RATCHET_TASK_QUEUE: harness.taskQueue,
    NO_COLOR: '1',
  };
}
