/**
 * A worker in a process of its own, so that a test can kill it (SIGKILL: no shutdown, no
 * goodbye). Configured by environment: TEMPORAL_ADDRESS, RATCHET_TASK_QUEUE, WORKFLOW_BUNDLE,
 * OPENAI_BASE_URL. Prints "ready" once it polls.
 *
 * Test hooks, to put the kill at a precise moment:
 * - RATCHET_TEST_STALL_AFTER=<activity>: run that activity for real, then never report its result.
 * - RATCHET_TEST_STALL_BEFORE=<activity>: start that activity and never run it.
 * Each activity prints "<name> started" when it begins.
 * - RATCHET_TEST_CORE_LOG=<filter>: print the SDK core's log at that level (e.g. an env filter).
 */
import type { ToolCallInput } from '../../src/shared/boundary/activity-types.js';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { createRatchetWorker } from '../../src/worker.js';
import { createActivities } from '../../src/activities/index.js';
import type { Activities } from '../../src/activities/index.js';
import { createTranscriptSource } from '../../src/activities/transcript-source.js';
import { openaiClientFactory } from '../../src/activities/openai-client.js';
import { commandEnvironment } from '../../src/activities/tools/env.js';
import { detectSandbox } from '../../src/activities/tools/sandbox-detect.js';
import { transcriptQuery } from '../../src/shared/api/session-api.js';

// RATCHET_TEST_CORE_LOG=<env filter>: the SDK core's own log lines too (what each workflow task brought).
const coreLog = process.env.RATCHET_TEST_CORE_LOG;
Runtime.install({
  logger: new DefaultLogger('WARN'),
  ...(coreLog ? { telemetryOptions: { logging: { filter: coreLog, console: { format: 'compact' } } } } : {}),
});
const address = process.env.TEMPORAL_ADDRESS!;
const client = new Client({ connection: await Connection.connect({ address }) });
const connection = await NativeConnection.connect({ address });

const forever = () => new Promise<never>(() => {});
const stallAfter = process.env.RATCHET_TEST_STALL_AFTER;
const stallBefore = process.env.RATCHET_TEST_STALL_BEFORE;
const real = createActivities({
  openai: openaiClientFactory({ apiKey: 'test-key', baseURL: process.env.OPENAI_BASE_URL! }),
  transcript: createTranscriptSource((id, request) =>
    client.workflow.getHandle(id).query(transcriptQuery, request),
  ),
  commandEnv: commandEnvironment(process.env),
  allowedRoots: [],
  sandbox: await detectSandbox(),
});
const overrides: Partial<Activities> = {};
for (const name of ['shell', 'apply_patch', 'read_file'] as const) {
  overrides[name] = async (input: ToolCallInput) => {
    process.stdout.write(`${name} started\n`);
    if (stallBefore === name) return forever();
    const outcome = await real[name](input);
    if (stallAfter === name) return forever();
    return outcome;
  };
}

const { worker } = await createRatchetWorker({
  connection,
  client,
  taskQueue: process.env.RATCHET_TASK_QUEUE!,
  workflowBundle: { codePath: process.env.WORKFLOW_BUNDLE! },
  endpoint: { apiKey: 'test-key', baseURL: process.env.OPENAI_BASE_URL! },
  allowedRoots: [],
  activityOverrides: overrides,
  // RATCHET_TEST_NO_CACHE=1: every workflow task replays the history from the start.
  ...(process.env.RATCHET_TEST_NO_CACHE === '1' ? { workerOptions: { maxCachedWorkflows: 0 } } : {}),
});
const running = worker.run();
process.stdout.write('ready\n');
await running;
