/**
 * Ratchet's own git (rev-parse, status, hash-object, diff, ls-files), run on the host against a
 * repository whose working tree commands and the model may have written.
 *
 * Hardened, not sandboxed: git runs with an explicit git directory and work tree worked out once,
 * when the workspace is prepared, from the untouched repository (locateRepository), never found
 * again by searching from a directory a command could have put a `.git` in; with an environment of
 * its own (never the worker's: no API key for a filter or hook to read); without the system and
 * global configuration (GIT_CONFIG_NOSYSTEM, GIT_CONFIG_GLOBAL=/dev/null); and with every setting
 * that runs a program from the repository turned off on the command line, where it beats the
 * repository's config: core.fsmonitor, core.hooksPath, external diff drivers and textconv,
 * submodule recursion, and every filter driver the repository's config defines (a clean filter
 * runs on whatever the working tree holds; a root worker must not run one its user configured).
 * The repository's config itself is out of a command's reach (the sandbox binds .git read-only)
 * and apply_patch does not write under .git. Running git inside the sandbox instead would tie
 * `ratchet diff`, which a person runs on their own machine, to bubblewrap and to the workspace
 * owner's uid.
 */
import { execa } from 'execa';
import { realpath, stat } from 'node:fs/promises';
import os from 'node:os';
import { isInside } from './paths.js';

/** Where a session's repository is, as worked out when its workspace was prepared. */
export interface RepositoryLocation {
  /** The repository's git directory (`.git`, or a worktree's directory under the main `.git`). */
  gitDir: string;
  /** The top of the working tree. */
  workTree: string;
}

const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';

/** Settings that would run a program, off; they come after the repository's config and win. */
const HARDENING = [
  'core.fsmonitor=false',
  'core.hooksPath=/dev/null',
  'core.untrackedCache=false',
  'core.attributesFile=/dev/null',
  'core.pager=cat',
  'diff.external=',
  'status.submoduleSummary=false',
  'protocol.allow=never',
];

/** The environment git runs with: nothing of the worker's beyond PATH. */
export function gitEnvironment(
  location: RepositoryLocation | undefined,
  indexFile?: string,
): Record<string, string> {
  return {
    PATH: process.env.PATH ?? DEFAULT_PATH,
    HOME: os.tmpdir(),
    LC_ALL: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_ATTR_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    // A read must not take the index lock that a concurrent git command may need.
    GIT_OPTIONAL_LOCKS: '0',
    ...(location === undefined ? {} : { GIT_DIR: location.gitDir, GIT_WORK_TREE: location.workTree }),
    ...(indexFile === undefined ? {} : { GIT_INDEX_FILE: indexFile }),
  };
}

export function hardeningArgs(trusted: readonly string[]): string[] {
  return [
    ...HARDENING.flatMap((setting) => ['-c', setting]),
    // The repository may belong to the user a root worker runs commands as.
    ...trusted.flatMap((dir) => ['-c', `safe.directory=${dir}`]),
  ];
}

export interface GitResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs git on the session's repository (`location`) with `cwd` inside its work tree, hardened as
 * the header says. Never rejects; the caller reads the exit code.
 */
export async function sessionGit(
  location: RepositoryLocation,
  cwd: string,
  args: readonly string[],
  options: {
    input?: string;
    signal?: AbortSignal;
    /** An index of the caller's own instead of the repository's (GIT_INDEX_FILE). */
    indexFile?: string;
    /** Run as this user: a root worker writes into a repository as the repository's owner. */
    user?: { uid: number; gid: number };
  } = {},
): Promise<GitResult> {
  const trusted = hardeningArgs([location.workTree, location.gitDir]);
  const drivers = await execa('git', [...trusted, 'config', '--name-only', '--get-regexp', '^filter\\.'], {
    cwd,
    env: gitEnvironment(location),
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
  });
  const names = new Set(
    String(drivers.stdout)
      .split('\n')
      .map((key) => /^filter\.(.+)\.[^.]+$/.exec(key)?.[1])
      .filter((name): name is string => name !== undefined),
  );
  const noFilters = [...names].flatMap((name) =>
    ['clean=', 'smudge=', 'process=', 'required=false'].flatMap((setting) => [
      '-c',
      `filter.${name}.${setting}`,
    ]),
  );
  const result = await execa('git', [...trusted, ...noFilters, ...args], {
    cwd,
    env: gitEnvironment(location, options.indexFile),
    ...(options.user === undefined ? {} : { uid: options.user.uid, gid: options.user.gid }),
    extendEnv: false,
    reject: false,
    stripFinalNewline: false,
    ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
    ...(options.signal === undefined ? {} : { cancelSignal: options.signal }),
  });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/**
 * Finds the repository `root` is in, once, when the workspace is prepared: its git directory and
 * the top of its work tree, as real paths. A git directory that is `/`, a home directory, or the
 * workspace or one of its ancestors is refused: no such thing is ever trusted as one.
 */
export async function locateRepository(root: string): Promise<RepositoryLocation | { problem: string }> {
  const result = await execa(
    'git',
    [...hardeningArgs([root, '*']), 'rev-parse', '--absolute-git-dir', '--show-toplevel'],
    { cwd: root, env: gitEnvironment(undefined), extendEnv: false, reject: false, stdin: 'ignore' },
  );
  if (result.exitCode !== 0) return { problem: result.stderr.trim() || `exit ${result.exitCode}` };
  const [gitDirLine, topLine] = result.stdout.split('\n');
  if (!gitDirLine || !topLine) return { problem: 'git did not name a git directory and a work tree' };
  const gitDir = await realpath(gitDirLine);
  const workTree = await realpath(topLine);
  if (!(await stat(gitDir)).isDirectory()) return { problem: `${gitDir} is not a directory` };
  const homes = ['/', '/home', '/root', os.homedir()];
  if (homes.includes(gitDir) || isInside(gitDir, root)) {
    return { problem: `${gitDir} cannot be a git directory for ${root}` };
  }
  if (!isInside(workTree, root)) return { problem: `${root} is not inside the work tree ${workTree}` };
  return { gitDir, workTree };
}
