import { describe, expect, it } from 'vitest';
import { assistantMessage, userMessage } from '../../src/shared/items.js';
import type { ToolRequest } from '../../src/shared/policy.js';
import type { SessionConfig } from '../../src/shared/session-config.js';
import { carriedStateSchema, sessionConfigSchema } from '../../src/shared/session-config.js';
import { ApprovalRejected, SessionState } from '../../src/workflows/session-state.js';

function config(overrides: Partial<SessionConfig> = {}): SessionConfig {
  return sessionConfigSchema.parse({
    task: 'rename foo to bar',
    workspace: '/tmp/repo',
    model: { name: 'm', contextWindow: 1000, compactAtRatio: 0.5 },
    ...overrides,
  });
}

const npmTest: ToolRequest = { tool: 'shell', kind: 'execute', command: ['npm', 'test'] };
const npmTestWatch: ToolRequest = {
  tool: 'shell',
  kind: 'execute',
  command: ['npm', 'test', '--', '--watch'],
};
const rmRf: ToolRequest = { tool: 'shell', kind: 'execute', command: ['rm', '-rf', 'build'] };

function pending(state: SessionState, callId: string, request: ToolRequest): void {
  state.requestApproval(
    { callId, tool: request.tool, arguments: {}, summary: callId, reason: 'asks', turn: 1, requestedAt: '' },
    request,
  );
}

describe('SessionState approvals', () => {
  it('rejects unknown and already-decided calls, with what is pending', () => {
    const state = new SessionState(config());
    pending(state, 'call_1', npmTest);
    expect(() => state.validateApproval({ callId: 'nope', decision: 'approve' })).toThrow(
      /no pending approval for call nope \(pending: call_1\)/,
    );
    state.applyApproval({ callId: 'call_1', decision: 'approve' });
    expect(() => state.validateApproval({ callId: 'call_1', decision: 'deny' })).toThrow(/already decided/);
    state.settle('call_1');
    expect(() => state.validateApproval({ callId: 'call_1', decision: 'deny' })).toThrow(/already decided/);
    expect(() => state.validateApproval({ callId: 'call_9', decision: 'deny' })).toThrow(
      /nothing is pending/,
    );
  });

  it('rejects decisions once the session has ended', () => {
    const state = new SessionState(config());
    pending(state, 'call_1', npmTest);
    state.ended = 'completed';
    expect(() => state.applyApproval({ callId: 'call_1', decision: 'approve' })).toThrow(ApprovalRejected);
    expect(state.decisionFor('call_1')).toBeUndefined();
  });

  it('approve_for_session adds a rule for what was approved: not more options, not others', () => {
    const state = new SessionState(config());
    pending(state, 'call_1', npmTest);
    pending(state, 'call_2', npmTestWatch);
    pending(state, 'call_3', rmRf);
    pending(state, 'call_4', { ...npmTest, command: ['npm', 'test', 'a.test.ts'] });
    expect(state.status).toBe('awaiting_approval');
    const ack = state.applyApproval({ callId: 'call_1', decision: 'approve_for_session' });
    expect(ack.alsoApproved).toEqual(['call_4']);
    expect(state.decisionFor('call_4')?.decision).toBe('approve');
    expect(state.pendingApprovals().map((p) => p.callId)).toEqual(['call_2', 'call_3']);
    expect(state.decidePolicy(npmTest).action).toBe('allow');
    expect(state.decidePolicy(rmRf).action).toBe('ask');
  });

  it('clearApprovals drops the waits and refuses late decisions', () => {
    const state = new SessionState(config());
    pending(state, 'call_1', npmTest);
    state.clearApprovals();
    expect(state.pendingApprovals()).toEqual([]);
    expect(() => state.validateApproval({ callId: 'call_1', decision: 'approve' })).toThrow(
      /already decided/,
    );
  });
});

describe('SessionState transcript', () => {
  it('pages by bytes and always makes progress', () => {
    const state = new SessionState(config());
    for (let i = 0; i < 10; i++) state.append(userMessage('x'.repeat(1000)));
    const first = state.transcriptPage({ maxBytes: 2500 });
    expect(first.entries).toHaveLength(2);
    expect(first.nextIndex).toBe(2);
    expect(first.total).toBe(10);
    const tiny = state.transcriptPage({ fromIndex: 5, maxBytes: 1 });
    expect(tiny.entries).toHaveLength(1);
    expect(state.transcriptPage({ fromIndex: 99 }).entries).toEqual([]);
  });

  it('triggers compaction on tokens and on bytes', () => {
    const state = new SessionState(config({ limits: { ...config().limits, maxTranscriptBytes: 5000 } }));
    expect(state.compactionReason()).toBeNull();
    state.addUsage({
      inputTokens: 450,
      cachedInputTokens: 0,
      outputTokens: 60,
      reasoningTokens: 0,
      totalTokens: 510,
    });
    expect(state.compactionReason()).toMatch(/510 of 1000 tokens/);
    state.replaceTranscript([userMessage('summary')]);
    expect(state.compactionReason()).toBeNull();
    expect(state.epoch).toBe(1);
    state.append(userMessage('y'.repeat(6000)));
    expect(state.compactionReason()).toMatch(/bytes/);
  });

  it('closes open calls so that every call has an output', () => {
    const state = new SessionState(config());
    const call = { type: 'function_call' as const, call_id: 'c1', name: 'shell', arguments: '{}' };
    const call2 = { type: 'function_call' as const, call_id: 'c2', name: 'shell', arguments: '{}' };
    state.append(call);
    state.append(call2);
    state.appendToolOutput('c1', { output: 'ok', display: 'shell', success: true });
    state.closeOpenCalls([call, call2], 'interrupted');
    const outputs = state.entries.filter((e) => e.item.type === 'function_call_output');
    expect(outputs.map((e) => (e.item as { call_id: string }).call_id)).toEqual(['c1', 'c2']);
  });

  it('carries its state through the schema (continue-as-new)', () => {
    const state = new SessionState(config());
    state.workspace = { root: '/tmp/repo', gitHead: null, initiallyDirty: {}, agentsMd: false };
    state.append(userMessage('task'));
    state.append(assistantMessage('done'));
    state.turn = 3;
    state.queueMessage('later');
    const carried = carriedStateSchema.parse(JSON.parse(JSON.stringify(state.carry())));
    const next = new SessionState(config(), carried);
    expect(next.entries).toEqual(state.entries);
    expect(next.runs).toBe(2);
    expect(next.turn).toBe(3);
    expect(next.bytes).toBe(state.bytes);
    expect(next.deliverQueuedMessages()).toBe(true);
  });

  it("carries the provider's last response across continue-as-new, and forgets it on compaction", () => {
    const state = new SessionState(config());
    state.workspace = { root: '/tmp/repo', gitHead: null, initiallyDirty: {}, agentsMd: false };
    state.append(userMessage('task'));
    state.lastResponse = { id: 'resp_7', upTo: 1 };
    const carried = carriedStateSchema.parse(JSON.parse(JSON.stringify(state.carry())));
    expect(new SessionState(config(), carried).lastResponse).toEqual({ id: 'resp_7', upTo: 1 });
    // State carried before provider state existed parses without it.
    const { lastResponse: _dropped, ...older } = carried;
    expect(carriedStateSchema.parse(older).lastResponse).toBeNull();

    state.replaceTranscript([userMessage('summary')]);
    expect(state.lastResponse).toBeNull();
  });

  it('raises the turn limit when a person sends a message after it was reached', () => {
    const state = new SessionState(config({ limits: { ...config().limits, maxTurns: 2 } }));
    state.turn = 2;
    state.goIdle('limit');
    state.queueMessage('keep going');
    state.deliverQueuedMessages();
    expect(state.turnLimit).toBe(4);
    expect(state.idle).toBe(false);
  });
});
