/**
 * Notifications from real sessions to a local HTTP server standing in for the receivers: the
 * generic JSON, Slack's and ntfy's shapes, a link to the session's inbox page, once per event;
 * and an endpoint that hangs or fails does not hold the session up.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionNotification } from '../../src/shared/api/notifications.js';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { useHarness, waitForStatus } from '../helpers/harness.js';

const suite = useHarness();

interface Received {
  path: string;
  body: Record<string, unknown>;
  idempotencyKey: string | undefined;
}

let server: http.Server;
let base: string;
const received: Received[] = [];
const hanging: http.ServerResponse[] = [];
let failures = 0;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString()));
    req.on('end', () => {
      if (req.url === '/hang') {
        hanging.push(res);
        return;
      }
      if (req.url === '/fail') {
        failures += 1;
        res.statusCode = 500;
        res.end('down');
        return;
      }
      received.push({
        path: req.url ?? '',
        body: JSON.parse(text) as Record<string, unknown>,
        idempotencyKey: req.headers['idempotency-key'] as string | undefined,
      });
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const res of hanging) res.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('notifications', () => {
  it('tells every configured URL, in its shape, when a session waits for a person and when it finishes', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo();
    harness.model.call('shell', { command: ['touch', 'made.txt'] }).reply('All done.');
    const { worker } = await harness.worker({
      notify: {
        inboxUrl: 'http://inbox.example:8234',
        timeoutMs: 500,
        targets: [
          { url: `${base}/json`, format: 'json' },
          { url: `${base}/slack`, format: 'slack', events: ['awaiting_approval'] },
          { url: `${base}/ntfy/ratchet-topic`, format: 'ntfy', events: ['completed'] },
          { url: `${base}/hang`, format: 'json' },
          { url: `${base}/fail`, format: 'json' },
        ],
      },
    });
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'Make a file', workspace: repo.dir, notify: true });
      const waiting = await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      await expect
        .poll(() => received.filter((r) => r.path === '/slack').length, { timeout: 15_000 })
        .toBe(1);
      // The hanging and failing endpoints have not held the session up: it is still waiting,
      // and approving it lets it finish while they are still being tried.
      await harness.ratchet.decide(handle.workflowId, 'approve', {
        callId: waiting.pendingApprovals[0]!.callId,
      });
      const done = (await handle.result()) as SessionResult;
      expect(hanging.length).toBeGreaterThan(0);
      await expect
        .poll(() => received.filter((r) => r.path === '/json').map((r) => r.body.event), { timeout: 15_000 })
        .toEqual(['awaiting_approval', 'completed']);
      await expect
        .poll(() => received.filter((r) => r.path === '/ntfy/').length, { timeout: 15_000 })
        .toBe(1);
      // Each event's activity is retried for the endpoints that failed (the second attempt 5 s later).
      await expect.poll(() => failures, { timeout: 30_000, interval: 500 }).toBeGreaterThanOrEqual(3);
      return { done, sessionId: handle.workflowId };
    });
    expect(result.done.status).toBe('completed');
    const link = `http://inbox.example:8234/s/${encodeURIComponent(result.sessionId)}`;

    const json = received
      .filter((r) => r.path === '/json')
      .map((r) => r.body as unknown as SessionNotification & { url: string; text: string });
    expect(json[0]).toMatchObject({
      event: 'awaiting_approval',
      sessionId: result.sessionId,
      task: 'Make a file',
      pending: [{ callId: 'call_1', summary: 'shell · touch made.txt' }],
      url: link,
      text: 'Ratchet session waiting for you: Make a file — shell · touch made.txt',
    });
    expect(json[1]).toMatchObject({ event: 'completed', message: 'All done.', url: link });
    // Each event has its own id, sent as the idempotency key too.
    expect(new Set(json.map((n) => n.id)).size).toBe(2);
    expect(received.find((r) => r.path === '/json')!.idempotencyKey).toBe(json[0]!.id);

    expect(received.find((r) => r.path === '/slack')!.body).toEqual({
      text: `Ratchet session waiting for you: Make a file — shell · touch made.txt <${link}|Open>`,
    });
    expect(received.find((r) => r.path === '/ntfy/')!.body).toEqual({
      topic: 'ratchet-topic',
      title: 'Ratchet: finished',
      message: 'Ratchet session finished: Make a file — All done.',
      tags: ['white_check_mark'],
      priority: 3,
      click: link,
    });
    // The retries did not send an event again to a URL that took it.
    expect(received.filter((r) => r.path === '/slack')).toHaveLength(1);
    expect(received.filter((r) => r.path === '/json')).toHaveLength(2);
  });

  it('sends nothing, and adds nothing to the history, for a session that did not ask', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo();
    harness.model.reply('Nothing to do.');
    const before = received.length;
    const { worker } = await harness.worker({
      notify: { targets: [{ url: `${base}/json`, format: 'json' }] },
    });
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'Quiet', workspace: repo.dir, approvalPolicy: 'never' });
      await handle.result();
      const history = await handle.fetchHistory();
      expect(history.events!.some((e) => e.startChildWorkflowExecutionInitiatedEventAttributes)).toBe(false);
    });
    expect(received.length).toBe(before);
  });
});
