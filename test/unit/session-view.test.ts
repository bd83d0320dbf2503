import { describe, expect, it } from 'vitest';
import type { FunctionCallItem } from '../../src/shared/prompt/items.js';
import { sessionConfigSchema } from '../../src/shared/api/session-config.js';
import { sessionDetails, turnOutcome } from '../../src/workflows/publish.js';
import { SessionState } from '../../src/workflows/session-state.js';
import { TurnCalls } from '../../src/workflows/tool-scheduler.js';

function state(task = 'rename foo to bar'): SessionState {
  return new SessionState(
    sessionConfigSchema().parse({
      task,
      workspace: '/tmp/repo',
      model: { name: 'm', contextWindow: 1000, compactAtRatio: 0.5 },
    }),
  );
}

const call = (id: string, name: string, args: unknown): FunctionCallItem => ({
  type: 'function_call',
  call_id: id,
  name,
  arguments: JSON.stringify(args),
});

describe('sessionDetails', () => {
  it('shows the first line of the task, status, turn and run, and nothing that is not there', () => {
    const s = state('  fix the build\nthen run the tests  ');
    expect(sessionDetails(s, s.config.task, '')).toBe(
      '**fix the build**\n\nstatus: running · turn 0 · run 1',
    );
  });

  it('cuts a long first line with an ellipsis at 100 characters', () => {
    const s = state('x'.repeat(150));
    const title = sessionDetails(s, s.config.task, '').split('\n')[0]!;
    expect(title).toBe(`**${'x'.repeat(99)}…**`);
  });

  it('lists the call ids waiting for approval, with the current step, last turn and notice', () => {
    const s = state();
    s.approvals.request(
      {
        callId: 'call_9',
        tool: 'shell',
        arguments: {},
        summary: 'shell · rm -rf build',
        reason: 'asks',
        turn: 1,
        requestedAt: '',
      },
      { tool: 'shell', kind: 'execute', command: ['rm', '-rf', 'build'] },
    );
    s.goIdle('moved to worker b; send a message to continue');
    // goIdle clears the current step; the approval wait sets it again.
    s.setCurrent('approval', 'approval · shell · rm -rf build');
    expect(sessionDetails(s, s.config.task, 'turn 1 · answered')).toBe(
      '**rename foo to bar**\n\nstatus: awaiting_approval · turn 0 · run 1' +
        '\n\nnow: approval · shell · rm -rf build' +
        '\n\nlast turn: turn 1 · answered' +
        '\n\nwaiting for approval:\n- `call_9` shell · rm -rf build' +
        '\n\nmoved to worker b; send a message to continue',
    );
  });
});

describe('turnOutcome', () => {
  it('says a turn answered, or names at most three of its calls', () => {
    expect(turnOutcome(8, [])).toBe('turn 8 · answered');
    expect(turnOutcome(2, [call('a', 'read_file', { path: 'a.ts' })])).toMatch(
      /^turn 2 · 1 tool call: read_file/,
    );
    const five = ['a', 'b', 'c', 'd', 'e'].map((id) => call(id, 'list_dir', { path: id }));
    expect(turnOutcome(3, five)).toMatch(/^turn 3 · 5 tool calls: .*, … 2 more$/);
  });
});

describe('TurnCalls', () => {
  const ok = { output: 'done', display: 'done', success: true };

  it('tells a call cut while it ran from one that never started', () => {
    const book = new TurnCalls();
    book.executing('a');
    book.awaitingApproval('b');
    expect(book.fate('a')).toBe('interrupted');
    expect(book.fate('b')).toBe('not_run');
    expect(book.fate('never-seen')).toBe('not_run');
    expect(book.result('a')).toBeUndefined();
  });

  it('keeps a result once known: a later call with the same id does not erase it', () => {
    const book = new TurnCalls();
    book.executing('a');
    book.done('a', ok);
    book.executing('a');
    book.awaitingApproval('a');
    expect(book.result('a')).toEqual(ok);
    book.done('a', { ...ok, output: 'second' });
    expect(book.result('a')?.output).toBe('second');
  });
});
