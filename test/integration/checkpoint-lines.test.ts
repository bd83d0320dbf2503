/**
 * Checkpoints across runs and repositories: a fork into another clone whose own first turn can be
 * listed, diffed against and rewound to (and rewound again); a rewind cut short between its steps;
 * pruning during and at the end of a session, with `git gc --prune=now` after; and the bad input
 * each command refuses. In each, the user's HEAD, index, branches and stash are compared before
 * and after.
 */
import { lstat, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import type { RatchetClient } from '../../src/client.js';
import { checkpointDiff, forkSession, rewindSession, sessionCheckpoints } from '../../src/cli/checkpoints.js';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { statusQuery, userMessageSignal } from '../../src/shared/api/session-api.js';
import {
  ADD_C,
  archived,
  busyRepo,
  cloneOf,
  rewoundTo,
  tree,
  userView,
} from '../helpers/checkpoint-views.js';
import type { CliResult } from '../helpers/cli.js';
import { harnessCliEnv, runCli } from '../helpers/cli.js';
import { useHarness, waitForStatus } from '../helpers/harness.js';

const suite = useHarness();
const bundle = () => ({ codePath: inject('workflowBundlePath') });

interface Body {
  input: Array<Record<string, unknown>>;
}

function ratchet(...args: string[]): Promise<CliResult> {
  return runCli(args, { env: harnessCliEnv(suite.harness) });
}

/** The client, except that the process "dies" at the start request: before it, or just after. */
function dyingAtStart(ratchet: RatchetClient, when: 'before' | 'after'): RatchetClient {
  const dying = Object.create(ratchet) as RatchetClient;
  dying.startCarried = async (...args) => {
    if (when === 'after') await ratchet.startCarried(...args);
    throw new Error(`the CLI was killed ${when} the start request`);
  };
  return dying;
}

describe('a fork', () => {
  it('into another clone lists, diffs and rewinds to its first turn, and rewinds again', async () => {
    const { harness } = suite;
    const repo = await busyRepo((files) => suite.tempRepo(files));
    const clone = await cloneOf(repo);
    const before = { repo: await userView(repo), clone: await userView(clone) };
    harness.model
      .call('apply_patch', { input: ADD_C })
      .call('shell', { command: ['bash', '-lc', 'echo second > second.txt'] })
      .reply('original done')
      // the fork's own turn
      .call('shell', { command: ['bash', '-lc', 'echo fork > fork.txt'] })
      .reply('fork done')
      // after the fork is rewound to its first turn
      .reply('resumed');
    const { worker } = await harness.worker();
    try {
      await worker.runUntil(async () => {
        const handle = await harness.start({
          task: 'Two steps',
          workspace: repo.dir,
          approvalPolicy: 'never',
        });
        await handle.result();
        const id = handle.workflowId;
        const originalRefs = await repo.git('for-each-ref', `refs/ratchet/${id}/`);
        const originalTree = await tree(repo.dir);

        const fork = await forkSession(harness.ratchet, id, 1, {
          repo: clone.dir,
          message: 'carry on in the clone',
          workflowBundle: bundle(),
        });
        expect(fork.workspace).toBe(clone.dir);
        const forkHandle = harness.client.workflow.getHandle(fork.sessionId);
        expect(((await forkHandle.result()) as SessionResult).finalMessage).toBe('fork done');
        const forkFirstRequest = (harness.model.requests.at(-2)!.body as Body).input;

        // The fork's history holds the checkpoint it started from, then its own.
        const { checkpoints } = await sessionCheckpoints(harness.ratchet, fork.sessionId);
        expect(checkpoints.map((c) => c.turn)).toEqual([1, 2]);
        expect(checkpoints[0]).toMatchObject({
          commit: fork.commit,
          did: `forked from ${id} at turn 1`,
          forkedFrom: { sessionId: id },
        });
        expect(checkpoints[1]!.files).toEqual([{ path: 'fork.txt', status: 'A' }]);
        const listed = await ratchet('checkpoints', fork.sessionId);
        expect(listed.exitCode, listed.stderr).toBe(0);
        expect(listed.stdout).toMatch(new RegExp(`^turn 1 .* 0 files {2}forked from ${id} at turn 1$`, 'm'));
        // What the fork's turn did, from the checkpoint it started at (not from HEAD: no c.txt).
        const diff = await checkpointDiff(harness.ratchet, fork.sessionId, { turn: 2, color: false });
        expect(diff).toContain('+fork');
        expect(diff).not.toContain('charlie');
        const whole = await ratchet('diff', fork.sessionId, '--stat');
        expect(whole.exitCode, whole.stderr).toBe(0);
        expect(whole.stdout).toContain('fork.txt');

        // Rewind the fork to its first turn: the clone back at the checkpoint, the conversation
        // back to where the fork began, waiting (the fork's first message is not sent again).
        await rewindSession(harness.ratchet, fork.sessionId, 1, { force: false, workflowBundle: bundle() });
        const view = await rewoundTo(suite.harness, fork.sessionId, 1);
        expect(view.turn).toBe(1);
        expect(view.queuedMessages).toBe(0);
        expect(await tree(clone.dir)).toEqual(await archived(clone.dir, fork.commit));
        await expect(lstat(path.join(clone.dir, 'fork.txt'))).rejects.toThrow(/ENOENT/);
        await forkHandle.signal(userMessageSignal, { text: 'once more' });
        expect(((await forkHandle.result()) as SessionResult).finalMessage).toBe('resumed');
        const resumed = (harness.model.requests.at(-1)!.body as Body).input;
        expect(resumed.length).toBe(forkFirstRequest.length);
        expect(resumed.slice(0, -1)).toEqual(forkFirstRequest.slice(0, -1));
        expect(JSON.stringify(resumed.at(-1))).toContain('once more');

        // And again, from the command line: a rewound run finds its workspace and checkpoints.
        await writeFile(path.join(clone.dir, 'c.txt'), 'changed by the session\n');
        const again = await ratchet('rewind', fork.sessionId, '--turn', '1', '--force');
        expect(again.exitCode, again.stderr).toBe(0);
        expect(again.stdout).toMatch(/rewound to the end of turn 1/);
        expect(await readFile(path.join(clone.dir, 'c.txt'), 'utf8')).toBe('charlie\n');
        expect(
          (await sessionCheckpoints(harness.ratchet, fork.sessionId)).checkpoints.map((c) => c.turn),
        ).toEqual([1]);

        // The original and both repositories' own state are untouched.
        expect(await tree(repo.dir)).toEqual(originalTree);
        expect(await repo.git('for-each-ref', `refs/ratchet/${id}/`)).toBe(originalRefs);
        expect(await userView(repo)).toEqual(before.repo);
        expect(await userView(clone)).toEqual(before.clone);
        await forkHandle.terminate('test over');
      });
    } finally {
      await clone.remove();
    }
  });
});

describe('a rewind cut short', () => {
  it('before its start request leaves the session as it was; after it, finishes on its own', async () => {
    const { harness } = suite;
    const repo = await busyRepo((files) => suite.tempRepo(files));
    const before = await userView(repo);
    harness.model
      .call('apply_patch', { input: ADD_C })
      .call('shell', { command: ['touch', 'two.txt'] })
      .reply('never reached');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      // Turn 1's patch runs (auto-edit); turn 2's command waits for a person.
      const handle = await harness.start({
        task: 'Two files',
        workspace: repo.dir,
        approvalPolicy: 'auto-edit',
      });
      const waiting = await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      expect(waiting.turn).toBe(2);
      const id = handle.workflowId;
      const { runId } = await handle.describe();
      const files = await tree(repo.dir);

      await expect(
        rewindSession(dyingAtStart(harness.ratchet, 'before'), id, 1, {
          force: false,
          workflowBundle: bundle(),
        }),
      ).rejects.toThrow(/killed before/);
      // Nothing happened: the same run, still running, still waiting for the same approval.
      const description = await handle.describe();
      expect({ runId: description.runId, status: description.status.name }).toEqual({
        runId,
        status: 'RUNNING',
      });
      const still = await handle.query(statusQuery);
      expect(still.status).toBe('awaiting_approval');
      expect(still.pendingApprovals.map((p) => p.callId)).toEqual(
        waiting.pendingApprovals.map((p) => p.callId),
      );
      expect(await tree(repo.dir)).toEqual(files);

      // Killed just after the request: the new run restores and waits without the CLI.
      await expect(
        rewindSession(dyingAtStart(harness.ratchet, 'after'), id, 0, {
          force: false,
          workflowBundle: bundle(),
        }),
      ).rejects.toThrow(/killed after/);
      const view = await rewoundTo(suite.harness, id, 0);
      expect(view.pendingApprovals).toEqual([]);
      await expect(lstat(path.join(repo.dir, 'c.txt'))).rejects.toThrow(/ENOENT/);
      // The old run ended with the new one: terminated by the server when the new run started.
      const old = harness.client.workflow.getHandle(id, runId);
      expect((await old.describe()).status.name).toBe('TERMINATED');
      const last = (await old.fetchHistory()).events!.at(-1)!;
      expect(last.workflowExecutionTerminatedEventAttributes?.reason).toBeTruthy();
      expect(await userView(repo)).toEqual(before);
      await handle.terminate('test over');
    });
  });
});

describe('pruning', () => {
  it('keeps the last K during a session, none after it ends; git gc --prune=now keeps every referenced one', async () => {
    const { harness } = suite;
    const repo = await busyRepo((files) => suite.tempRepo(files));
    const before = await userView(repo);
    const step = (n: number) => ({ command: ['bash', '-lc', `echo ${n} > step-${n}.txt`] });
    harness.model
      .call('shell', step(1))
      .call('shell', step(2))
      .call('shell', step(3))
      .call('shell', step(4))
      .reply('kept two')
      .call('shell', step(5))
      .reply('pruned all');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Four steps',
        workspace: repo.dir,
        approvalPolicy: 'never',
        checkpoints: { keep: 2 },
      });
      await handle.result();
      const id = handle.workflowId;
      const refs = async (session: string) =>
        (await repo.git('for-each-ref', '--format=%(refname:lstrip=3)', `refs/ratchet/${session}/`))
          .split('\n')
          .filter(Boolean);
      expect(await refs(id)).toEqual(['turn-3', 'turn-4']);
      // History still lists every turn; the pruned ones can no longer be restored, and say so.
      const { checkpoints } = await sessionCheckpoints(harness.ratchet, id);
      expect(checkpoints.map((c) => c.turn)).toEqual([0, 1, 2, 3, 4]);

      await repo.git('gc', '-q', '--prune=now');
      expect(await repo.git('fsck', '--no-dangling')).toBe('');
      const unreachable = await repo.git('cat-file', '-t', checkpoints[1]!.commit).catch(() => 'gone');
      expect(unreachable).toBe('gone');
      const refused = await ratchet('diff', id, '--turn', '1', '--to', '4');
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toMatch(/checkpoint [0-9a-f]{12} is not in the repository \(pruned/);

      // A kept one survives gc whole: rewinding to it restores it exactly.
      await rewindSession(harness.ratchet, id, 3, { force: false, workflowBundle: bundle() });
      await rewoundTo(suite.harness, id, 3);
      expect(await tree(repo.dir)).toEqual(await archived(repo.dir, checkpoints[3]!.commit));
      await handle.terminate('test over');

      // A session that prunes at its end leaves no ref, and gc takes its objects.
      const pruning = await harness.start({
        task: 'One step',
        workspace: repo.dir,
        approvalPolicy: 'never',
        checkpoints: { afterEnd: 'prune' },
      });
      expect(((await pruning.result()) as SessionResult).finalMessage).toBe('pruned all');
      expect(await refs(pruning.workflowId)).toEqual([]);
      const gone = (await sessionCheckpoints(harness.ratchet, pruning.workflowId)).checkpoints;
      expect(gone.map((c) => c.turn)).toEqual([0, 1]);
      await repo.git('gc', '-q', '--prune=now');
      expect(await repo.git('cat-file', '-t', gone[1]!.commit).catch(() => 'gone')).toBe('gone');
      // The first session's kept checkpoints are still there (and the state its rewind replaced).
      expect((await refs(id)).filter((ref) => ref.startsWith('turn-'))).toEqual(['turn-3', 'turn-4']);
      expect(await repo.git('cat-file', '-t', checkpoints[4]!.commit)).toBe('commit');
      expect(await userView(repo)).toEqual(before);
    });
  });
});

describe('bad input', () => {
  it('gets a clear error from every command, and changes nothing', async () => {
    const { harness } = suite;
    const repo = await busyRepo((files) => suite.tempRepo(files));
    const plain = await mkdtemp(path.join(os.tmpdir(), 'ratchet-not-git-'));
    harness.model.call('apply_patch', { input: ADD_C }).reply('done');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'Add c', workspace: repo.dir, approvalPolicy: 'never' });
      await handle.result();
      const id = handle.workflowId;
      await writeFile(path.join(repo.dir, 'mine.txt'), 'the user wrote this\n');
      const before = { view: await userView(repo), tree: await tree(repo.dir) };
      const bad: Array<[string[], RegExp]> = [
        [['rewind', 'no-such-session', '--turn', '1'], /no session with id no-such-session/],
        [['fork', 'no-such-session', '--turn', '1'], /no session with id no-such-session/],
        [['diff', 'no-such-session', '--turn', '1'], /no session with id no-such-session/],
        [['diff', id, '--turn', '5'], /has no checkpoint for turn 5 \(turns with one: 0, 1\)/],
        [['diff', id, '--turn', '1', '--to', '0'], /--to 0 is before --turn 1/],
        [['fork', id, '--turn', '1', '--repo', plain], /is not a git working copy/],
        [['fork', id, '--turn', '1', '--repo', path.join(repo.dir, 'nowhere')], /does not exist/],
        [
          ['rewind', id, '--turn', '0'],
          /changes made outside the session since its last checkpoint \(turn 1\): A mine\.txt/,
        ],
      ];
      for (const [args, error] of bad) {
        const result = await ratchet(...args);
        expect(result.exitCode, args.join(' ')).toBe(1);
        expect(result.stderr, args.join(' ')).toMatch(error);
      }
      expect(await userView(repo)).toEqual(before.view);
      expect(await tree(repo.dir)).toEqual(before.tree);
      expect((await handle.describe()).status.name).toBe('COMPLETED');
      expect(await repo.git('worktree', 'list', '--porcelain')).not.toContain('-fork-');
    });
    await rm(plain, { recursive: true, force: true });
  });
});
