/**
 * The inbox's pages as HTML: the list of sessions, a session page, and the live fragments the
 * page swaps in when something changes. Everything shown goes through hono's `html` template,
 * which escapes it, and through `visible`, which shows control characters instead of passing
 * them on (an escape sequence in a command must not hide what runs).
 */
import type { HtmlEscapedString } from 'hono/utils/html';
import { html } from 'hono/html';
import type { SessionSummary } from '../client.js';
import type { FunctionCallItem, TranscriptItem } from '../shared/prompt/items.js';
import { messageText } from '../shared/prompt/items.js';
import type { BudgetView, PendingApproval, StatusView, TranscriptPage } from '../shared/api/session-api.js';
import { escapeControl } from '../shared/util/escape.js';
import { summarizeRawCall } from '../shared/tools/summary.js';

type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

/** What the model or a repository wrote, with every hidden character shown as an escape. */
export function visible(text: string): string {
  return escapeControl(text);
}

const STATUS_ORDER = [
  'awaiting_approval',
  'awaiting_budget',
  'running',
  'idle',
  'failed',
  'completed',
  'cancelled',
];
const STATUS_LABEL: Record<string, string> = {
  awaiting_approval: 'waiting for you',
  awaiting_budget: 'budget spent',
  running: 'running',
  idle: 'idle',
  failed: 'failed',
  completed: 'finished',
  cancelled: 'cancelled',
};

function label(status: string): string {
  return STATUS_LABEL[status] ?? status;
}

export function layout(title: string, body: Html, live?: string): Html {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${visible(title)} · Ratchet inbox</title>
        <link rel="stylesheet" href="/assets/inbox.css" />
        <script src="/assets/inbox.js" defer></script>
      </head>
      <body data-live="${live ?? ''}">
        <header class="top"><a href="/">Ratchet inbox</a></header>
        <main>${body}</main>
      </body>
    </html>`;
}

/**
 * The list: sessions that wait for a person first, then running, idle and the rest; a child
 * session follows its parent, indented, when both are listed (a tree reads as one).
 */
export function sessionList(sessions: readonly SessionSummary[]): Html {
  const byStatus = (a: SessionSummary, b: SessionSummary) =>
    (STATUS_ORDER.indexOf(a.status) + 1 || 99) - (STATUS_ORDER.indexOf(b.status) + 1 || 99) ||
    b.startTime.localeCompare(a.startTime);
  const listed = new Set(sessions.map((s) => s.sessionId));
  const childrenOf = new Map<string, SessionSummary[]>();
  for (const s of sessions) {
    if (s.parent && listed.has(s.parent)) childrenOf.set(s.parent, [...(childrenOf.get(s.parent) ?? []), s]);
  }
  const ordered: { s: SessionSummary; depth: number }[] = [];
  const place = (s: SessionSummary, depth: number, seen: Set<string>): void => {
    if (seen.has(s.sessionId)) return;
    seen.add(s.sessionId);
    ordered.push({ s, depth });
    const children = (childrenOf.get(s.sessionId) ?? []).sort((a, b) =>
      a.sessionId.localeCompare(b.sessionId),
    );
    for (const child of children) place(child, depth + 1, seen);
  };
  const seen = new Set<string>();
  for (const s of [...sessions].sort(byStatus)) if (!s.parent || !listed.has(s.parent)) place(s, 0, seen);
  if (ordered.length === 0) return html`<p class="empty">No sessions yet.</p>`;
  return html`<ul class="sessions">
    ${ordered.map(
      ({ s, depth }) =>
        html`<li
          class="session status-${s.status}${depth > 0 ? ` child depth-${Math.min(depth, 4)}` : ''}"
          data-depth="${depth}"
        >
          <a href="/s/${encodeURIComponent(s.sessionId)}">
            <span class="badge"
              >${label(s.status)}${s.pendingApprovals ? ` · ${s.pendingApprovals}` : ''}</span
            >
            <span class="task">${visible(s.task || s.sessionId)}</span>
            <span class="meta">${s.sessionId}${s.turn !== undefined ? ` · turn ${s.turn}` : ''}</span>
          </a>
        </li>`,
    )}
  </ul>`;
}

/** A patch or diff with added, removed and header lines coloured. */
export function coloredDiff(text: string): Html {
  const lines = visible(text).split('\n');
  return html`<pre class="diff">
${lines.map((line) => {
      const kind =
        line.startsWith('+++') || line.startsWith('---') || line.startsWith('***') || line.startsWith('diff ')
          ? 'head'
          : line.startsWith('+')
            ? 'add'
            : line.startsWith('-')
              ? 'del'
              : line.startsWith('@@')
                ? 'hunk'
                : 'ctx';
      return html`<span class="${kind}">${line}</span>`;
    })}</pre>`;
}

function argumentsOf(pending: PendingApproval): Record<string, unknown> {
  return typeof pending.arguments === 'object' && pending.arguments !== null
    ? (pending.arguments as Record<string, unknown>)
    : {};
}

/**
 * The whole call: every argument of the command, or the patch as a coloured diff. `holder` is
 * the session below this one that waits for it (the form still posts here: the tree decides).
 */
function pendingCall(sessionId: string, pending: PendingApproval, holder?: string): Html {
  const args = argumentsOf(pending);
  const id = encodeURIComponent(sessionId);
  let detail: Html;
  if (pending.tool === 'apply_patch' && typeof args.input === 'string') {
    detail = html`${typeof args.workdir === 'string' ? html`<p>in <code>${visible(args.workdir)}</code></p>` : ''}
    ${coloredDiff(args.input)}`;
  } else if (Array.isArray(args.command)) {
    detail = html`<ol class="argv">
        ${args.command.map((word) => html`<li><code>${visible(String(word))}</code></li>`)}
      </ol>
      ${typeof args.workdir === 'string' ? html`<p>in <code>${visible(args.workdir)}</code></p>` : ''}`;
  } else {
    detail = html`<pre>${visible(JSON.stringify(pending.arguments, null, 2))}</pre>`;
  }
  return html`<section class="pending" data-call="${pending.callId}">
    <h3>${visible(pending.summary)}</h3>
    ${holder ? html`<p class="holder">in <a href="/s/${encodeURIComponent(holder)}">${holder}</a></p>` : ''}
    <p class="why">
      Asks because ${visible(pending.reason)} · turn ${pending.turn} · <code>${pending.callId}</code>
    </p>
    ${detail}
    <form method="post" action="/s/${id}/decide" class="decide">
      <input type="hidden" name="callId" value="${pending.callId}" />
      <div class="buttons">
        <button name="decision" value="approve" class="approve">Approve</button>
        <button name="decision" value="approve_for_session">Approve for this session</button>
        <button name="decision" value="deny" class="deny">Deny</button>
        <button name="decision" value="abort" class="abort">Abort the turn</button>
      </div>
      <label
        >Reason (the model reads it when you deny or abort)
        <input name="reason" maxlength="4000" autocomplete="off" />
      </label>
    </form>
  </section>`;
}

function callText(item: FunctionCallItem): string {
  return summarizeRawCall(item.name, item.arguments);
}

function entry(item: TranscriptItem, index: number): Html {
  if (item.type === 'message') {
    return html`<li class="msg ${item.role}" id="t${index}">
      <span class="who">${item.role}</span>
      <div class="text">${visible(messageText(item))}</div>
    </li>`;
  }
  if (item.type === 'function_call') {
    return html`<li class="call" id="t${index}">
      <span class="who">call</span>
      <details>
        <summary>${visible(callText(item))}</summary>
        <pre>${visible(item.arguments)}</pre>
      </details>
    </li>`;
  }
  if (item.type === 'function_call_output') {
    const first = item.output.split('\n', 1)[0] ?? '';
    return html`<li class="output" id="t${index}">
      <span class="who">output</span>
      <details>
        <summary>${visible(first.slice(0, 160))}</summary>
        <pre>${visible(item.output)}</pre>
      </details>
    </li>`;
  }
  return html`<li class="other" id="t${index}"><span class="who">${item.type}</span></li>`;
}

export function transcript(sessionId: string, page: TranscriptPage): Html {
  const id = encodeURIComponent(sessionId);
  const newer = page.nextIndex < page.total;
  return html`<section class="transcript">
    <h2>
      Transcript <small>${page.total} items${page.epoch > 0 ? `, compacted ${page.epoch}×` : ''}</small>
    </h2>
    ${
      page.fromIndex > 0
        ? html`<p><a href="/s/${id}?from=${Math.max(0, page.fromIndex - 50)}">earlier items</a></p>`
        : ''
    }
    <ol start="${page.fromIndex}">
      ${page.entries.map((e, i) => entry(e.item, page.fromIndex + i))}
    </ol>
    ${newer ? html`<p><a href="/s/${id}?from=${page.nextIndex}">later items</a></p>` : ''}
  </section>`;
}

/** The budget of the tree a session belongs to, as its root reports it (`ratchet budget`). */
export interface TreeBudgetView extends BudgetView {
  /** The tree's root, where decisions are made. */
  sessionId: string;
}

/**
 * A tree's budget: what this session spent and, on any session of the tree, the decision. The
 * form posts the limit it was rendered with, so a page submitted twice, or after someone else
 * decided, is refused instead of adding twice. `tree` is the root's view (undefined: unknown).
 */
function budgetSection(sessionId: string, view: StatusView, tree: TreeBudgetView | undefined): Html {
  const budget = view.budget;
  if (!budget) return html``;
  const id = encodeURIComponent(sessionId);
  return html`<section class="budget" data-parked="${budget.parked ? 'yes' : 'no'}">
    <h2>Token budget</h2>
    <p>
      ${budget.spent} of ${budget.limit} tokens
      spent${budget.decidedAt ? ' by this session and those below it' : ' by the tree'}${budget.parked ? ' · parked until you decide' : ''}
    </p>
    ${
      budget.decidedAt
        ? html`<p>
            Decided for the whole tree at its root:
            <a href="/s/${encodeURIComponent(tree?.sessionId ?? budget.decidedAt)}"
              >${tree?.sessionId ?? budget.decidedAt}</a
            >${tree ? ` (the tree: ${tree.spent} of ${tree.limit} tokens spent)` : ''}
          </p>`
        : ''
    }
    ${
      tree
        ? html`<form method="post" action="/s/${id}/budget" class="budget">
            <input type="hidden" name="ifLimit" value="${tree.limit}" />
            <label
              >Add tokens <input name="add" inputmode="numeric" pattern="[0-9]+" autocomplete="off"
            /></label>
            <div class="buttons">
              <button name="decision" value="add" class="approve">Continue with these tokens</button>
              ${tree.parked ? html`<button name="decision" value="stop" class="abort">Stop the tree</button>` : ''}
            </div>
          </form>`
        : ''
    }
  </section>`;
}

/** The children of a session that fans out, each with its status and a link. */
function agentsSection(view: StatusView): Html {
  if (!view.agents?.length) return html``;
  return html`<section class="agents">
    <h2>Agents</h2>
    <ul>
      ${view.agents.map(
        (a) =>
          html`<li class="status-${a.status}">
            <a href="/s/${encodeURIComponent(a.sessionId)}">${a.name}</a> ·
            ${visible(a.detail)}${a.merged ? ' · merged' : ''}${a.closed ? ' · closed' : ''}
          </li>`,
      )}
    </ul>
  </section>`;
}

/** A call waiting in a session below this one. */
export interface TreePending {
  sessionId: string;
  approval: PendingApproval;
}

/**
 * The part of a session page that changes: status, step, pending calls (its own and those of
 * every session below it), budget, agents, plan.
 */
export function sessionLive(
  sessionId: string,
  view: StatusView,
  flash?: string,
  below: readonly TreePending[] = [],
  tree: TreeBudgetView | undefined = view.budget && !view.budget.decidedAt
    ? { sessionId, ...view.budget }
    : undefined,
): Html {
  return html`<div id="live">
    ${flash ? html`<p class="flash" role="status">${visible(flash)}</p>` : ''}
    <section class="summary status-${view.status}">
      <p>
        <span class="badge">${label(view.status)}</span> turn ${view.turn} · ${visible(view.model)} · policy
        ${view.approvalPolicy} · sandbox ${visible(view.sandbox)}
      </p>
      ${view.current ? html`<p class="current">Now: ${visible(view.current.label)}</p>` : ''}
      ${view.notice ? html`<p class="notice">${visible(view.notice)}</p>` : ''}
      ${view.lastMessage ? html`<blockquote>${visible(view.lastMessage)}</blockquote>` : ''}
    </section>
    ${view.pendingApprovals.map((p) => pendingCall(sessionId, p))}
    ${below.map((p) => pendingCall(sessionId, p.approval, p.sessionId))}
    ${budgetSection(sessionId, view, tree)} ${agentsSection(view)}
    ${
      view.plan.length > 0
        ? html`<section class="plan">
            <h2>Plan</h2>
            <ol>
              ${view.plan.map((s) => html`<li class="step-${s.status}">${visible(s.step)}</li>`)}
            </ol>
          </section>`
        : ''
    }
  </div>`;
}

export function sessionPage(
  sessionId: string,
  view: StatusView,
  page: TranscriptPage,
  diff: string | undefined,
  flash?: string,
  below: readonly TreePending[] = [],
  tree?: TreeBudgetView,
): Html {
  const id = encodeURIComponent(sessionId);
  const ended = ['completed', 'failed', 'cancelled'].includes(view.status);
  return html`<h1>${visible(view.task)}</h1>
    <p class="meta">${sessionId} · <code>${visible(view.workspace)}</code></p>
    ${sessionLive(sessionId, view, flash, below, tree)}
    ${
      ended
        ? ''
        : html`<section class="controls">
            <form method="post" action="/s/${id}/send" class="send">
              <label>Message to the session <textarea name="text" rows="2" required></textarea></label>
              <button>Send</button>
            </form>
            <form method="post" action="/s/${id}/interrupt" class="inline"><button>Interrupt</button></form>
            <form method="post" action="/s/${id}/cancel" class="inline">
              <button class="abort">Cancel the session</button>
            </form>
          </section>`
    }
    ${
      diff === undefined
        ? ''
        : html`<section class="files">
            <h2>Files changed</h2>
            ${diff.trim() === '' ? html`<p>No changes yet.</p>` : coloredDiff(diff)}
          </section>`
    }
    ${transcript(sessionId, page)}`;
}
