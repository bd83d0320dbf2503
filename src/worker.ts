/**
 * The Ratchet worker: the session workflow and its activities on one task queue.
 */
import type { Client } from '@temporalio/client';
import type { NativeConnection, WorkerOptions } from '@temporalio/worker';
import { Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { mkdir, readFile, readdir, rename, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Activities } from './activities/index.js';
import { createActivities } from './activities/index.js';
import type { ModelEndpoint } from './activities/openai-client.js';
import { endpointFromEnv, openaiClientFactory } from './activities/openai-client.js';
import { commandEnvironment } from './activities/tools/env.js';
import type { SandboxInfo } from './activities/tools/sandbox.js';
import { detectSandbox } from './activities/tools/sandbox.js';
import type { TranscriptSource } from './activities/transcript-source.js';
import { createTranscriptSource } from './activities/transcript-source.js';
import { DEFAULT_TASK_QUEUE, transcriptQuery } from './shared/session-api.js';

export const workflowsPath = fileURLToPath(new URL('./workflows/index.ts', import.meta.url));

export interface RatchetWorkerOptions {
  connection: NativeConnection;
  /** Client used by activities to read transcripts (the `transcript` query). */
  client: Client;
  namespace?: string;
  taskQueue?: string;
  /** A prebuilt workflow bundle; the sources are bundled when omitted. */
  workflowBundle?: { code: string } | { codePath: string };
  endpoint?: ModelEndpoint;
  /** Directories sessions may use; from RATCHET_WORKSPACE_ROOTS when omitted. */
  allowedRoots?: string[];
  /** How commands are confined; detected (bubblewrap) when omitted. */
  sandbox?: SandboxInfo;
  /** Replace individual activities (tests, benchmarks). */
  activityOverrides?: Partial<Activities>;
  /** Passed to Worker.create as is (maxCachedWorkflows, identity, shutdownGraceTime …). */
  workerOptions?: Partial<WorkerOptions>;
}

export interface RatchetWorker {
  worker: Worker;
  transcript: TranscriptSource;
  sandbox: SandboxInfo;
}

export function allowedRootsFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.RATCHET_WORKSPACE_ROOTS ?? '')
    .split(path.delimiter)
    .map((root) => root.trim())
    .filter(Boolean)
    .map((root) => path.resolve(root));
}

export async function createRatchetWorker(options: RatchetWorkerOptions): Promise<RatchetWorker> {
  const transcript = createTranscriptSource((sessionId, request) =>
    options.client.workflow.getHandle(sessionId).query(transcriptQuery, request),
  );
  const sandbox = options.sandbox ?? (await detectSandbox());
  if (!sandbox.available) {
    Runtime.instance().logger.warn(
      `commands cannot be sandboxed on this worker (${sandbox.detail}); sessions will ask before every command`,
    );
  }
  const activities = {
    ...createActivities({
      openai: openaiClientFactory(options.endpoint ?? endpointFromEnv()),
      transcript,
      commandEnv: commandEnvironment(process.env),
      allowedRoots: options.allowedRoots ?? allowedRootsFromEnv(),
      sandbox,
    }),
    ...options.activityOverrides,
  };
  const worker = await Worker.create({
    connection: options.connection,
    namespace: options.namespace ?? 'default',
    taskQueue: options.taskQueue ?? DEFAULT_TASK_QUEUE,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath }),
    activities,
    // A dead worker's sticky queue holds the session's workflow tasks and queries until this
    // passes; the SDK's 10 s default would dominate recovery after a crash.
    stickyQueueScheduleToStartTimeout: '3s',
    ...options.workerOptions,
  });
  return { worker, transcript, sandbox };
}

/**
 * The workflow bundle, built once per version of the workflow sources and kept in `cacheDir`, so
 * that starting a worker does not pay for webpack every time.
 */
export async function cachedWorkflowBundle(cacheDir: string): Promise<{ codePath: string }> {
  const sourcesDir = path.dirname(workflowsPath);
  const srcRoot = path.dirname(sourcesDir);
  const hash = createHash('sha256');
  for (const dir of [sourcesDir, path.join(srcRoot, 'shared')]) {
    for (const name of (await readdir(dir)).sort()) {
      if (name.endsWith('.ts')) hash.update(name).update(await readFile(path.join(dir, name)));
    }
  }
  // Dependencies are bundled too.
  hash.update(await readFile(path.join(srcRoot, '..', 'package-lock.json')).catch(() => Buffer.alloc(0)));
  const codePath = path.join(cacheDir, `workflows-${hash.digest('hex').slice(0, 16)}.js`);
  const exists = await stat(codePath).then(
    () => true,
    () => false,
  );
  if (!exists) {
    const { code } = await bundleWorkflowCode({ workflowsPath, logger: quietBundlerLogger });
    await mkdir(cacheDir, { recursive: true });
    const temp = `${codePath}.${process.pid}.tmp`;
    await writeFile(temp, code);
    await rename(temp, codePath);
  }
  return { codePath };
}

const noop = () => {};
const quietBundlerLogger = {
  log: noop,
  trace: noop,
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
};
