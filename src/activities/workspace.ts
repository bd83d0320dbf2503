/**
 * Workspace activities: check that a session may work in a directory and take note of its
 * starting point (git HEAD, files already modified, AGENTS.md); at the end, list what changed.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { constants as fsConstants } from 'node:fs';
import { lstat, open, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type {
  PrepareWorkspaceInput,
  PreparedWorkspace,
  WorkspaceChangesInput,
} from '../shared/boundary/activity-types.js';
import { AGENTS_MD_MAX_BYTES } from '../shared/prompt/instructions.js';
import type { FileChange } from '../shared/api/session-api.js';
import type { SandboxInfo } from './tools/sandbox.js';
import { sandboxIdentity } from './tools/sandbox.js';
import type { RepositoryLocation } from './workspace-git.js';
import { locateRepository, sessionGit } from './workspace-git.js';
import { ActivityFailureType } from '../shared/boundary/failure-types.js';
import { SYSTEM_DIRS, isInside } from './paths.js';

export interface WorkspaceDeps {
  /** Directories sessions may work in (and below); empty means anywhere but system folders. */
  allowedRoots: readonly string[];
  /** Whether this worker can confine commands. */
  sandbox: SandboxInfo;
  /** This worker's own task queue, returned to the session so its tool calls come back here. */
  toolQueue?: string;
}

/** Never a workspace: the system's directories, and root's home. */
const NOT_WORKSPACES = [...SYSTEM_DIRS, '/root'];
const MAX_TRACKED_DIRTY = 2000;

function rejected(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, ActivityFailureType.WorkspaceRejected);
}

async function git(
  location: RepositoryLocation,
  cwd: string,
  args: string[],
  input?: string,
): Promise<string> {
  const result = await sessionGit(location, cwd, args, input === undefined ? {} : { input });
  if (result.exitCode !== 0) {
    throw new Error(
      `git ${args.join(' ')} failed in ${cwd}: ${result.stderr.trim() || `exit ${result.exitCode}`}`,
    );
  }
  return result.stdout;
}

/**
 * Paths under `root` with uncommitted changes (porcelain v1, NUL separated; renames as their new
 * path), relative to the repository's top directory as git reports them.
 */
async function dirtyPaths(location: RepositoryLocation, root: string): Promise<Map<string, string>> {
  const out = await git(location, root, [
    'status',
    '--porcelain=v1',
    '-z',
    '--untracked-files=all',
    '--ignore-submodules=all',
    '--',
    '.',
  ]);
  const fields = out.split('\0');
  const paths = new Map<string, string>();
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    if (field.length < 4) continue;
    const status = field.slice(0, 2).trim() || field.slice(0, 2);
    paths.set(field.slice(3), status);
    if (status.startsWith('R') || status.startsWith('C')) i += 1; // the next field is the old path
  }
  return paths;
}

/** Content hashes (git's blob ids) of files relative to the repository top; "absent" when missing. */
async function hashes(location: RepositoryLocation, files: readonly string[]): Promise<Map<string, string>> {
  const top = location.workTree;
  const result = new Map<string, string>();
  const present: string[] = [];
  for (const file of files) {
    try {
      if ((await lstat(path.join(top, file))).isFile()) present.push(file);
      else result.set(file, 'not-a-file');
    } catch {
      result.set(file, 'absent');
    }
  }
  if (present.length > 0) {
    // Unfiltered: the same bytes give the same id, and no filter driver runs.
    const out = await git(
      location,
      top,
      ['hash-object', '--no-filters', '--stdin-paths'],
      present.join('\n'),
    );
    const ids = out.trim().split('\n');
    present.forEach((file, i) => result.set(file, ids[i] ?? 'unknown'));
  }
  return result;
}

/**
 * One AGENTS.md, or null: only a regular file (a symbolic link could name a file anywhere on the
 * worker), opened without following links, and at most `budget` bytes of it.
 */
async function readAgentsFile(file: string, budget: number): Promise<{ text: string; cut: boolean } | null> {
  let handle;
  try {
    handle = await open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) return null;
    const buffer = Buffer.alloc(Math.min(info.size, budget + 1));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    const cut = bytesRead > budget;
    return { text: buffer.subarray(0, Math.min(bytesRead, budget)).toString('utf8'), cut };
  } finally {
    await handle.close();
  }
}

async function readAgentsMd(gitTop: string, root: string): Promise<string | null> {
  // AGENTS.md files from the repository root down to the workspace; deeper files come later
  // and take precedence. Both are real paths, so every directory between is inside the repository.
  const dirs: string[] = [];
  for (let dir = root; isInside(gitTop, dir); dir = path.dirname(dir)) {
    dirs.unshift(dir);
    if (dir === gitTop || dir === path.dirname(dir)) break;
  }
  const parts: string[] = [];
  let budget = AGENTS_MD_MAX_BYTES;
  for (const dir of dirs) {
    const read = await readAgentsFile(path.join(dir, 'AGENTS.md'), budget);
    if (read === null) continue;
    let text = read.text;
    if (read.cut) text = `${text}\n[AGENTS.md cut at ${AGENTS_MD_MAX_BYTES} bytes]`;
    budget -= Buffer.byteLength(read.text);
    parts.push(dirs.length > 1 ? `<!-- ${path.join(dir, 'AGENTS.md')} -->\n${text}` : text);
    if (budget <= 0) break;
  }
  return parts.length ? parts.join('\n\n') : null;
}

/** Whether this workspace's commands can be sandboxed: not as root in a workspace root owns. */
async function sandboxFor(
  root: string,
  sandbox: SandboxInfo,
): Promise<{ available: boolean; detail: string }> {
  if (!sandbox.available) return { available: false, detail: sandbox.detail };
  const identity = await sandboxIdentity(root);
  if ('refused' in identity) return { available: false, detail: identity.refused };
  return { available: true, detail: sandbox.detail };
}

export function createWorkspaceActivities(deps: WorkspaceDeps) {
  async function prepareWorkspace(input: PrepareWorkspaceInput): Promise<PreparedWorkspace> {
    if (!path.isAbsolute(input.workspace))
      throw rejected(`workspace ${input.workspace} is not an absolute path`);
    let root: string;
    try {
      root = await realpath(input.workspace);
      if (!(await stat(root)).isDirectory())
        throw rejected(`workspace ${input.workspace} is not a directory`);
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      throw rejected(`workspace ${input.workspace} does not exist on this worker`);
    }
    if (deps.allowedRoots.length > 0) {
      if (!deps.allowedRoots.some((allowed) => isInside(allowed, root))) {
        throw rejected(
          `workspace ${root} is outside the directories this worker serves (${deps.allowedRoots.join(', ')}; ` +
            'set RATCHET_WORKSPACE_ROOTS on the worker)',
        );
      }
    } else if (NOT_WORKSPACES.includes(root)) {
      throw rejected(`workspace ${root} is a system directory; choose a project directory`);
    }

    const location = await locateRepository(root);
    if ('problem' in location) {
      throw rejected(
        `workspace ${root} is not a git working copy (run git init there first): ${location.problem}`,
      );
    }
    let gitHead: string | null = null;
    try {
      gitHead = (await git(location, root, ['rev-parse', '--verify', '-q', 'HEAD'])).trim() || null;
    } catch {
      gitHead = null;
    }
    const dirty = [...(await dirtyPaths(location, root)).keys()].slice(0, MAX_TRACKED_DIRTY);
    const initiallyDirty = Object.fromEntries(await hashes(location, dirty));
    const agentsMd = await readAgentsMd(location.workTree, root);
    return {
      info: { root, gitHead, initiallyDirty, agentsMd: agentsMd !== null, git: location },
      agentsMd,
      shell: path.basename(process.env.SHELL ?? 'bash'),
      sandbox: await sandboxFor(root, deps.sandbox),
      ...(deps.toolQueue ? { toolQueue: deps.toolQueue, commandJournal: true } : {}),
    };
  }

  async function workspaceChanges(input: WorkspaceChangesInput): Promise<FileChange[]> {
    const { root, gitHead, initiallyDirty } = input.workspace;
    try {
      await stat(root);
    } catch {
      throw rejected(`workspace ${root} no longer exists`);
    }
    // Sessions prepared before the location was recorded find it again, as they always did.
    const location = input.workspace.git ?? (await locateRepository(root));
    if ('problem' in location) throw rejected(`workspace ${root} is no longer a git working copy`);
    const changes = new Map<string, string>();
    const now = await dirtyPaths(location, root);
    const nowHashes = await hashes(
      location,
      [...now.keys()].filter((p) => p in initiallyDirty),
    );
    for (const [file, status] of now) {
      if (file in initiallyDirty && nowHashes.get(file) === initiallyDirty[file]) continue;
      changes.set(file, status);
    }
    for (const file of Object.keys(initiallyDirty)) {
      if (!now.has(file)) changes.set(file, 'restored');
    }
    const head = (await git(location, root, ['rev-parse', '--verify', '-q', 'HEAD']).catch(() => '')).trim();
    if (gitHead && head && head !== gitHead) {
      const committed = await git(location, root, [
        'diff',
        '--no-ext-diff',
        '--no-textconv',
        '--ignore-submodules=all',
        '--name-status',
        '-z',
        gitHead,
        head,
        '--',
        '.',
      ]);
      const fields = committed.split('\0').filter(Boolean);
      for (let i = 0; i + 1 < fields.length; i += 2) {
        const status = fields[i]!;
        const file = fields[i + 1]!;
        if (status.startsWith('R') || status.startsWith('C')) {
          i += 1;
          if (!changes.has(fields[i + 1]!)) changes.set(fields[i + 1]!, status.slice(0, 1));
        } else if (!changes.has(file)) {
          changes.set(file, `${status} (committed)`);
        }
      }
    }
    return [...changes]
      .map(([file, status]) => ({ path: file, status }))
      .sort((a, b) => a.path.localeCompare(b.path));
  }

  return { prepareWorkspace, workspaceChanges };
}
