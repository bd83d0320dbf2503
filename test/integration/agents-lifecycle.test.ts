/**
 * Fan-out at its edges: worktrees kept on request, a grandchild (depth 2) and the depth limit
 * refusing a third level, a parent that answers while a child is still open (the parent closes
 * it: ParentClosePolicy.ABANDON plus the parent's own cancel), and a child whose worker is lost
 * for good (its worktree is on that worker): reported to the parent's `wait`, never dropped, and
 * the parent finishes.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ScriptStep, ScriptedModelOptions } from '../../src/testing/scripted-model.js';
import {
  call,
  leftovers,
  outputsOf,
  pathOf,
  replaceLine,
  reply,
  resultWithin,
  say,
  slowReply,
  toolsOf,
} from '../helpers/agent-scripts.js';
import type { TreeScript } from '../helpers/agent-scripts.js';
import { startChildWorker } from '../helpers/child-worker.js';
import { useHarness } from '../helpers/harness.js';
import { recordHistory } from '../helpers/histories.js';

const suite = useHarness();

function deepTreeModel(script: TreeScript): ScriptedModelOptions {
  return { responder: (request): ScriptStep | undefined => script[pathOf(request.body)]?.shift() };
}

describe('a tree two levels deep', () => {
  it('lets a child spawn a grandchild, refuses a third level, and merges the work up to the root', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    const script: TreeScript = {
      parent: [
        reply(call('spawn_agent', { message: 'Get a.txt upper-cased, by an agent of your own' }, 's1')),
        reply(call('wait', { ids: ['agent-1'], timeout_ms: 120_000 }, 'w1')),
        reply(call('merge_agent', { id: 'agent-1' }, 'm1')),
        reply(say('Done, two levels down.')),
      ],
      'agent-1': [
        reply(call('spawn_agent', { message: 'Upper-case a.txt' }, 'g1')),
        reply(call('wait', { ids: ['agent-1'], timeout_ms: 120_000 }, 'gw1')),
        reply(call('merge_agent', { id: 'agent-1' }, 'gm1')),
        reply(say('my agent did it')),
      ],
      'agent-1/agent-1': [
        // At the depth limit: spawn_agent is not offered, and a call to it is refused.
        reply(call('spawn_agent', { message: 'one level too many' }, 'x1')),
        reply(call('apply_patch', { input: replaceLine('a.txt', 'alpha', 'ALPHA') })),
        reply(say('upper-cased')),
      ],
    };
    const model = await harness.freshModel(deepTreeModel(script));
    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Two levels of agents',
        workspace: repo.dir,
        approvalPolicy: 'auto-edit',
        agents: { max: 1, maxDepth: 2 },
      });
      const done = await resultWithin(handle, 60_000);
      const grandchild = await harness.client.workflow
        .getHandle(`${handle.workflowId}/agent-1/agent-1`)
        .describe();
      expect(grandchild.status.name).toBe('COMPLETED');
      expect(grandchild.parentExecution?.workflowId).toBe(`${handle.workflowId}/agent-1`);
      return done;
    });
    expect(result).toMatchObject({ status: 'completed', finalMessage: 'Done, two levels down.' });
    expect(leftovers(script)).toEqual({});
    expect(toolsOf(model.requests, 'agent-1', pathOf)).toContain('spawn_agent');
    expect(toolsOf(model.requests, 'agent-1/agent-1', pathOf)).not.toContain('spawn_agent');
    expect(outputsOf(model.requests, 'agent-1/agent-1', pathOf).get('x1')).toMatch(/spawn_agent/);
    expect(JSON.parse(outputsOf(model.requests, 'agent-1', pathOf).get('gw1')!)).toMatchObject({
      status: { 'agent-1': { completed: 'upper-cased', files_changed: ['a.txt'] } },
    });
    expect(JSON.parse(outputsOf(model.requests, 'parent', pathOf).get('w1')!)).toMatchObject({
      status: { 'agent-1': { completed: 'my agent did it', files_changed: ['a.txt'] } },
    });
    expect(await readFile(path.join(repo.dir, 'a.txt'), 'utf8')).toBe('ALPHA\n');
    expect(await repo.git('branch', '--format=%(refname:short)')).toBe('main');
  });
});

describe('the parent answers while a child is still open', () => {
  it('cancels the child (abandoned by the server, closed by the parent) and removes its worktree', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    const script: TreeScript = {
      parent: [
        reply(call('spawn_agent', { message: 'Run a command' }, 's1')),
        // By then the child waits for approval of its command; the parent does not wait for it.
        { ...reply(say('I am done; the agent is not needed.')), delayMs: 2000 },
      ],
      'agent-1': [reply(call('shell', { command: ['bash', '-lc', 'echo hi > out.txt'] }, 'c1'))],
    };
    const model = await harness.freshModel(deepTreeModel(script));
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'Answer early', workspace: repo.dir, agents: { max: 1 } });
      const result = await resultWithin(handle, 40_000);
      expect(result.finalMessage).toBe('I am done; the agent is not needed.');
      const child = harness.client.workflow.getHandle(`${handle.workflowId}/agent-1`);
      await expect
        .poll(async () => (await child.describe()).status.name, { timeout: 20_000 })
        .toBe('CANCELLED');
    });
    void model;
    expect(leftovers(script)).toEqual({});
    await expect(readFile(path.join(repo.dir, 'out.txt'), 'utf8')).rejects.toThrow();
    expect(await repo.git('branch', '--format=%(refname:short)')).toBe('main');
    expect(await repo.git('worktree', 'list', '--porcelain')).not.toContain('agent-');
  });
});

describe('--keep-worktrees', () => {
  it("keeps the children's worktrees and branches after the session ends", async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    const script: TreeScript = {
      parent: [
        reply(call('spawn_agent', { message: 'Upper-case a.txt' }, 's1')),
        reply(call('wait', { ids: ['agent-1'], timeout_ms: 60_000 }, 'w1')),
        reply(say('Left the branch for you to look at.')),
      ],
      'agent-1': [
        reply(call('apply_patch', { input: replaceLine('a.txt', 'alpha', 'ALPHA') })),
        reply(say('done')),
      ],
    };
    await harness.freshModel(deepTreeModel(script));
    const { worker } = await harness.worker();
    const id = await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Keep the worktree',
        workspace: repo.dir,
        approvalPolicy: 'auto-edit',
        agents: { max: 1, keepWorktrees: true },
      });
      await resultWithin(handle, 40_000);
      return handle.workflowId;
    });
    expect(leftovers(script)).toEqual({});
    const branch = (await repo.git('branch', '--format=%(refname:short)'))
      .split('\n')
      .find((b) => b.endsWith('/agent-1'));
    expect(branch).toMatch(/^ratchet\/.+\/agent-1$/);
    const worktrees = await repo.git('worktree', 'list', '--porcelain');
    const tree = /^worktree (.+\/agent-1)$/m.exec(worktrees)?.[1];
    expect(tree).toBeDefined();
    // The child's work is there, on its branch; the parent's working tree did not get it (no merge).
    expect(await readFile(path.join(tree!, 'a.txt'), 'utf8')).toBe('ALPHA\n');
    expect(await readFile(path.join(repo.dir, 'a.txt'), 'utf8')).toBe('alpha\n');
    void id;
  });
});

describe("a child's worker lost for good", () => {
  it("is reported to the parent's wait (not dropped), and the parent finishes", async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    const script: TreeScript = {
      parent: [
        reply(call('spawn_agent', { message: 'Upper-case a.txt' }, 's1')),
        reply(call('wait', { ids: ['agent-1'], timeout_ms: 120_000 }, 'w1')),
        reply(say('The agent lost its worker; nothing merged.')),
      ],
      // The worker dies under the child's first model call; its patch then has no worker to run on.
      'agent-1': [
        slowReply(3000, call('apply_patch', { input: replaceLine('a.txt', 'alpha', 'ALPHA') })),
        slowReply(3000, call('apply_patch', { input: replaceLine('a.txt', 'alpha', 'ALPHA') })),
      ],
    };
    const model = await harness.freshModel(deepTreeModel(script));
    const doomed = await startChildWorker({
      address: harness.address,
      taskQueue: harness.taskQueue,
      modelBaseUrl: model.baseUrl,
      env: { RATCHET_WORKER_ID: 'doomed' },
    });
    const handle = await harness.start({
      task: 'One agent, one lost worker',
      workspace: repo.dir,
      approvalPolicy: 'auto-edit',
      agents: { max: 1 },
      limits: { toolScheduleToStartTimeoutMs: 3000 },
    });
    await expect
      .poll(() => model.requests.some((r) => pathOf(r.body) === 'agent-1'), { timeout: 30_000 })
      .toBe(true);
    doomed.process.kill('SIGKILL');
    await doomed.process.catch(() => undefined);
    // Another worker, with another id: it can run model calls, not the lost worker's tools.
    const { worker } = await harness.worker({ workerId: 'survivor' });
    const result = await worker.runUntil(() => resultWithin(handle, 90_000));
    expect(result).toMatchObject({
      status: 'completed',
      finalMessage: 'The agent lost its worker; nothing merged.',
    });
    const waited = JSON.parse(outputsOf(model.requests, 'parent', pathOf).get('w1')!) as {
      status: Record<string, unknown>;
      timed_out: boolean;
    };
    expect(waited.timed_out).toBe(false);
    expect(waited.status['agent-1']).toEqual({ idle: expect.stringMatching(/worker/) as unknown });
  });
});

describe('children merged and finished', () => {
  it('have their worktrees removed at once and leave the carried list at continue-as-new; wait still answers', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n', 'b.txt': 'beta\n' });
    const script: TreeScript = {
      parent: [
        reply(
          call('spawn_agent', { message: 'Upper-case a.txt' }, 's1'),
          call('spawn_agent', { message: 'Upper-case b.txt' }, 's2'),
        ),
        reply(call('wait', { ids: ['agent-1'], timeout_ms: 60_000 }, 'w1')),
        reply(call('wait', { ids: ['agent-2'], timeout_ms: 60_000 }, 'w2')),
        // A full context after the merges: the parent compacts and continues as new.
        {
          ...reply(
            call('merge_agent', { id: 'agent-1' }, 'm1'),
            call('merge_agent', { id: 'agent-2' }, 'm2'),
          ),
          usage: { inputTokens: 900, outputTokens: 5 },
        },
        reply(call('wait', { ids: ['agent-1'], timeout_ms: 10_000 }, 'w3')),
        reply(call('merge_agent', { id: 'agent-1' }, 'm3')),
        reply(say('Both merged once.')),
      ],
      'agent-1': [
        reply(call('apply_patch', { input: replaceLine('a.txt', 'alpha', 'ALPHA') })),
        reply(say('a')),
      ],
      'agent-2': [
        reply(call('apply_patch', { input: replaceLine('b.txt', 'beta', 'BETA') })),
        reply(say('b')),
      ],
    };
    const model = await harness.freshModel(deepTreeModel(script));
    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Merge, continue as new, ask again',
        workspace: repo.dir,
        approvalPolicy: 'auto-edit',
        agents: { max: 2 },
        model: { name: 'scripted-model', contextWindow: 1000, compactAtRatio: 0.8 },
      });
      const done = await resultWithin(handle, 60_000);
      // The second run's status lists no children: both were retired when it began, and counted.
      const status = await harness.ratchet.status(handle.workflowId);
      expect(status.agents ?? []).toEqual([]);
      expect(status.agentsRetired).toBe(2);
      await recordHistory(handle, 'agents-retired');
      return done;
    });
    expect(result).toMatchObject({ status: 'completed', runs: 2 });
    expect(leftovers(script)).toEqual({});
    const outputs = outputsOf(model.requests, 'parent', pathOf);
    expect(JSON.parse(outputs.get('w3')!)).toMatchObject({
      status: { 'agent-1': { completed: 'a', files_changed: ['a.txt'] } },
      timed_out: false,
    });
    expect(outputs.get('m3')).toMatch(/Agent agent-1 was merged and has ended; its worktree is gone/);
    expect(await readFile(path.join(repo.dir, 'a.txt'), 'utf8')).toBe('ALPHA\n');
    expect(await readFile(path.join(repo.dir, 'b.txt'), 'utf8')).toBe('BETA\n');
    expect(await repo.git('branch', '--format=%(refname:short)')).toBe('main');
    expect(await repo.git('worktree', 'list', '--porcelain')).not.toContain('agent-');
  });
});
