/**
 * `ratchet run --json`'s events, shaped like `codex exec --json`'s, from what following a session
 * reads; and the live line's label for a step whose activity is retrying or streaming.
 */
import { describe, expect, it } from 'vitest';
import { ExecEventMapper } from '../../src/cli/exec-events.js';
import { stepLabel } from '../../src/cli/render.js';
import type { StatusView } from '../../src/shared/api/session-api.js';
import type { TranscriptEntry } from '../../src/shared/api/session-config.js';
import { emptyUsage } from '../../src/shared/api/session-config.js';

function view(status: StatusView['status'], extra: Partial<StatusView> = {}): StatusView {
  return {
    status,
    task: 't',
    workspace: '/r',
    model: 'm',
    approvalPolicy: 'untrusted',
    sandbox: 'workspace-write',
    turn: 1,
    pendingApprovals: [],
    usage: emptyUsage,
    plan: [],
    lastMessage: null,
    notice: null,
    current: null,
    transcriptLength: 0,
    epoch: 0,
    runs: 1,
    compactions: 0,
    queuedMessages: 0,
    ...extra,
  };
}

const entry = (item: TranscriptEntry['item'], extra: Partial<TranscriptEntry> = {}): TranscriptEntry => ({
  item,
  turn: 1,
  ...extra,
});

describe('codex exec events', () => {
  it('maps a session with a command, a patch, a read and an answer', () => {
    const mapper = new ExecEventMapper('s-1');
    const events = [
      ...mapper.started(),
      ...mapper.status(view('running')),
      ...mapper.entry(
        0,
        entry({ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'go' }] }),
      ),
      ...mapper.entry(
        1,
        entry({
          type: 'function_call',
          call_id: 'c1',
          name: 'shell',
          arguments: '{"command":["npm","test"]}',
        }),
      ),
      ...mapper.entry(
        2,
        entry(
          {
            type: 'function_call_output',
            call_id: 'c1',
            output: JSON.stringify({ output: 'ok\n', metadata: { exit_code: 0, duration_seconds: 1 } }),
          },
          { success: true },
        ),
      ),
      ...mapper.entry(
        3,
        entry({
          type: 'function_call',
          call_id: 'c2',
          name: 'apply_patch',
          arguments: JSON.stringify({ input: '*** Begin Patch\n*** Add File: b.txt\n+b\n*** End Patch' }),
        }),
      ),
      ...mapper.entry(
        4,
        entry({ type: 'function_call_output', call_id: 'c2', output: 'Success' }, { success: true }),
      ),
      ...mapper.entry(
        5,
        entry({ type: 'function_call', call_id: 'c3', name: 'read_file', arguments: '{"file_path":"a"}' }),
      ),
      ...mapper.entry(
        6,
        entry({ type: 'function_call_output', call_id: 'c3', output: 'L1: a' }, { success: true }),
      ),
      ...mapper.entry(
        7,
        entry({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Done.' }] }),
      ),
      ...mapper.status(
        view('completed', {
          usage: {
            inputTokens: 100,
            cachedInputTokens: 40,
            outputTokens: 9,
            reasoningTokens: 0,
            totalTokens: 109,
          },
        }),
      ),
    ];

    expect(events).toEqual([
      { type: 'thread.started', thread_id: 's-1' },
      { type: 'turn.started' },
      {
        type: 'item.started',
        item: {
          id: 'item_1',
          type: 'command_execution',
          command: 'npm test',
          aggregated_output: '',
          exit_code: null,
          status: 'in_progress',
        },
      },
      {
        type: 'item.completed',
        item: {
          id: 'item_1',
          type: 'command_execution',
          command: 'npm test',
          aggregated_output: 'ok\n',
          exit_code: 0,
          status: 'completed',
        },
      },
      {
        type: 'item.completed',
        item: {
          id: 'item_3',
          type: 'file_change',
          changes: [{ path: 'b.txt', kind: 'add' }],
          status: 'completed',
        },
      },
      {
        type: 'item.started',
        item: {
          id: 'item_5',
          type: 'mcp_tool_call',
          server: 'ratchet',
          tool: 'read_file',
          arguments: { file_path: 'a' },
          result: null,
          error: null,
          status: 'in_progress',
        },
      },
      {
        type: 'item.completed',
        item: {
          id: 'item_5',
          type: 'mcp_tool_call',
          server: 'ratchet',
          tool: 'read_file',
          arguments: { file_path: 'a' },
          result: { content: [{ type: 'text', text: 'L1: a' }], structured_content: null },
          error: null,
          status: 'completed',
        },
      },
      { type: 'item.completed', item: { id: 'item_7', type: 'agent_message', text: 'Done.' } },
      { type: 'turn.completed', usage: { input_tokens: 100, cached_input_tokens: 40, output_tokens: 9 } },
    ]);
  });

  it('a session that stops with a notice fails its turn; a message starts another', () => {
    const mapper = new ExecEventMapper('s-2');
    expect(mapper.status(view('running'))).toEqual([{ type: 'turn.started' }]);
    expect(mapper.status(view('idle', { notice: 'the model endpoint failed (500)' }))).toEqual([
      { type: 'turn.failed', error: { message: 'the model endpoint failed (500)' } },
    ]);
    expect(mapper.status(view('running'))).toEqual([{ type: 'turn.started' }]);
  });
});

describe('the live line of a step', () => {
  const current = { label: 'model · turn 3' };

  it('shows the attempt and why the last one failed, on one line', () => {
    const label = stepLabel(
      current,
      {
        type: 'model',
        attempt: 4,
        maximumAttempts: 10,
        lastFailure: 'the model endpoint failed (500): boom\nmore',
        tokens: null,
        streamed: null,
      },
      { tokens: true },
    );
    expect(label).toBe('model · turn 3 · attempt 4/10 · the model endpoint failed (500): boom');
  });

  it('shows tokens arriving while a model call streams, or that the reply comes whole', () => {
    const progress = {
      type: 'model',
      attempt: 1,
      maximumAttempts: 10,
      lastFailure: null,
      tokens: 120,
      streamed: true,
    };
    expect(stepLabel(current, progress, { tokens: true })).toBe('model · turn 3 · 120 tokens');
    expect(stepLabel(current, progress, { tokens: false })).toBe('model · turn 3');
    expect(stepLabel(current, { ...progress, streamed: false }, { tokens: true })).toMatch(/whole reply/);
  });
});
