/**
 * shell: runs a command the model asked for and tells it, Codex style, what came out and how it
 * ended. The command leads its own process group, so a timeout or a cancellation ends everything
 * it started, not only the first process. Output streams through a fixed-size head-and-tail
 * buffer: a command that prints gigabytes costs the worker a few kilobytes.
 *
 * With a sandbox (sandbox.ts) the command runs under bubblewrap. bwrap itself leads the process
 * group and the command leads another, inside its own PID namespace: a timeout sends SIGTERM to the
 * command's group (bwrap reports its pid on a status pipe) and then SIGKILL to bwrap, which takes
 * the whole namespace down with it.
 */
import { access, realpath, stat } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import type { SandboxMode } from '../../shared/policy/sandbox.js';
import type { ToolArgs, ToolOutcome } from '../../shared/tools/specs.js';
import type { ToolContext } from './context.js';
import {
  hiddenInSandbox,
  layoutFor,
  protectedPaths,
  sandboxedCommand,
  sandboxIdentity,
  sandboxLayoutOfWorker,
} from './sandbox.js';
import { HeadTailBuffer, truncateEncoded } from './truncate.js';
import { resolveInWorkspace, WorkspaceEscapeError } from './workspace-paths.js';
import { formatNumber } from '../../shared/util/text.js';
import { toolFailure } from '../../shared/tools/specs.js';
import { commandSummary } from '../../shared/tools/summary.js';
import type { ShellMetadata, ShellOutcome } from '../../shared/tools/shell-output.js';

export interface ShellOptions {
  /** Used when the model gives no timeout_ms. */
  defaultTimeoutMs: number;
  /** No command runs longer, whatever timeout_ms says (default MAX_TIMEOUT_MS). */
  maxTimeoutMs?: number;
  /** The command's whole environment (see commandEnvironment); nothing else is inherited. */
  env: Record<string, string>;
  /** Bytes of output kept from the start (default 8 KiB). */
  headBytes?: number;
  /** Bytes of output kept from the end (default 8 KiB). */
  tailBytes?: number;
  /** Confines the command (see sandbox.ts); absent, or danger-full-access, runs it unconfined. */
  sandbox?: { mode: SandboxMode; bwrapPath: string };
}

const DEFAULT_HEAD_BYTES = 8 * 1024;
const DEFAULT_TAIL_BYTES = 8 * 1024;
/** The longest a command may run: a model cannot park a tool slot (and a workspace) for days. */
export const MAX_TIMEOUT_MS = 2 * 60 * 60 * 1000;
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
/** Used by the system to find programs when PATH is unset. */
const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';
/** The command's descriptor on which bwrap reports the sandboxed process's pid. */
const STATUS_FD = 3;

type ConfiningMode = Exclude<SandboxMode, 'danger-full-access'>;

const SANDBOX_NOTES: Record<ConfiningMode, string> = {
  'workspace-write': 'writes outside the workspace and network access are blocked',
  'read-only': 'all writes (the workspace included) and network access are blocked',
};

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
 * ordinary exit code 127, indistinguishable from a script's own "command not found". Under bwrap
 * the search happens inside the sandbox and a failure is bwrap's own exit code 1, which says
 * even less.
 */
async function locateProgram(
  program: string,
  cwd: string,
  searchPath: string | undefined,
): Promise<{ file: string } | { problem: string }> {
  if (program.includes('/')) {
    const file = path.resolve(cwd, program);
    const problem = await executableProblem(file);
    if (problem === undefined) return { file };
    if (problem === 'missing')
      return { problem: `${program}: no such file. Check the path (relative paths start at the workdir).` };
    return {
      problem: `${program} cannot be run: it is ${problem === 'directory' ? 'a directory' : 'not executable'}.`,
    };
  }
  let notExecutable: string | undefined;
  for (const directory of (searchPath ?? DEFAULT_PATH).split(path.delimiter)) {
    const candidate = path.resolve(cwd, directory, program);
    const problem = await executableProblem(candidate);
    if (problem === undefined) return { file: candidate };
    if (problem === 'not executable') notExecutable ??= candidate;
  }
  if (notExecutable !== undefined)
    return { problem: `${program} cannot be run: ${notExecutable} is not executable.` };
  return {
    problem:
      `${program}: command not found on PATH. Shell builtins and syntax (cd, pipes, &&) need a shell: ` +
      `["bash", "-lc", "..."].`,
  };
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

/**
 * The process groups to signal. Unsandboxed, `outer` is the command's own. Sandboxed, `outer` is
 * bwrap's and `inner` the command's, once bwrap has reported it: SIGTERM to bwrap would kill it
 * at once (it forwards no signals) and the command with it, without a chance to clean up.
 */
interface Groups {
  outer: number;
  inner?: number;
}

/**
 * SIGTERM to the command's group, then SIGKILL to whatever is left after the grace period.
 * The wait is on the outer group in both cases. Sandboxed, that is bwrap alone, which exits only
 * once the sandbox's init has, and whose death makes --die-with-parent SIGKILL that init and with
 * it every process in the namespace. (The inner group would look alive for the whole grace
 * period: its leader, the init, stays a zombie until something reaps it.)
 */
async function terminate(groups: Groups): Promise<void> {
  signalGroup(groups.inner ?? groups.outer, 'SIGTERM');
  const deadline = Date.now() + KILL_GRACE_MS;
  while (Date.now() < deadline && signalGroup(groups.outer, 0)) await sleep(GROUP_POLL_MS);
  kill(groups);
}

function kill(groups: Groups): void {
  if (groups.inner !== undefined) signalGroup(groups.inner, 'SIGKILL');
  signalGroup(groups.outer, 'SIGKILL');
}

/** Reads bwrap's JSON status lines and reports the pid of the process it started. */
function watchStatus(stream: NodeJS.ReadableStream, onChildPid: (pid: number) => void): void {
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      try {
        const status = JSON.parse(line) as { 'child-pid'?: unknown };
        const pid = status['child-pid'];
        if (typeof pid === 'number' && Number.isInteger(pid) && pid > 0) onChildPid(pid);
      } catch {
        // Not a status line: nothing to learn from it.
      }
    }
  });
}

interface Finished {
  exitCode: number;
  timedOut: boolean;
  /** Set when the program could not be started at all. */
  startError?: string;
}

interface Launch {
  /** What to spawn: the command itself, or bwrap with the command at the end of its arguments. */
  argv: [string, ...string[]];
  /** Whether bwrap reports on STATUS_FD. */
  sandboxed: boolean;
  cwd: string;
  timeoutMs: number;
  env: Record<string, string>;
}

async function run(
  launch: Launch,
  output: HeadTailBuffer,
  ctx: ToolContext,
  started: number,
): Promise<Finished> {
  const [file, ...fileArgs] = launch.argv;
  const subprocess = execa(file, fileArgs, {
    cwd: launch.cwd,
    env: launch.env,
    extendEnv: false,
    // The status pipe exists only for bwrap, which keeps it out of the sandbox.
    stdio: ['ignore', 'pipe', 'pipe', launch.sandboxed ? 'pipe' : 'ignore'],
    detached: true,
    buffer: false,
    reject: false,
  });
  const collect = (chunk: Buffer): void => output.push(chunk);
  subprocess.stdout.on('data', collect);
  subprocess.stderr.on('data', collect);
  const pid = subprocess.pid;
  const groups: Groups | undefined = pid === undefined ? undefined : { outer: pid };
  const status = subprocess.stdio[STATUS_FD];
  if (launch.sandboxed && status !== null && status !== undefined && groups !== undefined) {
    watchStatus(status, (childPid) => (groups.inner = childPid));
  }

  let timedOut = false;
  let termination: Promise<void> | undefined;
  const timeout = setTimeout(() => {
    timedOut = true;
    if (groups !== undefined) termination = terminate(groups);
  }, launch.timeoutMs);
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
    if (groups !== undefined) kill(groups);
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

/** The sandbox that actually confines the command, if any. */
function confinedBy(
  sandbox: ShellOptions['sandbox'],
): { mode: ConfiningMode; bwrapPath: string } | undefined {
  if (sandbox === undefined || sandbox.mode === 'danger-full-access') return undefined;
  return { mode: sandbox.mode, bwrapPath: sandbox.bwrapPath };
}

export async function executeShell(
  args: ToolArgs<'shell'>,
  ctx: ToolContext,
  options: ShellOptions,
): Promise<ToolOutcome | ShellOutcome> {
  ctx.signal.throwIfAborted();
  const label = `shell · ${commandSummary(args.command)}`;

  let cwd: string;
  try {
    cwd = await resolveInWorkspace(ctx.workspace, args.workdir ?? '.');
    if (!(await stat(cwd)).isDirectory())
      return toolFailure(label, `workdir ${args.workdir} is not a directory.`);
  } catch (err) {
    if (err instanceof WorkspaceEscapeError) {
      return toolFailure(
        label,
        `workdir ${err.message}: commands run inside the workspace (${ctx.workspace}).`,
      );
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      return toolFailure(label, `workdir ${args.workdir} does not exist.`);
    throw err;
  }

  const [program, ...programArgs] = args.command;
  if (program === undefined || program === '') return toolFailure(label, 'The command is empty.');
  const located = await locateProgram(program, cwd, options.env.PATH);
  if ('problem' in located) return toolFailure(label, located.problem);

  const sandbox = confinedBy(options.sandbox);
  let argv: [string, ...string[]] = [program, ...programArgs];
  if (sandbox !== undefined) {
    const identity = await sandboxIdentity(ctx.workspace);
    if ('refused' in identity) return toolFailure(label, `${identity.refused} The command was not run.`);
    const confinement = {
      ...sandbox,
      workspace: ctx.workspace,
      cwd,
      protect: await protectedPaths(ctx.workspace),
      layout: await layoutFor(await sandboxLayoutOfWorker(), identity.runAs),
      ...identity,
      statusFd: STATUS_FD,
    };
    if (hiddenInSandbox(await realpath(located.file), confinement)) {
      return toolFailure(
        label,
        `${program} is at ${located.file}, which the sandbox (${sandbox.mode}) hides: commands get ` +
          `private, empty /tmp, /run and home folders. Put programs in the workspace instead.`,
      );
    }
    const [first, ...rest] = sandboxedCommand(args.command, confinement);
    argv = [first ?? sandbox.bwrapPath, ...rest];
  }

  const asked = args.timeout_ms ?? options.defaultTimeoutMs;
  const timeoutMs = Math.min(asked, options.maxTimeoutMs ?? MAX_TIMEOUT_MS);
  const output = new HeadTailBuffer(
    options.headBytes ?? DEFAULT_HEAD_BYTES,
    options.tailBytes ?? DEFAULT_TAIL_BYTES,
  );
  const started = performance.now();
  const finished = await run(
    { argv, sandboxed: sandbox !== undefined, cwd, timeoutMs, env: options.env },
    output,
    ctx,
    started,
  );
  if (finished.startError !== undefined)
    return toolFailure(label, `Could not start ${argv[0]}: ${finished.startError}`);

  const seconds = Math.round((performance.now() - started) / 100) / 10;
  // The model reads the output JSON-encoded: keep the encoded size within the byte budget too.
  const budget = (options.headBytes ?? DEFAULT_HEAD_BYTES) + (options.tailBytes ?? DEFAULT_TAIL_BYTES) + 1024;
  let text = truncateEncoded(output.toString(), budget);
  if (finished.timedOut) {
    const separator = text === '' || text.endsWith('\n') ? '' : '\n';
    const capped =
      timeoutMs < asked ? ` (the most a command may run; ${formatNumber(asked)} ms was asked)` : '';
    text += `${separator}[command timed out after ${formatNumber(timeoutMs)} ms${capped} and was killed]`;
  }
  if (sandbox !== undefined && finished.exitCode !== 0 && !finished.timedOut) {
    // The command's own error ("Read-only file system", "Network is unreachable") may not say why.
    const separator = text === '' || text.endsWith('\n') ? '' : '\n';
    text += `${separator}[sandbox: ${sandbox.mode} — ${SANDBOX_NOTES[sandbox.mode]}]`;
  }
  const metadata: ShellMetadata = { exit_code: finished.exitCode, duration_seconds: seconds };
  if (finished.timedOut) metadata.timed_out = true;
  if (output.omittedBytes > 0) metadata.truncated_bytes = output.omittedBytes;
  if (sandbox !== undefined) metadata.sandbox = sandbox.mode;

  // The parts, not the model's text: the workflow writes it (shellOutputText), so that history
  // holds the output escaped once.
  return {
    shell: { output: text, metadata },
    display: `${label} · exit ${finished.exitCode} · ${seconds} s${finished.timedOut ? ' · timed out' : ''}`,
    success: finished.exitCode === 0,
  };
}
