/**
 * Whether commands can be sandboxed on this worker, proven by running one: find bwrap
 * (RATCHET_BWRAP_PATH or PATH) and the helpers it needs → run `true` in a workspace-write sandbox
 * with the exact options commands get (sandbox.ts) → remember the answer per bwrap path. What is
 * missing, or why the kernel refuses, is said in the answer's detail.
 */
import { access, chown, mkdtemp, rm, stat } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { RunAs, SandboxInfo } from './sandbox.js';
import {
  DEFAULT_PATH,
  PRLIMIT,
  SETPRIV,
  layoutFor,
  protectedPaths,
  sandboxLayout,
  sandboxedCommand,
} from './sandbox.js';

const PROBE_TIMEOUT_MS = 10_000;
const INSTALL_HINT = 'install bubblewrap (apt-get install bubblewrap)';
/** The probe's workspace owner when the worker is root: nobody. */
const PROBE_USER: RunAs = { uid: 65534, gid: 65534 };

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
  for (const helper of [SETPRIV, PRLIMIT]) {
    if (!(await isExecutableFile(helper)))
      return { available: false, kind: 'none', detail: `${helper} is missing; install util-linux` };
  }
  const version = await execa(bwrapPath, ['--version'], {
    reject: false,
    timeout: PROBE_TIMEOUT_MS,
    stdin: 'ignore',
  });
  const name = version.exitCode === 0 && version.stdout.trim() !== '' ? version.stdout.trim() : 'bwrap';
  const workspace = await mkdtemp(path.join(os.tmpdir(), 'ratchet-sandbox-probe-'));
  try {
    const root = (process.geteuid?.() ?? 0) === 0;
    if (root) await chown(workspace, PROBE_USER.uid, PROBE_USER.gid);
    await execa('git', ['init', '-q', workspace], {
      reject: false,
      stdin: 'ignore',
      env: { PATH: DEFAULT_PATH },
      extendEnv: false,
    });
    if (root)
      await execa('chown', ['-R', `${PROBE_USER.uid}:${PROBE_USER.gid}`, workspace], { reject: false });
    const [file, ...args] = sandboxedCommand(['true'], {
      mode: 'workspace-write',
      workspace,
      cwd: workspace,
      bwrapPath,
      protect: await protectedPaths(workspace),
      layout: await layoutFor(await sandboxLayout(), root ? PROBE_USER : undefined),
      ...(root ? { runAs: PROBE_USER } : {}),
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
