/**
 * The sandbox with real bubblewrap, real processes and real directories. Each isolation test runs
 * its probe unconfined too, so it fails if the probe could not have noticed the difference.
 */
import { spawn } from 'node:child_process';
import {
  chmod,
  chown,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  realpath,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
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
import { detectSandbox } from '../../src/activities/tools/sandbox-detect.js';
import {
  hiddenInSandbox,
  sandboxedCommand,
  sandboxIdentity,
  sandboxLayout,
} from '../../src/activities/tools/sandbox.js';
import { executeShell as executeShellParts } from '../../src/activities/tools/shell.js';
import type { SandboxMode } from '../../src/shared/policy/sandbox.js';
import { giveToTestUser, runningAsRoot, TEST_USER } from '../helpers/test-user.js';
import { toolOutcome } from '../../src/shared/tools/shell-output.js';
import type { ToolOutcome } from '../../src/shared/tools/specs.js';

/** The shell as the session records it: the text the model reads (src/shared/tools/shell-output.ts). */
async function executeShell(...args: Parameters<typeof executeShellParts>): Promise<ToolOutcome> {
  return toolOutcome(await executeShellParts(...args));
}

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
  // Writable by anyone: only the sandbox's read-only mount can stop a write.
  await chmod(dir, 0o777);
  return dir;
}

async function sh(mode: SandboxMode, script: string, env = commandEnvironment(process.env)): Promise<Run> {
  await giveToTestUser(ctx.workspace);
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
    ...['--unshare-user', '--disable-userns', '--unshare-pid', '--unshare-net', '--unshare-ipc'],
    ...['--unshare-uts', '--unshare-cgroup-try', '--cap-drop', 'ALL'],
    ...['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc'],
    ...[
      '--ro-bind-try',
      '/proc/sys',
      '/proc/sys',
      '--ro-bind-try',
      '/proc/sysrq-trigger',
      '/proc/sysrq-trigger',
    ],
    ...['--size', String(1024 ** 3), '--tmpfs', '/tmp', '--size', String(16 * 1024 ** 2), '--tmpfs', '/run'],
  ];
  const env = [
    ...['--setenv', 'TMPDIR', '/tmp', '--setenv', 'TMP', '/tmp', '--setenv', 'TEMP', '/tmp'],
    ...['--setenv', 'XDG_CACHE_HOME', '/tmp/.cache', '--setenv', 'npm_config_cache', '/tmp/.npm'],
    ...['--setenv', 'npm_config_update_notifier', 'false'],
    ...['--setenv', 'GOCACHE', '/tmp/.cache/go-build', '--setenv', 'PIP_NO_CACHE_DIR', '1'],
  ];
  const limits = ['/usr/bin/prlimit', '--nproc=1024:1024', '--'];

  it('leaves the command alone in danger-full-access', () => {
    expect(sandboxedCommand(['make', 'test'], { ...base, mode: 'danger-full-access' })).toEqual([
      'make',
      'test',
    ]);
  });

  it('binds the workspace writable and its .git read-only onto itself, nothing else writable', () => {
    expect(sandboxedCommand(['make', 'test'], { ...base, mode: 'workspace-write' })).toEqual([
      ...isolation,
      ...['--bind', '/work/ws', '/work/ws'],
      ...env,
      ...['--chdir', '/work/ws/sub', '--', ...limits, 'make', 'test'],
    ]);
    expect(
      sandboxedCommand(['make', 'test'], {
        ...base,
        mode: 'workspace-write',
        protect: ['/work/ws/.git'],
        layout: { home: '/home/u', hidden: ['/home', '/home/u'], toolchains: ['/home/u/.nvm'] },
        runAs: { uid: 1000, gid: 100 },
        statusFd: 3,
      }),
    ).toEqual([
      ...['/usr/bin/setpriv', '--reuid=1000', '--regid=100', '--clear-groups', '--inh-caps=-all', '--'],
      ...isolation,
      ...[
        '--size',
        String(1024 ** 2),
        '--tmpfs',
        '/home',
        '--size',
        String(256 * 1024 ** 2),
        '--tmpfs',
        '/home/u',
      ],
      ...['--ro-bind', '/home/u/.nvm', '/home/u/.nvm'],
      ...['--bind', '/work/ws', '/work/ws', '--ro-bind', '/work/ws/.git', '/work/ws/.git'],
      ...env,
      ...['--chdir', '/work/ws/sub', '--json-status-fd', '3', '--', ...limits, 'make', 'test'],
    ]);
  });

  it('binds the workspace read-only in read-only mode', () => {
    expect(
      sandboxedCommand(['make', 'test'], { ...base, mode: 'read-only', protect: ['/work/ws/.git'] }),
    ).toEqual([
      ...isolation,
      ...['--ro-bind', '/work/ws', '/work/ws'],
      ...env,
      ...['--chdir', '/work/ws/sub', '--', ...limits, 'make', 'test'],
    ]);
  });
});

describe('hiddenInSandbox', () => {
  it('hides /tmp, /run and the hidden directories, except the workspace and the toolchains', () => {
    const layout = { home: '/home/u', hidden: ['/home'], toolchains: ['/home/u/.nvm'] };
    const options = { mode: 'workspace-write', workspace: '/tmp/ws', layout } as const;
    expect(hiddenInSandbox('/tmp/tool', options)).toBe(true);
    expect(hiddenInSandbox('/run/user/1000/tool', options)).toBe(true);
    expect(hiddenInSandbox('/home/u/bin/tool', options)).toBe(true);
    expect(hiddenInSandbox('/home/u/.nvm/bin/node', options)).toBe(false);
    expect(hiddenInSandbox('/tmp/ws/bin/tool', options)).toBe(false);
    expect(hiddenInSandbox('/usr/bin/git', options)).toBe(false);
    expect(hiddenInSandbox('/tmp/tool', { ...options, mode: 'danger-full-access' })).toBe(false);
  });
});

describe('sandboxLayout', () => {
  it('hides every home, the data directory and XDG folders, and shows toolchains again', async () => {
    const home = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-sandbox-home-')));
    scratch.push(home);
    await mkdir(path.join(home, '.nvm'), { recursive: true });
    await mkdir(path.join(home, '.ssh'), { recursive: true });
    await mkdir(path.join(home, '.local', 'share', 'ratchet'), { recursive: true });
    const data = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-sandbox-data-')));
    scratch.push(data);
    const layout = await sandboxLayout({ HOME: home, RATCHET_HOME: data, XDG_CONFIG_HOME: '/' });
    expect(layout.home).toBe(home);
    expect(layout.hidden).toEqual(
      expect.arrayContaining([home, data, path.join(home, '.local', 'share', 'ratchet')]),
    );
    expect(layout.hidden).not.toContain('/');
    expect(layout.toolchains).toEqual([path.join(home, '.nvm')]);
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
    await giveToTestUser(workspace);
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

  it("gives the command a private, empty, writable home and sends build tools' caches to /tmp", async () => {
    const secret = path.join(homedir(), `.ratchet-sandbox-secret-${process.pid}`);
    await writeFile(secret, 'do not read\n');
    scratch.push(secret);
    const run = await sh(
      'workspace-write',
      'set -e; mkdir -p "$XDG_CACHE_HOME/tool" "$npm_config_cache"; echo "$XDG_CACHE_HOME $npm_config_cache"; ' +
        `npm config get cache 2>/dev/null; touch "$HOME/.ratchet-probe"; echo home:; ls -A "$HOME"; ` +
        `cat ${secret} 2>&1 || true; echo others:; ls -A /home`,
    );
    expect(run).toMatchObject({ success: true });
    const [caches, home, others] = run.output.split(/^(?:home|others):$/m);
    expect(caches).toBe('/tmp/.cache /tmp/.npm\n/tmp/.npm\n');
    // Empty but for the probe, and the mount points of folders hidden or shown again inside it
    // (Ratchet's data directory under ~/.local, toolchains).
    expect(home).toContain('\n.ratchet-probe\n');
    expect(home!.split('\n')).not.toContain(path.basename(secret));
    expect(home).toContain(`cat: ${secret}: No such file or directory`);
    if (!homedir().startsWith('/home/')) expect(others).toBe('\n');
    expect(await exists(path.join(homedir(), '.ratchet-probe'))).toBe(false);
  });

  it('refuses writes outside the workspace, and says why', async () => {
    const outside = await outsideDir();
    const besideWorkspace = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-sandbox-beside-')));
    scratch.push(besideWorkspace);
    const targets = [path.join(outside, 'f'), path.join(besideWorkspace, 'f')];
    for (const target of targets) {
      const run = await sh('workspace-write', `echo escaped > ${target}`);
      expect(run.success, target).toBe(false);
      expect(run.output, target).toMatch(/Read-only file system|No such file or directory|Permission denied/);
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

  it('runs as an ordinary user, never as root, and makes no further user namespace', async () => {
    const marker = sleepMarker();
    const running = sh('workspace-write', `id -u; cat /proc/self/status | grep CapEff; sleep ${marker}`);
    let hostUids: number[] = [];
    await waitFor(async () => (await pidsSleeping(marker)).length === 3, 5000);
    for (const pid of await pidsSleeping(marker)) hostUids.push((await stat(`/proc/${pid}`)).uid);
    await running.catch(() => undefined);
    hostUids = [...new Set(hostUids)];
    expect(hostUids).toHaveLength(1);
    expect(hostUids[0]).not.toBe(0);
    if (runningAsRoot) expect(hostUids[0]).toBe(TEST_USER.uid);
    const nested = await sh('workspace-write', 'unshare -U -r id -u && echo nested');
    expect(nested.output).not.toContain('nested');
    expect(nested.success).toBe(false);
  }, 30_000);

  it('keeps /proc/sys and /proc/sysrq-trigger read-only (core_pattern ran as root before)', async () => {
    const pattern = await readFile('/proc/sys/kernel/core_pattern', 'utf8');
    const run = await sh(
      'workspace-write',
      'echo "|$PWD/pwn.sh" > /proc/sys/kernel/core_pattern; echo x > /proc/sys/kernel/hostname; ' +
        'echo h > /proc/sysrq-trigger; grep -E " /proc/sys " /proc/self/mountinfo',
    );
    expect(run.output).toMatch(/core_pattern: Read-only file system/);
    expect(run.output).toMatch(/hostname: Read-only file system/);
    expect(run.output).toMatch(/ \/proc\/sys ro,/);
    expect(await readFile('/proc/sys/kernel/core_pattern', 'utf8')).toBe(pattern);
  });

  it('refuses, as root, a workspace that root owns: its commands would run as root', async () => {
    if (runningAsRoot) {
      await chown(ctx.workspace, 0, 0);
      const outcome = await executeShell({ command: ['id', '-u'] }, ctx, {
        defaultTimeoutMs: 5000,
        env: commandEnvironment(process.env),
        sandbox: { mode: 'workspace-write', bwrapPath: await bwrap() },
      });
      expect(outcome.success).toBe(false);
      expect(outcome.output).toContain('Ratchet never runs commands as root');
      expect(outcome.output).toContain('The command was not run.');
    }
    expect(await sandboxIdentity(ctx.workspace, 0)).toEqual(
      (await stat(ctx.workspace)).uid === 0
        ? { refused: expect.stringContaining('belongs to root') as string }
        : { runAs: { uid: (await stat(ctx.workspace)).uid, gid: (await stat(ctx.workspace)).gid } },
    );
    expect(await sandboxIdentity(ctx.workspace, 1000)).toEqual({});
  });

  it('caps processes per command and the size of /tmp', async () => {
    const limits = await sh('workspace-write', 'grep "Max processes" /proc/self/limits');
    expect(limits.output).toMatch(/^Max processes +1024 +1024 +processes/);
    const tmp = await sh('workspace-write', 'df -B1 --output=size /tmp | tail -1');
    expect(Number(tmp.output.trim())).toBe(1024 ** 3);
  });

  it('lets git init and commit a repository the command makes', async () => {
    const run = await sh(
      'workspace-write',
      'set -e; git init -q; echo hello > a.txt; git add a.txt; ' +
        'git -c user.name=Ratchet -c user.email=ratchet@example.com commit -q -m first; git log --format=%s',
    );
    expect(run.output).toBe('first\n');
    expect(run.success).toBe(true);
  });

  it('keeps the whole .git read-only and in place: no hook, config, commondir, or swapped .git', async () => {
    await execa('git', ['init', '-q'], { cwd: workspace });
    const config = await readFile(path.join(workspace, '.git', 'config'), 'utf8');
    for (const attack of [
      'printf "#!/bin/sh\\ntouch /tmp/pwned\\n" > .git/hooks/pre-commit',
      'git config core.hooksPath .githooks',
      'echo "[core] fsmonitor = touch /tmp/pwned" >> .git/config',
      'echo / > .git/commondir',
      'rm -rf .git/hooks',
      'mv .git .git-orig',
      'rm -rf .git',
      'git -c user.name=R -c user.email=r@example.com commit -q --allow-empty -m one',
    ]) {
      const run = await sh('workspace-write', attack);
      expect(run.success, attack).toBe(false);
    }
    expect(await exists(path.join(workspace, '.git', 'hooks', 'pre-commit'))).toBe(false);
    expect(await exists(path.join(workspace, '.git', 'commondir'))).toBe(false);
    expect(await exists(path.join(workspace, '.git-orig'))).toBe(false);
    expect(await readFile(path.join(workspace, '.git', 'config'), 'utf8')).toBe(config);
    // Reading the repository still works.
    expect(await sh('workspace-write', 'git status --short; echo ok')).toMatchObject({ success: true });
  });

  it("keeps a worktree's .git file and its git directory outside the workspace read-only", async () => {
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
    const gitDir = path.join(main, '.git', 'worktrees', path.basename(tree));
    for (const attack of [
      `echo / > ${gitDir}/commondir`,
      'echo "gitdir: /" > .git',
      'mv .git .git-orig',
      `echo x > ${path.join(main, 'a.txt')}`,
    ]) {
      const run = await sh('workspace-write', attack);
      expect(run.success, attack).toBe(false);
    }
    expect((await readFile(path.join(gitDir, 'commondir'), 'utf8')).trim()).toBe('../..');
    expect(await readFile(path.join(ctx.workspace, '.git'), 'utf8')).toContain(gitDir);
    expect(await readFile(path.join(main, 'a.txt'), 'utf8')).toBe('a\n');
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
    await giveToTestUser(workspace);
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
