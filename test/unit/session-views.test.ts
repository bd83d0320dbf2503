/**
 * What the client shows from the server's records alone: list rows, a closed session's status
 * when no worker answers, and the progress of the activity a session waits on.
 */
import type { WorkflowExecutionInfo } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import {
  RatchetParent,
  RatchetPendingApprovals,
  RatchetRepo,
  RatchetStatus,
  RatchetTurn,
} from '../../src/shared/api/search-attributes.js';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { sessionConfigSchema } from '../../src/shared/api/session-config.js';
import { activityProgress, closedSessionView, sessionSummary } from '../../src/session-views.js';

function info(status: string, attributes: TypedSearchAttributes, memo?: Record<string, unknown>) {
  return {
    workflowId: 'ratchet-x-1',
    status: { name: status },
    memo,
    typedSearchAttributes: attributes,
    startTime: new Date('2026-01-02T03:04:05Z'),
    closeTime: status === 'RUNNING' ? undefined : new Date('2026-01-02T04:00:00Z'),
  } as unknown as WorkflowExecutionInfo;
}

describe('sessionSummary', () => {
  it('shows a running session as it last published itself, with its parent', () => {
    const row = sessionSummary(
      info(
        'RUNNING',
        new TypedSearchAttributes([
          { key: RatchetStatus, value: 'awaiting_approval' },
          { key: RatchetRepo, value: '/src/app' },
          { key: RatchetTurn, value: 4 },
          { key: RatchetPendingApprovals, value: 2 },
          { key: RatchetParent, value: 'ratchet-parent-1' },
        ]),
        { task: 'fix it' },
      ),
    );
    expect(row).toEqual({
      sessionId: 'ratchet-x-1',
      status: 'awaiting_approval',
      workflowStatus: 'RUNNING',
      task: 'fix it',
      repo: '/src/app',
      turn: 4,
      pendingApprovals: 2,
      startTime: '2026-01-02T03:04:05.000Z',
      closeTime: undefined,
      parent: 'ratchet-parent-1',
    });
  });

  it('shows a closed session by how it closed, whatever it last published', () => {
    const attributes = new TypedSearchAttributes([{ key: RatchetStatus, value: 'running' }]);
    expect(sessionSummary(info('TERMINATED', attributes)).status).toBe('cancelled');
    expect(sessionSummary(info('TIMED_OUT', attributes)).status).toBe('failed');
    expect(sessionSummary(info('COMPLETED', attributes)).closeTime).toBe('2026-01-02T04:00:00.000Z');
    // Nothing published, or a memo that is not a task: unknown and empty, not a crash.
    const bare = sessionSummary(info('RUNNING', new TypedSearchAttributes([]), { task: 42 }));
    expect(bare).toMatchObject({ status: 'unknown', task: '', repo: undefined });
    expect(bare).not.toHaveProperty('parent');
  });
});

describe('closedSessionView', () => {
  const config = sessionConfigSchema().parse({
    task: 'rename foo',
    workspace: '/src/app',
    model: { name: 'm' },
  });
  const result = {
    finalMessage: 'Renamed.',
    turns: 3,
    runs: 2,
    compactions: 1,
    usage: { inputTokens: 10, cachedInputTokens: 0, outputTokens: 5, reasoningTokens: 0, totalTokens: 15 },
  } as unknown as SessionResult;

  it('tells a completed session from its configuration and result', () => {
    const view = closedSessionView({
      workflowStatus: 'COMPLETED',
      summary: undefined,
      repo: undefined,
      turn: undefined,
      config,
      result,
      failure: null,
    });
    expect(view).toMatchObject({
      status: 'completed',
      task: 'rename foo',
      workspace: '/src/app',
      model: 'm',
      turn: 3,
      runs: 2,
      compactions: 1,
      lastMessage: 'Renamed.',
      pendingApprovals: [],
    });
    expect(view.notice).toBe('no worker answered the status query; this is what the server keeps');
  });

  it('says why a failed session failed, and falls back to the search attributes without a configuration', () => {
    const view = closedSessionView({
      workflowStatus: 'FAILED',
      summary: 'the task',
      repo: '/elsewhere',
      turn: 7,
      config: null,
      result: null,
      failure: 'model unavailable',
    });
    expect(view).toMatchObject({
      status: 'failed',
      task: 'the task',
      workspace: '/elsewhere',
      turn: 7,
      runs: 1,
      usage: { inputTokens: 0, totalTokens: 0 },
    });
    expect(view.notice).toMatch(/^model unavailable \(no worker answered/);
    // An unknown closing status is a failure, never a running session.
    expect(
      closedSessionView({
        ...view,
        workflowStatus: 'PAUSED',
        summary: '',
        repo: '',
        turn: 0,
        config: null,
        result: null,
        failure: null,
      }).status,
    ).toBe('failed');
  });
});

describe('activityProgress', () => {
  const decode = (payload: { data?: Uint8Array | null }) =>
    JSON.parse(Buffer.from(payload.data ?? new Uint8Array()).toString('utf8')) as unknown;
  const heartbeat = (value: string) => ({ payloads: [{ data: Buffer.from(value, 'utf8') }] });

  it('prefers the model activity and reads its heartbeat', () => {
    const progress = activityProgress(
      [
        { activityType: { name: 'shell' }, attempt: 1 },
        {
          activityType: { name: 'model' },
          attempt: 3,
          maximumAttempts: 5,
          lastFailure: { message: '429 rate limited' },
          heartbeatDetails: heartbeat('{"tokens":120,"streamed":true}'),
        },
      ],
      decode,
    );
    expect(progress).toEqual({
      type: 'model',
      attempt: 3,
      maximumAttempts: 5,
      lastFailure: '429 rate limited',
      tokens: 120,
      streamed: true,
    });
  });

  it('reads nothing from a heartbeat it cannot decode, and nothing when no activity is pending', () => {
    const progress = activityProgress(
      [{ activityType: { name: 'shell' }, heartbeatDetails: heartbeat('not json') }],
      decode,
    );
    expect(progress).toEqual({
      type: 'shell',
      attempt: 1,
      maximumAttempts: 0,
      lastFailure: null,
      tokens: null,
      streamed: null,
    });
    expect(activityProgress([], decode)).toBeNull();
  });
});
