/**
 * The inbox's pages for a tree of sessions, rendered without a server: children listed under
 * their parent, calls waiting below a session decided from its page, and the token budget's
 * decision at the tree's root only.
 */
import { describe, expect, it } from 'vitest';
import type { SessionSummary } from '../../src/client.js';
import type { PendingApproval, StatusView } from '../../src/shared/api/session-api.js';
import { sessionList, sessionLive } from '../../src/inbox/render.js';

function summary(sessionId: string, status: SessionSummary['status'], parent?: string): SessionSummary {
  return {
    sessionId,
    status,
    workflowStatus: 'RUNNING',
    task: `task of ${sessionId}`,
    repo: '/repo',
    turn: 1,
    pendingApprovals: 0,
    startTime: `2026-01-01T00:00:0${sessionId.length % 10}Z`,
    closeTime: undefined,
    ...(parent ? { parent } : {}),
  };
}

function view(overrides: Partial<StatusView>): StatusView {
  return {
    status: 'running',
    task: 'the task',
    workspace: '/repo',
    model: 'm',
    approvalPolicy: 'untrusted',
    sandbox: 'workspace-write',
    turn: 3,
    pendingApprovals: [],
    usage: { inputTokens: 0, cachedInputTokens: 0, outputTokens: 0, reasoningTokens: 0, totalTokens: 0 },
    plan: [],
    lastMessage: null,
    notice: null,
    current: null,
    transcriptLength: 0,
    epoch: 0,
    runs: 1,
    compactions: 0,
    queuedMessages: 0,
    ...overrides,
  };
}

const pending: PendingApproval = {
  callId: 'c1',
  tool: 'shell',
  arguments: { command: ['bash', '-lc', 'echo hi > out.txt'] },
  summary: 'bash -lc echo hi > out.txt',
  reason: 'the policy asks',
  turn: 1,
  requestedAt: '2026-01-01T00:00:00Z',
};

/** The HTML with each run of white space as one space (the templates wrap their text). */
async function text(rendered: unknown): Promise<string> {
  return String(await rendered).replace(/\s+/g, ' ');
}

describe('the inbox, for a tree of sessions', () => {
  it('lists each child right under its parent, indented, whatever their statuses', async () => {
    // The child waits for a person (listed first on its own); the parent runs.
    const page = await text(
      sessionList([
        summary('other', 'idle'),
        summary('root/agent-1', 'awaiting_approval', 'root'),
        summary('root', 'running'),
        summary('root/agent-1/agent-1', 'awaiting_budget', 'root/agent-1'),
        summary('root/agent-2', 'completed', 'root'),
      ]),
    );
    const order = [...page.matchAll(/data-depth="(\d)"[^>]*>\s*<a href="\/s\/([^"]+)"/g)].map(
      (m) => `${m[1]} ${decodeURIComponent(m[2]!)}`,
    );
    expect(order).toEqual([
      '0 root',
      '1 root/agent-1',
      '2 root/agent-1/agent-1',
      '1 root/agent-2',
      '0 other',
    ]);
    expect(page).toContain('budget spent');
  });

  it("shows a child's pending call on the parent's page, with a form that decides it there", async () => {
    const live = await text(
      sessionLive('root', view({}), undefined, [{ sessionId: 'root/agent-1', approval: pending }]),
    );
    expect(live).toContain('action="/s/root/decide"');
    expect(live).toContain('name="callId" value="c1"');
    expect(live).toMatch(/in <a href="\/s\/root%2Fagent-1">root\/agent-1<\/a>/);
  });

  it('offers the budget decision at the root while parked, and only a link to it on a child', async () => {
    const root = await text(
      sessionLive(
        'root',
        view({ status: 'awaiting_budget', budget: { limit: 60, spent: 75, parked: true, decidedAt: null } }),
      ),
    );
    expect(root).toContain('75 of 60 tokens spent by the tree · parked until you decide');
    expect(root).toContain('action="/s/root/budget"');
    expect(root).toContain('name="ifLimit" value="60"');
    expect(root).toContain('value="stop"');
    const child = await text(
      sessionLive(
        'root/agent-1',
        view({
          status: 'awaiting_budget',
          budget: { limit: 60, spent: 30, parked: true, decidedAt: 'root' },
        }),
      ),
    );
    // Without the root's view (it could not be asked) a child's page only links to the root.
    expect(child).not.toContain('/budget"');
    expect(child).toContain('href="/s/root"');
    // With it, the child's page decides for the tree too, carrying the root's limit, not its own.
    const childWithTree = await text(
      sessionLive(
        'root/agent-1',
        view({
          status: 'awaiting_budget',
          budget: { limit: 60, spent: 30, parked: true, decidedAt: 'root' },
        }),
        undefined,
        [],
        { sessionId: 'root', limit: 80, spent: 95, parked: true, decidedAt: null },
      ),
    );
    expect(childWithTree).toContain('action="/s/root%2Fagent-1/budget"');
    expect(childWithTree).toContain('name="ifLimit" value="80"');
    expect(childWithTree).toContain('(the tree: 95 of 80 tokens spent)');
    expect(childWithTree).toContain('value="stop"');
    // Not parked: more tokens may be added ahead of time, but there is nothing to stop.
    const running = await text(
      sessionLive('root', view({ budget: { limit: 60, spent: 10, parked: false, decidedAt: null } })),
    );
    expect(running).toContain('value="add"');
    expect(running).not.toContain('value="stop"');
  });
});
