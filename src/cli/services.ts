/**
 * What a CLI command needs from Temporal: a client to the configured service, or — for `run` with
 * nothing configured and nothing listening — the embedded dev server and an in-process worker.
 */
import type { Client } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import proto from '@temporalio/proto';
import os from 'node:os';
import path from 'node:path';
import { RatchetClient, RatchetError } from '../client.js';
import { DEFAULT_TASK_QUEUE } from '../shared/api/session-api.js';
import type { TemporalTarget } from '../temporal/connection.js';
import type { ModelEndpoint } from '../activities/openai-client.js';
import type { NotifyDeps } from '../activities/notify.js';
import {
  connectClient,
  connectWorkerConnection,
  embeddedPorts,
  temporalTarget,
} from '../temporal/connection.js';
import { DevServer, isTemporalReachable } from '../temporal/dev-server.js';
import { ensureTemporalCli } from '../temporal/provision.js';
import { installRuntime } from './runtime.js';
import type { WorkerGroup } from '../worker.js';
import { cachedWorkflowBundle, createRatchetWorker } from '../worker.js';

export function dataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RATCHET_HOME) return path.resolve(env.RATCHET_HOME);
  const base = env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(base, 'ratchet');
}

export function taskQueueFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.RATCHET_TASK_QUEUE || DEFAULT_TASK_QUEUE;
}

/**
 * The Web UI's base URL for links: RATCHET_UI_URL; the embedded server's UI when the address is
 * the embedded server's; Temporal Cloud's for a cloud address; otherwise none (unknown).
 */
export function uiBaseUrl(target: TemporalTarget, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.RATCHET_UI_URL) return env.RATCHET_UI_URL;
  const { port, uiPort } = embeddedPorts(env);
  if (!target.configured || ['127.0.0.1', 'localhost'].some((host) => target.address === `${host}:${port}`)) {
    return `http://127.0.0.1:${uiPort}`;
  }
  if (target.address.includes('.tmprl.cloud')) return 'https://cloud.temporal.io';
  return undefined;
}

function unreachable(target: TemporalTarget): RatchetError {
  return new RatchetError(
    `cannot reach Temporal at ${target.address}` +
      (target.configured
        ? ' (check TEMPORAL_ADDRESS / your temporal profile)'
        : '; start it with `ratchet server` (or set TEMPORAL_ADDRESS for another cluster)'),
  );
}

export interface Services {
  target: TemporalTarget;
  client: Client;
  ratchet: RatchetClient;
  close(): Promise<void>;
}

/** A client to the configured Temporal service; a one-line error when it does not answer. */
export async function connect(env: NodeJS.ProcessEnv = process.env): Promise<Services> {
  const target = temporalTarget(env);
  let client: Client;
  try {
    client = await connectClient(target, 3000);
  } catch {
    throw unreachable(target);
  }
  return {
    target,
    client,
    ratchet: new RatchetClient(client, {
      taskQueue: taskQueueFromEnv(env),
      uiBaseUrl: uiBaseUrl(target, env),
    }),
    close: () => client.connection.close(),
  };
}

export interface EmbeddedOptions {
  log: (message: string) => void;
  /** Start a worker in this process when none polls the task queue. */
  worker: boolean;
  /** Task queue (default RATCHET_TASK_QUEUE or "ratchet"). */
  taskQueue?: string;
  /** Settings of the in-process worker (default: OPENAI_* and RATCHET_* variables). */
  workerSettings?: WorkerSettings;
  /** Write the in-process worker's log to a file under the data directory (its path is logged once). */
  workerLogToFile?: boolean;
}

/** A new log file for this process's in-process worker: <data dir>/logs/worker-<time>-<pid>.log. */
export function workerLogFile(env: NodeJS.ProcessEnv = process.env): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  return path.join(dataDir(env), 'logs', `worker-${stamp}-${process.pid}.log`);
}

export interface RunServices extends Services {
  server?: DevServer;
  worker?: WorkerGroup;
  workerRun?: Promise<void>;
}

export async function startEmbeddedServer(log: (message: string) => void): Promise<DevServer> {
  const cli = await ensureTemporalCli(log);
  const dbFile = path.join(dataDir(), 'temporal.db');
  const { port, uiPort } = embeddedPorts();
  try {
    return await DevServer.start({ cliPath: cli.path, ip: '127.0.0.1', port, uiPort, dbFile });
  } catch (err) {
    throw new RatchetError(
      `could not start the embedded Temporal server: ${(err as Error).message.split('\n')[0]}`,
    );
  }
}

export async function hasPollers(client: Client, taskQueue: string): Promise<boolean> {
  const response = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: taskQueue },
    taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
  });
  return (response.pollers ?? []).length > 0;
}

/** How long running activities may take to finish after a shutdown signal (default 30 s). */
export const DEFAULT_SHUTDOWN_GRACE_SECONDS = 30;

export interface WorkerSettings {
  endpoint?: ModelEndpoint;
  allowedRoots?: string[];
  workerId?: string;
  shutdownGraceSeconds?: number;
  /** Serve Prometheus metrics on this port (0: any free port); none when undefined. */
  metricsPort?: number;
  /** Where session notifications go, and the inbox address their links point at. */
  notify?: NotifyDeps;
}

export async function startInProcessWorker(
  target: TemporalTarget,
  client: Client,
  taskQueue: string,
  options: WorkerSettings = {},
): Promise<{
  worker: WorkerGroup;
  connection: NativeConnection;
  run: Promise<void>;
  toolQueue: string;
  metricsUrl?: string;
}> {
  installRuntime(options.metricsPort !== undefined ? { metricsPort: options.metricsPort } : {});
  const connection = await connectWorkerConnection(target);
  const grace = options.shutdownGraceSeconds ?? DEFAULT_SHUTDOWN_GRACE_SECONDS;
  const { worker, toolQueue } = await createRatchetWorker({
    connection,
    client,
    namespace: target.namespace,
    taskQueue,
    endpoint: options.endpoint,
    ...(options.allowedRoots ? { allowedRoots: options.allowedRoots } : {}),
    ...(options.workerId ? { workerId: options.workerId } : {}),
    ...(options.notify ? { notify: options.notify } : {}),
    workflowBundle: await cachedWorkflowBundle(path.join(dataDir(), 'bundles')),
    // After the grace time running activities are cancelled; after the force time the worker
    // gives up on them altogether, so that a shutdown always ends.
    workerOptions: { shutdownGraceTime: `${grace}s`, shutdownForceTime: `${grace + 15}s` },
  });
  const run = worker.run().finally(() => connection.close());
  const metricsUrl =
    options.metricsPort !== undefined ? `http://127.0.0.1:${options.metricsPort}/metrics` : undefined;
  return { worker, connection, run, toolQueue, ...(metricsUrl ? { metricsUrl } : {}) };
}

/**
 * For `run`: the configured service, or the embedded one when nothing is configured and nothing
 * answers; plus a worker in this process when no worker polls the task queue.
 */
export async function connectForRun(
  options: EmbeddedOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunServices> {
  const target = temporalTarget(env);
  let server: DevServer | undefined;
  if (!(await isTemporalReachable(target.address, 2000))) {
    if (target.configured) throw unreachable(target);
    options.log(`No Temporal server at ${target.address}; starting the embedded one …`);
    server = await startEmbeddedServer(options.log);
    options.log(`Temporal server ${server.address} · Web UI ${server.uiUrl ?? '(off)'}`);
  }
  const services = await connect(options.taskQueue ? { ...env, RATCHET_TASK_QUEUE: options.taskQueue } : env);
  const taskQueue = services.ratchet.taskQueue;
  let worker: WorkerGroup | undefined;
  let workerRun: Promise<void> | undefined;
  if (options.worker && (server || !(await hasPollers(services.client, taskQueue)))) {
    if (!server) options.log(`No worker polls task queue ${taskQueue}; running one in this process.`);
    if (options.workerLogToFile) {
      const logFile = workerLogFile(env);
      installRuntime({
        logFile,
        ...(options.workerSettings?.metricsPort !== undefined
          ? { metricsPort: options.workerSettings.metricsPort }
          : {}),
      });
      options.log(`Worker log: ${logFile}`);
    }
    const started = await startInProcessWorker(target, services.client, taskQueue, options.workerSettings);
    worker = started.worker;
    workerRun = started.run;
  }
  return {
    ...services,
    server,
    worker,
    workerRun,
    async close() {
      if (worker && worker.getState() === 'RUNNING') worker.shutdown();
      await workerRun?.catch(() => {});
      await services.close();
      await server?.stop();
    },
  };
}
