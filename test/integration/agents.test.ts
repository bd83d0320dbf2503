/**
 * Fan-out end to end: a session spawns child sessions (child workflows, each in a worktree of
 * the repository on its own branch), waits for them, merges their branches back, and cleans up;
 * conflicts, approvals anywhere in the tree, close_agent, continue-as-new and a lost worker.
 * One scripted model answers every session of the tree, each from its own script.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RatchetParent } from '../../src/shared/api/search-attributes.js';
import {
  call,
  leftovers,
  repliesIn,
  outputsOf,
  replaceLine,
  reply,
  resultWithin,
  say,
  sessionOf,
  slowReply,
  toolsOf,
  treeModel,
  treeModelByTurn,
} from '../helpers/agent-scripts.js';
import { startChildWorker } from '../helpers/child-worker.js';
import type { TreeScript } from '../helpers/agent-scripts.js';
import { useHarness } from '../helpers/harness.js';
import { recordHistory } from '../helpers/histories.js';

const suite = useHarness();

describe('a session that fans out', () => {
  it('spawns two children, waits, merges both branches and removes the worktrees', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n', 'b.txt': 'beta\n' });
    const head = await repo.git('rev-parse', 'HEAD');
    const script: TreeScript = {
      parent: [
        reply(
          call('spawn_agent', { message: 'Change alpha to ALPHA in a.txt' }, 's1'),
          call('spawn_agent', { message: 'Change beta to BETA in b.txt' }, 's2'),
        ),
        reply(call('wait', { ids: ['agent-1'], timeout_ms: 60_000 }, 'w1')),
        reply(call('wait', { ids: ['agent-2'], timeout_ms: 60_000 }, 'w2')),
        reply(call('merge_agent', { id: 'agent-1' }, 'm1'), call('merge_agent', { id: 'agent-2' }, 'm2')),
        reply(say('Both files are upper case now.')),
      ],
      'agent-1': [
        reply(call('apply_patch', { input: replaceLine('a.txt', 'alpha', 'ALPHA') })),
        reply(say('a.txt done')),
      ],
      'agent-2': [
        reply(call('apply_patch', { input: replaceLine('b.txt', 'beta', 'BETA') })),
        reply(say('b.txt done')),
      ],
    };
    const model = await harness.freshModel(treeModel(script));
    const { worker } = await harness.worker();
    let sessionId = '';
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Upper-case both files, one agent each',
        workspace: repo.dir,
        approvalPolicy: 'auto-edit',
        agents: { max: 2 },
      });
      sessionId = handle.workflowId;
      const done = await resultWithin(handle, 40_000, model);
      await recordHistory(handle, 'agents-fan-out');
      await recordHistory(harness.client.workflow.getHandle(`${sessionId}/agent-1`), 'agents-fan-out-child');
      return done;
    });

    expect(result.status).toBe('completed');
    expect(result.finalMessage).toBe('Both files are upper case now.');
    expect(leftovers(script)).toEqual({});
    expect(await readFile(path.join(repo.dir, 'a.txt'), 'utf8')).toBe('ALPHA\n');
    expect(await readFile(path.join(repo.dir, 'b.txt'), 'utf8')).toBe('BETA\n');
    // The parent's repository did not move: the merged work is an uncommitted change.
    expect(await repo.git('rev-parse', 'HEAD')).toBe(head);
    expect(result.filesChanged.map((f) => f.path)).toEqual(['a.txt', 'b.txt']);

    const outputs = outputsOf(model.requests, 'parent');
    expect(JSON.parse(outputs.get('s1')!)).toEqual({ agent_id: 'agent-1', nickname: null });
    const waited = JSON.parse(outputs.get('w1')!) as { status: Record<string, unknown>; timed_out: boolean };
    expect(waited).toEqual({
      status: {
        'agent-1': {
          completed: 'a.txt done',
          branch: expect.stringMatching(/^ratchet\/.+\/agent-1$/) as unknown,
          files_changed: ['a.txt'],
        },
      },
      timed_out: false,
    });
    expect(outputs.get('m1')).toMatch(
      /^Merged ratchet\/.+\/agent-1 into your workspace\. Files changed: a\.txt\./,
    );
    expect(outputs.get('m2')).toMatch(/Files changed: b\.txt\./);

    // The parent was offered the agent tools; a child at the depth limit was not.
    expect(toolsOf(model.requests, 'parent')).toEqual(
      expect.arrayContaining(['spawn_agent', 'send_input', 'wait', 'close_agent', 'merge_agent']),
    );
    expect(toolsOf(model.requests, 'agent-1')).not.toContain('spawn_agent');

    // Worktrees and branches are gone with the session.
    const branches = await repo.git('branch', '--format=%(refname:short)');
    expect(branches.trim()).toBe('main');
    expect(await repo.git('worktree', 'list', '--porcelain')).not.toContain('agent-');
    await expect(
      stat(path.join(path.dirname(repo.dir), '.ratchet-worktrees', path.basename(repo.dir))),
    ).rejects.toThrow();

    // The children were child workflows with derived ids, and say whose they are.
    const child = await harness.client.workflow.getHandle(`${sessionId}/agent-1`).describe();
    expect(child.status.name).toBe('COMPLETED');
    expect(child.parentExecution?.workflowId).toBe(sessionId);
    expect(child.typedSearchAttributes.get(RatchetParent)).toBe(sessionId);
  });
});

describe('the tree', () => {
  it('reports a conflict when two children edited the same lines; the rest of the merge lands', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'shared.txt': 'one\ntwo\nthree\n' });
    const script: TreeScript = {
      parent: [
        reply(
          call('spawn_agent', { message: 'Say 2 in shared.txt' }, 's1'),
          call('spawn_agent', { message: 'Say II' }, 's2'),
        ),
        reply(call('wait', { ids: ['agent-1'] }, 'w1')),
        reply(call('wait', { ids: ['agent-2'] }, 'w2')),
        reply(call('merge_agent', { id: 'agent-1' }, 'm1'), call('merge_agent', { id: 'agent-2' }, 'm2')),
        reply(say('Merged, with one conflict to resolve.')),
      ],
      'agent-1': [
        reply(call('apply_patch', { input: replaceLine('shared.txt', 'two', '2') })),
        reply(say('2')),
      ],
      'agent-2': [
        reply(
          call('apply_patch', {
            input: [
              '*** Begin Patch',
              '*** Update File: shared.txt',
              '-two',
              '+II',
              '*** Add File: roman.txt',
              '+II',
              '*** End Patch',
            ].join('\n'),
          }),
        ),
        reply(say('II')),
      ],
    };
    const model = await harness.freshModel(treeModel(script));
    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Two agents, same line',
        workspace: repo.dir,
        approvalPolicy: 'auto-edit',
        agents: { max: 2 },
      });
      const done = await resultWithin(handle, 40_000, model);
      await recordHistory(handle, 'agents-conflict');
      return done;
    });
    expect(result.status).toBe('completed');
    expect(leftovers(script)).toEqual({});
    const outputs = outputsOf(model.requests, 'parent');
    expect(outputs.get('m1')).toMatch(/Files changed: shared\.txt\./);
    expect(outputs.get('m2')).toMatch(/with conflicts in: shared\.txt\. .*conflict markers/);
    const shared = await readFile(path.join(repo.dir, 'shared.txt'), 'utf8');
    expect(shared).toMatch(/^one\n<<<<<<< [^\n]*\n2\n=======\nII\n>>>>>>> [^\n]*\nthree\n$/);
    expect(await readFile(path.join(repo.dir, 'roman.txt'), 'utf8')).toBe('II\n');
  });

  it("asks for a child's command through the parent's id while the parent waits", async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    const script: TreeScript = {
      parent: [
        reply(call('spawn_agent', { message: 'Write out.txt' }, 's1')),
        reply(call('wait', { ids: ['agent-1'], timeout_ms: 120_000 }, 'w1')),
        reply(say('The agent wrote out.txt.')),
      ],
      'agent-1': [
        reply(call('shell', { command: ['bash', '-lc', 'echo hi > out.txt'] }, 'c1')),
        reply(say('wrote it')),
      ],
    };
    const model = await harness.freshModel(treeModel(script));
    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'One agent, one command',
        workspace: repo.dir,
        agents: { max: 1 },
      });
      // The child's command waits for a person; the parent's status shows it, the tree lists it.
      await expect
        .poll(
          async () => (await harness.ratchet.treeApprovals(handle.workflowId)).map((p) => p.approval.callId),
          {
            timeout: 30_000,
          },
        )
        .toEqual(['c1']);
      const parent = await harness.ratchet.status(handle.workflowId);
      expect(parent.status).toBe('running');
      expect(parent.agents).toMatchObject([{ name: 'agent-1', status: 'awaiting_approval' }]);
      const ack = await harness.ratchet.decide(handle.workflowId, 'approve', { by: 'test' });
      expect(ack).toMatchObject({ callId: 'c1', decision: 'approve' });
      const done = await resultWithin(handle, 40_000, model);
      await recordHistory(handle, 'agents-approval-in-tree');
      await recordHistory(
        harness.client.workflow.getHandle(`${handle.workflowId}/agent-1`),
        'agents-approval-in-tree-child',
      );
      return done;
    });
    expect(result.status).toBe('completed');
    expect(leftovers(script)).toEqual({});
    expect(JSON.parse(outputsOf(model.requests, 'parent').get('w1')!)).toMatchObject({
      status: { 'agent-1': { completed: 'wrote it', files_changed: ['out.txt'] } },
      timed_out: false,
    });
  });

  it('closes a running child: it is cancelled, and its command never runs', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    const script: TreeScript = {
      parent: [
        reply(call('spawn_agent', { message: 'Write out.txt' }, 's1')),
        // By then the child waits for approval of its command.
        slowReply(3000, call('close_agent', { id: 'agent-1' }, 'x1')),
        reply(say('Closed it.')),
      ],
      'agent-1': [reply(call('shell', { command: ['bash', '-lc', 'echo hi > out.txt'] }, 'c1'))],
    };
    const model = await harness.freshModel(treeModel(script));
    const { worker } = await harness.worker();
    let sessionId = '';
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Start and close',
        workspace: repo.dir,
        agents: { max: 1 },
      });
      sessionId = handle.workflowId;
      const done = await resultWithin(handle, 40_000, model);
      await recordHistory(handle, 'agents-close');
      await recordHistory(harness.client.workflow.getHandle(`${sessionId}/agent-1`), 'agents-close-child');
      return done;
    });
    expect(result.status).toBe('completed');
    expect(leftovers(script)).toEqual({});
    expect(JSON.parse(outputsOf(model.requests, 'parent').get('x1')!)).toEqual({
      previous_status: { running: 'waiting for a person to approve 1 call(s)' },
    });
    const child = await harness.client.workflow.getHandle(`${sessionId}/agent-1`).describe();
    expect(child.status.name).toBe('CANCELLED');
    expect(await repo.git('branch', '--format=%(refname:short)')).toBe('main');
  });

  it('keeps its children across continue-as-new and merges what they did', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    const script: TreeScript = {
      parent: [
        // A full context: the parent compacts and continues as new while the child works.
        { ...reply(call('spawn_agent', { message: 'Upper-case a.txt' }, 's1')), usage: { inputTokens: 900 } },
        reply(call('wait', { ids: ['agent-1'], timeout_ms: 60_000 }, 'w1')),
        reply(call('merge_agent', { id: 'agent-1' }, 'm1')),
        reply(say('Merged after continuing as new.')),
      ],
      'agent-1': [
        slowReply(2000, call('apply_patch', { input: replaceLine('a.txt', 'alpha', 'ALPHA') })),
        reply(say('done')),
      ],
    };
    const model = await harness.freshModel(treeModel(script));
    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Fan out, then continue as new',
        workspace: repo.dir,
        approvalPolicy: 'auto-edit',
        agents: { max: 1 },
        model: { name: 'scripted-model', contextWindow: 1000, compactAtRatio: 0.8 },
      });
      const done = await resultWithin(handle, 40_000, model);
      await recordHistory(handle, 'agents-continue-as-new');
      return done;
    });
    expect(result).toMatchObject({ status: 'completed', runs: 2, compactions: 1 });
    expect(leftovers(script)).toEqual({});
    expect(JSON.parse(outputsOf(model.requests, 'parent').get('w1')!)).toMatchObject({
      status: { 'agent-1': { completed: 'done', files_changed: ['a.txt'] } },
    });
    expect(await readFile(path.join(repo.dir, 'a.txt'), 'utf8')).toBe('ALPHA\n');
  });
});

describe('the parent', () => {
  it('cancelled, cancels every child and removes their worktrees', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    const script: TreeScript = {
      parent: [
        reply(
          call('spawn_agent', { message: 'Write one.txt' }, 's1'),
          call('spawn_agent', { message: 'Write two.txt' }, 's2'),
        ),
        reply(call('wait', { ids: ['agent-1', 'agent-2'], timeout_ms: 300_000 }, 'w1')),
      ],
      'agent-1': [reply(call('shell', { command: ['bash', '-lc', 'echo 1 > one.txt'] }, 'c1'))],
      'agent-2': [reply(call('shell', { command: ['bash', '-lc', 'echo 2 > two.txt'] }, 'c2'))],
    };
    const model = await harness.freshModel(treeModel(script));
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Two commands, then cancelled',
        workspace: repo.dir,
        agents: { max: 2 },
      });
      await expect
        .poll(async () => (await harness.ratchet.treeApprovals(handle.workflowId)).length, {
          timeout: 30_000,
        })
        .toBe(2);
      // Both children are listed under their parent.
      await expect
        .poll(
          async () =>
            (await harness.ratchet.list({ limit: 200 })).filter((s) => s.parent === handle.workflowId).length,
          {
            timeout: 30_000,
          },
        )
        .toBe(2);
      await harness.ratchet.cancel(handle.workflowId);
      await expect(handle.result()).rejects.toThrow();
      for (const name of ['agent-1', 'agent-2']) {
        await expect
          .poll(
            async () =>
              (await harness.client.workflow.getHandle(`${handle.workflowId}/${name}`).describe()).status
                .name,
            {
              timeout: 20_000,
            },
          )
          .toBe('CANCELLED');
      }
      await recordHistory(handle, 'agents-parent-cancelled');
    });
    void model;
    expect(leftovers(script)).toEqual({});
    expect(await repo.git('branch', '--format=%(refname:short)')).toBe('main');
    expect(await repo.git('worktree', 'list', '--porcelain')).not.toContain('agent-');
  });
});

describe('a worker killed while children run', () => {
  it('is replaced by one with the same id, and the tree finishes with one merged result', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n', 'b.txt': 'beta\n' });
    const script: TreeScript = {
      parent: [
        reply(
          call('spawn_agent', { message: 'Upper-case a.txt' }, 's1'),
          call('spawn_agent', { message: 'Upper-case b.txt' }, 's2'),
        ),
        reply(call('wait', { ids: ['agent-1'], timeout_ms: 120_000 }, 'w1')),
        reply(call('wait', { ids: ['agent-2'], timeout_ms: 120_000 }, 'w2')),
        reply(call('merge_agent', { id: 'agent-1' }, 'm1'), call('merge_agent', { id: 'agent-2' }, 'm2')),
        reply(say('Both merged.')),
      ],
      // Each child's first model call is slow: the worker dies under both.
      'agent-1': [
        slowReply(4000, call('apply_patch', { input: replaceLine('a.txt', 'alpha', 'ALPHA') })),
        reply(say('a')),
      ],
      'agent-2': [
        slowReply(4000, call('apply_patch', { input: replaceLine('b.txt', 'beta', 'BETA') })),
        reply(say('b')),
      ],
    };
    const model = await harness.freshModel(treeModelByTurn(script));
    const first = await startChildWorker({
      address: harness.address,
      taskQueue: harness.taskQueue,
      modelBaseUrl: model.baseUrl,
    });
    const handle = await harness.start({
      task: 'Two agents, one lost worker',
      workspace: repo.dir,
      approvalPolicy: 'auto-edit',
      agents: { max: 2 },
    });
    // Both children are in their first model call: the worker is killed (no shutdown).
    await expect
      .poll(() => new Set(model.requests.map((r) => sessionOf(r.body))).size, { timeout: 30_000 })
      .toBe(3);
    first.process.kill('SIGKILL');
    await first.process.catch(() => undefined);

    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      const done = await resultWithin(handle, 60_000, model);
      await recordHistory(handle, 'agents-worker-killed');
      return done;
    });
    expect(result.status).toBe('completed');
    expect(result.finalMessage).toBe('Both merged.');
    expect(await readFile(path.join(repo.dir, 'a.txt'), 'utf8')).toBe('ALPHA\n');
    expect(await readFile(path.join(repo.dir, 'b.txt'), 'utf8')).toBe('BETA\n');
    // The children's first calls were asked again after the worker died.
    expect(
      model.requests.filter((r) => sessionOf(r.body) === 'agent-1' && repliesIn(r.body) === 0).length,
    ).toBeGreaterThan(1);
    expect(await repo.git('branch', '--format=%(refname:short)')).toBe('main');
  });
});

describe('an interrupt of the parent', () => {
  it('reaches its children; send_input then starts an idle child again', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    const script: TreeScript = {
      parent: [
        reply(call('spawn_agent', { message: 'Run a command' }, 's1')),
        reply(call('wait', { ids: ['agent-1'], timeout_ms: 300_000 }, 'w1')),
        // After the person's message:
        reply(call('send_input', { id: 'agent-1', message: 'Skip the command and finish.' }, 'i1')),
        reply(call('wait', { ids: ['agent-1'], timeout_ms: 60_000 }, 'w2')),
        reply(say('The agent finished without the command.')),
      ],
      'agent-1': [
        reply(call('shell', { command: ['bash', '-lc', 'echo hi > out.txt'] }, 'c1')),
        reply(say('skipped it')),
      ],
    };
    const model = await harness.freshModel(treeModel(script));
    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Interrupt a tree',
        workspace: repo.dir,
        agents: { max: 1 },
      });
      const child = `${handle.workflowId}/agent-1`;
      await expect
        .poll(async () => (await harness.ratchet.treeApprovals(handle.workflowId)).length, {
          timeout: 30_000,
        })
        .toBe(1);
      await expect.poll(() => model.requests.filter((r) => sessionOf(r.body) === 'parent').length).toBe(2);
      await harness.ratchet.interrupt(handle.workflowId, 'stop everything');
      await expect
        .poll(async () => (await harness.ratchet.status(child)).status, { timeout: 20_000 })
        .toBe('idle');
      await expect.poll(async () => (await harness.ratchet.status(handle.workflowId)).status).toBe('idle');
      expect((await harness.ratchet.status(handle.workflowId)).agents).toMatchObject([
        { name: 'agent-1', status: 'idle' },
      ]);
      await harness.ratchet.send(handle.workflowId, 'Tell the agent to skip the command.');
      return resultWithin(handle, 40_000, model);
    });
    expect(result.status).toBe('completed');
    expect(leftovers(script)).toEqual({});
    const outputs = outputsOf(model.requests, 'parent');
    expect(JSON.parse(outputs.get('i1')!)).toHaveProperty('submission_id');
    expect(JSON.parse(outputs.get('w2')!)).toMatchObject({
      status: { 'agent-1': { completed: 'skipped it' } },
    });
  });
});
