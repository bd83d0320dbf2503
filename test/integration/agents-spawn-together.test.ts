/**
 * The spawns of one reply run together (marker `concurrent-spawns`): their worktrees are made at
 * once and their children started together, yet the names and results keep the reply's order,
 * the open-agents limit counts the spawns in flight, one spawn's failed worktree leaves the others
 * alone, and a worker killed while they are in flight leaves every child exactly once.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { statusQuery } from '../../src/shared/api/session-api.js';
import { refSafe } from '../../src/shared/tools/agent-tools.js';
import {
  call,
  leftovers,
  outputsOf,
  replaceLine,
  reply,
  resultWithin,
  say,
  sessionOf,
  treeModel,
  treeModelByTurn,
} from '../helpers/agent-scripts.js';
import type { TreeScript } from '../helpers/agent-scripts.js';
import { startChildWorker } from '../helpers/child-worker.js';
import { useHarness } from '../helpers/harness.js';
import { recordHistory } from '../helpers/histories.js';

const suite = useHarness();

type HistoryEvents = NonNullable<Awaited<ReturnType<WorkflowHandle['fetchHistory']>>['events']>;

async function eventsOf(handle: WorkflowHandle): Promise<HistoryEvents> {
  return (await handle.fetchHistory()).events ?? [];
}

/** The ids of the child workflows the parent's history starts, in order (each start once). */
function childStarts(events: HistoryEvents): string[] {
  return events.flatMap((e) => {
    const id = e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId;
    return id ? [id] : [];
  });
}

/** A marker event's details as text (a patch marker names its patch there). */
function markerText(event: HistoryEvents[number]): string {
  const details = event.markerRecordedEventAttributes?.details ?? {};
  return Object.values(details)
    .flatMap((payloads) => payloads.payloads ?? [])
    .map((payload) => Buffer.from(payload.data ?? new Uint8Array()).toString('utf8'))
    .join(' ');
}

function worktreeSchedules(events: HistoryEvents): number[] {
  return events.flatMap((e, i) =>
    e.activityTaskScheduledEventAttributes?.activityType?.name === 'createAgentWorktree' ? [i] : [],
  );
}

/** Nothing of the tree is left in the repository: only main, no worktree, no worktree folder. */
async function expectNoTreeLeft(repo: { dir: string; git(...args: string[]): Promise<string> }) {
  expect(await repo.git('branch', '--format=%(refname:short)')).toBe('main');
  expect(await repo.git('worktree', 'list', '--porcelain')).not.toContain('agent-');
  await expect(
    stat(path.join(path.dirname(repo.dir), '.ratchet-worktrees', path.basename(repo.dir))),
  ).rejects.toThrow();
}

describe('the spawns of one reply', () => {
  it('start together: four worktrees at once, four child starts in one task, ids in order', async () => {
    const { harness } = suite;
    const files = Object.fromEntries([1, 2, 3, 4].map((n) => [`f${n}.txt`, `part ${n}\n`]));
    const repo = await suite.tempRepo(files);
    const ids = ['agent-1', 'agent-2', 'agent-3', 'agent-4'];
    const script: TreeScript = {
      parent: [
        reply(
          ...ids.map((_, i) => call('spawn_agent', { message: `Upper-case f${i + 1}.txt` }, `s${i + 1}`)),
        ),
        reply(...ids.map((id, i) => call('wait', { ids: [id], timeout_ms: 60_000 }, `w${i + 1}`))),
        reply(...ids.map((id, i) => call('merge_agent', { id }, `m${i + 1}`))),
        reply(say('All four merged.')),
      ],
      ...Object.fromEntries(
        ids.map((id, i) => [
          id,
          [
            reply(
              call('apply_patch', { input: replaceLine(`f${i + 1}.txt`, `part ${i + 1}`, `PART ${i + 1}`) }),
            ),
            reply(say(`${id} done`)),
          ],
        ]),
      ),
    };
    const model = await harness.freshModel(treeModel(script));
    const { worker } = await harness.worker();
    const { result, events, agents } = await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Four parts, four agents',
        workspace: repo.dir,
        approvalPolicy: 'auto-edit',
        agents: { max: 4 },
      });
      const done = await resultWithin(handle, 60_000, model);
      await recordHistory(handle, 'agents-spawn-together');
      const status = await handle.query(statusQuery);
      return { result: done, events: await eventsOf(handle), agents: status.agents ?? [] };
    });
    expect(result.status).toBe('completed');
    expect(leftovers(script)).toEqual({});
    const outputs = outputsOf(model.requests, 'parent');
    ids.forEach((id, i) =>
      expect(JSON.parse(outputs.get(`s${i + 1}`)!)).toEqual({ agent_id: id, nickname: null }),
    );
    expect(agents.map((a) => a.name)).toEqual(ids);
    for (let n = 1; n <= 4; n++)
      expect(await readFile(path.join(repo.dir, `f${n}.txt`), 'utf8')).toBe(`PART ${n}\n`);

    // The marker, then every worktree scheduled before any child starts, and the four starts in
    // one workflow task (no task completes between the first start and the last).
    const marker = events.findIndex((e) => markerText(e).includes('concurrent-spawns'));
    expect(marker).toBeGreaterThan(-1);
    const worktrees = worktreeSchedules(events);
    expect(worktrees).toHaveLength(4);
    const starts = events.flatMap((e, i) =>
      e.startChildWorkflowExecutionInitiatedEventAttributes ? [i] : [],
    );
    expect(childStarts(events)).toEqual(
      ids.map((id) => expect.stringMatching(new RegExp(`/${id}$`)) as unknown),
    );
    expect(Math.max(...worktrees)).toBeLessThan(starts[0]!);
    expect(worktrees.at(-1)! - worktrees[0]!).toBe(3);
    expect(
      events.slice(starts[0], starts.at(-1)! + 1).filter((e) => e.workflowTaskCompletedEventAttributes),
    ).toHaveLength(0);
    // Each merge removed its ended child's worktree in the same activity (merge-then-remove).
    const activities = events.flatMap(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? [],
    );
    expect(activities.filter((name) => name === 'mergeAgentBranch')).toHaveLength(4);
    expect(activities.filter((name) => name === 'removeAgentWorktree')).toHaveLength(0);
    expect(markerText(events[marker]!)).toContain('concurrent-spawns');
    expect(events.some((e) => markerText(e).includes('merge-then-remove'))).toBe(true);
    await expectNoTreeLeft(repo);
  });

  it('count against the open-agents limit while in flight; a bad one takes no name and no place', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    const script: TreeScript = {
      parent: [
        reply(
          call('spawn_agent', { message: 'first' }, 's1'),
          call('spawn_agent', { message: '   ' }, 's2'),
          call('spawn_agent', { message: 'second' }, 's3'),
          call('spawn_agent', { message: 'third' }, 's4'),
        ),
        reply(call('wait', { ids: ['agent-1'], timeout_ms: 60_000 }, 'w1')),
        // One closed: the next spawn has a place again, and the next name.
        reply(call('close_agent', { id: 'agent-1' }, 'c1'), call('spawn_agent', { message: 'fourth' }, 's5')),
        reply(call('wait', { ids: ['agent-2'], timeout_ms: 60_000 }, 'w2')),
        reply(call('wait', { ids: ['agent-3'], timeout_ms: 60_000 }, 'w3')),
        reply(say('done')),
      ],
      'agent-1': [reply(say('one'))],
      'agent-2': [reply(say('two'))],
      'agent-3': [reply(say('three'))],
    };
    const model = await harness.freshModel(treeModel(script));
    const { worker } = await harness.worker();
    const { result, events, parentId } = await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Too many agents at once',
        workspace: repo.dir,
        approvalPolicy: 'auto-edit',
        agents: { max: 2 },
      });
      const done = await resultWithin(handle, 60_000, model);
      return { result: done, events: await eventsOf(handle), parentId: handle.workflowId };
    });
    expect(result.status).toBe('completed');
    expect(leftovers(script)).toEqual({});
    const outputs = outputsOf(model.requests, 'parent');
    expect(JSON.parse(outputs.get('s1')!)).toEqual({ agent_id: 'agent-1', nickname: null });
    expect(outputs.get('s2')).toMatch(/spawn_agent needs a task/);
    expect(JSON.parse(outputs.get('s3')!)).toEqual({ agent_id: 'agent-2', nickname: null });
    expect(outputs.get('s4')).toMatch(
      /at most 2 agents open at once, and 0 open plus the 2 spawned before this call in the same reply reach it: this spawn was refused/,
    );
    expect(JSON.parse(outputs.get('s5')!)).toEqual({ agent_id: 'agent-3', nickname: null });
    // Never more than two children: the refused spawn made no worktree and started nothing.
    expect(worktreeSchedules(events)).toHaveLength(3);
    expect(childStarts(events)).toEqual([1, 2, 3].map((n) => `${parentId}/agent-${n}`));
    await expectNoTreeLeft(repo);
  });

  it("go ahead when one of them cannot have its worktree; that one's failure is its own result", async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n', 'b.txt': 'beta\n' });
    const sessionId = `spawn-one-fails-${Date.now()}`;
    // Something already sits where agent-2's worktree would go: its worktree activity fails.
    const taken = path.join(
      path.dirname(repo.dir),
      '.ratchet-worktrees',
      path.basename(repo.dir),
      refSafe(sessionId),
      'agent-2',
    );
    await mkdir(taken, { recursive: true });
    await writeFile(path.join(taken, 'keep.txt'), 'not Ratchet’s\n');
    const script: TreeScript = {
      parent: [
        reply(
          call('spawn_agent', { message: 'Upper-case a.txt' }, 's1'),
          call('spawn_agent', { message: 'Never gets a worktree' }, 's2'),
          call('spawn_agent', { message: 'Upper-case b.txt' }, 's3'),
        ),
        reply(call('wait', { ids: ['agent-1'], timeout_ms: 60_000 }, 'w1')),
        reply(call('wait', { ids: ['agent-3'], timeout_ms: 60_000 }, 'w3')),
        reply(call('merge_agent', { id: 'agent-1' }, 'm1'), call('merge_agent', { id: 'agent-3' }, 'm3')),
        reply(say('Two of three.')),
      ],
      'agent-1': [
        reply(call('apply_patch', { input: replaceLine('a.txt', 'alpha', 'ALPHA') })),
        reply(say('a')),
      ],
      'agent-3': [
        reply(call('apply_patch', { input: replaceLine('b.txt', 'beta', 'BETA') })),
        reply(say('b')),
      ],
    };
    const model = await harness.freshModel(treeModel(script));
    const { worker } = await harness.worker();
    const { result, events } = await worker.runUntil(async () => {
      const { sessionId: id } = await harness.ratchet.start(
        harness.config({
          task: 'Three agents, one without a worktree',
          workspace: repo.dir,
          approvalPolicy: 'auto-edit',
          agents: { max: 3 },
        }),
        sessionId,
      );
      const handle = harness.client.workflow.getHandle(id);
      const done = await resultWithin(handle, 60_000, model);
      return { result: done, events: await eventsOf(handle) };
    });
    expect(result.status).toBe('completed');
    expect(leftovers(script)).toEqual({});
    const outputs = outputsOf(model.requests, 'parent');
    expect(JSON.parse(outputs.get('s1')!)).toEqual({ agent_id: 'agent-1', nickname: null });
    expect(outputs.get('s2')).toMatch(/^Could not create a worktree for the agent: .*already exists/);
    expect(JSON.parse(outputs.get('s3')!)).toEqual({ agent_id: 'agent-3', nickname: null });
    expect(childStarts(events)).toEqual([`${sessionId}/agent-1`, `${sessionId}/agent-3`]);
    expect(await readFile(path.join(repo.dir, 'a.txt'), 'utf8')).toBe('ALPHA\n');
    expect(await readFile(path.join(repo.dir, 'b.txt'), 'utf8')).toBe('BETA\n');
    // What was in the way is untouched; the tree's own branches and worktrees are gone.
    expect(await readFile(path.join(taken, 'keep.txt'), 'utf8')).toBe('not Ratchet’s\n');
    expect(await repo.git('branch', '--format=%(refname:short)')).toBe('main');
    expect(await repo.git('worktree', 'list', '--porcelain')).not.toContain('agent-');
  });
});

describe('a worker killed while the spawns of one reply are in flight', () => {
  it('leaves the parent with every child exactly once, none orphaned, and one merged result', async () => {
    const { harness } = suite;
    // Enough files that making three worktrees at once takes a while: the kill lands inside it.
    const files: Record<string, string> = { 'a.txt': 'alpha\n', 'b.txt': 'beta\n', 'c.txt': 'gamma\n' };
    for (let i = 0; i < 3000; i++) files[`bulk/d${i % 30}/f${i}.txt`] = `bulk file ${i}\n`;
    const repo = await suite.tempRepo(files);
    const ids = ['agent-1', 'agent-2', 'agent-3'];
    const letters = [
      ['a.txt', 'alpha', 'ALPHA'],
      ['b.txt', 'beta', 'BETA'],
      ['c.txt', 'gamma', 'GAMMA'],
    ] as const;
    const script: TreeScript = {
      parent: [
        reply(
          ...ids.map((_, i) => call('spawn_agent', { message: `Upper-case ${letters[i]![0]}` }, `s${i + 1}`)),
        ),
        reply(...ids.map((id, i) => call('wait', { ids: [id], timeout_ms: 120_000 }, `w${i + 1}`))),
        reply(...ids.map((id, i) => call('merge_agent', { id }, `m${i + 1}`))),
        reply(say('All three merged.')),
      ],
      ...Object.fromEntries(
        ids.map((id, i) => {
          const [file, from, to] = letters[i]!;
          return [id, [reply(call('apply_patch', { input: replaceLine(file, from, to) })), reply(say(id))]];
        }),
      ),
    };
    const model = await harness.freshModel(treeModelByTurn(script));
    const first = await startChildWorker({
      address: harness.address,
      taskQueue: harness.taskQueue,
      modelBaseUrl: model.baseUrl,
    });
    const handle = await harness.start({
      task: 'Three agents, a worker killed while they are spawned',
      workspace: repo.dir,
      approvalPolicy: 'auto-edit',
      agents: { max: 3 },
    });
    // The worktrees are scheduled: kill the worker at once (no shutdown).
    let atKill: HistoryEvents = [];
    await expect
      .poll(
        async () => {
          atKill = await eventsOf(handle);
          return worktreeSchedules(atKill).length;
        },
        { timeout: 30_000, interval: 10 },
      )
      .toBe(3);
    first.process.kill('SIGKILL');
    await first.process.catch(() => undefined);
    // The kill came while the spawns were in flight: not every child had been started yet.
    expect(childStarts(atKill).length).toBeLessThan(3);

    const { worker } = await harness.worker();
    const { result, events } = await worker.runUntil(async () => {
      const done = await resultWithin(handle, 90_000, model);
      await recordHistory(handle, 'agents-spawn-together-worker-killed');
      return { result: done, events: await eventsOf(handle) };
    });
    expect(result.status).toBe('completed');
    expect(result.finalMessage).toBe('All three merged.');
    // Each child started exactly once, under its own id, and ended; there is no fourth.
    expect(childStarts(events)).toEqual(ids.map((id) => `${handle.workflowId}/${id}`));
    for (const id of ids) {
      const child = await harness.client.workflow.getHandle(`${handle.workflowId}/${id}`).describe();
      expect(child.status.name).toBe('COMPLETED');
      expect(child.parentExecution?.workflowId).toBe(handle.workflowId);
    }
    await expect(
      harness.client.workflow.getHandle(`${handle.workflowId}/agent-4`).describe(),
    ).rejects.toThrow();
    const outputs = outputsOf(model.requests, 'parent');
    ids.forEach((id, i) =>
      expect(JSON.parse(outputs.get(`s${i + 1}`)!)).toEqual({ agent_id: id, nickname: null }),
    );
    for (const [file, , to] of letters)
      expect(await readFile(path.join(repo.dir, file), 'utf8')).toBe(`${to}\n`);
    // Each child's model saw its whole checkout: its part file and the bulk (a cut-off worktree is made again).
    expect(model.requests.filter((r) => sessionOf(r.body) !== 'parent').length).toBeGreaterThanOrEqual(6);
    expect(await repo.git('status', '--porcelain')).not.toMatch(/^ ?D /m);
    await expectNoTreeLeft(repo);
  });
});
