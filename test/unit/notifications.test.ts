import { describe, expect, it } from 'vitest';
import { notificationRequest } from '../../src/activities/notify.js';
import { jsonBytes } from '../../src/shared/util/bytes.js';
import { MAX_PENDING, notificationDetails } from '../../src/shared/api/notifications.js';

describe('notificationDetails', () => {
  it('keeps what a notification carries small, whatever the session holds', () => {
    const pending = Array.from({ length: 300 }, (_, i) => ({
      callId: `call_${i}`,
      summary: `shell · ${'x'.repeat(5000)}`,
      reason: '理由'.repeat(3000),
    }));
    const details = notificationDetails({
      task: 'タスク'.repeat(20_000),
      turn: 7,
      pending,
      message: '終'.repeat(500_000),
    });
    expect(details.pending).toHaveLength(MAX_PENDING);
    expect(details.pendingOmitted).toBe(300 - MAX_PENDING);
    expect(details.message).toMatch(/cut to 4096 bytes/);
    // A 1.5 MB message and 300 long calls come down to a few tens of kilobytes.
    expect(jsonBytes(details)).toBeLessThan(40_000);
  });

  it('leaves a small notification as it is', () => {
    const small = {
      task: 'Fix it',
      turn: 1,
      pending: [{ callId: 'c', summary: 's', reason: 'r' }],
      message: null,
    };
    expect(notificationDetails(small)).toEqual(small);
  });
});

describe('notificationRequest', () => {
  const n = {
    id: 'x--notify-1-1',
    event: 'awaiting_approval' as const,
    sessionId: 'x',
    task: 'Use <b> & more',
    turn: 1,
    pending: [{ callId: 'c', summary: 'shell · a > b', reason: 'r' }],
    message: null,
    at: '2026-12-01T00:00:00.000Z',
  };

  it('escapes what Slack would read as markup or a link', () => {
    const { body } = notificationRequest(
      { url: 'https://hooks.example/s', format: 'slack' },
      n,
      'http://i/s/x',
    );
    expect(JSON.parse(body)).toEqual({
      text: 'Ratchet session waiting for you: Use &lt;b&gt; &amp; more — shell · a &gt; b <http://i/s/x|Open>',
    });
  });

  it('posts ntfy to the server root with the topic named, and without a link when there is no inbox', () => {
    const request = notificationRequest({ url: 'https://ntfy.example/alerts', format: 'ntfy' }, n, undefined);
    expect(request.url).toBe('https://ntfy.example/');
    expect(JSON.parse(request.body)).not.toHaveProperty('click');
    expect(JSON.parse(request.body)).toMatchObject({ topic: 'alerts', priority: 4, tags: ['hourglass'] });
  });
});
