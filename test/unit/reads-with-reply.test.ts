/**
 * The model activity's reads beside the reply (src/activities/index.ts, readsBeside): a reply
 * whose calls are all cheap reads comes back with their results, and anything else (another
 * worker's workspace, a failed read, a result that would not fit, a write among the calls) leaves
 * the reads to the workflow, never failing the reply.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/activity';
import { DefaultLogger } from '@temporalio/worker';
import { describe, expect, it, vi } from 'vitest';
import type { ReadTool } from '../../src/activities/index.js';
import { readsBeside } from '../../src/activities/index.js';
import type { ModelCallInput, ModelReply, ToolCallInput } from '../../src/shared/boundary/activity-types.js';
import { ActivityFailureType } from '../../src/shared/boundary/failure-types.js';
import type { TranscriptItem } from '../../src/shared/prompt/items.js';

const input: ModelCallInput = {
  sessionId: 's1',
  epoch: 0,
  upTo: 4,
  turn: 2,
  model: { name: 'm' },
  reads: { workspace: '/repo', holder: 'q@w1' },
};

const call = (id: string, name: string, args: unknown): TranscriptItem => ({
  type: 'function_call',
  call_id: id,
  name,
  arguments: JSON.stringify(args),
});

const replyWith = (...output: TranscriptItem[]): ModelReply => ({
  output,
  usage: { inputTokens: 1, cachedInputTokens: 0, outputTokens: 1, reasoningTokens: 0, totalTokens: 2 },
  responseId: 'r1',
});

const ok = (text: string) => ({ output: text, display: text, success: true });

function run(
  reply: ModelReply,
  reads: Record<string, ReadTool>,
  given: ModelCallInput = input,
): { env: MockActivityEnvironment; result: Promise<ModelReply> } {
  const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
  return {
    env,
    result: env.run(async (given: ModelCallInput) => readsBeside(reads)(given, reply), given),
  };
}

describe('reads beside the reply', () => {
  it('runs every read of an all-read reply at once and returns the results with it', async () => {
    const running: string[] = [];
    let together = 0;
    const read_file = vi.fn(async (call: ToolCallInput, options?: { heartbeat?: boolean }) => {
      running.push(call.callId);
      together = Math.max(together, running.length);
      await new Promise((resolve) => setTimeout(resolve, 20));
      running.splice(running.indexOf(call.callId), 1);
      expect(options).toEqual({ heartbeat: false }); // the model's heartbeat details stay its own
      return ok(`read ${call.callId}`);
    });
    const list_dir = vi.fn(() => Promise.resolve(ok('listed')));
    const reply = replyWith(
      call('c1', 'read_file', { file_path: 'a' }),
      call('c2', 'list_dir', { dir_path: '.' }),
      call('c3', 'read_file', { file_path: 'b' }),
    );
    const got = await run(reply, { read_file, list_dir }).result;
    expect(got.output).toEqual(reply.output);
    expect(got.reads).toEqual([
      { callId: 'c1', result: ok('read c1') },
      { callId: 'c2', result: ok('listed') },
      { callId: 'c3', result: ok('read c3') },
    ]);
    expect(together).toBe(2);
    expect(read_file.mock.calls[0]![0]).toMatchObject({
      sessionId: 's1',
      epoch: 0,
      workspace: '/repo',
      holder: 'q@w1',
      callId: 'c1',
      arguments: JSON.stringify({ file_path: 'a' }),
    });
  });

  it('leaves the reads to the workflow when any call may write, or nothing asked for them', async () => {
    const read_file = vi.fn(() => Promise.resolve(ok('x')));
    const mixed = replyWith(
      call('c1', 'read_file', { file_path: 'a' }),
      call('c2', 'shell', { command: ['touch', 'x'] }),
    );
    expect((await run(mixed, { read_file }).result).reads).toBeUndefined();
    const reads = replyWith(call('c1', 'read_file', { file_path: 'a' }));
    const { reads: _, ...without } = input;
    expect((await run(reads, { read_file }, without).result).reads).toBeUndefined();
    expect((await run(replyWith(), { read_file }).result).reads).toBeUndefined();
    expect(read_file).not.toHaveBeenCalled();
  });

  it('leaves them to the workflow when arguments are too long to inline', async () => {
    const read_file = vi.fn(() => Promise.resolve(ok('x')));
    const reply = replyWith(call('c1', 'read_file', { file_path: 'a'.repeat(3000) }));
    expect((await run(reply, { read_file }).result).reads).toBeUndefined();
    expect(read_file).not.toHaveBeenCalled();
  });

  it('returns the reply alone when this worker does not hold the workspace, or a read fails', async () => {
    const notHolder = () =>
      Promise.reject(
        ApplicationFailure.nonRetryable(
          'this worker does not hold the workspace',
          ActivityFailureType.NotWorkspaceHolder,
        ),
      );
    const reply = replyWith(
      call('c1', 'read_file', { file_path: 'a' }),
      call('c2', 'list_dir', { dir_path: '.' }),
    );
    const got = await run(reply, { read_file: notHolder, list_dir: () => Promise.resolve(ok('listed')) })
      .result;
    expect(got).toEqual(reply);
    const broken = await run(reply, {
      read_file: () => Promise.resolve(ok('a')),
      list_dir: () => Promise.reject(new Error('EIO')),
    }).result;
    expect(broken).toEqual(reply);
  });

  it('returns the reply alone when the results would not fit in its payload', async () => {
    const big = 'x'.repeat(1_000_000);
    const reply = replyWith(
      call('c1', 'read_file', { file_path: 'a' }),
      call('c2', 'read_file', { file_path: 'b' }),
    );
    const got = await run(reply, { read_file: () => Promise.resolve(ok(big)) }).result;
    expect(got).toEqual(reply);
  });

  it('is cancelled with the activity, not turned into a reply without reads', async () => {
    let release: () => void = () => undefined;
    const reply = replyWith(call('c1', 'read_file', { file_path: 'a' }));
    const { env, result } = run(reply, {
      read_file: () =>
        new Promise((_, reject) => {
          release = () => reject(new Error('aborted'));
        }),
    });
    await new Promise((resolve) => setTimeout(resolve, 10));
    env.cancel();
    release();
    await expect(result).rejects.toThrow();
  });
});
