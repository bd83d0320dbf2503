/**
 * Whole sessions through the Chat Completions fallback (`api = "chat"`): the real worker and the
 * real `openai` client stream `/v1/chat/completions` from the scripted model. The workflow is the
 * same as with the Responses API; only the model activity speaks chat.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { approveUpdate } from '../../src/shared/api/session-api.js';
import type { RecordedRequest } from '../../src/testing/scripted-model.js';
import { useHarness, waitForStatus } from '../helpers/harness.js';

interface ChatMessage {
  role: string;
  content?: string | null;
  tool_call_id?: string;
  tool_calls?: Array<{ id: string; type: string; function: { name: string; arguments: string } }>;
}

interface ChatBody {
  model: string;
  messages: ChatMessage[];
  tools: Array<{ type: string; function: { name: string } }>;
  stream: boolean;
  stream_options: { include_usage: boolean };
}

const GREET = `export function greet(name) {\n  return 'Hello ' + name;\n}\n`;
const PATCH = [
  '*** Begin Patch',
  '*** Update File: src/greet.js',
  '@@ export function greet(name) {',
  "-  return 'Hello ' + name;",
  "+  return 'Hi ' + name;",
  ' }',
  '*** End Patch',
].join('\n');

const suite = useHarness();
const tempRepo = (files?: Record<string, string>) => suite.tempRepo(files);

function chatWorker() {
  return suite.harness.worker({
    endpoint: { apiKey: 'test-key', baseURL: suite.harness.model.baseUrl, api: 'chat' },
  });
}

function bodyOf(request: RecordedRequest): ChatBody {
  return request.body as ChatBody;
}

describe('a session with api = "chat"', () => {
  it('reads a file, patches it after approval and finishes, all through chat completions', async () => {
    const repo = await tempRepo({ 'src/greet.js': GREET });
    const { model } = suite.harness;
    model
      .call('read_file', { file_path: 'src/greet.js' }, 'call_read')
      .enqueue({
        kind: 'reply',
        output: [
          { type: 'message', text: 'Changing the greeting.' },
          { type: 'function_call', name: 'apply_patch', arguments: { input: PATCH }, callId: 'call_patch' },
        ],
      })
      .reply('greet now says Hi.');

    const { worker } = await chatWorker();
    const result = await worker.runUntil(async () => {
      const handle = await suite.harness.start({ task: 'Make greet say Hi', workspace: repo.dir });
      const wait = await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      expect(wait.pendingApprovals[0]).toMatchObject({ tool: 'apply_patch', callId: 'call_patch' });
      await handle.executeUpdate(approveUpdate, {
        args: [{ callId: 'call_patch', decision: 'approve', by: 'test' }],
      });
      return (await handle.result()) as SessionResult;
    });

    expect(result).toMatchObject({ status: 'completed', finalMessage: 'greet now says Hi.', turns: 3 });
    expect(result.filesChanged).toEqual([{ path: 'src/greet.js', status: 'M' }]);
    expect(await readFile(path.join(repo.dir, 'src/greet.js'), 'utf8')).toContain("'Hi ' + name");

    // Every model call went to chat completions, streamed with usage; nothing to the Responses API.
    expect(model.requests.map((r) => r.path)).toEqual(Array(3).fill('/v1/chat/completions'));
    const bodies = model.requests.map(bodyOf);
    for (const body of bodies) {
      expect(body.stream).toBe(true);
      expect(body.stream_options).toEqual({ include_usage: true });
      expect(body.messages[0]!.role).toBe('system');
      expect(body.tools.map((t) => t.type)).toEqual(Array(6).fill('function'));
      expect(body.tools.map((t) => t.function.name)).toContain('apply_patch');
    }

    // The second request carries the read as an assistant tool call and a tool message with its id.
    const second = bodies[1]!.messages;
    const call = second.at(-2)!;
    expect(call.role).toBe('assistant');
    expect(call.tool_calls).toEqual([
      {
        id: 'call_read',
        type: 'function',
        function: { name: 'read_file', arguments: JSON.stringify({ file_path: 'src/greet.js' }) },
      },
    ]);
    const toolMessage = second.at(-1)!;
    expect(toolMessage.role).toBe('tool');
    expect(toolMessage.tool_call_id).toBe('call_read');
    expect(toolMessage.content).toContain("L2:   return 'Hello ' + name;");

    // The third: the text and the patch call of one turn are one assistant message, then its result.
    const third = bodies[2]!.messages;
    expect(third.at(-2)).toMatchObject({
      role: 'assistant',
      content: 'Changing the greeting.',
      tool_calls: [{ id: 'call_patch', function: { name: 'apply_patch' } }],
    });
    expect(third.at(-1)).toMatchObject({ role: 'tool', tool_call_id: 'call_patch' });
    expect(result.usage.inputTokens).toBeGreaterThan(0);
    model.assertDone();
  });

  it('waits out a 429 and retries a malformed stream, then completes', async () => {
    const repo = await tempRepo({ 'a.txt': 'alpha\n' });
    const { model } = suite.harness;
    model
      .enqueue({ kind: 'error', status: 429, headers: { 'retry-after': '1' } }, { kind: 'garbage' })
      .reply('Done after the wait.');
    const { worker } = await chatWorker();
    const result = await worker.runUntil(async () => {
      const handle = await suite.harness.start({
        task: 'say done',
        workspace: repo.dir,
        approvalPolicy: 'never',
      });
      return (await handle.result()) as SessionResult;
    });
    expect(result).toMatchObject({ status: 'completed', finalMessage: 'Done after the wait.', turns: 1 });
    const requests = model.requests;
    expect(requests.map((r) => r.path)).toEqual(Array(3).fill('/v1/chat/completions'));
    expect(requests[1]!.receivedAt - requests[0]!.receivedAt).toBeGreaterThanOrEqual(1000);
    // Each retry is the same request.
    expect(bodyOf(requests[1]!)).toEqual(bodyOf(requests[0]!));
    expect(bodyOf(requests[2]!)).toEqual(bodyOf(requests[0]!));
    model.assertDone();
  });

  it('fails fast on 401, once, saying the API key was rejected', async () => {
    const repo = await tempRepo({ 'a.txt': 'alpha\n' });
    const { model } = suite.harness;
    model.enqueue({ kind: 'error', status: 401 });
    const { worker } = await chatWorker();
    const failure = await worker.runUntil(async () => {
      const handle = await suite.harness.start({
        task: 'anything',
        workspace: repo.dir,
        approvalPolicy: 'never',
      });
      try {
        await handle.result();
        return undefined;
      } catch (err) {
        return err;
      }
    });
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect((failure as WorkflowFailedError).cause?.message).toMatch(/rejected the API key \(401\)/);
    expect(model.requests).toHaveLength(1);
    model.assertDone();
  });

  it('compacts locally through chat when the model says the request is too long', async () => {
    const repo = await tempRepo({ 'notes.txt': 'remember the milk\n' });
    const { model } = suite.harness;
    model
      .call('read_file', { file_path: 'notes.txt' }, 'call_notes')
      .enqueue({ kind: 'error', status: 400, code: 'context_length_exceeded' })
      .reply('SUMMARY: notes.txt says to remember the milk.')
      .reply('Fits now.');
    const { worker } = await chatWorker();
    const result = await worker.runUntil(async () => {
      const handle = await suite.harness.start({
        task: 'Read the notes',
        workspace: repo.dir,
        approvalPolicy: 'never',
      });
      return (await handle.result()) as SessionResult;
    });
    expect(result).toMatchObject({ finalMessage: 'Fits now.', compactions: 1, turns: 2 });
    // No responses.compact: the summary is a non-streamed chat completion that may call no tool.
    expect(model.requests.map((r) => r.path)).toEqual(Array(4).fill('/v1/chat/completions'));
    const summary = model.requests[2]!.body as ChatBody & { tool_choice: string };
    expect(summary.stream).toBeUndefined();
    expect(summary.tool_choice).toBe('none');
    // After compaction: the task and the summary as user messages, no tool call or result.
    const last = bodyOf(model.requests[3]!).messages;
    expect(last.at(-1)).toMatchObject({ role: 'user' });
    expect(last.at(-1)!.content).toContain('remember the milk');
    expect(last.some((m) => m.role === 'tool' || m.tool_calls)).toBe(false);
    model.assertDone();
  });
});
