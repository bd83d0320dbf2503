/**
 * A worker in a process of its own, so that a test can kill it (SIGKILL: no shutdown, no
 * goodbye). Configured by environment: TEMPORAL_ADDRESS, RATCHET_TASK_QUEUE, WORKFLOW_BUNDLE,
 * OPENAI_BASE_URL. Prints "ready" once it polls.
 */
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { createRatchetWorker } from '../../src/worker.js';

Runtime.install({ logger: new DefaultLogger('WARN') });
const address = process.env.TEMPORAL_ADDRESS!;
const client = new Client({ connection: await Connection.connect({ address }) });
const connection = await NativeConnection.connect({ address });
const { worker } = await createRatchetWorker({
  connection,
  client,
  taskQueue: process.env.RATCHET_TASK_QUEUE!,
  workflowBundle: { codePath: process.env.WORKFLOW_BUNDLE! },
  endpoint: { apiKey: 'test-key', baseURL: process.env.OPENAI_BASE_URL! },
  allowedRoots: [],
});
const running = worker.run();
process.stdout.write('ready\n');
await running;
