/**
 * The approvals inbox: a small web app over the same client the CLI uses. It lists sessions
 * (waiting for a person first), shows one session with its pending calls in full, and turns
 * button presses into the validated `approve` update, messages, interrupts and cancels.
 *
 * Since the page runs commands by proxy, every request passes, in order: security headers
 * (nothing cached, no framing, no inline script); a Host check (a loopback inbox answers only to
 * loopback names, so a DNS-rebound page cannot reach it); the token, when one is set (required
 * off loopback); and for anything that changes a session, a same-origin check (Origin and
 * Sec-Fetch-Site), so a page on another site cannot post a decision.
 */
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, MiddlewareHandler } from 'hono';
import { Hono } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { streamSSE } from 'hono/streaming';
import { timingSafeEqual } from 'node:crypto';
import type { RatchetClient } from '../client.js';
import { RatchetError } from '../client.js';
import type { ApprovalDecisionKind, StatusView } from '../shared/api/session-api.js';
import { approvalDecisions, budgetDecisionSchema } from '../shared/api/session-api.js';
import { describeZodError } from '../shared/api/session-config.js';
import { INBOX_CSS, INBOX_JS } from './assets.js';
import { layout, sessionList, sessionPage } from './render.js';
import { html } from 'hono/html';

export const TOKEN_COOKIE = 'ratchet_inbox';

export interface InboxOptions {
  ratchet: RatchetClient;
  /** Required of every request when set (a non-loopback inbox always has one). */
  token?: string;
  /** Host names the inbox answers to; undefined: any (only with a token). */
  allowedHosts?: readonly string[];
  /** What the session changed, where the workspace is on this machine. */
  diff?: (sessionId: string) => Promise<string | undefined>;
  /** How often live pages look for changes. */
  pollMs?: number;
}

const SECURITY_HEADERS: Record<string, string> = {
  'Cache-Control': 'no-store, private',
  Pragma: 'no-cache',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'same-origin',
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
};

function sameToken(given: string | undefined, token: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function bearer(c: Context): string | undefined {
  const header = c.req.header('authorization');
  return header?.startsWith('Bearer ') ? header.slice('Bearer '.length) : undefined;
}

function hostName(hostHeader: string | undefined): string | undefined {
  if (!hostHeader) return undefined;
  const match = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(hostHeader);
  return match?.[1]?.toLowerCase();
}

function guard(options: InboxOptions): MiddlewareHandler {
  return async (c, next) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) c.header(name, value);
    if (options.allowedHosts !== undefined) {
      const host = hostName(c.req.header('host'));
      if (host === undefined || !options.allowedHosts.includes(host)) {
        return c.text('This inbox does not answer to that host name.', 421);
      }
    }
    const token = options.token;
    if (token !== undefined) {
      const fromQuery = c.req.query('token');
      if (c.req.method === 'GET' && sameToken(fromQuery, token)) {
        // Trade the token in the link for a cookie, and take it out of the address bar.
        setCookie(c, TOKEN_COOKIE, token, { httpOnly: true, sameSite: 'Strict', path: '/' });
        const url = new URL(c.req.url);
        url.searchParams.delete('token');
        return c.redirect(`${url.pathname}${url.search}`, 303);
      }
      if (!sameToken(bearer(c), token) && !sameToken(getCookie(c, TOKEN_COOKIE), token)) {
        return c.text('This inbox needs its token: open the link it printed when it started.', 401);
      }
    }
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      // Sec-Fetch-Site is set by the browser and no page can forge it; older browsers send only
      // Origin. A client that is no browser says neither, and must then carry the token header.
      const site = c.req.header('sec-fetch-site');
      const origin = c.req.header('origin');
      const expected = `${new URL(c.req.url).protocol}//${c.req.header('host') ?? ''}`;
      const sameSite =
        site !== undefined
          ? site === 'same-origin'
          : origin !== undefined
            ? origin === expected
            : token !== undefined && sameToken(bearer(c), token);
      if (!sameSite) return c.text('Cross-site requests are refused.', 403);
    }
    await next();
  };
}

function formText(value: unknown, max: number): string | undefined {
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  return text === '' ? undefined : text.slice(0, max);
}

/** What the page says after a budget decision (the address says only which; the page shows the rest). */
function budgetFlash(outcome: string | undefined): string | undefined {
  if (outcome === 'stopped') return 'You stopped the tree at its budget.';
  const added = /^added-(\d+)(-parked)?$/.exec(outcome ?? '');
  if (!added) return undefined;
  return added[2]
    ? `You added ${added[1]} tokens; the tree is still over its limit and stays parked: add more, or stop it.`
    : `You added ${added[1]} tokens; the tree goes on.`;
}

const ENDED = new Set(['completed', 'failed', 'cancelled']);

const DONE: Record<ApprovalDecisionKind, string> = {
  approve: 'approved',
  approve_for_session: 'approved for this session',
  deny: 'denied',
  abort: 'aborted',
};

export function createInboxApp(options: InboxOptions): Hono {
  const { ratchet } = options;
  const pollMs = options.pollMs ?? 1000;
  const app = new Hono();
  app.use('*', guard(options));

  app.get('/assets/inbox.css', (c) => c.body(INBOX_CSS, 200, { 'Content-Type': 'text/css; charset=utf-8' }));
  app.get('/assets/inbox.js', (c) =>
    c.body(INBOX_JS, 200, { 'Content-Type': 'text/javascript; charset=utf-8' }),
  );

  app.get('/', async (c) => {
    const sessions = await ratchet.list({ limit: 200 });
    return c.html(
      layout(
        'Sessions',
        html`<h1>Sessions</h1>
          <div id="list">${sessionList(sessions)}</div>`,
        '/events',
      ),
    );
  });

  /** Sends "change" whenever `look` gives something new; ends with the client. */
  function changes(c: Context, look: () => Promise<unknown>): Response {
    return streamSSE(c, async (stream) => {
      // The first look also counts as a change: the session may have moved on between the page
      // being rendered and this stream being opened.
      let last = '';
      while (!stream.aborted && !stream.closed) {
        const now = JSON.stringify(await look().catch((err: unknown) => String(err)));
        if (now !== last) await stream.writeSSE({ event: 'change', data: '' });
        last = now;
        await stream.sleep(pollMs);
      }
    });
  }

  app.get('/events', (c) => changes(c, () => ratchet.list({ limit: 200 })));

  async function statusOf(c: Context, id: string): Promise<StatusView | Response> {
    try {
      return await ratchet.status(id);
    } catch (err) {
      if (err instanceof RatchetError) {
        return c.html(
          layout(
            'Not found',
            html`<h1>No such session</h1>
              <p>${err.message}</p>
              <p><a href="/">All sessions</a></p>`,
          ),
          404,
        );
      }
      throw err;
    }
  }

  async function page(
    c: Context,
    id: string,
    flash?: string,
    code: 200 | 409 | 400 = 200,
  ): Promise<Response> {
    const view = await statusOf(c, id);
    if (view instanceof Response) return view;
    const from = Number(c.req.query('from') ?? Math.max(0, view.transcriptLength - 50));
    const start = Number.isInteger(from) && from >= 0 ? from : 0;
    // A finished session with no worker to answer has no transcript to show; the rest still is.
    const transcript = await ratchet
      .transcript(id, start)
      .catch(() => ({ epoch: view.epoch, fromIndex: 0, entries: [], nextIndex: 0, total: 0 }));
    const diff = await options.diff?.(id).catch(() => undefined);
    // A session that fans out shows, and decides, the calls waiting anywhere below it.
    const below = view.agents?.length
      ? (await ratchet.treeApprovals(id).catch(() => [])).filter((p) => p.sessionId !== id)
      : [];
    // A child's page decides for its tree too: its form carries the root's limit.
    const tree =
      view.budget?.decidedAt && !ENDED.has(view.status)
        ? await ratchet.budget(id).catch(() => undefined)
        : undefined;
    return c.html(
      layout(
        view.task,
        sessionPage(id, view, transcript, diff, flash, below, tree),
        `/s/${encodeURIComponent(id)}/events`,
      ),
      code,
    );
  }

  app.get('/s/:id', async (c) => {
    const id = c.req.param('id');
    const done = c.req.query('done');
    const [callId, decision] = (done ?? '').split(':');
    const flash =
      callId && decision && decision in DONE
        ? `You ${DONE[decision as ApprovalDecisionKind]} ${callId}.`
        : c.req.query('sent') !== undefined
          ? 'Sent.'
          : budgetFlash(c.req.query('budget'));
    return page(c, id, flash);
  });

  app.get('/s/:id/events', (c) => {
    const id = c.req.param('id');
    return changes(c, async () => {
      const view = await ratchet.status(id);
      const below = view.agents?.length ? await ratchet.treeApprovals(id).catch(() => []) : [];
      return { ...view, current: view.current?.label ?? null, below: below.map((p) => p.approval.callId) };
    });
  });

  /** Runs an action; on a refusal (stale, duplicate, ended) shows the page with the reason. */
  async function act(c: Context, id: string, action: () => Promise<string>): Promise<Response> {
    try {
      const next = await action();
      return c.redirect(next, 303);
    } catch (err) {
      if (err instanceof RatchetError) return page(c, id, err.message, 409);
      throw err;
    }
  }

  app.post('/s/:id/decide', async (c) => {
    const id = c.req.param('id');
    const form = await c.req.parseBody();
    const callId = formText(form.callId, 200);
    const decision = formText(form.decision, 40) as ApprovalDecisionKind | undefined;
    if (callId === undefined || decision === undefined || !approvalDecisions.includes(decision)) {
      return page(
        c,
        id,
        'That decision was not understood: it needs a call and one of approve, approve for this session, deny or abort.',
        400,
      );
    }
    const reason = formText(form.reason, 4000);
    const remote = getConnInfo(c).remote.address ?? 'unknown address';
    return act(c, id, async () => {
      await ratchet.decide(id, decision, { callId, by: `inbox (${remote})`, ...(reason ? { reason } : {}) });
      return `/s/${encodeURIComponent(id)}?done=${encodeURIComponent(`${callId}:${decision}`)}`;
    });
  });

  app.post('/s/:id/budget', async (c) => {
    const id = c.req.param('id');
    const refused = (why: string) => page(c, id, `That budget decision was not taken: ${why}`, 400);
    const form = await c.req.parseBody({ all: true });
    const decisions = [form.decision ?? []].flat();
    if (decisions.length !== 1) {
      return refused('it needs one decision, either add or stop (the form sends the button you press).');
    }
    const decision = formText(decisions[0], 10);
    if (decision !== 'add' && decision !== 'stop') {
      return refused('it needs one decision, either add or stop.');
    }
    const single = (name: string): string | undefined | null => {
      const values = [form[name] ?? []].flat();
      return values.length > 1 ? null : formText(values[0], 40);
    };
    const add = single('add');
    const ifLimit = single('ifLimit');
    if (add === null || ifLimit === null) return refused('a field was sent twice.');
    if (decision === 'stop' && add !== undefined) {
      return refused(
        `you pressed Stop with ${add} in "Add tokens": clear it to stop the tree, or press Continue to add.`,
      );
    }
    if (decision === 'add' && (add === undefined || !/^\d+$/.test(add) || Number(add) <= 0)) {
      return refused(`add a whole number of tokens above 0${add ? ` (not "${add}")` : ''}.`);
    }
    if (ifLimit !== undefined && !/^\d+$/.test(ifLimit)) {
      return refused(`the page's limit "${ifLimit}" is not a number; reload the page.`);
    }
    const remote = getConnInfo(c).remote.address ?? 'unknown address';
    const by = `inbox (${remote})`;
    const checked = budgetDecisionSchema().safeParse({
      ...(decision === 'add' ? { add: Number(add) } : { stop: true }),
      by,
      ...(ifLimit !== undefined ? { ifLimit: Number(ifLimit) } : {}),
    });
    if (!checked.success) return refused(`${describeZodError(checked.error)}.`);
    return act(c, id, async () => {
      const view = await ratchet.budget(id, checked.data);
      const outcome = decision === 'stop' ? 'stopped' : `added-${add}${view.parked ? '-parked' : ''}`;
      return `/s/${encodeURIComponent(id)}?budget=${outcome}`;
    });
  });

  app.post('/s/:id/send', async (c) => {
    const id = c.req.param('id');
    const text = formText((await c.req.parseBody()).text, 100_000);
    if (text === undefined) return page(c, id, 'The message is empty.', 400);
    return act(c, id, async () => {
      await ratchet.send(id, text);
      return `/s/${encodeURIComponent(id)}?sent`;
    });
  });

  app.post('/s/:id/interrupt', (c) =>
    act(c, c.req.param('id'), async () => {
      await ratchet.interrupt(c.req.param('id'), 'interrupted from the inbox');
      return `/s/${encodeURIComponent(c.req.param('id'))}`;
    }),
  );

  app.post('/s/:id/cancel', (c) =>
    act(c, c.req.param('id'), async () => {
      await ratchet.cancel(c.req.param('id'));
      return `/s/${encodeURIComponent(c.req.param('id'))}`;
    }),
  );

  app.notFound((c) =>
    c.html(
      layout(
        'Not found',
        html`<h1>Not found</h1>
          <p><a href="/">All sessions</a></p>`,
      ),
      404,
    ),
  );
  app.onError((err, c) => {
    const message = err instanceof Error ? err.message : String(err);
    return c.html(
      layout(
        'Error',
        html`<h1>Something went wrong</h1>
          <p>${message}</p>`,
      ),
      500,
    );
  });
  return app;
}
