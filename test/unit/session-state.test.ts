import { describe, expect, it } from 'vitest';
import { assistantMessage, userMessage } from '../../src/shared/prompt/items.js';
import type { ToolRequest } from '../../src/shared/policy/policy.js';
import type { SessionConfig } from '../../src/shared/api/session-config.js';
import {
  carriedStateSchema,
  sessionConfigSchema,
  sessionInputSchema,
} from '../../src/shared/api/session-config.js';
import { ApprovalRejected } from '../../src/workflows/approvals.js';
import { SessionState } from '../../src/workflows/session-state.js';
import { uniqueCallIds } from '../../src/workflows/transcript.js';
import { MAX_MESSAGE_BYTES, userMessageSchema } from '../../src/shared/api/session-api.js';
import { jsonBytes, utf8Bytes } from '../../src/shared/util/bytes.js';

function config(overrides: Partial<SessionConfig> = {}): SessionConfig {
  return sessionConfigSchema().parse({
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
  state.approvals.request(
    { callId, tool: request.tool, arguments: {}, summary: callId, reason: 'asks', turn: 1, requestedAt: '' },
    request,
  );
}

describe('SessionState approvals', () => {
  it('rejects unknown and already-decided calls, with what is pending', () => {
    const state = new SessionState(config());
    pending(state, 'call_1', npmTest);
    expect(() => state.approvals.validate({ callId: 'nope', decision: 'approve' })).toThrow(
      /no pending approval for call nope \(pending: call_1\)/,
    );
    state.approvals.apply({ callId: 'call_1', decision: 'approve' });
    expect(() => state.approvals.validate({ callId: 'call_1', decision: 'deny' })).toThrow(/already decided/);
    state.approvals.settle('call_1');
    expect(() => state.approvals.validate({ callId: 'call_1', decision: 'deny' })).toThrow(/already decided/);
    expect(() => state.approvals.validate({ callId: 'call_9', decision: 'deny' })).toThrow(
      /nothing is pending/,
    );
  });

  it('rejects decisions once the session has ended', () => {
    const state = new SessionState(config());
    pending(state, 'call_1', npmTest);
    state.end('completed');
    expect(() => state.approvals.apply({ callId: 'call_1', decision: 'approve' })).toThrow(ApprovalRejected);
    expect(state.approvals.decisionFor('call_1')).toBeUndefined();
  });

  it('approve_for_session adds a rule for what was approved: not more options, not others', () => {
    const state = new SessionState(config());
    pending(state, 'call_1', npmTest);
    pending(state, 'call_2', npmTestWatch);
    pending(state, 'call_3', rmRf);
    pending(state, 'call_4', { ...npmTest, command: ['npm', 'test', 'a.test.ts'] });
    expect(state.status).toBe('awaiting_approval');
    const ack = state.approvals.apply({ callId: 'call_1', decision: 'approve_for_session' });
    expect(ack.alsoApproved).toEqual(['call_4']);
    expect(state.approvals.decisionFor('call_4')?.decision).toBe('approve');
    expect(state.approvals.pending().map((p) => p.callId)).toEqual(['call_2', 'call_3']);
    expect(state.decidePolicy(npmTest).action).toBe('allow');
    expect(state.decidePolicy(rmRf).action).toBe('ask');
  });

  it('clear drops the waits and refuses late decisions', () => {
    const state = new SessionState(config());
    pending(state, 'call_1', npmTest);
    state.approvals.clear();
    expect(state.approvals.pending()).toEqual([]);
    expect(() => state.approvals.validate({ callId: 'call_1', decision: 'approve' })).toThrow(
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
    state.workspacePrepared({ root: '/tmp/repo', gitHead: null, initiallyDirty: {}, agentsMd: false });
    state.append(userMessage('task'));
    state.append(assistantMessage('done'));
    for (let i = 0; i < 3; i++) state.beginTurn();
    state.queueMessage('later');
    const carried = carriedStateSchema().parse(JSON.parse(JSON.stringify(state.carry())));
    const next = new SessionState(config(), carried);
    expect(next.entries).toEqual(state.entries);
    expect(next.runs).toBe(2);
    expect(next.turn).toBe(3);
    expect(next.bytes).toBe(state.bytes);
    expect(next.deliverQueuedMessages()).toBe(true);
  });

  it('carries the session rules across continue-as-new, without changing the state it started from', () => {
    const state = new SessionState(config());
    state.workspacePrepared({ root: '/tmp/repo', gitHead: null, initiallyDirty: {}, agentsMd: false });
    pending(state, 'call_1', npmTest);
    state.approvals.apply({ callId: 'call_1', decision: 'approve_for_session' });
    const carried = carriedStateSchema().parse(JSON.parse(JSON.stringify(state.carry())));
    expect(carried.sessionRules).toHaveLength(1);
    const next = new SessionState(config(), carried);
    expect(next.decidePolicy(npmTest).action).toBe('allow');
    expect(next.decidePolicy(rmRf).action).toBe('ask');

    pending(next, 'call_2', { ...npmTest, command: ['ls'] });
    next.approvals.apply({ callId: 'call_2', decision: 'approve_for_session' });
    expect(next.approvals.sessionRules).toHaveLength(2);
    expect(carried.sessionRules).toHaveLength(1);
  });

  it('derives the epoch from the compactions, and reads state carried with or without one', () => {
    const state = new SessionState(config());
    state.workspacePrepared({ root: '/tmp/repo', gitHead: null, initiallyDirty: {}, agentsMd: false });
    state.replaceTranscript([userMessage('summary 1')]);
    state.replaceTranscript([userMessage('summary 2')]);
    expect(state.epoch).toBe(2);
    expect(state.compactions).toBe(2);
    expect(state.transcriptPage().epoch).toBe(2);
    expect(state.statusView().epoch).toBe(2);
    const carried = carriedStateSchema().parse(JSON.parse(JSON.stringify(state.carry())));
    // Still written, for workers running code from before it was derived.
    expect(carried.epoch).toBe(2);
    expect(new SessionState(config(), carried).epoch).toBe(2);
    const { epoch: _dropped, ...withoutEpoch } = carried;
    const next = new SessionState(config(), carriedStateSchema().parse(withoutEpoch));
    expect(next.epoch).toBe(2);
    next.replaceTranscript([userMessage('summary 3')]);
    expect(next.epoch).toBe(3);
    expect(next.carry().epoch).toBe(3);
  });

  it("carries the provider's last response across continue-as-new, and forgets it on compaction", () => {
    const state = new SessionState(config());
    state.workspacePrepared({ root: '/tmp/repo', gitHead: null, initiallyDirty: {}, agentsMd: false });
    state.append(userMessage('task'));
    state.rememberResponse('resp_7');
    const carried = carriedStateSchema().parse(JSON.parse(JSON.stringify(state.carry())));
    expect(new SessionState(config(), carried).lastResponse).toEqual({ id: 'resp_7', upTo: 1 });
    // State carried before provider state existed parses without it.
    const { lastResponse: _dropped, ...older } = carried;
    expect(carriedStateSchema().parse(older).lastResponse).toBeNull();

    state.replaceTranscript([userMessage('summary')]);
    expect(state.lastResponse).toBeNull();
  });

  it('raises the turn limit when a person sends a message after it was reached', () => {
    const state = new SessionState(config({ limits: { ...config().limits, maxTurns: 2 } }));
    state.beginTurn();
    state.beginTurn();
    state.goIdle('limit');
    state.queueMessage('keep going');
    state.deliverQueuedMessages();
    expect(state.turnLimit).toBe(4);
    expect(state.idle).toBe(false);
  });
});

describe('issue 11: bounds in UTF-8 bytes, unique call ids', () => {
  it('measures the transcript in UTF-8 bytes, as payloads are (item 4)', () => {
    const limit = 1024 * 1024;
    const state = new SessionState(config({ limits: { ...config().limits, maxTranscriptBytes: limit } }));
    // 3 × 250,000 CJK characters: 750,000 UTF-16 units (under the limit), 2.25 MB on the wire.
    for (let i = 0; i < 3; i++) state.append(assistantMessage('漢'.repeat(250_000)));
    expect(state.bytes).toBe(state.entries.reduce((sum, entry) => sum + jsonBytes(entry), 0));
    expect(state.bytes).toBeGreaterThan(2_250_000);
    expect(state.compactionReason()).toMatch(/bytes/);
    // Recorded histories measured UTF-16 units; they replay with that measure.
    const legacy = new SessionState(
      config({ limits: { ...config().limits, maxTranscriptBytes: limit } }),
      undefined,
      () => 'narrow',
      'utf16',
    );
    for (let i = 0; i < 3; i++) legacy.append(assistantMessage('漢'.repeat(250_000)));
    expect(legacy.compactionReason()).toBeNull();
  });

  it('counts UTF-8 bytes like Buffer.byteLength, surrogate pairs included', () => {
    for (const text of ['plain', 'é', '漢字', '😀 ok', '·…']) {
      expect(utf8Bytes(text)).toBe(Buffer.byteLength(text, 'utf8'));
    }
  });

  it('caps the task and a message in bytes, not characters (item 4)', () => {
    expect(() => config({ task: '漢'.repeat(30_000) })).toThrow(/longer than 65536 bytes/);
    expect(userMessageSchema().safeParse({ text: '漢'.repeat(MAX_MESSAGE_BYTES / 3 + 1) }).success).toBe(
      false,
    );
    expect(userMessageSchema().safeParse({ text: 'a'.repeat(MAX_MESSAGE_BYTES) }).success).toBe(true);
  });

  it('gives a repeated call id a fresh one, the same every time (item 7)', () => {
    const call = (id: string, name: string) => ({
      type: 'function_call' as const,
      call_id: id,
      name,
      arguments: '{}',
    });
    const reply = [call('call_0', 'shell'), call('call_0', 'apply_patch'), call('call_1', 'read_file')];
    const first = uniqueCallIds(new Set(['call_1']), reply);
    expect(first.renamed).toBe(2);
    expect(first.items.map((item) => (item as { call_id: string }).call_id)).toEqual([
      'call_0',
      'call_0~2',
      'call_1~2',
    ]);
    expect(uniqueCallIds(new Set(['call_1']), reply)).toEqual(first);
    expect(uniqueCallIds(new Set(), [call('a', 'shell')]).renamed).toBe(0);
  });

  it('says which open calls never ran and which were cut mid-run (item 1)', () => {
    const state = new SessionState(config());
    const calls = ['c1', 'c2', 'c3'].map((id) => ({
      type: 'function_call' as const,
      call_id: id,
      name: 'shell',
      arguments: '{}',
    }));
    for (const call of calls) state.append(call);
    state.appendToolOutput('c1', { output: 'ran', display: 'shell', success: true });
    state.closeOpenCalls(
      calls,
      (call, fate) => `${call.call_id}: ${fate}`,
      (call) => (call.call_id === 'c2' ? 'interrupted' : 'not_run'),
    );
    const outputs = state.entries.flatMap((e) =>
      e.item.type === 'function_call_output' ? [e.item.output] : [],
    );
    expect(outputs).toEqual(['ran', 'c2: interrupted', 'c3: not_run']);
    expect(state.entries.at(-2)!.display).toBe('shell · interrupted');
  });
});

describe('carried state across releases', () => {
  /** The session input a recorded run continued as new with (its first event's input). */
  async function recordedInput(fixture: string): Promise<unknown> {
    const { readFile } = await import('node:fs/promises');
    const history = JSON.parse(await readFile(`test/fixtures/histories/${fixture}`, 'utf8')) as {
      events: Array<{
        workflowExecutionStartedEventAttributes?: { input: { payloads: Array<{ data: string }> } };
      }>;
    };
    const payload = history.events[0]!.workflowExecutionStartedEventAttributes!.input.payloads[0]!;
    return JSON.parse(Buffer.from(payload.data, 'base64').toString('utf8'));
  }

  for (const fixture of ['v0.1/continue-as-new-suggested.run2.json', 'continue-as-new-suggested.run2.json']) {
    it(`parses the state ${fixture} carried, and carries it on with the same keys and values`, async () => {
      const input = sessionInputSchema().parse(await recordedInput(fixture));
      const carried = input.carried!;
      const state = new SessionState(input.config, carried);
      expect(state.turn).toBe(carried.turn);
      expect(state.contextTokens).toBe(carried.lastInputTokens);
      const next = state.carry();
      // Fields added since a release get their defaults; every recorded field goes on unchanged.
      expect({ ...next, runs: carried.runs }).toEqual(carried);
      expect(next.runs).toBe(carried.runs + 1);
      expect(
        sessionInputSchema().parse({ schemaVersion: 1, config: input.config, carried: next }).carried,
      ).toEqual(next);
    });
  }

  it('refuses carried state missing a field no default covers, naming it', () => {
    const state = new SessionState(config());
    state.workspacePrepared({ root: '/tmp/repo', gitHead: null, initiallyDirty: {}, agentsMd: false });
    const { lastInputTokens: _gone, ...carried } = state.carry();
    const parsed = carriedStateSchema().safeParse(carried);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(['lastInputTokens']);
  });
});

describe('SessionState and the token budget', () => {
  it('shows awaiting_budget while parked, after an approval and idle, which say more', () => {
    const state = new SessionState(config({ budget: { tokens: 10 } }));
    expect(state.status).toBe('running');
    state.markBudgetParked(true);
    expect(state.status).toBe('awaiting_budget');
    pending(state, 'call_1', npmTest);
    expect(state.status).toBe('awaiting_approval');
    state.approvals.clear();
    state.goIdle('stopped at the token budget');
    expect(state.status).toBe('idle');
    state.queueMessage('go on');
    state.deliverQueuedMessages();
    expect(state.status).toBe('awaiting_budget');
    state.markBudgetParked(false);
    expect(state.status).toBe('running');
  });

  it('refuses a budget of 0, a negative or a fractional one in the configuration', () => {
    for (const tokens of [0, -5, 2.5]) expect(() => config({ budget: { tokens } })).toThrow(/budget/);
  });
});
