/**
 * The approvals inbox in headless Chromium (Debian's `chromium`, driven by playwright-core),
 * against real sessions on the suite's dev server:
 *
 * - approve a pending command from the inbox and see the session continue; deny one with a
 *   reason and see the model read it; a patch shown as a coloured diff; the phone-size page;
 * - two windows approving the same call: one wins, the other is told;
 * - what guards it: the token off loopback, cross-site posts (from a real page on another
 *   origin), foreign Host names, no caching, control characters shown, not obeyed.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import { defaultPayloadConverter } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InboxServer } from '../../src/inbox/serve.js';
import { startInbox } from '../../src/inbox/serve.js';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { waitForStatus } from '../helpers/harness.js';
import { useHarness } from '../helpers/harness.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const shotsDir =
  process.env.RATCHET_UPDATE_SCREENSHOTS === '1'
    ? path.join(root, 'docs')
    : path.join(os.tmpdir(), `ratchet-inbox-shots-${process.pid}`);
const chromiumPath = process.env.RATCHET_CHROMIUM_PATH ?? '/usr/bin/chromium';

const suite = useHarness();
let browser: Browser;
let inbox: InboxServer;

beforeAll(async () => {
  if (!existsSync(chromiumPath)) {
    throw new Error(
      `headless Chromium is missing (${chromiumPath}): install Debian's package with ` +
        '`apt-get install chromium` (.ci/run does), or point RATCHET_CHROMIUM_PATH at a Chromium binary',
    );
  }
  // --no-sandbox: CI runs as root, where Chromium refuses its own sandbox.
  browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  inbox = await startInbox({ ratchet: suite.harness.ratchet, port: 0, pollMs: 200 });
  await mkdir(shotsDir, { recursive: true });
});

afterAll(async () => {
  await inbox?.close();
  await browser?.close();
  if (process.env.RATCHET_UPDATE_SCREENSHOTS !== '1') await rm(shotsDir, { recursive: true, force: true });
});

async function newPage(viewport = { width: 1200, height: 900 }): Promise<Page> {
  const page = await browser.newPage({ viewport });
  page.setDefaultTimeout(20_000);
  return page;
}

function sessionUrl(sessionId: string): string {
  return `${inbox.origin}/s/${encodeURIComponent(sessionId)}`;
}

interface RequestBody {
  input: Array<Record<string, unknown>>;
}

function lastOutputs(body: unknown): string[] {
  return (body as RequestBody).input
    .filter((item) => item.type === 'function_call_output')
    .map((item) => String(item.output));
}

describe('deciding from the inbox', () => {
  it('lists the waiting session first, shows the whole command, and an approval lets it go on', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo();
    harness.model
      .call('shell', { command: ['bash', '-lc', 'echo approved-from-a-browser > out.txt && cat out.txt'] })
      .reply('Wrote out.txt.');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'Write out.txt from the inbox test', workspace: repo.dir });
      await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      const page = await newPage();
      // Visibility is eventually consistent: reload until the session shows as waiting.
      await expect
        .poll(
          async () => {
            await page.goto(`${inbox.origin}/`);
            return page.locator('li.status-awaiting_approval').first().textContent();
          },
          { timeout: 30_000, interval: 300 },
        )
        .toContain('Write out.txt from the inbox test');
      await page.locator('li.status-awaiting_approval a').first().click();
      await page.getByRole('heading', { name: 'Write out.txt from the inbox test' }).waitFor();
      const pending = page.locator('section.pending');
      await expect
        .poll(() => pending.locator('ol.argv li').allTextContents())
        .toEqual(['bash', '-lc', 'echo approved-from-a-browser > out.txt && cat out.txt']);
      await page.screenshot({ path: path.join(shotsDir, 'inbox-session.png'), fullPage: true });
      await pending.getByRole('button', { name: 'Approve', exact: true }).click();
      await page.getByText(/You approved call_/).waitFor();
      const result = (await handle.result()) as SessionResult;
      expect(result.status).toBe('completed');
      // The page follows the session without a reload.
      await page.locator('#live .badge', { hasText: 'finished' }).waitFor();
      expect(lastOutputs(harness.model.requests.at(-1)!.body)[0]).toContain('approved-from-a-browser');
      // The decision records who made it: the update's input, in the history.
      const accepted = (await handle.fetchHistory()).events!.flatMap((event) => {
        const payload =
          event.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.args?.payloads?.[0];
        return payload ? [defaultPayloadConverter.fromPayload<{ by?: string }>(payload)] : [];
      });
      expect(accepted.map((approval) => approval.by)).toEqual(['inbox (127.0.0.1)']);
      await page.close();
    });
  });

  it('denies with a reason the model reads, shows a patch as a coloured diff, and fits a phone', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'README.md': '# Title\nold line\n' });
    const patch = [
      '*** Begin Patch',
      '*** Update File: README.md',
      '@@',
      ' # Title',
      '-old line',
      '+new line',
      '*** End Patch',
    ].join('\n');
    harness.model
      .call('apply_patch', { input: patch })
      .call('shell', { command: ['rm', '-rf', 'build'] })
      .reply('Understood.');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'Patch the readme, then clean', workspace: repo.dir });
      await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      const page = await newPage({ width: 390, height: 844 });
      await page.goto(sessionUrl(handle.workflowId));
      await expect.poll(() => page.locator('.diff .add').allTextContents()).toEqual(['+new line']);
      expect(await page.locator('.diff .del').allTextContents()).toEqual(['-old line']);
      // Usable on a phone: nothing wider than the screen, the buttons large enough to tap.
      expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
      const approve = page.getByRole('button', { name: 'Approve', exact: true });
      await expect.poll(async () => (await approve.boundingBox())?.height ?? 0).toBeGreaterThanOrEqual(40);
      await page.screenshot({ path: path.join(shotsDir, 'inbox-phone.png'), fullPage: true });
      await approve.click();
      await page.getByText(/You approved call_/).waitFor();

      // The command comes next; the page shows it without a reload.
      await page.locator('section.pending ol.argv', { hasText: 'rm' }).waitFor();
      await page.getByLabel(/Reason/).fill('Keep build/: the release needs it.');
      await page.getByRole('button', { name: 'Deny' }).click();
      await page.getByText(/You denied call_/).waitFor();
      const result = (await handle.result()) as SessionResult;
      expect(result.finalMessage).toBe('Understood.');
      expect(lastOutputs(harness.model.requests.at(-1)!.body).at(-1)).toContain(
        'Keep build/: the release needs it.',
      );
      await page.close();
    });
  });

  it('tells the second of two windows that the call was already decided', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo();
    harness.model
      .call('shell', { command: ['touch', 'x'] })
      .call('shell', { command: ['touch', 'z'] })
      .reply('done');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'Two windows', workspace: repo.dir });
      await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      const [first, second] = [await newPage(), await newPage()];
      for (const page of [first, second]) {
        await page.goto(sessionUrl(handle.workflowId));
        await page.locator('section.pending').waitFor();
      }
      // The second window's live refresh would drop the stale form: stop it first.
      await second.evaluate("document.body.dataset.live = ''; window.stop();");
      const stale = second.locator('section.pending form');
      await first.getByRole('button', { name: 'Deny' }).click();
      await first.getByText(/You denied call_/).waitFor();
      await stale.getByRole('button', { name: 'Approve', exact: true }).click();
      await second.getByText(/was already decided/).waitFor();
      expect(await second.locator('p.flash').textContent()).toMatch(
        /cannot approve call_\w+: .*already decided/,
      );
      const next = await waitForStatus(handle, (s) =>
        s.pendingApprovals.some((p) => p.summary.includes('touch z')),
      );
      await harness.ratchet.decide(handle.workflowId, 'approve', {
        callId: next.pendingApprovals[0]!.callId,
      });
      expect((await handle.result()) as SessionResult).toMatchObject({ status: 'completed' });
      await first.close();
      await second.close();
    });
  });
});

describe('what guards the inbox', () => {
  it('needs the token when it listens off loopback, and trades the link for a cookie', async () => {
    const open = await startInbox({ ratchet: suite.harness.ratchet, host: '0.0.0.0', port: 0 });
    try {
      expect(open.token).toMatch(/^[\w-]{32}$/);
      const base = `http://127.0.0.1:${new URL(open.origin).port}`;
      const refused = await fetch(`${base}/`);
      expect(refused.status).toBe(401);
      expect(await refused.text()).toContain('needs its token');
      expect((await fetch(`${base}/?token=wrong`)).status).toBe(401);
      expect((await fetch(`${base}/`, { headers: { authorization: `Bearer ${open.token}` } })).status).toBe(
        200,
      );
      const traded = await fetch(`${base}/?token=${open.token}`, { redirect: 'manual' });
      expect(traded.status).toBe(303);
      expect(traded.headers.get('location')).toBe('/');
      const cookie = traded.headers.get('set-cookie')!;
      expect(cookie).toMatch(/HttpOnly/);
      expect(cookie).toMatch(/SameSite=Strict/);
      expect((await fetch(`${base}/`, { headers: { cookie: cookie.split(';')[0]! } })).status).toBe(200);
      // A post with the token but from another site is still refused.
      const crossSite = await fetch(`${base}/s/x/cancel`, {
        method: 'POST',
        headers: { cookie: cookie.split(';')[0]!, origin: 'http://evil.example' },
      });
      expect(crossSite.status).toBe(403);
    } finally {
      await open.close();
    }
  });

  it('refuses a decision posted by a page on another site, and the call stays pending', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo();
    harness.model.call('shell', { command: ['touch', 'y'] }).reply('ok');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'Cross-site', workspace: repo.dir });
      const waiting = await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      const callId = waiting.pendingApprovals[0]!.callId;
      // A page on another origin that posts the approve form as soon as it loads.
      const evil = http.createServer((_req, res) => {
        res.setHeader('content-type', 'text/html');
        res.end(
          `<form id=f method=post action="${sessionUrl(handle.workflowId)}/decide">` +
            `<input name=callId value="${callId}"><input name=decision value=approve></form>` +
            '<script>document.getElementById("f").submit()</script>',
        );
      });
      await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
      try {
        const page = await newPage();
        const posted = page.waitForResponse((response) => response.url().endsWith('/decide'));
        await page.goto(`http://localhost:${(evil.address() as AddressInfo).port}/`);
        expect((await posted).status()).toBe(403);
        await page.close();
      } finally {
        evil.close();
      }
      const after = await harness.ratchet.status(handle.workflowId);
      expect(after.pendingApprovals.map((p) => p.callId)).toEqual([callId]);
      // Without a browser's Origin and without the token, a post is refused too.
      expect((await fetch(`${sessionUrl(handle.workflowId)}/decide`, { method: 'POST' })).status).toBe(403);
      await harness.ratchet.decide(handle.workflowId, 'approve', { callId });
      await handle.result();
    });
  });

  it('answers only to loopback names, caches nothing, and shows control characters instead of obeying them', async () => {
    // What a DNS-rebound page sends: the attacker's name in Host.
    const rebound = await new Promise<number>((resolve, reject) => {
      const url = new URL(inbox.origin);
      http
        .get(
          { host: url.hostname, port: url.port, path: '/', headers: { host: 'attacker.example' } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        )
        .on('error', reject);
    });
    expect(rebound).toBe(421);
    const { harness } = suite;
    const repo = await suite.tempRepo();
    const hidden = 'echo pwned>spoof.txt;#\u001b[22Dnpm test\u001b[K';
    harness.model.call('shell', { command: ['bash', '-lc', hidden] }).reply('ok');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'Escape sequences', workspace: repo.dir });
      await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      const response = await fetch(sessionUrl(handle.workflowId));
      expect(response.headers.get('cache-control')).toBe('no-store, private');
      expect(response.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect(response.headers.get('x-frame-options')).toBe('DENY');
      const page = await response.text();
      expect(page).not.toContain('\u001b');
      expect(page).toContain('echo pwned&gt;spoof.txt;#\\x1b[22Dnpm test\\x1b[K');
      expect((await fetch(`${inbox.origin}/s/no-such-session`)).status).toBe(404);
      await handle.cancel();
    });
  });
});
