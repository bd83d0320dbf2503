/**
 * Checkpoints in whole sessions: one per turn that may write, then rewind (a new run carrying the
 * state of the turn, whose first step restores the checkpoint on the workspace's worker) and fork (the state at a turn, replayed, in a new worktree on
 * another worker). Workspaces are compared byte for byte and mode for mode with the checkpoint's
 * commit, extracted independently by `git archive`; the user's HEAD, index, branches and stash
 * are compared before and after.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { lstat, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { checkpointDiff, forkSession, rewindSession, sessionCheckpoints } from '../../src/cli/checkpoints.js';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { statusQuery, userMessageSignal, workerTaskQueue } from '../../src/shared/api/session-api.js';
import { ADD_C, archived, busyRepo, rewoundTo, tree, userView } from '../helpers/checkpoint-views.js';
import { startChildWorker } from '../helpers/child-worker.js';
import type { CliResult } from '../helpers/cli.js';
import { harnessCliEnv, runCli } from '../helpers/cli.js';
import { useHarness } from '../helpers/harness.js';
import { recordHistory } from '../helpers/histories.js';
import { until } from '../helpers/waiting.js';
import { createCheckpointActivities } from '../../src/activities/checkpoint-activities.js';

const suite = useHarness();
const bundle = () => ({ codePath: inject('workflowBundlePath') });

interface Body {
  input: Array<Record<string, unknown>>;
}

function ratchet(...args: string[]): Promise<CliResult> {
  return runCli(args, { env: harnessCliEnv(suite.harness) });
}

describe('checkpoints in a session', () => {
  it('takes one per turn that may write, and a rewind restores the workspace and the conversation exactly', async () => {
    const { harness } = suite;
    const repo = await busyRepo((files) => suite.tempRepo(files));
    const before = await userView(repo);
    harness.model
      // 1: what shell commands do, which no edit tool sees
      .call('shell', {
        command: [
          'bash',
          '-lc',
          "printf 'changed\\n' > a.txt && rm b.txt && printf '\\000\\001\\377' > data.bin && chmod -x run.sh && " +
            'mkdir -p new && echo n > new/n.txt && ln -s a.txt link && echo noise > build.log',
        ],
      })
      // 2: read-only, no checkpoint
      .call('read_file', { file_path: 'a.txt' })
      // 3: a patch
      .call('apply_patch', { input: ADD_C })
      // 4: more shell changes, to be undone
      .call('shell', {
        command: ['bash', '-lc', 'echo more >> a.txt && rm -r new data.bin && chmod +x c.txt'],
      })
      .reply('done');
    const { worker } = await harness.worker();
    const handle = await harness.start({
      task: 'Change things',
      workspace: repo.dir,
      approvalPolicy: 'never',
    });
    const sessionId = handle.workflowId;
    await worker.runUntil(async () => {
      const result = (await handle.result()) as SessionResult;
      expect(result.turns).toBe(5);
      await recordHistory(handle, 'checkpoints-session');
    });

    const { checkpoints } = await sessionCheckpoints(harness.ratchet, sessionId);
    expect(checkpoints.map((c) => c.turn)).toEqual([0, 1, 3, 4]);
    const one = checkpoints[1]!;
    expect(Object.fromEntries(one.files.map((f) => [f.path, f.status]))).toEqual({
      'a.txt': 'M',
      'b.txt': 'D',
      'data.bin': 'A',
      'new/n.txt': 'A',
      'run.sh': 'M',
      link: 'A',
    });
    expect(one.did).toMatch(/^turn 1 · 1 tool call: shell/);
    expect(checkpoints[2]!.files).toEqual([{ path: 'c.txt', status: 'A' }]);
    // The user's repository is as it was: only refs/ratchet/ is new.
    expect(await userView(repo)).toEqual(before);
    expect(await repo.git('for-each-ref', '--format=%(refname)', `refs/ratchet/${sessionId}/`)).toBe(
      [0, 1, 3, 4].map((t) => `refs/ratchet/${sessionId}/turn-${t}`).join('\n'),
    );
    expect(await checkpointDiff(harness.ratchet, sessionId, { turn: 3, color: false })).toContain('+charlie');

    // Rewind to the end of turn 1.
    const { worker: second } = await harness.worker();
    await second.runUntil(async () => {
      const done = await rewindSession(harness.ratchet, sessionId, 1, {
        force: false,
        by: 'test',
        workflowBundle: bundle(),
      });
      expect(done.checkedHere).toBe(true);
      const view = await rewoundTo(suite.harness, sessionId, 1);
      expect(view.turn).toBe(1);
      expect(view.notice).toMatch(
        /rewound to the end of turn 1: the workspace is back at checkpoint [0-9a-f]{12}/,
      );
      expect(await tree(repo.dir, ['build.log'])).toEqual(await archived(repo.dir, one.commit));
      expect((await lstat(path.join(repo.dir, 'build.log'))).isFile()).toBe(true); // ignored: untouched
      expect(await readFile(path.join(repo.dir, 'data.bin'))).toEqual(Buffer.from([0, 1, 255]));
      expect((await lstat(path.join(repo.dir, 'run.sh'))).mode & 0o111).toBe(0);
      expect(await userView(repo)).toEqual(before);

      // The conversation goes on from turn 1: its next request starts with exactly what turn 2's
      // request carried (the prompt-cache prefix holds up to turn 1).
      const turn2Input = (harness.model.requests[1]!.body as Body).input;
      harness.model.reply('resumed');
      await handle.signal(userMessageSignal, { text: 'go on from here' });
      const result = (await handle.result()) as SessionResult;
      expect(result.finalMessage).toBe('resumed');
      expect(result.turns).toBe(2);
      const resumed = (harness.model.requests.at(-1)!.body as Body).input;
      expect(resumed.slice(0, turn2Input.length)).toEqual(turn2Input);
      expect(resumed.length).toBe(turn2Input.length + 1);
      await recordHistory(handle, 'checkpoint-rewound', { currentRunOnly: true });
    });
    // The history now holds turns 0 and 1 of the first line, nothing of turns 3 and 4.
    expect((await sessionCheckpoints(harness.ratchet, sessionId)).checkpoints.map((c) => c.turn)).toEqual([
      0, 1,
    ]);
    harness.model.assertDone();
  });

  it('refuses to rewind over changes made outside the session, unless forced; says what is wrong with bad input', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    harness.model
      .call('apply_patch', { input: ADD_C })
      .call('read_file', { file_path: 'c.txt' })
      .call('shell', { command: ['bash', '-lc', 'echo delta > d.txt'] })
      .reply('done');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'Add files', workspace: repo.dir, approvalPolicy: 'never' });
      await handle.result();
      const id = handle.workflowId;

      const listed = await ratchet('checkpoints', id);
      expect(listed.exitCode, listed.stderr).toBe(0);
      expect(listed.stdout).toMatch(/^turn 0 .* 0 files {2}the workspace as the session found it$/m);
      expect(listed.stdout).toMatch(/^turn 1 .* 1 file {2}turn 1 · 1 tool call: apply_patch · c\.txt$/m);
      expect(listed.stdout).toMatch(/^ {4}A {2}c\.txt$/m);
      const diff = await ratchet('diff', id, '--turn', '1', '--to', '3');
      expect(diff.stdout).toContain('+delta');

      await writeFile(path.join(repo.dir, 'mine.txt'), 'the user wrote this\n');
      await writeFile(path.join(repo.dir, 'a.txt'), 'edited by hand\n');
      const refused = await ratchet('rewind', id, '--turn', '1');
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toMatch(
        /changes made outside the session since its last checkpoint \(turn 3\): M a\.txt, A mine\.txt\. Rewinding would overwrite them/,
      );
      expect(await readFile(path.join(repo.dir, 'd.txt'), 'utf8')).toBe('delta\n');

      // Bad input: each a clear error, nothing changed.
      const bad: Array<[string[], RegExp]> = [
        [['checkpoints', 'no-such-session'], /no session with id no-such-session/],
        [['rewind', id, '--turn', '2'], /has no checkpoint for turn 2 \(turns with one: 0, 1, 3\)/],
        [['rewind', id, '--turn', 'two'], /expected a turn number/],
        [['rewind', id], /required option '--turn <n>' not specified/],
        [['diff', id, '--to', '3'], /--to needs --turn/],
        [['fork', id, '--turn', '9'], /has no checkpoint for turn 9/],
        [['fork', id, '--turn', '1', '--repo', '/no/such/dir'], /--repo \/no\/such\/dir does not exist/],
      ];
      for (const [args, error] of bad) {
        const result = await ratchet(...args);
        expect(result.exitCode, args.join(' ')).not.toBe(0);
        expect(result.stderr, args.join(' ')).toMatch(error);
      }

      const forced = await ratchet('rewind', id, '--turn', '1', '--force');
      expect(forced.exitCode, forced.stderr).toBe(0);
      expect(forced.stdout).toMatch(/rewound to the end of turn 1/);
      expect(await readFile(path.join(repo.dir, 'a.txt'), 'utf8')).toBe('alpha\n');
      await expect(lstat(path.join(repo.dir, 'mine.txt'))).rejects.toThrow(/ENOENT/);
      await expect(lstat(path.join(repo.dir, 'd.txt'))).rejects.toThrow(/ENOENT/);
      // What was overwritten is kept.
      const saved = await repo.git('for-each-ref', '--format=%(refname)', `refs/ratchet/${id}/`);
      const savedRef = saved.split('\n').find((r) => r.includes('/saved-'))!;
      expect(await repo.git('show', `${savedRef}:mine.txt`)).toBe('the user wrote this');
      await handle.terminate('test over');
    });
  });

  it('rewinds a session that compacted and continued as new to a turn before the compaction', async () => {
    const { harness } = suite;
    const repo = await busyRepo((files) => suite.tempRepo(files));
    const before = await userView(repo);
    harness.model
      .enqueue({
        kind: 'reply',
        output: [{ type: 'function_call', name: 'apply_patch', arguments: { input: ADD_C } }],
        usage: { inputTokens: 900 },
      })
      .call('shell', { command: ['bash', '-lc', 'echo later > later.txt'] })
      .reply('done');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Add c, then more',
        workspace: repo.dir,
        approvalPolicy: 'never',
        model: { name: 'scripted-model', contextWindow: 1000, compactAtRatio: 0.8 },
      });
      const result = (await handle.result()) as SessionResult;
      expect(result.compactions).toBe(1);
      expect(result.runs).toBe(2);
      const id = handle.workflowId;
      const { checkpoints } = await sessionCheckpoints(harness.ratchet, id);
      expect(checkpoints.map((c) => c.turn)).toEqual([0, 1, 2]);
      expect(checkpoints[1]!.runId).not.toBe(checkpoints[2]!.runId);

      await rewindSession(harness.ratchet, id, 1, { force: false, workflowBundle: bundle() });
      const view = await rewoundTo(suite.harness, id, 1);
      // The state before the compaction: epoch 0, the whole transcript, no compaction counted.
      expect({ turn: view.turn, epoch: view.epoch, compactions: view.compactions }).toEqual({
        turn: 1,
        epoch: 0,
        compactions: 0,
      });
      expect(await tree(repo.dir)).toEqual(await archived(repo.dir, checkpoints[1]!.commit));
      await expect(lstat(path.join(repo.dir, 'later.txt'))).rejects.toThrow(/ENOENT/);
      await recordHistory(handle, 'checkpoint-rewound-before-compaction', { currentRunOnly: true });
      expect(await userView(repo)).toEqual(before);
      await handle.terminate('test over');
    });
  });

  it('rewinds after the worker was killed mid-turn, undoing what the cut command wrote', async () => {
    const { harness } = suite;
    const repo = await busyRepo((files) => suite.tempRepo(files));
    const before = await userView(repo);
    harness.model
      .call('apply_patch', { input: ADD_C })
      .call('shell', { command: ['bash', '-lc', 'echo half > half.txt; sleep 30'] })
      .reply('I will check what happened.');
    const child = await startChildWorker({
      address: harness.address,
      taskQueue: harness.taskQueue,
      modelBaseUrl: harness.model.baseUrl,
    });
    const handle = await harness.start({ task: 'Slow work', workspace: repo.dir, approvalPolicy: 'never' });
    const deadline = Date.now() + 30_000;
    while (!(await lstat(path.join(repo.dir, 'half.txt')).catch(() => null)) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    child.process.kill('SIGKILL');
    await child.process.catch(() => {});
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      await handle.result();
      const id = handle.workflowId;
      const { checkpoints } = await sessionCheckpoints(harness.ratchet, id);
      // Turn 2's command was cut: its partial effect is in turn 2's checkpoint, taken afterwards.
      expect(checkpoints.map((c) => c.turn)).toEqual([0, 1, 2]);
      expect(checkpoints[2]!.files).toEqual([{ path: 'half.txt', status: 'A' }]);
      await rewindSession(harness.ratchet, id, 1, { force: false, workflowBundle: bundle() });
      await rewoundTo(suite.harness, id, 1);
      await expect(lstat(path.join(repo.dir, 'half.txt'))).rejects.toThrow(/ENOENT/);
      expect(await readFile(path.join(repo.dir, 'c.txt'), 'utf8')).toBe('charlie\n');
      expect(await tree(repo.dir)).toEqual(await archived(repo.dir, checkpoints[1]!.commit));
      expect(await userView(repo)).toEqual(before);
      await handle.terminate('test over');
    });
  });

  it('goes on when a checkpoint fails, with a notice', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    harness.model.call('apply_patch', { input: ADD_C }).reply('done anyway');
    let attempts = 0;
    const { worker } = await harness.worker({
      activityOverrides: {
        checkpoint: () => {
          attempts += 1;
          throw ApplicationFailure.nonRetryable('the disk is full', 'CheckpointFailed');
        },
      },
    });
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'Add c', workspace: repo.dir, approvalPolicy: 'never' });
      const result = (await handle.result()) as SessionResult;
      expect(result.finalMessage).toBe('done anyway');
      expect(await readFile(path.join(repo.dir, 'c.txt'), 'utf8')).toBe('charlie\n');
      const view = await handle.query(statusQuery);
      expect(view.notice).toMatch(
        /the checkpoint of turn 1 failed \(.*the disk is full.*\); the session goes on without it/,
      );
      expect(attempts).toBe(2); // turn 0 and turn 1, each once (non-retryable)
      expect((await sessionCheckpoints(harness.ratchet, handle.workflowId)).checkpoints).toEqual([]);
    });
  });

  it('takes the baseline beside the first model call, and nothing writes before the baseline has settled', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    harness.model.call('apply_patch', { input: ADD_C }).reply('done');
    // The baseline is held until the model has answered and the session has taken in its patch:
    // the worst order for "turn 0 is the workspace as the session found it".
    const real = createCheckpointActivities();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const { worker } = await harness.worker({
      activityOverrides: {
        checkpoint: async (input) => {
          if (input.turn === 0) {
            const beat = setInterval(() => Context.current().heartbeat(), 300);
            await held.finally(() => clearInterval(beat));
          }
          return real.checkpoint(input);
        },
      },
    });
    // The first turn's calls wait for the baseline, so a worker lost while it runs must be
    // noticed by its own short heartbeat timeout, not a command's.
    const handle = await harness.start({
      task: 'Add c',
      workspace: repo.dir,
      approvalPolicy: 'never',
      limits: { toolHeartbeatTimeoutMs: 15_000 },
    });
    await worker.runUntil(async () => {
      const events = async () => (await handle.fetchHistory()).events ?? [];
      // The model's reply has been handled by a workflow task while the baseline is still held.
      await until(() => harness.model.requests.length === 1, 20_000);
      for (;;) {
        const history = await events();
        const replied = history.findIndex((e) => e.activityTaskCompletedEventAttributes);
        if (replied >= 0 && history.slice(replied).some((e) => e.workflowTaskCompletedEventAttributes)) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      await expect(lstat(path.join(repo.dir, 'c.txt'))).rejects.toThrow(/ENOENT/);
      // Only the baseline and the model call were scheduled beside each other; the patch waits.
      expect(
        (await events()).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []),
      ).toEqual(['prepareWorkspace', 'checkpoint', 'model']);
      const heartbeatOf = async (type: string) =>
        (await events())
          .map((e) => e.activityTaskScheduledEventAttributes)
          .filter((a) => a?.activityType?.name === type)
          .map((a) => Number(a?.heartbeatTimeout?.seconds ?? 0));
      expect(await heartbeatOf('checkpoint')).toEqual([3]);
      expect(await heartbeatOf('prepareWorkspace')).toEqual([15]);
      release();
      const result = (await handle.result()) as SessionResult;
      expect(result.finalMessage).toBe('done');
      await recordHistory(handle, 'checkpoint-baseline-beside-model');
    });
    const { checkpoints } = await sessionCheckpoints(harness.ratchet, handle.workflowId);
    expect(checkpoints.map((c) => c.turn)).toEqual([0, 1]);
    expect(Object.keys(await archived(repo.dir, checkpoints[0]!.commit))).toEqual(['a.txt']);
    expect(checkpoints[1]!.files).toEqual([{ path: 'c.txt', status: 'A' }]);

    // Rewound to turn 0, the conversation is the one the first request carried, though the
    // session had taken in the first reply before the baseline's result came.
    harness.model.reply('again');
    const { worker: second } = await harness.worker();
    await second.runUntil(async () => {
      await rewindSession(harness.ratchet, handle.workflowId, 0, {
        force: false,
        by: 'test',
        workflowBundle: bundle(),
      });
      await rewoundTo(suite.harness, handle.workflowId, 0);
      await expect(lstat(path.join(repo.dir, 'c.txt'))).rejects.toThrow(/ENOENT/);
      // A restore writes the working tree: it keeps the tools' heartbeat timeout, so no second
      // attempt starts beside a first that is only slow.
      const restores = ((await handle.fetchHistory()).events ?? [])
        .map((e) => e.activityTaskScheduledEventAttributes)
        .filter((a) => a?.activityType?.name === 'restoreSessionCheckpoint')
        .map((a) => Number(a?.heartbeatTimeout?.seconds ?? 0));
      expect(restores).toEqual([15]);
      await handle.signal(userMessageSignal, { text: 'start over' });
      expect(((await handle.result()) as SessionResult).finalMessage).toBe('again');
    });
    const first = (harness.model.requests[0]!.body as Body).input;
    const resumed = (harness.model.requests.at(-1)!.body as Body).input;
    expect(resumed.slice(0, first.length)).toEqual(first);
    expect(resumed.length).toBe(first.length + 1);
    harness.model.assertDone();
  });

  it('forks a session at a turn onto a second worker, in a new worktree, leaving the original untouched', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    harness.model
      .call('apply_patch', { input: ADD_C })
      .call('shell', { command: ['bash', '-lc', 'echo second > second.txt'] })
      .reply('original done');
    // The second worker is a process of its own (one process polls a queue once).
    const other = await startChildWorker({
      address: harness.address,
      taskQueue: harness.taskQueue,
      modelBaseUrl: harness.model.baseUrl,
      env: { RATCHET_WORKER_ID: 'other' },
    });
    const { worker: first } = await harness.worker({ workerId: 'first' });
    await first.runUntil(async () => {
      {
        const handle = await harness.start({
          task: 'Two steps',
          workspace: repo.dir,
          approvalPolicy: 'never',
          worker: 'first',
        });
        await handle.result();
        const id = handle.workflowId;
        const original = await tree(repo.dir);
        const originalRefs = await repo.git('for-each-ref', `refs/ratchet/${id}/`);

        harness.model.call('shell', { command: ['bash', '-lc', 'ls > listing.txt'] }).reply('fork done');
        const fork = await forkSession(harness.ratchet, id, 1, {
          worker: 'other',
          message: 'carry on in the fork',
          workflowBundle: bundle(),
        });
        const forkHandle = harness.client.workflow.getHandle(fork.sessionId);
        const result = (await forkHandle.result()) as SessionResult;
        expect(result.finalMessage).toBe('fork done');
        const view = await forkHandle.query(statusQuery);
        expect(view.toolQueue).toBe(workerTaskQueue(harness.taskQueue, 'other'));
        expect(view.turn).toBe(3);
        // The fork's worktree holds turn 1's checkpoint (c.txt, no second.txt) and what the fork did.
        expect(await readFile(path.join(fork.workspace, 'c.txt'), 'utf8')).toBe('charlie\n');
        await expect(lstat(path.join(fork.workspace, 'second.txt'))).rejects.toThrow(/ENOENT/);
        expect(await readFile(path.join(fork.workspace, 'listing.txt'), 'utf8')).toContain('c.txt');
        // Its conversation is the original's up to turn 1, then the fork.
        const forkRequest = (harness.model.requests.at(-2)!.body as Body).input;
        const turn2Request = (harness.model.requests[1]!.body as Body).input;
        expect(forkRequest.slice(0, turn2Request.length)).toEqual(turn2Request);
        // The original is untouched.
        expect(await tree(repo.dir)).toEqual(original);
        expect(await repo.git('for-each-ref', `refs/ratchet/${id}/`)).toBe(originalRefs);
        expect((await handle.describe()).status.name).toBe('COMPLETED');
        await repo.git('worktree', 'remove', '--force', fork.workspace);
      }
    });
    other.process.kill('SIGTERM');
    await other.process.catch(() => {});
  });
});
