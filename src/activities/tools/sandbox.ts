/**
 * sandbox: confines a model-requested command with bubblewrap (bwrap), Codex's modes on Linux.
 *
 * Who runs it: never global root. bwrap always makes a user namespace; a worker that is root
 * starts bwrap through `setpriv` as the owner of the workspace (an ordinary uid), and refuses to
 * sandbox a workspace owned by root (sandboxIdentity). Root inside a user namespace would still
 * own every root-owned file on the host, and bwrap started by root leaves /proc/sys writable.
 *
 * What it sees: the whole filesystem read-only, with a private /tmp and /run (size-capped), fresh
 * /dev and /proc (/proc/sys and /proc/sysrq-trigger read-only), a private empty home in place of
 * every home directory and Ratchet's data directory (sandboxLayout), no network, its own PID, IPC
 * and UTS namespaces (the worker's processes and their /proc/<pid>/environ, which holds the API
 * key, are out of sight), no capabilities, no further user namespaces, and a cap on processes.
 * workspace-write binds the workspace writable over that, and then its `.git` read-only onto
 * itself: a command can neither plant code that git runs later for the person (hooks, config,
 * fsmonitor), nor move `.git` away and put another in its place (a mount point cannot be renamed).
 * Nothing else is ever bound writable, whatever the repository says about itself.
 *
 * `@anthropic-ai/sandbox-runtime` (npm) was evaluated and rejected: it wraps the same bubblewrap
 * and adds per-host network rules we do not need (commands get no network at all), but it requires
 * Node >= 22.12 and Ratchet runs on Node 20.
 *
 * Whether bwrap works on this worker at all is sandbox-detect.ts.
 */
import { lstat, realpath, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { SandboxMode } from '../../shared/policy/sandbox.js';
import { SYSTEM_DIRS, isInside } from '../paths.js';

export type SandboxInfo =
  | { available: true; kind: 'bubblewrap'; /** e.g. "bubblewrap 0.8.0" */ detail: string; bwrapPath: string }
  | { available: false; kind: 'none'; /** Why not, and what to do about it. */ detail: string };

/** The ordinary user a root worker starts bwrap as (see sandboxIdentity). */
export interface RunAs {
  uid: number;
  gid: number;
}

/** Directories hidden from commands, and the toolchains inside them shown again read-only. */
export interface SandboxLayout {
  /** The private, writable, empty home (the worker's HOME path), when it is one of `hidden`. */
  home?: string;
  /** Covered by empty directories: every home, Ratchet's data directory, XDG directories. */
  hidden: readonly string[];
  /** Bound read-only again inside the hidden directories: what a build needs to find its tools. */
  toolchains: readonly string[];
}

export interface SandboxedCommandOptions {
  mode: SandboxMode;
  /** Absolute, real path of the workspace. */
  workspace: string;
  /** Where the command starts; inside the workspace, or anywhere that is not hidden. */
  cwd: string;
  bwrapPath: string;
  /** Paths inside the workspace kept read-only in workspace-write: its `.git` (see protectedPaths). */
  protect?: readonly string[];
  /** What is hidden and what is shown again (see sandboxLayout); nothing when absent. */
  layout?: SandboxLayout;
  /** A root worker starts bwrap as this user (see sandboxIdentity). */
  runAs?: RunAs;
  /** bwrap writes JSON lines here: {"child-pid": n} once the command starts, then {"exit-code": n}. */
  statusFd?: number;
}

/** Mount points the sandbox replaces with empty private ones: what is below them is not seen. */
const PRIVATE_MOUNTS = ['/tmp', '/run'] as const;
/** Size caps of the private mounts: a command cannot fill the worker's memory through /tmp. */
export const TMP_SIZE_BYTES = 1024 * 1024 * 1024;
const RUN_SIZE_BYTES = 16 * 1024 * 1024;
const HOME_SIZE_BYTES = 256 * 1024 * 1024;
const HIDDEN_SIZE_BYTES = 1024 * 1024;
/** Processes (threads count too) one command may have at once: a fork bomb stops here. */
export const MAX_PROCESSES = 1024;
/** Directories that are never hidden, whatever HOME or RATCHET_HOME say. */
const NEVER_HIDDEN = new Set([...SYSTEM_DIRS, '/opt', '/srv', '/mnt', '/media']);
/**
 * Toolchains under a home directory that builds run from: version managers and language tool
 * folders, read-only. Not shown: anything that holds credentials or history (.ssh, .npmrc,
 * .config, .docker, .aws, .netrc, .cargo/credentials.toml, .m2/settings.xml, shell history).
 */
const HOME_TOOLCHAINS = [
  '.nvm',
  '.volta',
  '.bun/bin',
  '.deno/bin',
  '.cargo/bin',
  '.cargo/registry',
  '.rustup',
  '.pyenv',
  '.rbenv',
  '.sdkman/candidates',
  '.local/bin',
  '.local/lib',
  'go',
  '.m2/repository',
] as const;
/** Environment variables that name a toolchain directory (the same ones env.ts passes on). */
const TOOLCHAIN_VARIABLES = [
  'JAVA_HOME',
  'GOROOT',
  'GOPATH',
  'RUSTUP_HOME',
  'NVM_DIR',
  'PNPM_HOME',
  'VIRTUAL_ENV',
];
/** Set inside every confining sandbox (see sandboxedCommand). */
const SANDBOX_ENV: Readonly<Record<string, string>> = {
  TMPDIR: '/tmp',
  TMP: '/tmp',
  TEMP: '/tmp',
  XDG_CACHE_HOME: '/tmp/.cache',
  npm_config_cache: '/tmp/.npm',
  npm_config_update_notifier: 'false',
  GOCACHE: '/tmp/.cache/go-build',
  PIP_NO_CACHE_DIR: '1',
};
/** Used by the system to find programs when PATH is unset. */
export const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';
/** Where util-linux puts the two helpers, on Debian and everywhere else. */
export const SETPRIV = '/usr/bin/setpriv';
export const PRLIMIT = '/usr/bin/prlimit';
/** The uid the probe runs as when the worker is root: nobody, present on every system. */

function tmpfs(dir: string, bytes: number): string[] {
  return ['--size', String(bytes), '--tmpfs', dir];
}

/**
 * The argv that runs `argv` inside the sandbox for `mode`; unchanged for danger-full-access.
 * Order matters: later mounts cover earlier ones, so the hidden directories come after /, the
 * toolchains after them, the workspace after all of those (a workspace under /tmp or a home stays
 * visible) and its `.git` last.
 */
export function sandboxedCommand(argv: string[], options: SandboxedCommandOptions): string[] {
  if (options.mode === 'danger-full-access') return argv;
  const writable = options.mode === 'workspace-write';
  const layout = options.layout ?? { hidden: [], toolchains: [] };
  const prefix =
    options.runAs === undefined
      ? []
      : [
          SETPRIV,
          `--reuid=${options.runAs.uid}`,
          `--regid=${options.runAs.gid}`,
          '--clear-groups',
          '--inh-caps=-all',
          '--',
        ];
  return [
    ...prefix,
    options.bwrapPath,
    // A command dies with its worker, so "at most once" holds after a crash: nothing the model
    // started keeps running unobserved while the activity is retried or reported interrupted.
    '--die-with-parent',
    // No controlling terminal to push keystrokes into (TIOCSTI).
    '--new-session',
    // An unprivileged uid in a namespace of its own, which may not make another: root outside
    // is never root inside, and no capability a nested namespace would grant is reachable.
    '--unshare-user',
    '--disable-userns',
    '--unshare-pid',
    '--unshare-net',
    '--unshare-ipc',
    '--unshare-uts',
    '--unshare-cgroup-try',
    '--cap-drop',
    'ALL',
    '--ro-bind',
    '/',
    '/',
    '--dev',
    '/dev',
    '--proc',
    '/proc',
    // bwrap makes these read-only only when its own probe finds them writable; say it outright.
    '--ro-bind-try',
    '/proc/sys',
    '/proc/sys',
    '--ro-bind-try',
    '/proc/sysrq-trigger',
    '/proc/sysrq-trigger',
    ...tmpfs('/tmp', TMP_SIZE_BYTES),
    ...tmpfs('/run', RUN_SIZE_BYTES),
    ...layout.hidden.flatMap((dir) => tmpfs(dir, dir === layout.home ? HOME_SIZE_BYTES : HIDDEN_SIZE_BYTES)),
    ...layout.toolchains.flatMap((dir) => ['--ro-bind', dir, dir]),
    writable ? '--bind' : '--ro-bind',
    options.workspace,
    options.workspace,
    ...(writable ? (options.protect ?? []).flatMap((file) => ['--ro-bind', file, file]) : []),
    // The worker's temporary folder may be anywhere (and is read-only in here): use the private one.
    // Build tools' caches go to /tmp too, so `npm test` or `go test` find a writable cache.
    ...Object.entries(SANDBOX_ENV).flatMap(([name, value]) => ['--setenv', name, value]),
    '--chdir',
    options.cwd,
    ...(options.statusFd === undefined ? [] : ['--json-status-fd', String(options.statusFd)]),
    '--',
    PRLIMIT,
    `--nproc=${MAX_PROCESSES}:${MAX_PROCESSES}`,
    '--',
    ...argv,
  ];
}

/**
 * Whether `file` (a real path) is out of a sandboxed command's sight: under the private /tmp or
 * /run or a hidden directory, and not in the workspace or a toolchain shown again.
 */
export function hiddenInSandbox(
  file: string,
  options: Pick<SandboxedCommandOptions, 'mode' | 'workspace' | 'layout'>,
): boolean {
  if (options.mode === 'danger-full-access') return false;
  const covered = [...PRIVATE_MOUNTS, ...(options.layout?.hidden ?? [])];
  const shown = [options.workspace, ...(options.layout?.toolchains ?? [])];
  return covered.some((dir) => isInside(dir, file)) && !shown.some((root) => isInside(root, file));
}

async function realDirectory(dir: string): Promise<string | undefined> {
  try {
    const real = await realpath(dir);
    return (await stat(real)).isDirectory() ? real : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What commands must not see of the worker's machine: every home directory (/home, /root and the
 * worker's HOME, which becomes the command's private, empty, writable home), Ratchet's data
 * directory (the embedded server's database holds every session's history) and the XDG
 * directories the worker's environment names (the Temporal CLI's profile, with its API key, is
 * under XDG_CONFIG_HOME). Shown again read-only: the toolchains a build runs from (HOME_TOOLCHAINS,
 * and the directories TOOLCHAIN_VARIABLES name), only when they are real directories inside a
 * hidden one.
 */
export async function sandboxLayout(env: NodeJS.ProcessEnv = process.env): Promise<SandboxLayout> {
  const home = env.HOME !== undefined && path.isAbsolute(env.HOME) ? path.resolve(env.HOME) : os.homedir();
  const candidates = [
    '/home',
    '/root',
    home,
    env.RATCHET_HOME,
    env.XDG_DATA_HOME
      ? path.join(env.XDG_DATA_HOME, 'ratchet')
      : path.join(home, '.local', 'share', 'ratchet'),
    env.XDG_CONFIG_HOME,
    env.XDG_DATA_HOME,
    env.XDG_STATE_HOME,
    env.XDG_CACHE_HOME,
  ];
  const hidden: string[] = [];
  for (const candidate of candidates) {
    if (candidate === undefined || candidate === '' || !path.isAbsolute(candidate)) continue;
    for (const dir of new Set([path.resolve(candidate), await realDirectory(candidate)])) {
      if (dir === undefined || NEVER_HIDDEN.has(dir) || hidden.includes(dir)) continue;
      if (await realDirectory(dir)) hidden.push(dir);
    }
  }
  const toolchains: string[] = [];
  const named = [
    ...HOME_TOOLCHAINS.map((dir) => path.join(home, dir)),
    ...TOOLCHAIN_VARIABLES.map((name) => env[name]).filter(
      (dir): dir is string => !!dir && path.isAbsolute(dir),
    ),
  ];
  for (const dir of named) {
    const real = await realDirectory(dir);
    if (real === undefined || toolchains.includes(real)) continue;
    if (hidden.some((covered) => isInside(covered, real))) toolchains.push(real);
  }
  // Parents first: a mount covers what an earlier one put in the same place.
  hidden.sort((a, b) => a.length - b.length);
  return { ...(hidden.includes(home) ? { home } : {}), hidden, toolchains };
}

let workerLayout: Promise<SandboxLayout> | undefined;

/** sandboxLayout of this worker's own environment, worked out once per process. */
export function sandboxLayoutOfWorker(): Promise<SandboxLayout> {
  workerLayout ??= sandboxLayout(process.env);
  return workerLayout;
}

/** Whether `user` may search every directory from / down to `dir` (bwrap binds as that user). */
async function reachableBy(dir: string, user: RunAs): Promise<boolean> {
  for (let current = dir; ; current = path.dirname(current)) {
    try {
      const info = await stat(current);
      const bit = info.uid === user.uid ? 0o100 : info.gid === user.gid ? 0o010 : 0o001;
      if ((info.mode & bit) === 0) return false;
    } catch {
      return false;
    }
    if (current === path.dirname(current)) return true;
  }
}

/** The layout for a command run as `runAs`: toolchains it could not reach anyway are left out. */
export async function layoutFor(layout: SandboxLayout, runAs: RunAs | undefined): Promise<SandboxLayout> {
  if (runAs === undefined) return layout;
  const toolchains: string[] = [];
  for (const dir of layout.toolchains) if (await reachableBy(dir, runAs)) toolchains.push(dir);
  return { ...layout, toolchains };
}

/**
 * The paths inside the workspace that stay read-only in workspace-write: the repository's `.git`,
 * directory or `gitdir:` file, when it is really there (not a symbolic link). Bound onto itself it
 * becomes a mount point, which a command can neither write, nor rename, nor replace.
 */
export async function protectedPaths(workspace: string): Promise<string[]> {
  const dotGit = path.join(workspace, '.git');
  try {
    const info = await lstat(dotGit);
    return info.isDirectory() || info.isFile() ? [dotGit] : [];
  } catch {
    return [];
  }
}

/**
 * Whom a command runs as. A worker that is not root: itself, in a user namespace. A root worker:
 * the owner of the workspace, through setpriv, so that the command can write the workspace and
 * nothing else root owns; a workspace owned by root is refused, since its commands would run as
 * root.
 */
export async function sandboxIdentity(
  workspace: string,
  euid: number = process.geteuid?.() ?? 0,
): Promise<{ runAs?: RunAs } | { refused: string }> {
  if (euid !== 0) return {};
  const owner = await stat(workspace);
  if (owner.uid !== 0) return { runAs: { uid: owner.uid, gid: owner.gid } };
  return {
    refused:
      `The worker runs as root and the workspace ${workspace} belongs to root; Ratchet never runs ` +
      'commands as root. Run the worker as an ordinary user (the Dockerfile does), or give the ' +
      'workspace to one (chown -R USER DIR): its commands then run as that user.',
  };
}
