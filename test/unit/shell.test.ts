import { chmod, mkdir, mkdtemp, readdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ToolContext } from '../../src/activities/tools/context.js';
import { commandEnvironment } from '../../src/activities/tools/env.js';
import type { SandboxInfo } from '../../src/activities/tools/sandbox.js';
import { detectSandbox } from '../../src/activities/tools/sandbox-detect.js';
import { executeShell as executeShellParts, MAX_TIMEOUT_MS } from '../../src/activities/tools/shell.js';
import { commandSummary, toolCallSummary } from '../../src/shared/tools/summary.js';
import type { ShellOptions } from '../../src/activities/tools/shell.js';
import type { SandboxMode } from '../../src/shared/policy/sandbox.js';
import type { ToolArgs, ToolOutcome } from '../../src/shared/tools/specs.js';
import { giveToTestUser } from '../helpers/test-user.js';
import { toolOutcome } from '../../src/shared/tools/shell-output.js';

/** The shell as the session records it: the text the model reads (src/shared/tools/shell-output.ts). */
async function executeShell(...args: Parameters<typeof executeShellParts>): Promise<ToolOutcome> {
  return toolOutcome(await executeShellParts(...args));
}

interface ShellResult {
  output: string;
  metadata: {
    exit_code: number;
    duration_seconds: number;
    timed_out?: true;
    truncated_bytes?: number;
    sandbox?: SandboxMode;
  };
}

let workspace: string;
let ctx: ToolContext;
const options = { defaultTimeoutMs: 10_000, env: commandEnvironment(process.env) };

beforeEach(async () => {
  workspace = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-shell-')));
  ctx = { workspace, signal: new AbortController().signal, heartbeat: () => {} };
});

afterEach(async () => {
  await rm(workspace, { recursive: true, force: true });
});

function parse(outcome: ToolOutcome): ShellResult {
  return JSON.parse(outcome.output) as ShellResult;
}

async function shell(
  args: ToolArgs<'shell'>,
  context: ToolContext = ctx,
): Promise<{ outcome: ToolOutcome; result: ShellResult }> {
  const outcome = await executeShell(args, context, options);
  return { outcome, result: parse(outcome) };
}

/** A pid that no longer runs; a zombie waiting for its reaper counts as gone. */
async function isGone(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat === '' || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
}

/** Waits up to a second for the pid to be reaped. */
async function expectGone(pid: number): Promise<void> {
  for (let i = 0; i < 20 && !(await isGone(pid)); i++) await sleep(50);
  expect(await isGone(pid), `process ${pid} still runs`).toBe(true);
}

/** V8's full garbage collection, made callable without restarting Node with --expose-gc. */
function garbageCollector(): () => void {
  setFlagsFromString('--expose-gc');
  const gc: unknown = runInNewContext('gc');
  if (typeof gc !== 'function') throw new Error('could not expose the garbage collector');
  return () => void (gc as () => unknown)();
}

/** Memory that JavaScript objects and buffers hold. */
function liveBytes(): number {
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

function firstPid(output: string): number {
  const pid = Number(/^(\d+)$/m.exec(output)?.[1]);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no pid in ${JSON.stringify(output)}`);
  return pid;
}

describe('executeShell', () => {
  it('runs a command and reports its output, exit code and duration', async () => {
    const { outcome, result } = await shell({ command: ['echo', 'hello world'] });
    expect(outcome.success).toBe(true);
    expect(result.output).toBe('hello world\n');
    expect(result.metadata.exit_code).toBe(0);
    expect(result.metadata.duration_seconds).toBeLessThan(5);
    expect(Object.keys(result.metadata)).toEqual(['exit_code', 'duration_seconds']);
    expect(outcome.display).toMatch(/^shell · echo 'hello world' · exit 0 · \d+(\.\d)? s$/);
  });

  it('interleaves stdout and stderr and reports a failing exit code', async () => {
    const { outcome, result } = await shell({
      command: ['bash', '-c', 'echo out; sleep 0.1; echo err >&2; sleep 0.1; echo out2; exit 3'],
    });
    expect(outcome.success).toBe(false);
    expect(result.output).toBe('out\nerr\nout2\n');
    expect(result.metadata.exit_code).toBe(3);
    expect(outcome.display).toMatch(/^shell · echo out; sleep 0\.1; .* · exit 3 · /);
  });

  it('gives the command an empty standard input', async () => {
    const started = Date.now();
    const { result } = await shell({ command: ['cat'], timeout_ms: 5000 });
    expect(result.metadata).toMatchObject({ exit_code: 0 });
    expect(result.output).toBe('');
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('runs in workdir, which must be a directory inside the workspace', async () => {
    await mkdir(path.join(workspace, 'sub'));
    await writeFile(path.join(workspace, 'file.txt'), '');
    const { result } = await shell({ command: ['pwd'], workdir: 'sub' });
    expect(result.output).toBe(`${path.join(workspace, 'sub')}\n`);

    for (const [workdir, message] of [
      ['..', 'outside the workspace'],
      ['/', 'outside the workspace'],
      ['missing', 'does not exist'],
      ['file.txt', 'not a directory'],
    ] as const) {
      const outcome = await executeShell({ command: ['pwd'], workdir }, ctx, options);
      expect(outcome.success, workdir).toBe(false);
      expect(outcome.output, workdir).toContain(message);
    }
  });

  it('says so when the program is missing or cannot be executed', async () => {
    const missing = await executeShell({ command: ['no-such-program-ratchet'] }, ctx, options);
    expect(missing).toMatchObject({ success: false, display: 'shell · no-such-program-ratchet · error' });
    expect(missing.output).toContain('command not found');

    await writeFile(path.join(workspace, 'script.sh'), '#!/bin/sh\necho hi\n');
    await chmod(path.join(workspace, 'script.sh'), 0o644);
    const notExecutable = await executeShell({ command: ['./script.sh'] }, ctx, options);
    expect(notExecutable.success).toBe(false);
    expect(notExecutable.output).toContain('not executable');

    const relativeMissing = await executeShell({ command: ['./nope.sh'] }, ctx, options);
    expect(relativeMissing.success).toBe(false);
    expect(relativeMissing.output).toContain('no such file');

    await chmod(path.join(workspace, 'script.sh'), 0o755);
    const runs = await shell({ command: ['./script.sh'] });
    expect(runs.result.output).toBe('hi\n');
  });

  it('reports death by a signal as 128 plus the signal number', async () => {
    const { outcome, result } = await shell({ command: ['bash', '-c', 'kill -KILL $$'] });
    expect(outcome.success).toBe(false);
    expect(result.metadata.exit_code).toBe(137);
  });

  it('on timeout kills the whole process group, grandchildren included', async () => {
    const started = Date.now();
    const { outcome, result } = await shell({
      command: ['bash', '-c', 'sleep 100 & echo $!; sleep 100'],
      timeout_ms: 500,
    });
    expect(Date.now() - started).toBeLessThan(4000);
    expect(outcome.success).toBe(false);
    expect(result.metadata).toMatchObject({ exit_code: 124, timed_out: true });
    expect(result.output).toMatch(/\[command timed out after 500 ms and was killed\]$/);
    expect(outcome.display).toMatch(/ · exit 124 · [\d.]+ s · timed out$/);
    await expectGone(firstPid(result.output));
  });

  it('caps timeout_ms at the maximum a command may run, and says so', async () => {
    const outcome = await executeShell({ command: ['sleep', '5'], timeout_ms: 10 * 24 * 3600_000 }, ctx, {
      ...options,
      maxTimeoutMs: 300,
    });
    expect(parse(outcome).output).toBe(
      '[command timed out after 300 ms (the most a command may run; 864,000,000 ms was asked) and was killed]',
    );
    expect(MAX_TIMEOUT_MS).toBe(2 * 3600_000);
  });

  it('follows SIGTERM with SIGKILL for processes that ignore it', async () => {
    const started = Date.now();
    const { result } = await shell({
      command: ['bash', '-c', 'trap "" TERM; sleep 100 & echo $!; wait'],
      timeout_ms: 300,
    });
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(2000);
    expect(elapsed).toBeLessThan(6000);
    expect(result.metadata).toMatchObject({ exit_code: 124, timed_out: true });
    await expectGone(firstPid(result.output));
  });

  it('returns when the command exits, even if a background process holds its output open', async () => {
    const started = Date.now();
    const { result } = await shell({ command: ['bash', '-c', 'sleep 30 & echo $!'], timeout_ms: 20_000 });
    const pid = firstPid(result.output);
    try {
      expect(Date.now() - started).toBeLessThan(5000);
      expect(result.metadata).toEqual({ exit_code: 0, duration_seconds: expect.any(Number) as number });
    } finally {
      process.kill(pid, 'SIGKILL');
    }
  });

  it('on cancellation kills the process group and throws the abort reason', async () => {
    const controller = new AbortController();
    const reason = new Error('interrupted by the user');
    await writeFile(path.join(workspace, 'pids'), '');
    const run = executeShell(
      { command: ['bash', '-c', 'sleep 100 & echo $! > pids; sleep 100'] },
      { ...ctx, signal: controller.signal },
      options,
    );
    let grandchild = '';
    for (let i = 0; i < 100 && grandchild === ''; i++) {
      await sleep(50);
      grandchild = (await readFile(path.join(workspace, 'pids'), 'utf8')).trim();
    }
    const started = Date.now();
    controller.abort(reason);
    await expect(run).rejects.toBe(reason);
    expect(Date.now() - started).toBeLessThan(2000);
    await expectGone(Number(grandchild));
  });

  it('throws at once when already cancelled', async () => {
    const controller = new AbortController();
    controller.abort(new Error('already cancelled'));
    await expect(
      executeShell({ command: ['true'] }, { ...ctx, signal: controller.signal }, options),
    ).rejects.toThrow('already cancelled');
  });

  it('heartbeats about once a second with the bytes seen so far', async () => {
    const beats: Record<string, unknown>[] = [];
    await executeShell(
      { command: ['bash', '-c', 'echo 12345; sleep 2.5'] },
      { ...ctx, heartbeat: (details) => beats.push(details) },
      options,
    );
    expect(beats.length).toBeGreaterThanOrEqual(2);
    expect(beats.length).toBeLessThanOrEqual(3);
    expect(beats.at(-1)).toMatchObject({ bytes: 6 });
    const elapsed = beats.map((beat) => beat.elapsedMs as number);
    expect(elapsed[0]).toBeGreaterThanOrEqual(900);
    expect(elapsed[1]).toBeGreaterThan(elapsed[0] ?? Infinity);
  });

  it.each([
    ['a long line', "head -c 50000000 /dev/zero | tr '\\0' a"],
    ['many short lines', 'yes | head -c 50000000'],
  ])('keeps 50 MB of output (%s) to a few kilobytes, with bounded memory', async (name, script) => {
    const collectGarbage = garbageCollector();
    collectGarbage();
    const baseline = liveBytes();
    const baselineRss = process.memoryUsage().rss;
    let peakLive = 0;
    let peakRss = 0;
    let samples = 0;
    // Sampled after a full collection, so only memory something still references counts: a
    // tool that kept the stream would show tens of megabytes here halfway through.
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss - baselineRss);
      collectGarbage();
      peakLive = Math.max(peakLive, liveBytes() - baseline);
      samples += 1;
    }, 25);
    const started = Date.now();
    let outcome: ToolOutcome;
    try {
      outcome = await executeShell({ command: ['bash', '-c', script] }, ctx, options);
    } finally {
      clearInterval(sampler);
    }
    const elapsed = Date.now() - started;
    const result = parse(outcome);
    expect(result.metadata.exit_code).toBe(0);
    expect(result.metadata.truncated_bytes).toBe(50_000_000 - 16 * 1024);
    expect(Buffer.byteLength(result.output)).toBeLessThan(20 * 1024);
    // JSON escapes each newline as two characters: 16 KiB of "y\n" grows by half.
    expect(Buffer.byteLength(outcome.output)).toBeLessThan(26 * 1024);
    expect(result.output).toMatch(/\[… [\d,]+ bytes \([\d,]+ lines\) omitted …\]/);
    expect(samples).toBeGreaterThan(2);
    expect(peakLive).toBeLessThan(8 * 1024 * 1024);
    if (process.env.RATCHET_REPORT_FIGURES) {
      const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
      process.stdout.write(
        `${name}: ${elapsed} ms, ${samples} samples, peak live growth ${mib(peakLive)} MiB, ` +
          `peak RSS growth ${mib(peakRss)} MiB\n`,
      );
    }
  });

  it('shows binary output as a note', async () => {
    const { result } = await shell({ command: ['head', '-c', '100000', '/dev/urandom'] });
    expect(result.output).toBe('[binary output: 100,000 bytes]');
    expect(result.metadata.truncated_bytes).toBe(100_000 - 16 * 1024);
  });

  it('keeps secrets in the parent environment away from the command', async () => {
    const parentEnv: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: '/home/someone',
      OPENAI_API_KEY: 'sk-live-openai-value',
      TEMPORAL_API_KEY: 'temporal-api-key-value',
      MY_SECRET_TOKEN: 'my-secret-token-value',
    };
    const outcome = await executeShell({ command: ['env'] }, ctx, {
      defaultTimeoutMs: 10_000,
      env: commandEnvironment(parentEnv),
    });
    const printed = parse(outcome).output;
    expect(printed).toContain('HOME=/home/someone\n');
    expect(printed).toContain('PAGER=cat\n');
    for (const leaked of [
      'OPENAI_API_KEY',
      'TEMPORAL_API_KEY',
      'MY_SECRET_TOKEN',
      'sk-live-openai-value',
      'temporal-api-key-value',
      'my-secret-token-value',
    ]) {
      expect(printed).not.toContain(leaked);
    }
  });
});

describe('commandSummary', () => {
  it('shows a shell script as the script itself', () => {
    expect(commandSummary(['bash', '-lc', 'npm test'])).toBe('npm test');
    expect(commandSummary(['/bin/sh', '-c', 'make\n  all'])).toBe('make all');
  });

  it('quotes arguments as a person would type them', () => {
    expect(commandSummary(['rg', '-n', 'TODO: fix', "it's"])).toBe(`rg -n 'TODO: fix' 'it'\\''s'`);
    expect(commandSummary(['git', 'status'])).toBe('git status');
  });

  it('shortens long commands to 80 characters', () => {
    const shown = commandSummary(['bash', '-lc', `echo ${'x'.repeat(200)}`]);
    expect(shown).toHaveLength(80);
    expect(shown.endsWith('…')).toBe(true);
  });

  it("cuts a command the way the call's summary does: the tool's line begins with the summary", async () => {
    const command = ['bash', '-lc', `printf '%s\\n' "\x1b[2K"; echo ${'y'.repeat(120)}\n  true`];
    const summary = toolCallSummary('shell', { command });
    expect(summary).toBe(`shell · ${commandSummary(command)}`);
    const { outcome } = await shell({ command });
    expect(outcome.display.startsWith(`${summary} · `)).toBe(true);
  });
});

let detected: Promise<SandboxInfo> | undefined;

/** Options that sandbox the command; a test that needs bwrap fails (never skips) without it. */
async function sandboxed(mode: SandboxMode): Promise<ShellOptions> {
  const info = await (detected ??= detectSandbox({ PATH: process.env.PATH }));
  if (!info.available) throw new Error(`these tests need a working bubblewrap: ${info.detail}`);
  await giveToTestUser(workspace);
  return { ...options, sandbox: { mode, bwrapPath: info.bwrapPath } };
}

/**
 * Host pids of live processes running `sleep <marker>` (bwrap's own command line ends with the
 * command's, so it counts too). Inside the sandbox's PID namespace `$!` means nothing out here.
 */
async function pidsSleeping(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(`sleep\0${marker}\0`)) pids.push(Number(entry));
  }
  return pids;
}

async function expectNoneSleeping(marker: string): Promise<void> {
  for (let i = 0; i < 20 && (await pidsSleeping(marker)).length > 0; i++) await sleep(50);
  expect(await pidsSleeping(marker), `still running: sleep ${marker}`).toEqual([]);
}

/** An argument for `sleep` that names one test: seconds with a unique fraction. */
function sleepMarker(): string {
  return `987.${String(Math.floor(Math.random() * 1e9)).padStart(9, '0')}`;
}

describe('executeShell in a sandbox', () => {
  it('runs the command and says which sandbox it ran in', async () => {
    const outcome = await executeShell(
      { command: ['echo', 'hello'] },
      ctx,
      await sandboxed('workspace-write'),
    );
    expect(outcome.success).toBe(true);
    expect(outcome.display).toMatch(/^shell · echo hello · exit 0 · \d+(\.\d)? s$/);
    const result = parse(outcome);
    expect(result.output).toBe('hello\n');
    expect(Object.keys(result.metadata)).toEqual(['exit_code', 'duration_seconds', 'sandbox']);
    expect(result.metadata.sandbox).toBe('workspace-write');

    const unconfined = parse(
      await executeShell({ command: ['echo', 'hello'] }, ctx, await sandboxed('danger-full-access')),
    );
    expect(Object.keys(unconfined.metadata)).toEqual(['exit_code', 'duration_seconds']);
  });

  it('adds a note on why when a sandboxed command fails, and only then', async () => {
    const failing = parse(
      await executeShell(
        { command: ['bash', '-c', 'echo nope; exit 2'] },
        ctx,
        await sandboxed('workspace-write'),
      ),
    );
    expect(failing.output).toBe(
      'nope\n[sandbox: workspace-write — writes outside the workspace and network access are blocked]',
    );
    expect(failing.metadata.exit_code).toBe(2);
    const readOnly = parse(await executeShell({ command: ['false'] }, ctx, await sandboxed('read-only')));
    expect(readOnly.output).toBe(
      '[sandbox: read-only — all writes (the workspace included) and network access are blocked]',
    );
    const unconfined = parse(
      await executeShell({ command: ['false'] }, ctx, await sandboxed('danger-full-access')),
    );
    expect(unconfined.output).toBe('');
  });

  it('gives the command an empty standard input', async () => {
    const started = Date.now();
    const result = parse(await executeShell({ command: ['cat'] }, ctx, await sandboxed('workspace-write')));
    expect(result).toMatchObject({ output: '', metadata: { exit_code: 0 } });
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('says so when the program is missing, or where the sandbox cannot see it', async () => {
    const sandbox = await sandboxed('workspace-write');
    const missing = await executeShell({ command: ['no-such-program-ratchet'] }, ctx, sandbox);
    expect(missing).toMatchObject({ success: false, display: 'shell · no-such-program-ratchet · error' });
    expect(missing.output).toContain('command not found');

    // /tmp outside the workspace is replaced by a private, empty one in the sandbox.
    const elsewhere = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-shell-bin-')));
    try {
      await writeFile(path.join(elsewhere, 'tool'), '#!/bin/sh\necho tool\n');
      await chmod(path.join(elsewhere, 'tool'), 0o755);
      const hidden = await executeShell({ command: [path.join(elsewhere, 'tool')] }, ctx, sandbox);
      expect(hidden.success).toBe(false);
      expect(hidden.output).toContain(
        `is at ${path.join(elsewhere, 'tool')}, which the sandbox (workspace-write) hides`,
      );
      const onPath = await executeShell({ command: ['tool'] }, ctx, {
        ...sandbox,
        env: { ...sandbox.env, PATH: `${elsewhere}:${sandbox.env.PATH ?? ''}` },
      });
      expect(onPath.output).toContain('which the sandbox (workspace-write) hides');
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }

    // The workspace is visible, even though it is under /tmp too.
    await writeFile(path.join(workspace, 'script.sh'), '#!/bin/sh\necho hi\n');
    await chmod(path.join(workspace, 'script.sh'), 0o755);
    expect(parse(await executeShell({ command: ['./script.sh'] }, ctx, sandbox)).output).toBe('hi\n');
  });

  it('reports death by a signal as 128 plus the signal number', async () => {
    const result = parse(
      await executeShell(
        { command: ['bash', '-c', 'kill -KILL $$'] },
        ctx,
        await sandboxed('workspace-write'),
      ),
    );
    expect(result.metadata.exit_code).toBe(137);
  });

  it('on timeout sends SIGTERM to the command first, then ends everything it started', async () => {
    const marker = sleepMarker();
    const outcome = await executeShell(
      {
        command: ['bash', '-c', `trap 'echo cleaning up; exit 5' TERM; sleep ${marker} & wait`],
        timeout_ms: 500,
      },
      ctx,
      await sandboxed('workspace-write'),
    );
    const result = parse(outcome);
    expect(result.metadata).toMatchObject({ exit_code: 124, timed_out: true, sandbox: 'workspace-write' });
    expect(result.output).toBe('cleaning up\n[command timed out after 500 ms and was killed]');
    expect(result.metadata.duration_seconds).toBeLessThan(2);
    await expectNoneSleeping(marker);
  });

  it('follows SIGTERM with SIGKILL for processes that ignore it', async () => {
    const marker = sleepMarker();
    const started = Date.now();
    const result = parse(
      await executeShell(
        { command: ['bash', '-c', `trap "" TERM; sleep ${marker} & wait`], timeout_ms: 300 },
        ctx,
        await sandboxed('workspace-write'),
      ),
    );
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(2000);
    expect(elapsed).toBeLessThan(6000);
    expect(result.metadata).toMatchObject({ exit_code: 124, timed_out: true });
    await expectNoneSleeping(marker);
  });

  it('ends background processes when the command exits (they die with its PID namespace)', async () => {
    const marker = sleepMarker();
    const started = Date.now();
    const result = parse(
      await executeShell(
        { command: ['bash', '-c', `sleep ${marker} & echo started`] },
        ctx,
        await sandboxed('workspace-write'),
      ),
    );
    expect(result).toMatchObject({ output: 'started\n', metadata: { exit_code: 0 } });
    expect(Date.now() - started).toBeLessThan(5000);
    await expectNoneSleeping(marker);
  });

  it('on cancellation kills everything in the sandbox and throws the abort reason', async () => {
    const marker = sleepMarker();
    const controller = new AbortController();
    const reason = new Error('interrupted by the user');
    const run = executeShell(
      { command: ['bash', '-c', `sleep ${marker} & sleep ${marker}`] },
      { ...ctx, signal: controller.signal },
      await sandboxed('workspace-write'),
    );
    for (let i = 0; i < 100 && (await pidsSleeping(marker)).length < 2; i++) await sleep(50);
    expect(await pidsSleeping(marker)).toHaveLength(2);
    const started = Date.now();
    controller.abort(reason);
    await expect(run).rejects.toBe(reason);
    expect(Date.now() - started).toBeLessThan(2000);
    await expectNoneSleeping(marker);
  });
});
