/**
 * The Ratchet worker: the session workflow and its activities on the shared task queue, and the
 * tool activities again on a queue of this worker's own (`<queue>@<worker id>`), where sessions
 * whose workspace this worker prepared send their tool calls.
 */
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { NativeConnection, WorkerOptions } from '@temporalio/worker';
import { Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { mkdir, readFile, readdir, rename, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Activities } from './activities/index.js';
import { createActivities } from './activities/index.js';
import type { NotifyDeps } from './activities/notify.js';
import type { ModelEndpoint } from './activities/openai-client.js';
import { endpointFromEnv, openaiClientFactory, outputTokenCap } from './activities/openai-client.js';
import { commandEnvironment } from './activities/tools/env.js';
import type { SandboxInfo } from './activities/tools/sandbox.js';
import { detectSandbox } from './activities/tools/sandbox-detect.js';
import type { FetchTranscriptPage, TranscriptSource } from './activities/transcript-source.js';
import { createTranscriptSource } from './activities/transcript-source.js';
import { askWhileAhead } from './client-status.js';
import { DEFAULT_TASK_QUEUE, transcriptQuery, workerTaskQueue } from './shared/api/session-api.js';

export const workflowsPath = fileURLToPath(new URL('./workflows/index.ts', import.meta.url));

/**
 * How the workflow bundle is built (every bundle: the worker's, the tests', the benchmark's).
 * A worker keeps each cached session in its own instance of every module of the bundle except
 * the preloaded ones, evaluated once and frozen (docs/PERFORMANCE.md, "Parked sessions").
 * zod is shared through src/shared/util/zod-shared.ts, not by name: the SDK preloads with
 * `require('zod')`, which resolves to zod's CommonJS build, a second copy beside the ES build our
 * code imports (and webpack drops it as free of side effects). Our schema modules cannot be
 * shared: zod binds a schema's methods on first use ("Cannot define property safeParse, object is
 * not extensible").
 */
export const WORKFLOW_BUNDLE_OPTIONS = {
  preloadModules: [fileURLToPath(new URL('./shared/util/zod-shared.ts', import.meta.url))],
};

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
  /**
   * This worker's id: its own task queue is `<taskQueue>@<workerId>`. Workers that share a
   * filesystem may share an id; a restarted worker must keep its id to pick its sessions up again.
   * Default RATCHET_WORKER_ID, else the host name.
   */
  workerId?: string;
  /** Where session notifications go (`notify` in ratchet.toml); none: dropped. */
  notify?: NotifyDeps;
  /** Passed to Worker.create as is (maxCachedWorkflows, identity, shutdownGraceTime …). */
  workerOptions?: Partial<WorkerOptions>;
}

export interface RatchetWorker {
  worker: WorkerGroup;
  transcript: TranscriptSource;
  sandbox: SandboxInfo;
  /** The queue this worker's sessions send their tool calls to. */
  toolQueue: string;
}

/**
 * The two Temporal workers of one Ratchet worker, run and stopped together: `main` polls the
 * shared queue (workflows, model, compaction, preparing workspaces), `tools` this worker's own.
 */
export class WorkerGroup {
  constructor(
    readonly main: Worker,
    readonly tools: Worker,
  ) {}

  getState(): ReturnType<Worker['getState']> {
    return this.main.getState();
  }

  /** Stops polling; running activities get the shutdown grace time to finish. */
  shutdown(): void {
    for (const worker of [this.main, this.tools]) {
      if (worker.getState() === 'RUNNING') worker.shutdown();
    }
  }

  /** Runs both until shutdown; when one stops (or fails), the other is shut down too. */
  async run(): Promise<void> {
    const results = await Promise.allSettled(
      [this.main, this.tools].map((worker) => worker.run().finally(() => this.shutdown())),
    );
    const failed = results.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
  }

  runUntil<R>(fnOrPromise: Promise<R> | (() => Promise<R>)): Promise<R> {
    return this.tools.runUntil(() => this.main.runUntil(fnOrPromise));
  }
}

/**
 * How soon a crashed worker's work moves on (docs/PERFORMANCE.md, "Recovery"); each can be
 * overridden through `workerOptions`.
 */
export const RECOVERY_OPTIONS = {
  /**
   * A dead worker's sticky queue holds the session's workflow tasks and queries until this
   * passes, and the retried model call's first act is a transcript query: this wait is part of
   * every recovery. The SDK's default is 10 s. A live worker takes its sticky tasks within
   * milliseconds; one that takes longer than this loses nothing but its cache entry (the task
   * goes to the shared queue and the history is replayed).
   */
  stickyQueueScheduleToStartTimeout: '1s',
  /**
   * Heartbeats reach the server at least this often. The SDK sends one every 0.8 × the heartbeat
   * timeout at most, so the last one the server saw before a crash could be that old: detection
   * took up to 1.8 timeouts, and the margin against a busy event loop was 0.2 of a timeout. With
   * every beat sent (one every third of the timeout, heartbeat.ts) the margin is two thirds, and a
   * background response's id is on the server within half a second of its creation.
   */
  maxHeartbeatThrottleInterval: '500ms',
} as const satisfies Partial<WorkerOptions>;

/** Whether this runs in a retried (non-local) activity: its worker may have been lost. */
function retriedActivity(): boolean {
  try {
    const { info } = Context.current();
    return info.attempt > 1 && !info.isLocal;
  } catch {
    return false; // not in an activity
  }
}

/**
 * Sends the session's next workflow tasks and queries to the shared queue instead of the sticky
 * queue of the worker that last ran it. A retried activity that needs the transcript does this
 * first: when the previous attempt's worker is dead, its query would otherwise wait out the
 * sticky-queue timeout on that worker's queue. When the worker is alive it costs that worker one
 * replay of the session. Best effort: a failure leaves the timeout to do it.
 */
async function unstick(client: Client, namespace: string, workflowId: string): Promise<void> {
  try {
    await client.workflowService.resetStickyTaskQueue({ namespace, execution: { workflowId } });
  } catch (err) {
    Runtime.instance().logger.debug('could not reset the sticky queue', {
      workflowId,
      error: err instanceof Error ? err.message : String(err),
    });
  }
}

/**
 * Sessions a worker keeps in memory (about 0.7 MiB each, docs/PERFORMANCE.md, "Parked sessions").
 * The SDK's default grows with the heap limit (2,000 and more on a large machine), so a worker
 * holding a thousand sessions that wait for a person used gigabytes. A session out of the cache
 * costs one replay of its history when it next moves (tenths of a second); active sessions beyond
 * this many replay on every turn, so a worker running more at once should raise it
 * (`workerOptions.maxCachedWorkflows`).
 */
export const DEFAULT_MAX_CACHED_WORKFLOWS = 100;

export function workerIdFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.RATCHET_WORKER_ID?.trim() || os.hostname();
}

export function allowedRootsFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.RATCHET_WORKSPACE_ROOTS ?? '')
    .split(path.delimiter)
    .map((root) => root.trim())
    .filter(Boolean)
    .map((root) => path.resolve(root));
}

/**
 * How long a model call or tool waits for the transcript before its attempt fails. A busy worker
 * (a hundred sessions on one core) answers queries slowly, and each answer it gives is a model
 * call going on; failing the attempt would only ask again, from the start, with more load.
 */
export const TRANSCRIPT_QUERY_WAIT_MS = 60_000;

/**
 * How long one transcript query is given before it is taken for dropped and asked again
 * (askWhileAhead). Long enough that a query a busy worker is slow to answer is not asked twice
 * (each ask is work for that worker), short enough that a dropped one costs seconds, not the
 * server's 30 s.
 */
export const TRANSCRIPT_ANSWER_WAIT_MS = 5_000;

/**
 * How activities read a session's transcript: the `transcript` query. A retried activity first
 * unsticks the session (its last worker may be dead). A worker that has not cached the session
 * refuses the query while a workflow task is pending (src/workflows/task-guard.ts): another
 * activity of the session, run beside this one, has just completed. That task runs within
 * moments, so the query is asked again rather than failing the attempt (a false retry). So is a
 * query the worker dropped (src/client-status.ts).
 */
export function transcriptPages(
  client: Client,
  namespace: string,
  waitMs = TRANSCRIPT_QUERY_WAIT_MS,
): FetchTranscriptPage {
  return async (sessionId, request) => {
    if (retriedActivity()) await unstick(client, namespace, sessionId);
    const signal = activitySignal();
    return askWhileAhead(
      (askDeadline) =>
        client.connection.withDeadline(askDeadline, () =>
          client.workflow.getHandle(sessionId).query(transcriptQuery, request),
        ),
      Date.now() + waitMs,
      { firstWaitMs: 50, answerWithinMs: TRANSCRIPT_ANSWER_WAIT_MS, ...(signal ? { signal } : {}) },
    );
  };
}

/** The running activity's cancellation signal (an interrupt stops the wait), if in one. */
function activitySignal(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined; // not in an activity
  }
}

export async function createRatchetWorker(options: RatchetWorkerOptions): Promise<RatchetWorker> {
  const namespace = options.namespace ?? 'default';
  const transcript = createTranscriptSource(transcriptPages(options.client, namespace));
  const sandbox = options.sandbox ?? (await detectSandbox());
  if (!sandbox.available) {
    Runtime.instance().logger.warn(
      `commands cannot be sandboxed on this worker (${sandbox.detail}); sessions will ask before every command`,
    );
  }
  const taskQueue = options.taskQueue ?? DEFAULT_TASK_QUEUE;
  const toolQueue = workerTaskQueue(taskQueue, options.workerId ?? workerIdFromEnv());
  const endpoint = options.endpoint ?? endpointFromEnv();
  const activities = {
    ...createActivities({
      openai: openaiClientFactory(endpoint),
      api: endpoint.api,
      maxOutputTokens: outputTokenCap(endpoint),
      stream: endpoint.stream,
      transcript,
      commandEnv: commandEnvironment(process.env),
      allowedRoots: options.allowedRoots ?? allowedRootsFromEnv(),
      sandbox,
      toolQueue,
      ...(options.notify ? { notify: options.notify } : {}),
      readTools: {
        ...(options.activityOverrides?.read_file ? { read_file: options.activityOverrides.read_file } : {}),
        ...(options.activityOverrides?.list_dir ? { list_dir: options.activityOverrides.list_dir } : {}),
      },
    }),
    ...options.activityOverrides,
  };
  const main = await Worker.create({
    connection: options.connection,
    namespace: options.namespace ?? 'default',
    taskQueue,
    ...(options.workflowBundle
      ? { workflowBundle: options.workflowBundle }
      : { workflowsPath, bundlerOptions: WORKFLOW_BUNDLE_OPTIONS }),
    activities,
    ...RECOVERY_OPTIONS,
    maxCachedWorkflows: DEFAULT_MAX_CACHED_WORKFLOWS,
    // Called only while `ratchet fork` replays a history on the client; here, never.
    sinks: { ratchetCheckpoints: { reached: { fn: () => {}, callDuringReplay: false } } },
    ...options.workerOptions,
  });
  // The tool worker takes the same options (identity, shutdown grace …) but no workflow ones.
  const toolOptions: Partial<WorkerOptions> = { ...options.workerOptions };
  delete toolOptions.maxCachedWorkflows;
  delete toolOptions.maxConcurrentWorkflowTaskExecutions;
  delete toolOptions.workflowBundle;
  delete toolOptions.workflowsPath;
  delete toolOptions.taskQueue;
  const tools = await Worker.create({
    maxHeartbeatThrottleInterval: RECOVERY_OPTIONS.maxHeartbeatThrottleInterval,
    ...toolOptions,
    connection: options.connection,
    namespace: options.namespace ?? 'default',
    taskQueue: toolQueue,
    activities,
  });
  return { worker: new WorkerGroup(main, tools), transcript, sandbox, toolQueue };
}

/**
 * The workflow bundle, built once per version of the workflow sources and kept in `cacheDir`, so
 * that starting a worker does not pay for webpack every time.
 */
/**
 * What the workflow bundle is built from: every .ts file below src/workflows and src/shared
 * (subfolders included, each named by its path), the bundle options and the locked dependencies.
 */
export async function workflowSourcesHash(srcRoot: string, lockFile: string): Promise<string> {
  const hash = createHash('sha256');
  for (const top of ['workflows', 'shared']) {
    const files = (await readdir(path.join(srcRoot, top), { recursive: true }))
      .filter((name) => name.endsWith('.ts'))
      .map((name) => name.split(path.sep).join('/'))
      .sort();
    for (const name of files) {
      hash.update(`${top}/${name}\0`).update(await readFile(path.join(srcRoot, top, name)));
    }
  }
  const options = JSON.stringify(WORKFLOW_BUNDLE_OPTIONS, (_key, value: unknown) =>
    typeof value === 'string' && path.isAbsolute(value) ? path.relative(srcRoot, value) : value,
  );
  hash.update(options);
  // Dependencies are bundled too.
  hash.update(await readFile(lockFile).catch(() => Buffer.alloc(0)));
  return hash.digest('hex').slice(0, 16);
}

export async function cachedWorkflowBundle(cacheDir: string): Promise<{ codePath: string }> {
  const srcRoot = path.dirname(path.dirname(workflowsPath));
  const key = await workflowSourcesHash(srcRoot, path.join(srcRoot, '..', 'package-lock.json'));
  const codePath = path.join(cacheDir, `workflows-${key}.js`);
  const exists = await stat(codePath).then(
    () => true,
    () => false,
  );
  if (!exists) {
    const { code } = await bundleWorkflowCode({
      workflowsPath,
      ...WORKFLOW_BUNDLE_OPTIONS,
      logger: quietBundlerLogger,
    });
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
