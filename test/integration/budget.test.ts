/**
 * The token budget (`--budget-tokens`, src/workflows/budget.ts): a session, or a whole tree, that
 * has spent its budget parks at its next turn boundary, shows `awaiting_budget`, runs nothing
 * while parked (across a lost worker and continue-as-new), and goes on or comes to rest when a
 * person decides — from the client (the CLI's path) at any session of the tree, or with the Web
 * UI's signal sent to a child. Directives that try to break it (late, repeated, malformed by hand,
 * to a child started while parked or continued as new) neither wedge a child nor free a parked one.
 */
import { describe, expect, it } from 'vitest';
import { call, leftovers, reply, resultWithin, say, sessionOf, treeModel } from '../helpers/agent-scripts.js';
import type { TreeScript } from '../helpers/agent-scripts.js';
import { useHarness } from '../helpers/harness.js';
import { recordHistory } from '../helpers/histories.js';

const suite = useHarness();

const read = () => reply(call('read_file', { file_path: 'a.txt' }));

describe('a session with a token budget', () => {
  it('parks when it is spent, keeps parked across a lost worker, stops, parks again, and goes on with more', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    const script: TreeScript = {
      // The first reply fills the context: the session compacts and continues as new, and its
      // budget goes with it. Each later reply costs 15 tokens, so it parks before the last one.
      parent: [
        { ...read(), usage: { inputTokens: 900, outputTokens: 5 } },
        ...Array.from({ length: 7 }, read),
        read(),
        reply(say('done within the budget')),
      ],
    };
    const model = await harness.freshModel(treeModel(script));
    const handle = await harness.start({
      task: 'Read a.txt many times',
      workspace: repo.dir,
      approvalPolicy: 'auto-edit',
      budget: { tokens: 1000 },
      model: { name: 'scripted-model', contextWindow: 1000, compactAtRatio: 0.8 },
    });
    const id = handle.workflowId;
    const first = await harness.worker();
    await first.worker.runUntil(async () => {
      // Nothing to stop while the budget holds.
      await expect(harness.ratchet.budget(id, { stop: true })).rejects.toThrow(
        /nothing to stop: the tree has spent \d+ of 1000 tokens and is not waiting for a budget decision/,
      );
      await expect
        .poll(async () => (await harness.ratchet.status(id)).status, { timeout: 30_000 })
        .toBe('awaiting_budget');
    });

    // The worker is gone; another one replays the history into the same wait.
    const requestsWhenParked = model.requests.length;
    const second = await harness.worker();
    const result = await second.worker.runUntil(async () => {
      const parked = await harness.ratchet.status(id);
      expect(parked).toMatchObject({
        status: 'awaiting_budget',
        runs: 2,
        compactions: 1,
        budget: { limit: 1000, parked: true, decidedAt: null },
      });
      expect(parked.budget!.spent).toBe(parked.usage.totalTokens);
      expect(parked.budget!.spent).toBeGreaterThanOrEqual(1000);
      // The search attribute says so: `ratchet list --status awaiting_budget` finds it.
      await expect
        .poll(async () =>
          (await harness.ratchet.list({ status: 'awaiting_budget', limit: 200 })).map((s) => s.sessionId),
        )
        .toContain(id);

      // Bad input is refused with a message, and changes nothing.
      await expect(harness.ratchet.budget(id, { add: -5 })).rejects.toThrow(/add must be more than 0 tokens/);
      await expect(harness.ratchet.budget(id, { add: 2.5 })).rejects.toThrow(/add must be a whole number/);
      await expect(harness.ratchet.budget(id, { add: 'lots' as unknown as number })).rejects.toThrow(
        /add must be a number of tokens/,
      );
      await expect(harness.ratchet.budget('ratchet-no-such-session', { add: 5 })).rejects.toThrow(
        /no session with id ratchet-no-such-session/,
      );
      // The update's own validator refuses what a client did not check.
      await expect(handle.executeUpdate('budget', { args: [{ add: 5, stop: true }] })).rejects.toMatchObject({
        cause: { message: expect.stringMatching(/malformed budget decision .*give either/) as unknown },
      });
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(model.requests.length).toBe(requestsWhenParked);

      // Stop: the session comes to rest, its conversation kept.
      await harness.ratchet.budget(id, { stop: true });
      const stopped = await harness.ratchet.status(id);
      expect(stopped.status).toBe('idle');
      expect(stopped.notice).toMatch(/stopped at the token budget/);
      // A message while the budget is still spent: it parks again rather than spending more.
      await harness.ratchet.send(id, 'Go on.');
      await expect.poll(async () => (await harness.ratchet.status(id)).status).toBe('awaiting_budget');
      expect(model.requests.length).toBe(requestsWhenParked);

      const added = await harness.ratchet.budget(id, { add: 10_000 });
      expect(added).toMatchObject({ sessionId: id, limit: 11_000 });
      const done = await resultWithin(handle, 30_000);
      await recordHistory(handle, 'budget-single');
      return done;
    });
    expect(result).toMatchObject({ status: 'completed', finalMessage: 'done within the budget', runs: 2 });
    expect(leftovers(script)).toEqual({});
  });
});

describe('a tree with a token budget', () => {
  it('parks every session when the tree has spent it; a signal to a child (the Web UI) lets the tree go on', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    const childScript = (name: string) => [...Array.from({ length: 7 }, read), reply(say(`${name} done`))];
    const script: TreeScript = {
      parent: [
        reply(
          call('spawn_agent', { message: 'Read a.txt again and again' }, 's1'),
          call('spawn_agent', { message: 'Read a.txt again and again, too' }, 's2'),
        ),
        reply(call('wait', { ids: ['agent-1'], timeout_ms: 300_000 }, 'w1')),
        reply(call('wait', { ids: ['agent-2'], timeout_ms: 300_000 }, 'w2')),
        reply(say('Both agents finished.')),
      ],
      'agent-1': childScript('agent-1'),
      'agent-2': childScript('agent-2'),
    };
    const model = await harness.freshModel(treeModel(script, 150));
    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Two readers under one budget',
        workspace: repo.dir,
        approvalPolicy: 'auto-edit',
        agents: { max: 2 },
        budget: { tokens: 60 },
      });
      const id = handle.workflowId;
      const children = [`${id}/agent-1`, `${id}/agent-2`];
      // Every session of the tree parks, the root first.
      await expect
        .poll(
          async () =>
            [
              (await harness.ratchet.status(id)).status,
              ...(await Promise.all(
                children.map(
                  async (child) => (await harness.ratchet.status(child).catch(() => null))?.status,
                ),
              )),
            ].join(' '),
          { timeout: 30_000 },
        )
        .toBe('awaiting_budget awaiting_budget awaiting_budget');
      const parkedAt = model.requests.length;
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(model.requests.length).toBe(parkedAt);
      // The root counts the tree: its own usage and what each child last reported.
      const root = await harness.ratchet.status(id);
      const childUsage = await Promise.all(
        children.map(async (child) => (await harness.ratchet.status(child)).usage.totalTokens),
      );
      expect(root.budget).toMatchObject({ limit: 60, parked: true, decidedAt: null });
      expect(root.budget!.spent).toBe(root.usage.totalTokens + childUsage[0]! + childUsage[1]!);
      expect(root.budget!.spent).toBeGreaterThanOrEqual(60);
      expect(root.agents).toMatchObject([
        { name: 'agent-1', status: 'awaiting_budget' },
        { name: 'agent-2', status: 'awaiting_budget' },
      ]);
      // A child's budget view names where decisions are made; its update refuses and says so.
      expect((await harness.ratchet.status(children[0]!)).budget).toMatchObject({
        parked: true,
        decidedAt: id,
      });
      await expect(
        harness.client.workflow.getHandle(children[0]!).executeUpdate('budget', { args: [{ add: 5 }] }),
      ).rejects.toMatchObject({
        cause: {
          message: expect.stringMatching(/budget decisions for this tree are made at its root/) as unknown,
        },
      });
      // Asked at a child, the client answers for the tree's root.
      expect(await harness.ratchet.budget(children[0]!)).toMatchObject({ sessionId: id, parked: true });
      // The Web UI's "Send Signal" to a child: `budget` with {"add": 1000} reaches the root.
      await harness.client.workflow.getHandle(children[1]!).signal('budget', { add: 1000 });
      const done = await resultWithin(handle, 40_000);
      await recordHistory(handle, 'budget-tree');
      await recordHistory(harness.client.workflow.getHandle(children[0]!), 'budget-tree-child');
      expect((await harness.ratchet.status(id)).budget).toMatchObject({ limit: 1060 });
      return done;
    });
    expect(result).toMatchObject({ status: 'completed', finalMessage: 'Both agents finished.' });
    expect(leftovers(script)).toEqual({});
    expect(model.requests.filter((r) => sessionOf(r.body) === 'agent-1')).toHaveLength(8);
  });
});

describe("a tree's park and resume directives", () => {
  it('ignores late, repeated and malformed directives; parks a child started while parked; carries seq across continue-as-new', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    const script: TreeScript = {
      // agent-2 is spawned after a command that waits for a person, so it starts while the tree is parked.
      parent: [
        reply(
          call('spawn_agent', { message: 'Read a.txt again and again' }, 's1'),
          call('shell', { command: ['touch', 'asked'] }, 'ask'),
          call('spawn_agent', { message: 'Read a.txt once' }, 's2'),
        ),
        reply(call('wait', { ids: ['agent-1'], timeout_ms: 300_000 }, 'w1')),
        reply(call('wait', { ids: ['agent-2'], timeout_ms: 300_000 }, 'w2')),
        reply(say('Both agents finished.')),
      ],
      // After the tree goes on, agent-1's big reply fills its context: it compacts and continues as new.
      'agent-1': [
        ...Array.from({ length: 6 }, read),
        { ...read(), usage: { inputTokens: 900, outputTokens: 5 } },
        ...Array.from({ length: 8 }, read),
        reply(say('agent-1 done')),
      ],
      'agent-2': [read(), reply(say('agent-2 done'))],
    };
    const model = await harness.freshModel(treeModel(script, 150));
    const { worker } = await harness.worker();
    const requestsOf = (who: string) => model.requests.filter((r) => sessionOf(r.body) === who).length;
    await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Directives that try to break the budget',
        workspace: repo.dir,
        approvalPolicy: 'auto-edit',
        agents: { max: 2 },
        budget: { tokens: 60 },
        model: { name: 'scripted-model', contextWindow: 1000, compactAtRatio: 0.8 },
      });
      const id = handle.workflowId;
      const [one, two] = [`${id}/agent-1`, `${id}/agent-2`];
      const child = harness.client.workflow.getHandle(one);
      await expect
        .poll(async () => (await harness.ratchet.status(one).catch(() => null))?.status, { timeout: 30_000 })
        .toBe('awaiting_budget');
      const root = await harness.ratchet.status(id);
      expect(root).toMatchObject({ status: 'awaiting_approval', budget: { parked: true } });

      // The park was seq 1. By hand: a repeat of it that says the opposite, then malformed ones whose
      // seq, taken as it was, would make agent-1 deaf to its parent (99) or unable to continue as new (1.5).
      const forged: unknown[] = [
        { parked: false, seq: 1 },
        { parked: false, seq: 1.5 },
        { parked: 'no', seq: 99 },
        { parked: false, seq: 99, extra: true },
        { parked: false, stop: true, seq: 98 },
        { parked: false, seq: -1 },
        { parked: false },
        'garbage',
        null,
      ];
      for (const directive of forged) await child.signal('budgetDirective', directive);
      const agentOneParked = requestsOf('agent-1');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(await harness.ratchet.status(one)).toMatchObject({ status: 'awaiting_budget', runs: 1 });
      expect(requestsOf('agent-1')).toBe(agentOneParked);

      // agent-2 starts while the tree is parked: told at once, it parks before its first model call.
      await harness.ratchet.decide(id, 'approve', { callId: root.pendingApprovals[0]!.callId });
      await expect
        .poll(async () => (await harness.ratchet.status(two).catch(() => null))?.status, { timeout: 20_000 })
        .toBe('awaiting_budget');
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(requestsOf('agent-2')).toBe(0);
      expect((await harness.ratchet.status(two)).budget).toMatchObject({ parked: true, decidedAt: id });

      // The tree goes on (seq 2). Once agent-1 has heard it, the older park (seq 1) delivered after
      // it, and seq 2 repeated as a park, change nothing: out of order and duplicate.
      await harness.ratchet.budget(id, { add: 10_000 });
      await expect
        .poll(async () => (await harness.ratchet.status(one)).budget?.parked, { interval: 50 })
        .toBe(false);
      await child.signal('budgetDirective', { parked: true, seq: 1 });
      await child.signal('budgetDirective', { parked: true, seq: 2 });
      // agent-1 continues as new; the stale park sent to its new run is ignored too (seq carried).
      await expect
        .poll(async () => (await harness.ratchet.status(one)).runs, { timeout: 30_000, interval: 50 })
        .toBe(2);
      await child.signal('budgetDirective', { parked: true, seq: 2 });
      const done = await resultWithin(handle, 60_000, model);
      expect(done).toMatchObject({ status: 'completed', finalMessage: 'Both agents finished.' });

      // What agent-1 carried into its second run: the last directive it heard, 2.
      const firstRun = (await child.describe()).raw.workflowExecutionInfo?.firstRunId ?? undefined;
      const events = (await harness.client.workflow.getHandle(one, firstRun).fetchHistory()).events ?? [];
      const input = events.find((e) => e.workflowExecutionContinuedAsNewEventAttributes)!
        .workflowExecutionContinuedAsNewEventAttributes!.input!.payloads![0]!;
      const carried = JSON.parse(Buffer.from(input.data!).toString('utf8')) as {
        carried: { budget: unknown };
      };
      expect(carried.carried.budget).toEqual({ limit: 60, parked: false, sent: 2, heard: 2 });
      // The malformed directives that the old code would have obeyed took the checked path.
      const markers = events.flatMap((e) => {
        const details = e.markerRecordedEventAttributes?.details?.['patch-data']?.payloads?.[0];
        return details ? [JSON.parse(Buffer.from(details.data!).toString('utf8')) as { id: string }] : [];
      });
      expect(markers.map((m) => m.id)).toContain('budget-directive-checked');
      await recordHistory(child, 'budget-directives-child');
      await recordHistory(handle, 'budget-directives');
    });
    expect(leftovers(script)).toEqual({});
    expect(requestsOf('agent-2')).toBe(2);
  });
});
