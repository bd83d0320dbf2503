/**
 * sandbox: confines a model-requested command with bubblewrap (bwrap), Codex's modes on Linux.
 * The whole filesystem is mounted read-only, with a private /tmp and /run, fresh /dev and /proc,
 * no network, its own PID namespace (the worker's processes and their /proc/<pid>/environ, which
 * holds the API key, are out of sight) and no capabilities; workspace-write binds the workspace
 * (and its git directory) writable over that, except git's hooks and config: a command could
 * otherwise plant code there that git runs later, unsandboxed, for the person.
 *
 * `@anthropic-ai/sandbox-runtime` (npm) was evaluated and rejected: it wraps the same bubblewrap
 * and adds per-host network rules we do not need (commands get no network at all), but it requires
 * Node >= 22.12 and Ratchet runs on Node 20.
 */
import { access, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { SandboxMode } from '../../shared/sandbox.js';

export type SandboxInfo =
  | { available: true; kind: 'bubblewrap'; /** e.g. "bubblewrap 0.8.0" */ detail: string; bwrapPath: string }
  | { available: false; kind: 'none'; /** Why not, and what to do about it. */ detail: string };

export interface SandboxedCommandOptions {
  mode: SandboxMode;
  /** Absolute, real path of the workspace. */
  workspace: string;
  /** Where the command starts; inside the workspace, or anywhere outside /tmp and /run. */
  cwd: string;
  bwrapPath: string;
  /**
   * More directories writable in workspace-write: the git directory of a worktree or submodule,
   * which lives outside the workspace (see gitPaths).
   */
  writable?: readonly string[];
  /** Paths kept read-only inside the writable ones in workspace-write: git's hooks and config. */
  readOnly?: readonly string[];
  /** bwrap writes JSON lines here: {"child-pid": n} once the command starts, then {"exit-code": n}. */
  statusFd?: number;
}

/** Mount points the sandbox replaces with empty private ones: what is below them is not seen. */
const PRIVATE_MOUNTS = ['/tmp', '/run'] as const;
const PROBE_TIMEOUT_MS = 10_000;
const INSTALL_HINT = 'install bubblewrap (apt-get install bubblewrap)';
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
const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';

function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * The argv that runs `argv` inside the sandbox for `mode`; unchanged for danger-full-access.
 * Order matters: later mounts cover earlier ones, so the workspace is bound after the private
 * /tmp and /run (a workspace under /tmp stays visible).
 */
export function sandboxedCommand(argv: string[], options: SandboxedCommandOptions): string[] {
  if (options.mode === 'danger-full-access') return argv;
  const workspaceBind = options.mode === 'workspace-write' ? '--bind' : '--ro-bind';
  const extraBinds =
    options.mode === 'workspace-write'
      ? [
          ...(options.writable ?? []).flatMap((dir) => ['--bind', dir, dir]),
          ...(options.readOnly ?? []).flatMap((file) => ['--ro-bind', file, file]),
        ]
      : [];
  return [
    options.bwrapPath,
    // A command dies with its worker, so "at most once" holds after a crash: nothing the model
    // started keeps running unobserved while the activity is retried or reported interrupted.
    '--die-with-parent',
    // No controlling terminal to push keystrokes into (TIOCSTI).
    '--new-session',
    '--unshare-pid',
    '--unshare-net',
    '--unshare-ipc',
    // bwrap started by root keeps every capability unless told otherwise; with CAP_SYS_ADMIN a
    // command could simply remount / read-write.
    '--cap-drop',
    'ALL',
    '--ro-bind',
    '/',
    '/',
    '--dev',
    '/dev',
    '--proc',
    '/proc',
    ...PRIVATE_MOUNTS.flatMap((dir) => ['--tmpfs', dir]),
    workspaceBind,
    options.workspace,
    options.workspace,
    ...extraBinds,
    // The worker's temporary folder may be anywhere (and is read-only in here): use the private one.
    // The home directory is read-only too: build tools' caches go to /tmp, so `npm test` or
    // `go test` do not fail writing ~/.npm or ~/.cache.
    ...Object.entries(SANDBOX_ENV).flatMap(([name, value]) => ['--setenv', name, value]),
    '--chdir',
    options.cwd,
    ...(options.statusFd === undefined ? [] : ['--json-status-fd', String(options.statusFd)]),
    '--',
    ...argv,
  ];
}

/**
 * Whether `file` (a real path) is out of a sandboxed command's sight: under the private /tmp or
 * /run and not in the workspace or another directory bound into the sandbox.
 */
export function hiddenInSandbox(
  file: string,
  options: Pick<SandboxedCommandOptions, 'mode' | 'workspace' | 'writable'>,
): boolean {
  if (options.mode === 'danger-full-access') return false;
  const bound = [options.workspace, ...(options.mode === 'workspace-write' ? (options.writable ?? []) : [])];
  return PRIVATE_MOUNTS.some((dir) => isInside(dir, file)) && !bound.some((root) => isInside(root, file));
}

async function isDirectory(file: string): Promise<boolean> {
  return stat(file).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/**
 * What git needs writable, and what must stay read-only, for a workspace-write sandbox.
 *
 * Writable: for a worktree or submodule `.git` is a file ("gitdir: …") naming a directory
 * elsewhere, whose `commondir` names the main repository's .git; git must write both to commit.
 * An ordinary `.git` directory is in the workspace, writable already.
 *
 * Read-only: hooks and config (core.hooksPath, core.fsmonitor, aliases, filters) hold code that
 * git runs, later and outside any sandbox, when a person uses the repository; `git status` does
 * not show changes to them. Committing, branching, stashing still work; `git config` does not.
 * Only paths that exist can be protected: a repository without a hooks folder gets none.
 */
export async function gitPaths(workspace: string): Promise<{ writable: string[]; readOnly: string[] }> {
  const dotGit = path.join(workspace, '.git');
  let gitDir = dotGit;
  if (!(await isDirectory(dotGit))) {
    const pointer = await readFile(dotGit, 'utf8').catch(() => '');
    const match = /^gitdir:\s*(.+?)\s*$/m.exec(pointer);
    if (match?.[1] === undefined) return { writable: [], readOnly: [] };
    gitDir = path.resolve(workspace, match[1]);
  }
  const common = (await readFile(path.join(gitDir, 'commondir'), 'utf8').catch(() => '')).trim();
  const commonDir = common === '' ? gitDir : path.resolve(gitDir, common);

  const writable: string[] = [];
  for (const dir of new Set([gitDir, commonDir])) {
    if (!isInside(workspace, dir) && (await isDirectory(dir))) writable.push(dir);
  }
  const readOnly: string[] = [];
  const candidates = [
    path.join(commonDir, 'hooks'),
    path.join(commonDir, 'config'),
    path.join(gitDir, 'config.worktree'),
  ];
  for (const file of new Set(candidates)) if (await exists(file)) readOnly.push(file);
  return { writable, readOnly };
}

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    if (!(await stat(file)).isFile()) return false;
    await access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where bwrap is: RATCHET_BWRAP_PATH when set, else the first on PATH; or why it is not there. */
async function findBwrap(env: NodeJS.ProcessEnv): Promise<{ path: string } | { problem: string }> {
  const configured = env.RATCHET_BWRAP_PATH;
  if (configured !== undefined && configured !== '') {
    if (await isExecutableFile(configured)) return { path: configured };
    return { problem: `RATCHET_BWRAP_PATH=${configured} is not an executable file; ${INSTALL_HINT}` };
  }
  for (const dir of (env.PATH ?? DEFAULT_PATH).split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, 'bwrap');
    if (await isExecutableFile(candidate)) return { path: candidate };
  }
  return { problem: `bwrap was not found on PATH; ${INSTALL_HINT}` };
}

/** Runs `true` in a workspace-write sandbox with the exact options commands get. */
async function probe(bwrapPath: string): Promise<SandboxInfo> {
  const version = await execa(bwrapPath, ['--version'], {
    reject: false,
    timeout: PROBE_TIMEOUT_MS,
    stdin: 'ignore',
  });
  const name = version.exitCode === 0 && version.stdout.trim() !== '' ? version.stdout.trim() : 'bwrap';
  const workspace = await mkdtemp(path.join(tmpdir(), 'ratchet-sandbox-probe-'));
  try {
    const [file, ...args] = sandboxedCommand(['true'], {
      mode: 'workspace-write',
      workspace,
      cwd: workspace,
      bwrapPath,
      statusFd: 3,
    });
    const result = await execa(file ?? bwrapPath, args, {
      reject: false,
      timeout: PROBE_TIMEOUT_MS,
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      env: { PATH: DEFAULT_PATH },
      extendEnv: false,
    });
    if (result.exitCode === 0) {
      return { available: true, kind: 'bubblewrap', detail: name, bwrapPath };
    }
    const why = result.stderr.trim() || result.shortMessage;
    return {
      available: false,
      kind: 'none',
      detail:
        `${name} (${bwrapPath}) cannot create a sandbox here: ${why}. It needs unprivileged user ` +
        `namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu also ` +
        `kernel.apparmor_restrict_unprivileged_userns=0) and, in a container, permission to mount /proc.`,
    };
  } finally {
    await rm(workspace, { recursive: true, force: true });
  }
}

const probes = new Map<string, Promise<SandboxInfo>>();

/**
 * Whether commands can be sandboxed here, proven by running one; the proof runs once per bwrap
 * path per process. RATCHET_SANDBOX=off reports no sandbox, so that operators (and tests) can
 * exercise the fallback: approval for every command.
 */
export async function detectSandbox(env: NodeJS.ProcessEnv = process.env): Promise<SandboxInfo> {
  if (env.RATCHET_SANDBOX === 'off') {
    return { available: false, kind: 'none', detail: 'sandboxing is turned off (RATCHET_SANDBOX=off)' };
  }
  const found = await findBwrap(env);
  if ('problem' in found) return { available: false, kind: 'none', detail: found.problem };
  let info = probes.get(found.path);
  if (info === undefined) {
    info = probe(found.path).catch((err: unknown) => {
      probes.delete(found.path); // not proven either way: try again next time
      throw err;
    });
    probes.set(found.path, info);
  }
  return info;
}
