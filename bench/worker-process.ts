/**
 * A Ratchet worker in a process of its own, so that the benchmark can read its CPU time and
 * memory from /proc and kill it. Configured by environment: TEMPORAL_ADDRESS, RATCHET_TASK_QUEUE,
 * WORKFLOW_BUNDLE, OPENAI_BASE_URL, and BENCH_WORKER_OPTIONS (JSON, passed to Worker.create).
 * Prints "ready" once it polls.
 */
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import type { Activities } from '../src/activities/index.js';
import { openaiClientFactory } from '../src/activities/openai-client.js';
import { createRatchetWorker } from '../src/worker.js';
import { createBenchActivities } from './activities.js';
import { installWorkerProbe } from './worker-probe.js';

// SIGUSR2 asks for a memory probe (bench/probe.ts) here, so it is not one of the SDK's shutdown signals.
Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: ['SIGINT', 'SIGTERM', 'SIGQUIT'] });
if (process.env.BENCH_PROBE_DIR) installWorkerProbe(process.env.BENCH_PROBE_DIR);
const address = process.env.TEMPORAL_ADDRESS!;
const endpoint = { apiKey: 'bench-key', baseURL: process.env.OPENAI_BASE_URL! };
const client = new Client({ connection: await Connection.connect({ address }) });
const connection = await NativeConnection.connect({ address });
const { worker } = await createRatchetWorker({
  connection,
  client,
  taskQueue: process.env.RATCHET_TASK_QUEUE!,
  workflowBundle: { codePath: process.env.WORKFLOW_BUNDLE! },
  endpoint,
  allowedRoots: [],
  activityOverrides: Object.assign(
    {} as Partial<Activities>,
    createBenchActivities(openaiClientFactory(endpoint)),
  ),
  workerOptions: JSON.parse(process.env.BENCH_WORKER_OPTIONS ?? '{}') as Record<string, unknown>,
});
const running = worker.run();
process.stdout.write('ready\n');
process.on('SIGTERM', () => worker.shutdown());
await running;
await connection.close();
await client.connection.close();
