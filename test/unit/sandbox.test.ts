/**
 * The sandbox with real bubblewrap, real processes and real directories. Each isolation test runs
 * its probe unconfined too, so it fails if the probe could not have noticed the difference.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, readdir, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ToolContext } from '../../src/activities/tools/context.js';
import { commandEnvironment } from '../../src/activities/tools/env.js';
import type { SandboxInfo } from '../../src/activities/tools/sandbox.js';
import {
  detectSandbox,
  gitPaths,
  hiddenInSandbox,
  sandboxedCommand,
} from '../../src/activities/tools/sandbox.js';
import { executeShell } from '../../src/activities/tools/shell.js';
import type { SandboxMode } from '../../src/shared/sandbox.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

let detected: Promise<SandboxInfo> | undefined;

/** bwrap's path; a test that needs it fails (never skips) when it is missing or broken. */
async function bwrap(): Promise<string> {
  const info = await (detected ??= detectSandbox({ PATH: process.env.PATH }));
  if (!info.available) throw new Error(`these tests need a working bubblewrap: ${info.detail}`);
  return info.bwrapPath;
}

interface Run {
  success: boolean;
  output: string;
  metadata: { exit_code: number; sandbox?: SandboxMode };
}

let workspace: string;
let scratch: string[];
let ctx: ToolContext;

beforeEach(async () => {
  workspace = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-sandbox-ws-')));
  scratch = [workspace];
  ctx = { workspace, signal: new AbortController().signal, heartbeat: () => {} };
});

afterEach(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

/** A directory outside the workspace (and outside /tmp, which the sandbox replaces). */
async function outsideDir(): Promise<string> {
  const dir = await realpath(await mkdtemp(path.join('/var/tmp', 'ratchet-sandbox-outside-')));
  scratch.push(dir);
  return dir;
}

async function sh(mode: SandboxMode, script: string, env = commandEnvironment(process.env)): Promise<Run> {
  const outcome = await executeShell({ command: ['bash', '-c', script] }, ctx, {
    defaultTimeoutMs: 20_000,
    env,
    sandbox: { mode, bwrapPath: await bwrap() },
  });
  const parsed = JSON.parse(outcome.output) as Omit<Run, 'success'>;
  return { success: outcome.success, ...parsed };
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/**
 * Host pids of live processes running `sleep <marker>`, bwrap's included (its command line ends
 * with the command's). A zombie has an empty command line: it counts as gone.
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

async function waitFor(condition: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await sleep(50);
  }
  return condition();
}

/** An argument for `sleep` that names this run: seconds with a unique fraction. */
function sleepMarker(): string {
  return `987.${String(Math.floor(Math.random() * 1e9)).padStart(9, '0')}`;
}

describe('sandboxedCommand', () => {
  const base = { workspace: '/work/ws', cwd: '/work/ws/sub', bwrapPath: '/usr/bin/bwrap' };
  const isolation = [
    '/usr/bin/bwrap',
    '--die-with-parent',
    '--new-session',
    '--unshare-pid',
    '--unshare-net',
    '--unshare-ipc',
    '--cap-drop',
    'ALL',
    '--ro-bind',
    '/',
    '/',
    '--dev',
    '/dev',
    '--proc',
    '/proc',
    '--tmpfs',
    '/tmp',
    '--tmpfs',
    '/run',
  ];
  const env = [
    ...['--setenv', 'TMPDIR', '/tmp', '--setenv', 'TMP', '/tmp', '--setenv', 'TEMP', '/tmp'],
    ...['--setenv', 'XDG_CACHE_HOME', '/tmp/.cache', '--setenv', 'npm_config_cache', '/tmp/.npm'],
    ...['--setenv', 'npm_config_update_notifier', 'false'],
    ...['--setenv', 'GOCACHE', '/tmp/.cache/go-build', '--setenv', 'PIP_NO_CACHE_DIR', '1'],
  ];

  it('leaves the command alone in danger-full-access', () => {
    expect(sandboxedCommand(['make', 'test'], { ...base, mode: 'danger-full-access' })).toEqual([
      'make',
      'test',
    ]);
  });

  it('binds the workspace (and outside git directories) writable in workspace-write', () => {
    expect(sandboxedCommand(['make', 'test'], { ...base, mode: 'workspace-write' })).toEqual([
      ...isolation,
      ...['--bind', '/work/ws', '/work/ws'],
      ...env,
      ...['--chdir', '/work/ws/sub', '--', 'make', 'test'],
    ]);
    expect(
      sandboxedCommand(['make', 'test'], {
        ...base,
        mode: 'workspace-write',
        writable: ['/repo/.git'],
        readOnly: ['/repo/.git/hooks', '/repo/.git/config'],
        statusFd: 3,
      }),
    ).toEqual([
      ...isolation,
      ...['--bind', '/work/ws', '/work/ws', '--bind', '/repo/.git', '/repo/.git'],
      ...[
        '--ro-bind',
        '/repo/.git/hooks',
        '/repo/.git/hooks',
        '--ro-bind',
        '/repo/.git/config',
        '/repo/.git/config',
      ],
      ...env,
      ...['--chdir', '/work/ws/sub', '--json-status-fd', '3', '--', 'make', 'test'],
    ]);
  });

  it('binds the workspace read-only in read-only mode, outside git directories not at all', () => {
    expect(
      sandboxedCommand(['make', 'test'], {
        ...base,
        mode: 'read-only',
        writable: ['/repo/.git'],
        readOnly: ['/repo/.git/hooks'],
      }),
    ).toEqual([
      ...isolation,
      ...['--ro-bind', '/work/ws', '/work/ws'],
      ...env,
      ...['--chdir', '/work/ws/sub', '--', 'make', 'test'],
    ]);
  });
});

describe('hiddenInSandbox', () => {
  it('hides /tmp and /run except what is bound into the sandbox', () => {
    const options = { mode: 'workspace-write', workspace: '/tmp/ws', writable: ['/tmp/repo/.git'] } as const;
    expect(hiddenInSandbox('/tmp/tool', options)).toBe(true);
    expect(hiddenInSandbox('/run/user/1000/tool', options)).toBe(true);
    expect(hiddenInSandbox('/tmp/ws/bin/tool', options)).toBe(false);
    expect(hiddenInSandbox('/tmp/repo/.git/hooks/x', options)).toBe(false);
    expect(hiddenInSandbox('/usr/bin/git', options)).toBe(false);
    expect(hiddenInSandbox('/tmp/repo/.git/hooks/x', { ...options, mode: 'read-only' })).toBe(true);
    expect(hiddenInSandbox('/tmp/tool', { ...options, mode: 'danger-full-access' })).toBe(false);
  });
});

describe('detectSandbox', () => {
  it('proves that bubblewrap works here', async () => {
    await bwrap();
    const info = await detectSandbox({ PATH: process.env.PATH });
    expect(info).toMatchObject({ available: true, kind: 'bubblewrap' });
    expect(info.detail).toMatch(/^bubblewrap \d+\.\d+/);
  });

  it('reports no sandbox when RATCHET_SANDBOX=off', async () => {
    const info = await detectSandbox({ PATH: process.env.PATH, RATCHET_SANDBOX: 'off' });
    expect(info).toEqual({
      available: false,
      kind: 'none',
      detail: 'sandboxing is turned off (RATCHET_SANDBOX=off)',
    });
  });

  it('reports no sandbox, and how to get one, when bwrap is not there', async () => {
    const configured = await detectSandbox({ PATH: process.env.PATH, RATCHET_BWRAP_PATH: '/nonexistent' });
    expect(configured).toMatchObject({ available: false, kind: 'none' });
    expect(configured.detail).toBe(
      'RATCHET_BWRAP_PATH=/nonexistent is not an executable file; install bubblewrap (apt-get install bubblewrap)',
    );
    const onPath = await detectSandbox({ PATH: workspace });
    expect(onPath).toMatchObject({ available: false, kind: 'none' });
    expect(onPath.detail).toBe(
      'bwrap was not found on PATH; install bubblewrap (apt-get install bubblewrap)',
    );
  });

  it('reports no sandbox when bwrap cannot create one, with its own words', async () => {
    const fake = path.join(workspace, 'bwrap');
    await writeFile(
      fake,
      '#!/bin/sh\n[ "$1" = --version ] && { echo "bubblewrap 9.9.9"; exit 0; }\n' +
        'echo "bwrap: No permissions to creating new namespace" >&2; exit 1\n',
    );
    await chmod(fake, 0o755);
    const info = await detectSandbox({ PATH: process.env.PATH, RATCHET_BWRAP_PATH: fake });
    expect(info).toMatchObject({ available: false, kind: 'none' });
    expect(info.detail).toContain(
      `bubblewrap 9.9.9 (${fake}) cannot create a sandbox here: bwrap: No permissions to creating new namespace`,
    );
    expect(info.detail).toContain('unprivileged user namespaces');
  });
});

describe('a workspace-write sandbox', () => {
  it('lets a command create and change files in the workspace and in a private /tmp', async () => {
    await writeFile(path.join(workspace, 'existing.txt'), 'one\n');
    const privateFile = `/tmp/ratchet-private-${process.pid}-${Date.now()}`;
    const run = await sh(
      'workspace-write',
      `set -e; echo new > new.txt; echo two >> existing.txt; mkdir -p sub/dir; touch sub/dir/f; ` +
        `echo scratch > ${privateFile}; cat ${privateFile}; echo "TMPDIR=$TMPDIR"`,
      { ...commandEnvironment(process.env), TMPDIR: '/var/somewhere-read-only' },
    );
    expect(run).toMatchObject({ success: true, metadata: { exit_code: 0, sandbox: 'workspace-write' } });
    expect(run.output).toBe('scratch\nTMPDIR=/tmp\n');
    expect(await readFile(path.join(workspace, 'new.txt'), 'utf8')).toBe('new\n');
    expect(await readFile(path.join(workspace, 'existing.txt'), 'utf8')).toBe('one\ntwo\n');
    expect(await exists(path.join(workspace, 'sub/dir/f'))).toBe(true);
    // The sandbox's /tmp is its own, gone when the command ends.
    expect(await exists(privateFile)).toBe(false);
  });

  it("sends build tools' caches to the private /tmp, since the home directory is read-only", async () => {
    const run = await sh(
      'workspace-write',
      'set -e; mkdir -p "$XDG_CACHE_HOME/tool" "$npm_config_cache"; echo "$XDG_CACHE_HOME $npm_config_cache"; ' +
        'npm config get cache 2>/dev/null; touch "$HOME/.ratchet-probe" 2>/dev/null && echo home-writable || echo home-read-only',
    );
    expect(run).toMatchObject({ success: true });
    expect(run.output).toBe('/tmp/.cache /tmp/.npm\n/tmp/.npm\nhome-read-only\n');
  });

  it('refuses writes outside the workspace, and says why', async () => {
    const outside = await outsideDir();
    const besideWorkspace = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-sandbox-beside-')));
    scratch.push(besideWorkspace);
    const inHome = path.join(homedir(), `.ratchet-sandbox-test-${process.pid}-${Date.now()}`);
    scratch.push(inHome);
    const targets = [path.join(outside, 'f'), path.join(besideWorkspace, 'f'), inHome];
    for (const target of targets) {
      const run = await sh('workspace-write', `echo escaped > ${target}`);
      expect(run.success, target).toBe(false);
      expect(run.output, target).toMatch(/Read-only file system|No such file or directory/);
      expect(run.output, target).toMatch(
        /\n\[sandbox: workspace-write — writes outside the workspace and network access are blocked\]$/,
      );
      expect(await exists(target), target).toBe(false);
    }
    expect((await sh('workspace-write', `echo escaped > ${path.join(outside, 'f')}`)).output).toContain(
      'Read-only file system',
    );
  });

  it('lets danger-full-access write outside the workspace, without a note', async () => {
    const target = path.join(await outsideDir(), 'f');
    const run = await sh('danger-full-access', `echo escaped > ${target}`);
    expect(run).toMatchObject({ success: true, metadata: { exit_code: 0 } });
    expect(run.metadata.sandbox).toBeUndefined();
    expect(await readFile(target, 'utf8')).toBe('escaped\n');
    const failing = await sh('danger-full-access', 'exit 3');
    expect(failing.output).toBe('');
  });

  it('cuts the network: a server on 127.0.0.1 cannot be reached', async () => {
    let connections = 0;
    const server: Server = createServer((socket) => {
      connections += 1;
      socket.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('no TCP address');
      const probe = `exec 3<>/dev/tcp/127.0.0.1/${address.port} && echo connected`;

      const confined = await sh('workspace-write', probe);
      expect(confined.success).toBe(false);
      expect(confined.output).not.toContain('connected');
      expect(connections).toBe(0);

      const unconfined = await sh('danger-full-access', probe);
      expect(unconfined.output).toBe('connected\n');
      expect(await waitFor(() => Promise.resolve(connections === 1), 2000)).toBe(true);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("hides the worker's processes and their environment", async () => {
    const sentinel = `ratchet-sentinel-${Math.random().toString(36).slice(2)}`;
    const holder = spawn('sleep', ['60'], {
      env: { ...process.env, RATCHET_SENTINEL: sentinel },
      stdio: 'ignore',
    });
    try {
      const pid = holder.pid;
      if (pid === undefined) throw new Error('could not start sleep');
      const readEnviron = `tr '\\0' '\\n' < /proc/${pid}/environ`;

      const unconfined = await sh('danger-full-access', readEnviron);
      expect(unconfined.output).toContain(`RATCHET_SENTINEL=${sentinel}`);

      const confined = await sh('workspace-write', readEnviron);
      expect(confined.success).toBe(false);
      expect(confined.output).not.toContain(sentinel);
      expect((await sh('workspace-write', `cat /proc/${process.pid}/environ`)).success).toBe(false);

      const listing = await sh('workspace-write', "ls /proc | grep -E '^[0-9]+$'");
      const pids = listing.output.trim().split('\n').map(Number);
      expect(pids.length).toBeGreaterThan(0);
      expect(pids.length).toBeLessThanOrEqual(4);
      expect(pids).not.toContain(process.pid);
      expect(pids).not.toContain(pid);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('gives the command no capabilities (bwrap started by root keeps them all otherwise)', async () => {
    const run = await sh(
      'workspace-write',
      'grep CapEff /proc/self/status; mount -o remount,rw,bind / && echo remounted',
    );
    expect(run.output).toContain('CapEff:\t0000000000000000\n');
    expect(run.output).not.toContain('remounted');
    expect(run.success).toBe(false);
  });

  it('hides /run, where sockets to more privileged services live', async () => {
    const onHost = (await readdir('/run')).sort();
    const listing = (output: string): string[] => output.split('\n').filter((line) => line !== '');
    expect(listing((await sh('danger-full-access', 'LC_ALL=C ls -A /run')).output).sort()).toEqual(onHost);
    expect(await sh('workspace-write', 'ls -A /run')).toMatchObject({ success: true, output: '' });
  });

  it('lets git init and commit in the workspace', async () => {
    const run = await sh(
      'workspace-write',
      'set -e; git init -q; echo hello > a.txt; git add a.txt; ' +
        'git -c user.name=Ratchet -c user.email=ratchet@example.com commit -q -m first; git log --format=%s',
    );
    expect(run.output).toBe('first\n');
    expect(run.success).toBe(true);
    const log = await execa('git', ['-C', workspace, 'log', '--format=%s'], { reject: false });
    expect(log.stdout).toBe('first');
  });

  it("keeps git's hooks and config read-only, where code would run later outside the sandbox", async () => {
    await execa('git', ['init', '-q'], { cwd: workspace });
    expect(await gitPaths(workspace)).toEqual({
      writable: [],
      readOnly: [path.join(workspace, '.git', 'hooks'), path.join(workspace, '.git', 'config')],
    });
    const config = await readFile(path.join(workspace, '.git', 'config'), 'utf8');

    for (const attack of [
      'printf "#!/bin/sh\\ntouch /tmp/pwned\\n" > .git/hooks/pre-commit',
      'git config core.hooksPath .githooks',
      'echo "[core] fsmonitor = touch /tmp/pwned" >> .git/config',
      'rm -rf .git/hooks',
    ]) {
      const run = await sh('workspace-write', attack);
      expect(run.success, attack).toBe(false);
    }
    expect(await exists(path.join(workspace, '.git', 'hooks', 'pre-commit'))).toBe(false);
    expect(await exists(path.join(workspace, '.git', 'hooks'))).toBe(true);
    expect(await readFile(path.join(workspace, '.git', 'config'), 'utf8')).toBe(config);

    const commit = await sh(
      'workspace-write',
      'set -e; echo a > a.txt; git add a.txt; git -c user.name=R -c user.email=r@example.com commit -q -m one; ' +
        'git checkout -q -b side; git stash list',
    );
    expect(commit).toMatchObject({ success: true, output: '' });
  });

  it('lets git commit in a worktree, whose git directory is outside the workspace', async () => {
    const main = await outsideDir();
    const git = (...args: string[]) =>
      execa('git', ['-c', 'user.name=Ratchet', '-c', 'user.email=ratchet@example.com', ...args], {
        cwd: main,
      });
    await git('init', '-q');
    await writeFile(path.join(main, 'a.txt'), 'a\n');
    await git('add', 'a.txt');
    await git('commit', '-q', '-m', 'first');
    const tree = path.join(main, '..', `${path.basename(main)}-tree`);
    scratch.push(tree);
    await git('worktree', 'add', '-q', '-b', 'side', tree);
    ctx = { ...ctx, workspace: await realpath(tree) };
    expect(await gitPaths(ctx.workspace)).toEqual({
      writable: [path.join(main, '.git', 'worktrees', path.basename(tree)), path.join(main, '.git')],
      readOnly: [path.join(main, '.git', 'hooks'), path.join(main, '.git', 'config')],
    });

    const run = await sh(
      'workspace-write',
      'set -e; echo b > b.txt; git add b.txt; ' +
        'git -c user.name=Ratchet -c user.email=ratchet@example.com commit -q -m second',
    );
    expect(run).toMatchObject({ success: true, output: '' });
    expect((await git('log', '--format=%s', 'side')).stdout).toBe('second\nfirst');
    // Only the git directories: the main checkout's files stay read-only.
    const outside = await sh('workspace-write', `echo x > ${path.join(main, 'a.txt')}`);
    expect(outside.output).toContain('Read-only file system');
  });
});

describe('a read-only sandbox', () => {
  it('lets a command read the workspace but not write it', async () => {
    await writeFile(path.join(workspace, 'file.txt'), 'content\n');
    const reads = await sh('read-only', 'cat file.txt');
    expect(reads).toMatchObject({ success: true, output: 'content\n', metadata: { sandbox: 'read-only' } });

    const writes = await sh('read-only', 'echo more >> file.txt; echo new > new.txt; mkdir dir');
    expect(writes.success).toBe(false);
    expect(writes.output).toContain('Read-only file system');
    expect(writes.output).toMatch(
      /\n\[sandbox: read-only — all writes \(the workspace included\) and network access are blocked\]$/,
    );
    expect(await readFile(path.join(workspace, 'file.txt'), 'utf8')).toBe('content\n');
    expect(await exists(path.join(workspace, 'new.txt'))).toBe(false);
    expect(await exists(path.join(workspace, 'dir'))).toBe(false);
  });
});

describe('--die-with-parent', () => {
  it('ends a sandboxed command when its worker is killed with SIGKILL', async () => {
    const bwrapPath = await bwrap();
    const marker = sleepMarker();
    const script = path.join(workspace, 'worker.mts');
    const module = (file: string): string => JSON.stringify(path.join(repoRoot, file));
    await writeFile(
      script,
      `import { executeShell } from ${module('src/activities/tools/shell.ts')};\n` +
        `import { commandEnvironment } from ${module('src/activities/tools/env.ts')};\n` +
        `const [workspace, bwrapPath, marker] = process.argv.slice(2);\n` +
        `await executeShell({ command: ['sleep', marker] }, ` +
        `{ workspace, signal: new AbortController().signal, heartbeat: () => {} }, ` +
        `{ defaultTimeoutMs: 120000, env: commandEnvironment(process.env), ` +
        `sandbox: { mode: 'workspace-write', bwrapPath } });\n`,
    );
    const worker = spawn(process.execPath, ['--import', 'tsx', script, workspace, bwrapPath, marker], {
      cwd: repoRoot,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    worker.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      // sleep itself, the sandbox's init and bwrap.
      const started = await waitFor(async () => (await pidsSleeping(marker)).length === 3, 15_000);
      expect(started, `the sandboxed sleep never started: ${stderr}`).toBe(true);
      worker.kill('SIGKILL');
      const gone = await waitFor(async () => (await pidsSleeping(marker)).length === 0, 2000);
      expect(gone, `still running: ${(await pidsSleeping(marker)).join(', ')}`).toBe(true);
    } finally {
      worker.kill('SIGKILL');
      for (const pid of await pidsSleeping(marker)) process.kill(pid, 'SIGKILL');
    }
  });
});
