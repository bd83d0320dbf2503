/**
 * `ratchet setup` on a cluster that has never heard of Ratchet: a dev server started without the
 * search attributes. Afterwards `RatchetStatus = "awaiting_approval"` finds a waiting session,
 * in a visibility query and in `ratchet list --status awaiting_approval`, and the attributes
 * follow the session to its end. Repeating setup changes nothing; a type clash is an error.
 */
import type { WorkflowExecutionInfo } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
import proto from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { SessionSummary } from '../../src/client.js';
import {
  RatchetPendingApprovals,
  RatchetRepo,
  RatchetStatus,
  RatchetTurn,
} from '../../src/shared/api/search-attributes.js';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import type { SetupResult } from '../../src/temporal/search-attribute-setup.js';
import { DevServer } from '../../src/temporal/dev-server.js';
import { runCli } from '../helpers/cli.js';
import { createTempRepo } from '../helpers/git-repo.js';
import type { TempRepo } from '../helpers/git-repo.js';
import { Harness, waitForStatus } from '../helpers/harness.js';

const ALL = ['RatchetStatus', 'RatchetRepo', 'RatchetPendingApprovals', 'RatchetTurn', 'RatchetParent'];

let server: DevServer;
let harness: Harness;
let repo: TempRepo;

beforeAll(async () => {
  server = await DevServer.start({
    cliPath: inject('temporalCliPath'),
    uiPort: false,
    searchAttributes: false,
  });
  harness = await Harness.create({ address: server.address });
  repo = await createTempRepo({ 'README.md': '# x\n' });
});

afterAll(async () => {
  await harness?.close();
  await server?.stop();
  await repo?.remove();
});

function ratchet(args: string[], env: Record<string, string | undefined> = {}) {
  return runCli(args, {
    env: {
      TEMPORAL_ADDRESS: server.address,
      TEMPORAL_NAMESPACE: undefined,
      TEMPORAL_PROFILE: undefined,
      TEMPORAL_API_KEY: undefined,
      RATCHET_TASK_QUEUE: harness.taskQueue,
      NO_COLOR: '1',
      ...env,
    },
  });
}

async function listIds(query: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const info of harness.client.workflow.list({ query })) ids.push(info.workflowId);
  return ids;
}

async function describeListed(query: string, id: string): Promise<WorkflowExecutionInfo | undefined> {
  for await (const info of harness.client.workflow.list({ query })) {
    if (info.workflowId === id) return info;
  }
  return undefined;
}

describe('ratchet setup', () => {
  it('registers the search attributes once; then RatchetStatus queries find waiting sessions', async () => {
    // Before: the server does not know the attribute, so the query is refused.
    const refused = await listIds('RatchetStatus = "awaiting_approval"').then(
      () => 'listed',
      (err: Error) => `${err.message}: ${(err.cause as Error | undefined)?.message}`,
    );
    expect(refused).toMatch(/RatchetStatus/);

    const first = await ratchet(['setup', '--json']);
    expect(first.exitCode, JSON.stringify(first)).toBe(0);
    const added = JSON.parse(first.stdout) as SetupResult;
    expect(added).toEqual({ namespace: 'default', added: ALL, present: [] });

    const again = await ratchet(['setup']);
    expect(again.exitCode, JSON.stringify(again)).toBe(0);
    expect(again.stdout.split('\n').slice(0, 5)).toEqual([
      'RatchetStatus            Keyword  already registered',
      'RatchetRepo              Keyword  already registered',
      'RatchetPendingApprovals  Int      already registered',
      'RatchetTurn              Int      already registered',
      'RatchetParent            Keyword  already registered',
    ]);
    expect(again.stdout).toContain(`namespace default at ${server.address}`);

    // A session started now keeps the attributes current.
    const { model } = harness;
    model.call('shell', { command: ['touch', 'x'] }).reply('Touched x.');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'touch x', workspace: repo.dir });
      const id = handle.workflowId;
      await waitForStatus(handle, (s) => s.status === 'awaiting_approval');

      const waitingQuery = `RatchetStatus = "awaiting_approval" AND TaskQueue = "${harness.taskQueue}"`;
      await expect.poll(() => listIds(waitingQuery), { timeout: 10_000 }).toEqual([id]);
      const waiting = await describeListed(waitingQuery, id);
      expect(waiting!.typedSearchAttributes.get(RatchetPendingApprovals)).toBe(1);
      expect(waiting!.typedSearchAttributes.get(RatchetTurn)).toBe(1);
      expect(waiting!.typedSearchAttributes.get(RatchetRepo)).toBe(repo.dir);

      const listed = await ratchet(['list', '--status', 'awaiting_approval', '--json']);
      expect(listed.exitCode, JSON.stringify(listed)).toBe(0);
      expect(JSON.parse(listed.stdout) as SessionSummary[]).toEqual([
        expect.objectContaining({ sessionId: id, status: 'awaiting_approval', pendingApprovals: 1, turn: 1 }),
      ]);

      await harness.ratchet.decide(id, 'approve', { by: 'test' });
      expect(((await handle.result()) as SessionResult).finalMessage).toBe('Touched x.');

      await expect.poll(() => listIds(waitingQuery), { timeout: 10_000 }).toEqual([]);
      const done = await describeListed(`RatchetStatus = "completed"`, id);
      expect(done!.typedSearchAttributes.get(RatchetStatus)).toBe('completed');
      expect(done!.typedSearchAttributes.get(RatchetPendingApprovals)).toBe(0);
      expect(done!.typedSearchAttributes.get(RatchetTurn)).toBe(2);
      const none = await ratchet(['list', '--status', 'awaiting_approval', '--json']);
      expect(JSON.parse(none.stdout)).toEqual([]);
    });
    model.assertDone();
  });

  it('refuses, in one line, a namespace where an attribute has another type', async () => {
    const namespace = 'clash';
    await harness.client.workflowService.registerNamespace({
      namespace,
      workflowExecutionRetentionPeriod: msToTs('1 day'),
    });
    // A new namespace takes a moment to reach every service of the dev server.
    await expect
      .poll(
        async () => {
          try {
            await harness.client.connection.operatorService.addSearchAttributes({
              namespace,
              searchAttributes: {
                RatchetTurn: proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
              },
            });
            return true;
          } catch {
            return false;
          }
        },
        { timeout: 30_000, interval: 500 },
      )
      .toBe(true);

    const result = await ratchet(['setup'], { TEMPORAL_NAMESPACE: namespace });
    expect(result.exitCode, JSON.stringify(result)).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        /^ratchet: namespace clash already has search attributes of another type: RatchetTurn is Keyword, Ratchet needs Int\./,
      ),
    ]);
    // Nothing was half-registered.
    const listed = await harness.client.connection.operatorService.listSearchAttributes({ namespace });
    expect(Object.keys(listed.customAttributes ?? {}).filter((name) => name.startsWith('Ratchet'))).toEqual([
      'RatchetTurn',
    ]);
  });
});
