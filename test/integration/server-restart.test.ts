/**
 * The Temporal server stops and starts again (same SQLite file, same port) in the middle of a
 * session — once while it waits for approval, once while a command runs — and the session
 * carries on to the end. The second outage is longer than the heartbeat timeout, so the server
 * times the command's attempt out as it comes back, though the worker and the command are fine:
 * the command must run on, once, and its result reach the model (src/activities/tools/command-runs.ts).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { DevServer, freePort } from '../../src/temporal/dev-server.js';
import { createTempRepo } from '../helpers/git-repo.js';
import { Harness, waitForStatus } from '../helpers/harness.js';
import { recordHistory } from '../helpers/histories.js';

let dir: string;
let port: number;
let server: DevServer;
let harness: Harness;

async function startServer(): Promise<DevServer> {
  return DevServer.start({
    cliPath: inject('temporalCliPath'),
    port,
    uiPort: false,
    dbFile: path.join(dir, 'temporal.db'),
  });
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ratchet-restart-'));
  port = await freePort();
  server = await startServer();
  harness = await Harness.create({ address: server.address });
});

afterAll(async () => {
  await harness?.close();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

it('survives the server restarting while it waits for approval and while a command runs', async () => {
  const repo = await createTempRepo({ 'a.txt': 'alpha\n' });
  const { model } = harness;
  model
    .call('shell', { command: ['bash', '-lc', 'echo run >> runs.txt; sleep 8; echo done > out.txt'] })
    .reply('Done despite the restarts.');
  const { worker } = await harness.worker();
  const { result, lastAttempt } = await worker.runUntil(async () => {
    const handle = await harness.start({ task: 'Run the slow script', workspace: repo.dir });
    await waitForStatus(handle, (s) => s.status === 'awaiting_approval');

    // Restart 1: while the session waits for a person.
    await server.stop();
    server = await startServer();
    const waiting = await waitForStatus(handle, (s) => s.status === 'awaiting_approval', 60_000);
    expect(waiting.pendingApprovals).toHaveLength(1);
    await harness.ratchet.decide(handle.workflowId, 'approve');

    // Restart 2: while the approved command runs, down for longer than the heartbeat timeout
    // (3 s in the tests' sessions).
    await waitForStatus(handle, (s) => s.current?.kind === 'tool', 60_000);
    await server.stop();
    await new Promise((resolve) => setTimeout(resolve, 5000));
    server = await startServer();

    const result = (await handle.result()) as SessionResult;
    await recordHistory(handle, 'server-restarted', {}, server.address);
    const history = await handle.fetchHistory();
    const shellAttempts = history.events!.flatMap((event) =>
      event.activityTaskStartedEventAttributes ? [event.activityTaskStartedEventAttributes.attempt ?? 1] : [],
    );
    return { result, lastAttempt: Math.max(...shellAttempts) };
  });
  // The server did give up on the first attempt (else this test would not test the retry).
  expect(lastAttempt).toBeGreaterThanOrEqual(2);
  expect(result.finalMessage).toBe('Done despite the restarts.');
  expect(await readFile(path.join(repo.dir, 'out.txt'), 'utf8')).toBe('done\n');
  expect(await readFile(path.join(repo.dir, 'runs.txt'), 'utf8')).toBe('run\n');
  const last = model.requests.at(-1)!.body as { input: Array<{ type: string; output?: string }> };
  const output = last.input.find((item) => item.type === 'function_call_output')!.output!;
  expect(JSON.parse(output)).toMatchObject({ metadata: { exit_code: 0 } });
  model.assertDone();
});
