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
