/**
 * `RatchetClient.status` right after a worker restart: a query refused by the task guard
 * (src/workflows/task-guard.ts) is asked again until it is answered or the deadline passes;
 * any other failure is reported at once.
 */
import type { Client } from '@temporalio/client';
import { describe, expect, it, vi } from 'vitest';
import { RatchetClient } from '../../src/client.js';
import { askWhileAhead } from '../../src/client-status.js';

const refused = new Error(
  'Unhandled Promise rejection: AheadOfWorkflowTask: history events 13–22 were applied without a ' +
    'workflow task (a query on a worker that had not cached this session); ask again once the ' +
    'pending workflow task has run',
);
const view = { status: 'awaiting_approval', pendingApprovals: [] };

function clientWith(query: () => Promise<unknown>): { ratchet: RatchetClient; query: typeof query } {
  const spy = vi.fn(query);
  const handle = {
    describe: () =>
      Promise.resolve({ type: 'agentSession', status: { name: 'RUNNING' }, raw: { pendingActivities: [] } }),
    query: spy,
  };
  const client = {
    workflow: { getHandle: () => handle },
    connection: { withDeadline: (_deadline: number, fn: () => Promise<unknown>) => fn() },
  } as unknown as Client;
  return { ratchet: new RatchetClient(client, { taskQueue: 'q' }), query: spy };
}

describe('status after a worker restart', () => {
  it('asks again while the guard refuses, and answers once the pending task has run', async () => {
    let calls = 0;
    const { ratchet, query } = clientWith(() => {
      calls += 1;
      return calls <= 2 ? Promise.reject(refused) : Promise.resolve(view);
    });
    const status = await ratchet.status('s1');
    expect(status.status).toBe('awaiting_approval');
    expect(query).toHaveBeenCalledTimes(3);
  });

  it('reports any other failure at once', async () => {
    const { ratchet, query } = clientWith(() => Promise.reject(new Error('14 UNAVAILABLE: no worker')));
    await expect(ratchet.status('s1')).rejects.toThrow(/did not answer \(14 UNAVAILABLE: no worker\)/);
    expect(query).toHaveBeenCalledTimes(1);
  });

  it('waits longer after each refusal (each costs the worker a replay), up to a second', async () => {
    const at: number[] = [];
    const started = Date.now();
    await expect(
      askWhileAhead(
        () => {
          at.push(Date.now() - started);
          return Promise.reject(refused);
        },
        started + 1200,
        { firstWaitMs: 50 },
      ),
    ).rejects.toThrow(/applied without a workflow task/);
    // 50, 100, 200, 400 ms apart; a fixed 50 ms would have asked over twenty times.
    expect(at.length).toBeGreaterThanOrEqual(3);
    expect(at.length).toBeLessThanOrEqual(6);
  });

  it('stops waiting as soon as its signal aborts (an interrupted activity), with the reason', async () => {
    const controller = new AbortController();
    const ask = vi.fn(() => Promise.reject(refused));
    const asking = askWhileAhead(ask, Date.now() + 10_000, { firstWaitMs: 1000, signal: controller.signal });
    setTimeout(() => controller.abort(new Error('activity cancelled')), 20);
    // Not the refusal after the deadline, and not asked again after the first wait.
    await expect(asking).rejects.toThrow('activity cancelled');
    expect(ask).toHaveBeenCalledTimes(1);
  });

  it('asks again at once when a query goes unanswered (a worker dropped it), with a longer deadline', async () => {
    const deadlines: number[] = [];
    const started = Date.now();
    const answer = await askWhileAhead(
      (askDeadline) => {
        deadlines.push(askDeadline - started);
        if (deadlines.length > 2) return Promise.resolve(view);
        // As the Temporal client reports it: a ServiceError around the gRPC error.
        const grpc = Object.assign(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded'), { code: 4 });
        return Promise.reject(new Error('Failed to query Workflow', { cause: grpc }));
      },
      started + 60_000,
      { answerWithinMs: 1000 },
    );
    expect(answer).toBe(view);
    expect(deadlines).toHaveLength(3);
    // 1 s, then 2 s, then 4 s for an answer; no pause between (nothing refused it).
    expect(deadlines[0]).toBeGreaterThanOrEqual(1000);
    expect(deadlines[0]).toBeLessThan(1500);
    expect(deadlines[1]).toBeGreaterThanOrEqual(2000);
    expect(deadlines[1]).toBeLessThan(2500);
    expect(deadlines[2]).toBeGreaterThanOrEqual(4000);
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('gives up on an unanswered query once the overall deadline is the one that passed', async () => {
    const started = Date.now();
    const ask = vi.fn((_askDeadline: number) =>
      Promise.reject(Object.assign(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded'), { code: 4 })),
    );
    await expect(askWhileAhead(ask, started + 2000, { answerWithinMs: 1000 })).rejects.toThrow(
      /DEADLINE_EXCEEDED/,
    );
    // 1 s, then the rest of the 2 s: the second ask's deadline is the overall one.
    expect(ask).toHaveBeenCalledTimes(2);
    expect(ask.mock.calls[1]![0]).toBe(started + 2000);
  });
});
