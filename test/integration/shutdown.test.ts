/**
 * Graceful shutdown of `ratchet worker` (the real command, in a process of its own): on SIGTERM it
 * takes no new work, lets the running command finish and report its result, and exits 0 within
 * the grace time. A second signal exits at once.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { startWorkerCommand as start, until } from '../helpers/worker-command.js';
import { createTempRepo } from '../helpers/git-repo.js';
import type { TempRepo } from '../helpers/git-repo.js';
import { Harness } from '../helpers/harness.js';

let harness: Harness;
let home: string;
const repos: TempRepo[] = [];

beforeAll(async () => {
  harness = await Harness.create();
  home = await mkdtemp(path.join(os.tmpdir(), 'ratchet-home-'));
});

afterAll(async () => {
  await harness?.close();
  await Promise.all(repos.map((repo) => repo.remove()));
  if (home) await rm(home, { recursive: true, force: true });
});

describe('ratchet worker on SIGTERM', () => {
  it('lets the running command finish, records its result and exits 0 within the grace time', async () => {
    const repo = await createTempRepo({ 'README.md': '# x\n' });
    repos.push(repo);
    const model = await harness.freshModel();
    model
      .call('shell', {
        command: ['bash', '-c', 'touch started; sleep 4; echo finished > done.txt; echo all good'],
      })
      .reply('done');
    const { child, output } = await start(harness, home, ['--shutdown-grace', '20']);

    const handle = await harness.start({
      task: 'slow command',
      workspace: repo.dir,
      approvalPolicy: 'never',
      sandbox: 'danger-full-access',
    });
    await until(() => existsSync(path.join(repo.dir, 'started')), 'the command to start');
    const signalledAt = Date.now();
    child.kill('SIGTERM');
    const exited = await child;
    const took = Date.now() - signalledAt;

    expect(exited.exitCode, output()).toBe(0);
    expect(took).toBeGreaterThan(2500); // it waited for the command …
    expect(took).toBeLessThan(20_000); // … within the grace time
    expect(output()).toContain('SIGTERM: taking no new work');
    expect(await readFile(path.join(repo.dir, 'done.txt'), 'utf8')).toBe('finished\n');

    // The command's result is in the history: no other worker runs it again.
    const history = await handle.fetchHistory();
    const completed = (history.events ?? []).filter((e) => e.activityTaskCompletedEventAttributes);
    expect(completed.length).toBeGreaterThanOrEqual(3); // prepare, model, shell
    expect((history.events ?? []).some((e) => e.activityTaskFailedEventAttributes)).toBe(false);

    // Another worker carries the session on; the model reads the command's output.
    const { worker } = await harness.worker();
    const result = (await worker.runUntil(handle.result())) as SessionResult;
    expect(result.finalMessage).toBe('done');
    const second = model.requests.filter((r) => r.path === '/v1/responses')[1]!;
    expect(JSON.stringify(second.body)).toContain('all good');
    model.assertDone();
  });

  it('exits at once (130) on a second signal', async () => {
    const repo = await createTempRepo({ 'README.md': '# x\n' });
    repos.push(repo);
    const model = await harness.freshModel();
    model.call('shell', { command: ['bash', '-c', 'touch started; sleep 30'] });
    const { child, output } = await start(harness, home, []);
    const handle = await harness.start({
      task: 'very slow command',
      workspace: repo.dir,
      approvalPolicy: 'never',
      sandbox: 'danger-full-access',
    });
    await until(() => existsSync(path.join(repo.dir, 'started')), 'the command to start');
    child.kill('SIGTERM');
    await until(() => output().includes('taking no new work'), 'the first signal to be seen');
    const signalledAt = Date.now();
    child.kill('SIGTERM');
    const exited = await child;
    expect(exited.exitCode, output()).toBe(130);
    expect(Date.now() - signalledAt).toBeLessThan(3000);
    expect(output()).toContain('exiting now');
    await handle.terminate('test over');
  });
});
