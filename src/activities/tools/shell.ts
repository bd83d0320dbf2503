/**
 * shell: runs a command the model asked for and tells it, Codex style, what came out and how it
 * ended. The command leads its own process group, so a timeout or a cancellation ends everything
 * it started, not only the first process. Output streams through a fixed-size head-and-tail
 * buffer: a command that prints gigabytes costs the worker a few kilobytes.
 */
import { access, stat } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import type { ShellArgs, ToolOutcome } from '../../shared/tools.js';
import type { ToolContext } from './context.js';
import { HeadTailBuffer } from './truncate.js';
import { resolveInWorkspace, WorkspaceEscapeError } from './workspace-paths.js';

export interface ShellOptions {
  /** Used when the model gives no timeout_ms. */
  defaultTimeoutMs: number;
  /** The command's whole environment (see commandEnvironment); nothing else is inherited. */
  env: Record<string, string>;
  /** Bytes of output kept from the start (default 8 KiB). */
  headBytes?: number;
  /** Bytes of output kept from the end (default 8 KiB). */
  tailBytes?: number;
}

const DEFAULT_HEAD_BYTES = 8 * 1024;
const DEFAULT_TAIL_BYTES = 8 * 1024;
/** Exit code reported for a command that ran out of time, as timeout(1) reports it. */
const TIMEOUT_EXIT_CODE = 124;
/** Between SIGTERM and SIGKILL: time for a command to clean up after itself. */
const KILL_GRACE_MS = 2000;
const GROUP_POLL_MS = 50;
const HEARTBEAT_INTERVAL_MS = 1000;
/**
 * After the command exits, how long to keep reading output still in flight. A process it left in
 * the background can hold the pipe open indefinitely; it is not waited for.
 */
const DRAIN_AFTER_EXIT_MS = 500;
const DISPLAY_COMMAND_CHARS = 60;
/** Used by the system to find programs when PATH is unset. */
const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';

interface Metadata {
  exit_code: number;
  duration_seconds: number;
  timed_out?: true;
  truncated_bytes?: number;
}

function formatNumber(n: number): string {
  return n.toLocaleString('en-US');
}

function quoteArgument(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/**
 * The command as a person would type it, on one line and shortened: for a shell running a script
 * (["bash", "-lc", "npm test"]) the script itself.
 */
export function describeCommand(command: string[]): string {
  const [program, flag, script] = command;
  const runsScript =
    command.length === 3 &&
    program !== undefined &&
    ['bash', 'sh', 'zsh', 'dash'].includes(path.basename(program)) &&
    flag !== undefined &&
    /^-[a-z]*c[a-z]*$/.test(flag);
  const text = (runsScript && script !== undefined ? script : command.map(quoteArgument).join(' '))
    .replace(/\s+/g, ' ')
    .trim();
  return text.length <= DISPLAY_COMMAND_CHARS ? text : `${text.slice(0, DISPLAY_COMMAND_CHARS - 1)}…`;
}

function failure(label: string, output: string): ToolOutcome {
  return { output, display: `${label} · error`, success: false };
}

/** Why `file` cannot be run, or undefined when it can. */
async function executableProblem(
  file: string,
): Promise<'missing' | 'directory' | 'not executable' | undefined> {
  try {
    if ((await stat(file)).isDirectory()) return 'directory';
  } catch {
    return 'missing';
  }
  try {
    await access(file, fsConstants.X_OK);
    return undefined;
  } catch {
    return 'not executable';
  }
}

/**
 * Finds the program as the system will (a path when it has a slash, else a PATH search) to say
 * precisely why it cannot run: the spawn itself reports a file without execute permission as an
 * ordinary exit code 127, indistinguishable from a script's own "command not found".
 */
async function programProblem(
  program: string,
  cwd: string,
  searchPath: string | undefined,
): Promise<string | undefined> {
  if (program.includes('/')) {
    const problem = await executableProblem(path.resolve(cwd, program));
    if (problem === undefined) return undefined;
    if (problem === 'missing')
      return `${program}: no such file. Check the path (relative paths start at the workdir).`;
    return `${program} cannot be run: it is ${problem === 'directory' ? 'a directory' : 'not executable'}.`;
  }
  let notExecutable: string | undefined;
  for (const directory of (searchPath ?? DEFAULT_PATH).split(path.delimiter)) {
    const candidate = path.resolve(cwd, directory, program);
    const problem = await executableProblem(candidate);
    if (problem === undefined) return undefined;
    if (problem === 'not executable') notExecutable ??= candidate;
  }
  if (notExecutable !== undefined) return `${program} cannot be run: ${notExecutable} is not executable.`;
  return (
    `${program}: command not found on PATH. Shell builtins and syntax (cd, pipes, &&) need a shell: ` +
    `["bash", "-lc", "..."].`
  );
}

/** Sends a signal to every process in the group `pgid` leads; a group already gone is fine. */
function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** SIGTERM to the whole group, then SIGKILL to whatever is left after the grace period. */
async function terminateGroup(pgid: number): Promise<void> {
  signalGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + KILL_GRACE_MS;
  while (Date.now() < deadline && signalGroup(pgid, 0)) await sleep(GROUP_POLL_MS);
  signalGroup(pgid, 'SIGKILL');
}

interface Finished {
  exitCode: number;
  timedOut: boolean;
  /** Set when the program could not be started at all. */
  startError?: string;
}

async function run(
  program: string,
  programArgs: string[],
  cwd: string,
  timeoutMs: number,
  env: Record<string, string>,
  output: HeadTailBuffer,
  ctx: ToolContext,
  started: number,
): Promise<Finished> {
  const subprocess = execa(program, programArgs, {
    cwd,
    env,
    extendEnv: false,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    detached: true,
    buffer: false,
    reject: false,
  });
  const collect = (chunk: Buffer): void => output.push(chunk);
  subprocess.stdout.on('data', collect);
  subprocess.stderr.on('data', collect);
  const pgid = subprocess.pid;

  let timedOut = false;
  let termination: Promise<void> | undefined;
  const timeout = setTimeout(() => {
    timedOut = true;
    if (pgid !== undefined) termination = terminateGroup(pgid);
  }, timeoutMs);
  const heartbeat = setInterval(() => {
    ctx.heartbeat({ bytes: output.totalBytes, elapsedMs: Math.round(performance.now() - started) });
  }, HEARTBEAT_INTERVAL_MS);
  let drain: NodeJS.Timeout | undefined;
  subprocess.once('exit', () => {
    clearTimeout(timeout);
    drain = setTimeout(() => {
      subprocess.stdout.destroy();
      subprocess.stderr.destroy();
    }, DRAIN_AFTER_EXIT_MS);
  });
  const onAbort = (): void => {
    if (pgid !== undefined) signalGroup(pgid, 'SIGKILL');
  };
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  if (ctx.signal.aborted) onAbort();

  try {
    const result = await subprocess;
    await termination;
    ctx.signal.throwIfAborted();
    if (timedOut) return { exitCode: TIMEOUT_EXIT_CODE, timedOut };
    if (result.exitCode !== undefined) return { exitCode: result.exitCode, timedOut };
    if (result.signal !== undefined) return { exitCode: 128 + osConstants.signals[result.signal], timedOut };
    return { exitCode: -1, timedOut, startError: result.shortMessage };
  } finally {
    clearTimeout(timeout);
    clearTimeout(drain);
    clearInterval(heartbeat);
    ctx.signal.removeEventListener('abort', onAbort);
  }
}

export async function executeShell(
  args: ShellArgs,
  ctx: ToolContext,
  options: ShellOptions,
): Promise<ToolOutcome> {
  ctx.signal.throwIfAborted();
  const label = `shell · ${describeCommand(args.command)}`;

  let cwd: string;
  try {
    cwd = await resolveInWorkspace(ctx.workspace, args.workdir ?? '.');
    if (!(await stat(cwd)).isDirectory())
      return failure(label, `workdir ${args.workdir} is not a directory.`);
  } catch (err) {
    if (err instanceof WorkspaceEscapeError) {
      return failure(label, `workdir ${err.message}: commands run inside the workspace (${ctx.workspace}).`);
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      return failure(label, `workdir ${args.workdir} does not exist.`);
    throw err;
  }

  const [program, ...programArgs] = args.command;
  if (program === undefined || program === '') return failure(label, 'The command is empty.');
  const problem = await programProblem(program, cwd, options.env.PATH);
  if (problem !== undefined) return failure(label, problem);

  const timeoutMs = args.timeout_ms ?? options.defaultTimeoutMs;
  const output = new HeadTailBuffer(
    options.headBytes ?? DEFAULT_HEAD_BYTES,
    options.tailBytes ?? DEFAULT_TAIL_BYTES,
  );
  const started = performance.now();
  const finished = await run(program, programArgs, cwd, timeoutMs, options.env, output, ctx, started);
  if (finished.startError !== undefined)
    return failure(label, `Could not start ${program}: ${finished.startError}`);

  const seconds = Math.round((performance.now() - started) / 100) / 10;
  let text = output.toString();
  if (finished.timedOut) {
    const separator = text === '' || text.endsWith('\n') ? '' : '\n';
    text += `${separator}[command timed out after ${formatNumber(timeoutMs)} ms and was killed]`;
  }
  const metadata: Metadata = { exit_code: finished.exitCode, duration_seconds: seconds };
  if (finished.timedOut) metadata.timed_out = true;
  if (output.omittedBytes > 0) metadata.truncated_bytes = output.omittedBytes;

  return {
    output: JSON.stringify({ output: text, metadata }),
    display: `${label} · exit ${finished.exitCode} · ${seconds} s${finished.timedOut ? ' · timed out' : ''}`,
    success: finished.exitCode === 0,
  };
}
