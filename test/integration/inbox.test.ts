/**
 * The approvals inbox in headless Chromium (Debian's `chromium`, driven by playwright-core),
 * against real sessions on the suite's dev server:
 *
 * - approve a pending command from the inbox and see the session continue; deny one with a
 *   reason and see the model read it; a patch shown as a coloured diff; the phone-size page;
 * - two windows approving the same call: one wins, the other is told;
 * - the token budget's form, posted as a browser posts it (same origin, the redirect followed): bad
 *   input refused with the reason, a stale or repeated page refused, add and stop on a parked
 *   session, a parked tree decided from a child's page and the root's with a pending call kept;
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
import { call, leftovers, reply, resultWithin, say, treeModel } from '../helpers/agent-scripts.js';
import type { TreeScript } from '../helpers/agent-scripts.js';
import { waitForStatus } from '../helpers/harness.js';
import { useHarness } from '../helpers/harness.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const shotsDir =
  process.env.RATCHET_UPDATE_SCREENSHOTS === '1'
    ? path.join(root, 'docs')
    : path.join(os.tmpdir(), `ratchet-inbox-shots-${process.pid}`);
const chromiumPath = process.env.RATCHET_CHROMIUM_PATH ?? '/usr/bin/chromium';

const suite = useHarness();
const read = () => reply(call('read_file', { file_path: 'a.txt' }));
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

/** The budget form a session page renders, as a browser would read it: action, hidden fields, buttons. */
interface RenderedForm {
  action: string;
  hidden: Record<string, string>;
  buttons: string[];
}

function unescapeHtml(text: string): string {
  return text
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&');
}

function budgetForm(page: string): RenderedForm | null {
  const form = /<form method="post" action="([^"]+\/budget)" class="budget">([\s\S]*?)<\/form>/.exec(page);
  if (!form) return null;
  const hidden = Object.fromEntries(
    [...form[2]!.matchAll(/<input type="hidden" name="(\w+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]),
  );
  const buttons = [...form[2]!.matchAll(/<button name="decision" value="(\w+)"/g)].map((m) => m[1]!);
  return { action: unescapeHtml(form[1]!), hidden, buttons };
}

function flashOf(page: string): string | undefined {
  const flash = /<p class="flash" role="status">([\s\S]*?)<\/p>/.exec(page);
  return flash ? unescapeHtml(flash[1]!) : undefined;
}

/** Posts a form as the browser does (same origin, urlencoded, the redirect followed); answers the page. */
async function submit(
  action: string,
  fields: Array<[string, string]>,
): Promise<{ status: number; page: string; url: string }> {
  const response = await fetch(`${inbox.origin}${action}`, {
    method: 'POST',
    headers: {
      origin: inbox.origin,
      'sec-fetch-site': 'same-origin',
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams(fields).toString(),
  });
  return { status: response.status, page: await response.text(), url: response.url };
}

/** Presses a button of the rendered form with `add` typed in (as a browser sends it: every field). */
function press(form: RenderedForm, decision: string, add = ''): Array<[string, string]> {
  return [...Object.entries(form.hidden), ['add', add], ['decision', decision]];
}

async function pageOf(sessionId: string): Promise<string> {
  const response = await fetch(sessionUrl(sessionId));
  expect(response.status).toBe(200);
  return response.text();
}

describe('the budget form, posted as a browser posts it', () => {
  it('a parked session: bad input refused with the reason, a stale page refused, add and stop decide, nothing lost', async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    // Each reply costs 15 tokens: with a budget of 40 the session parks after its third.
    const script: TreeScript = {
      parent: [
        { ...read(), delayMs: 2500 },
        read(),
        read(),
        ...Array.from({ length: 7 }, read),
        reply(say('read enough')),
      ],
    };
    const model = await harness.freshModel(treeModel(script));
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Read a.txt under a budget',
        workspace: repo.dir,
        approvalPolicy: 'auto-edit',
        budget: { tokens: 40 },
      });
      const id = handle.workflowId;
      const action = `/s/${encodeURIComponent(id)}/budget`;
      // Not parked yet (the first reply is slow): a stale page's Stop has nothing to stop.
      const early = await submit(action, [['decision', 'stop']]);
      expect(early.status).toBe(409);
      expect(flashOf(early.page)).toMatch(/nothing to stop: the tree has spent 0 of 40 tokens/);

      await waitForStatus(handle, (s) => s.status === 'awaiting_budget', 30_000);
      const requestsWhenParked = model.requests.length;
      const transcriptWhenParked = await harness.ratchet.transcript(id, 0);
      const parkedPage = await pageOf(id);
      expect(parkedPage).toContain('data-parked="yes"');
      expect(parkedPage).toMatch(/45 of 40 tokens\s+spent by the tree · parked until you decide/);
      const stale = budgetForm(parkedPage)!;
      expect(stale).toEqual({ action, hidden: { ifLimit: '40' }, buttons: ['add', 'stop'] });

      // Bad input: each refused with a reason, the session still parked at the same limit.
      const refusals: Array<[Array<[string, string]>, number, RegExp]> = [
        [press(stale, 'add', 'lots'), 400, /add a whole number of tokens above 0 \(not "lots"\)/],
        [press(stale, 'add', '0'), 400, /add a whole number of tokens above 0 \(not "0"\)/],
        [press(stale, 'add', '-5'), 400, /add a whole number of tokens above 0 \(not "-5"\)/],
        [press(stale, 'add', '2.5'), 400, /not "2\.5"/],
        [press(stale, 'add', ''), 400, /add a whole number of tokens above 0\.$/],
        [press(stale, 'add', '99999999999999999999'), 400, /add must be at most 1000000000000 tokens/],
        [press(stale, 'stop', '500'), 400, /you pressed Stop with 500 in "Add tokens"/],
        [
          [
            ['add', '5'],
            ['decision', 'add'],
            ['decision', 'stop'],
          ],
          400,
          /it needs one decision/,
        ],
        [[['add', '5']], 400, /it needs one decision/],
        [
          [
            ['add', '5'],
            ['add', '6'],
            ['decision', 'add'],
          ],
          400,
          /a field was sent twice/,
        ],
        [press({ ...stale, hidden: { ifLimit: 'forty' } }, 'add', '5'), 400, /limit "forty" is not a number/],
      ];
      for (const [fields, status, reason] of refusals) {
        const answer = await submit(action, fields);
        expect({ fields, status: answer.status }).toEqual({ fields, status });
        expect(flashOf(answer.page)).toMatch(reason);
      }
      // A session that does not exist.
      const unknown = await submit('/s/ratchet-no-such-session/budget', press(stale, 'add', '5'));
      expect(unknown.status).toBe(404);
      expect(unknown.page).toContain('No such session');
      // A post from another site (no Origin, no Sec-Fetch-Site, no token) is refused before anything.
      const crossSite = await fetch(`${inbox.origin}${action}`, {
        method: 'POST',
        body: new URLSearchParams(press(stale, 'add', '5')),
      });
      expect(crossSite.status).toBe(403);
      expect(await harness.ratchet.budget(id)).toMatchObject({ limit: 40, parked: true, spent: 45 });

      // Too little: the limit grows, the session stays parked, and the page says so.
      const little = await submit(action, press(stale, 'add', '1'));
      expect(little.status).toBe(200);
      expect(little.url).toBe(`${sessionUrl(id)}?budget=added-1-parked`);
      expect(flashOf(little.page)).toMatch(
        /You added 1 tokens; the tree is still over its limit and stays parked/,
      );
      expect(budgetForm(little.page)!.hidden).toEqual({ ifLimit: '41' });
      // The stale page, submitted again: refused, nothing added twice.
      const again = await submit(action, press(stale, 'add', '1'));
      expect(again.status).toBe(409);
      expect(flashOf(again.page)).toMatch(
        /the budget changed since you looked: the tree's limit is now 41 tokens, not 40 \(45 spent, still parked\); nothing was changed/,
      );
      expect(await harness.ratchet.budget(id)).toMatchObject({ limit: 41, parked: true });

      // Enough: the session goes on from where it parked; the same page posted twice adds once.
      const fresh = budgetForm(little.page)!;
      const enough = await submit(action, press(fresh, 'add', '100'));
      expect(flashOf(enough.page)).toBe('You added 100 tokens; the tree goes on.');
      const twice = await submit(action, press(fresh, 'add', '100'));
      expect(twice.status).toBe(409);
      expect(flashOf(twice.page)).toMatch(/the tree's limit is now 141 tokens, not 41/);
      // It spends the 100 and parks again (150 of 141), its transcript kept whole across the wait.
      await expect
        .poll(async () => (await harness.ratchet.status(id)).usage.totalTokens, { timeout: 30_000 })
        .toBe(150);
      await waitForStatus(handle, (s) => s.status === 'awaiting_budget', 30_000);
      expect(model.requests.length).toBe(requestsWhenParked + 7);
      const later = await harness.ratchet.transcript(id, 0);
      expect(later.entries.slice(0, transcriptWhenParked.entries.length)).toEqual(
        transcriptWhenParked.entries,
      );
      expect(later.total).toBeGreaterThan(transcriptWhenParked.total);

      // Stop: the session comes to rest with a notice; a message parks it again; more tokens finish it.
      const stopForm = budgetForm(await pageOf(id))!;
      expect(stopForm.buttons).toEqual(['add', 'stop']);
      const stopped = await submit(action, press(stopForm, 'stop'));
      expect(flashOf(stopped.page)).toBe('You stopped the tree at its budget.');
      const idle = await waitForStatus(handle, (s) => s.status === 'idle');
      expect(idle.notice).toMatch(
        /stopped at the token budget \(150 tokens spent here; the tree's limit 141\)/,
      );
      await harness.ratchet.send(id, 'Go on.');
      await waitForStatus(handle, (s) => s.status === 'awaiting_budget');
      expect(model.requests.length).toBe(requestsWhenParked + 7);
      const last = await submit(action, press(budgetForm(await pageOf(id))!, 'add', '1000'));
      expect(flashOf(last.page)).toBe('You added 1000 tokens; the tree goes on.');
      const result = await resultWithin(handle, 30_000);
      expect(result).toMatchObject({ status: 'completed', finalMessage: 'read enough' });
      // Who decided is recorded with each accepted decision.
      const accepted = (await handle.fetchHistory()).events!.flatMap((event) => {
        const payload =
          event.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.args?.payloads?.[0];
        return payload ? [defaultPayloadConverter.fromPayload<Record<string, unknown>>(payload)] : [];
      });
      expect(accepted).toEqual([
        { add: 1, by: 'inbox (127.0.0.1)', ifLimit: 40 },
        { add: 100, by: 'inbox (127.0.0.1)', ifLimit: 41 },
        { stop: true, by: 'inbox (127.0.0.1)', ifLimit: 141 },
        { add: 1000, by: 'inbox (127.0.0.1)', ifLimit: 141 },
      ]);
    });
    expect(leftovers(script)).toEqual({});
  });

  it("a parked tree: decided from a child's page and from the root's, a child's pending call kept", async () => {
    const { harness } = suite;
    const repo = await suite.tempRepo({ 'a.txt': 'alpha\n' });
    const script: TreeScript = {
      parent: [
        reply(
          call('spawn_agent', { message: 'Read a.txt again and again' }, 's1'),
          call('spawn_agent', { message: 'Touch a file' }, 's2'),
        ),
        reply(call('wait', { ids: ['agent-1'], timeout_ms: 300_000 }, 'w1')),
        reply(call('wait', { ids: ['agent-2'], timeout_ms: 300_000 }, 'w2')),
        reply(say('Both agents finished.')),
      ],
      'agent-1': [...Array.from({ length: 7 }, read), reply(say('agent-1 done'))],
      // A command that asks a person (auto-edit): pending while the tree parks.
      'agent-2': [reply(call('shell', { command: ['touch', 'touched'] })), reply(say('agent-2 done'))],
    };
    await harness.freshModel(treeModel(script, 150));
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'A tree under a budget',
        workspace: repo.dir,
        approvalPolicy: 'auto-edit',
        agents: { max: 2 },
        budget: { tokens: 60 },
      });
      const id = handle.workflowId;
      const [one, two] = [`${id}/agent-1`, `${id}/agent-2`];
      await expect
        .poll(async () => (await harness.ratchet.status(one).catch(() => null))?.status, { timeout: 30_000 })
        .toBe('awaiting_budget');
      await expect
        .poll(async () => (await harness.ratchet.status(two)).budget?.parked, { timeout: 10_000 })
        .toBe(true);
      const waiting = await harness.ratchet.status(two);
      expect(waiting).toMatchObject({ status: 'awaiting_approval', budget: { parked: true, decidedAt: id } });
      const pendingCall = waiting.pendingApprovals[0]!.callId;
      const rootView = await harness.ratchet.budget(id);
      expect(rootView.parked).toBe(true);

      // A child's page decides for the tree: its form carries the root's limit, not the child's.
      const childPage = await pageOf(one);
      // (The root's count may still grow by late reports of turns already running.)
      expect(childPage).toMatch(/\(the tree: \d+ of 60 tokens spent\)/);
      const childForm = budgetForm(childPage)!;
      expect(childForm).toEqual({
        action: `/s/${encodeURIComponent(one)}/budget`,
        hidden: { ifLimit: '60' },
        buttons: ['add', 'stop'],
      });
      const little = await submit(childForm.action, press(childForm, 'add', '1'));
      expect(little.url).toBe(`${sessionUrl(one)}?budget=added-1-parked`);
      expect(await harness.ratchet.budget(two)).toMatchObject({ sessionId: id, limit: 61, parked: true });
      // The same child page, submitted again: refused, the root's limit unchanged.
      const again = await submit(childForm.action, press(childForm, 'add', '1'));
      expect(again.status).toBe(409);
      expect(flashOf(again.page)).toMatch(/the tree's limit is now 61 tokens, not 60/);

      // The pending call survived the park and the decisions; approved, it runs, and agent-2 then parks.
      const childTwo = await harness.ratchet.status(two);
      expect(childTwo.pendingApprovals.map((p) => p.callId)).toEqual([pendingCall]);
      const twoPage = await pageOf(two);
      expect(twoPage).toContain('name="callId"');
      expect(budgetForm(twoPage)!.hidden).toEqual({ ifLimit: '61' });
      await harness.ratchet.decide(two, 'approve', { callId: pendingCall });
      await expect.poll(async () => (await harness.ratchet.status(two)).status).toBe('awaiting_budget');

      // From the root's page: enough for the tree; every session goes on and the tree finishes.
      const rootForm = budgetForm(await pageOf(id))!;
      expect(rootForm.hidden).toEqual({ ifLimit: '61' });
      const enough = await submit(rootForm.action, press(rootForm, 'add', '1000'));
      expect(flashOf(enough.page)).toBe('You added 1000 tokens; the tree goes on.');
      const result = await resultWithin(handle, 40_000);
      expect(result).toMatchObject({ status: 'completed', finalMessage: 'Both agents finished.' });
      expect((await harness.ratchet.budget(id)).limit).toBe(1061);
    });
    expect(leftovers(script)).toEqual({});
  });
});
