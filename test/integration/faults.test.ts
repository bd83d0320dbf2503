/**
 * Faults a session survives (issue 3, "Model faults" and "Tool faults"): each scenario is a whole
 * session on the suite's dev server, with the real worker and the real `openai` client talking to
 * the scripted model, which fails the way real endpoints fail. Each asserts how the session ended,
 * what the model received, and that the transcript holds every item exactly once.
 */
import { WorkflowFailedError } from '@temporalio/client';
import type { WorkflowHandle } from '@temporalio/client';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { sendableArguments } from '../../src/activities/model-request.js';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { transcriptQuery } from '../../src/shared/api/session-api.js';
import type { TranscriptEntry } from '../../src/shared/api/session-config.js';
import type { RecordedRequest } from '../../src/testing/scripted-model.js';
import { useHarness, waitForStatus } from '../helpers/harness.js';
import type { Harness } from '../helpers/harness.js';
import { recordHistory, untilActivityCompleted } from '../helpers/histories.js';

interface RequestBody {
  input: Array<Record<string, unknown>>;
}

/** What the shell tool returns to the model (Codex's format). */
interface ShellOutput {
  output: string;
  metadata: { exit_code: number; duration_seconds: number; timed_out?: true; truncated_bytes?: number };
}

const TOOL_NAMES = 'shell, apply_patch, read_file, list_dir, grep_files, update_plan';

const suite = useHarness();
const tempRepo = (files?: Record<string, string>) => suite.tempRepo(files);

/**
 * Runs a session on a fresh worker to its end (the worker stops with it), records its history
 * as the fixture `name`, and returns its result and transcript.
 */
async function runToEnd(
  name: string,
  start: Parameters<Harness['start']>[0],
): Promise<{ result: SessionResult; entries: TranscriptEntry[] }> {
  const { worker } = await suite.harness.worker();
  return worker.runUntil(async () => {
    const handle = await suite.harness.start(start);
    const result = (await handle.result()) as SessionResult;
    const entries = await transcriptOf(handle);
    await recordHistory(handle, name);
    return { result, entries };
  });
}

function bodyOf(request: RecordedRequest): RequestBody {
  return request.body as RequestBody;
}

/** Model calls only (a compaction request would be another path). */
function modelRequests(): RecordedRequest[] {
  return suite.harness.model.requests.filter((r) => r.path === '/v1/responses');
}

function outputsOf(request: RecordedRequest): Array<{ callId: string; output: string }> {
  return bodyOf(request)
    .input.filter((item) => item.type === 'function_call_output')
    .map((item) => ({ callId: String(item.call_id), output: String(item.output) }));
}

function shellOutput(text: string): ShellOutput {
  return JSON.parse(text) as ShellOutput;
}

/** Gaps in ms between consecutive model requests, in arrival order. */
function gapsMs(requests: RecordedRequest[]): number[] {
  return requests.slice(1).map((r, i) => r.receivedAt - requests[i]!.receivedAt);
}

/** The whole transcript of the current run, page by page (needs a worker to answer the query). */
async function transcriptOf(handle: WorkflowHandle): Promise<TranscriptEntry[]> {
  const entries: TranscriptEntry[] = [];
  for (;;) {
    const page = await handle.query(transcriptQuery, { fromIndex: entries.length });
    entries.push(...page.entries);
    if (page.nextIndex >= page.total) return entries;
  }
}

/**
 * Nothing lost, nothing twice: every function call has exactly one output, the assistant
 * messages are the expected ones, and the last model request carried exactly the transcript
 * before its reply (the items the model received are the items the session kept; a call whose
 * arguments are not JSON goes back wrapped in a JSON object, see `sendableArguments`).
 */
function expectWholeTranscript(
  entries: TranscriptEntry[],
  options: { assistantMessages: string[]; lastReplyItems?: number },
): void {
  const items = entries.map((e) => e.item);
  const calls = items.filter((i) => i.type === 'function_call').map((i) => String(i.call_id));
  const outputs = items.filter((i) => i.type === 'function_call_output').map((i) => String(i.call_id));
  expect(new Set(calls).size).toBe(calls.length);
  expect([...outputs].sort()).toEqual([...calls].sort());
  const texts = items
    .filter((i) => i.type === 'message' && i.role === 'assistant')
    .map((i) => (i.type === 'message' ? i.content.map((part) => part.text).join('') : ''));
  expect(texts).toEqual(options.assistantMessages);
  const last = modelRequests().at(-1)!;
  const sent = items
    .slice(0, items.length - (options.lastReplyItems ?? 1))
    .map((i) => (i.type === 'function_call' ? { ...i, arguments: sendableArguments(i.arguments) } : i));
  expect(bodyOf(last).input).toEqual(sent);
}

/** Every `payloads[].data` in a history event, found wherever it sits. */
function payloadSizes(value: unknown, found: Array<{ where: string; bytes: number }>, where = ''): void {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => payloadSizes(v, found, `${where}[${i}]`));
    return;
  }
  for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
    if (key === 'payloads' && Array.isArray(child)) {
      child.forEach((payload: unknown, i) => {
        const data = (payload as { data?: unknown } | null)?.data;
        if (data instanceof Uint8Array) found.push({ where: `${where}.payloads[${i}]`, bytes: data.length });
      });
    }
    payloadSizes(child, found, `${where}.${key}`);
  }
}

/** The error the session ended with, or undefined when it completed. */
async function failureOf(handle: WorkflowHandle): Promise<unknown> {
  try {
    await handle.result();
    return undefined;
  } catch (err) {
    return err;
  }
}

async function processesMatching(pattern: string): Promise<string> {
  const { stdout } = await execa('pgrep', ['-af', pattern], { reject: false });
  return stdout.trim();
}

describe('model faults', () => {
  it('waits as a 429 retry-after says, then completes', async () => {
    const repo = await tempRepo();
    const { model } = suite.harness;
    model
      .enqueue({ kind: 'error', status: 429, headers: { 'retry-after': '2' } })
      .reply('Done after the wait.');
    const { result, entries } = await runToEnd('fault-model-429-retry-after', {
      task: 'say done',
      workspace: repo.dir,
      approvalPolicy: 'never',
    });
    expect(result).toMatchObject({ status: 'completed', finalMessage: 'Done after the wait.', turns: 1 });
    const requests = modelRequests();
    expect(requests).toHaveLength(2);
    const [gap] = gapsMs(requests);
    console.log(`429 retry-after 2: the retry came ${gap} ms after the 429`);
    // The server's retry-after is honoured: the retry does not come before it.
    expect(gap).toBeGreaterThanOrEqual(2000);
    // The retry is the same request.
    expect(bodyOf(requests[1]!)).toEqual(bodyOf(requests[0]!));
    expectWholeTranscript(entries, { assistantMessages: ['Done after the wait.'] });
    model.assertDone();
  });

  it('retries 500 and 503 with backoff, then completes', async () => {
    const repo = await tempRepo();
    const { model } = suite.harness;
    model
      .enqueue({ kind: 'error', status: 500 }, { kind: 'error', status: 503 })
      .reply('Done after two server errors.');
    const { result, entries } = await runToEnd('fault-model-5xx-backoff', {
      task: 'say done',
      workspace: repo.dir,
      approvalPolicy: 'never',
    });
    expect(result).toMatchObject({ status: 'completed', finalMessage: 'Done after two server errors.' });
    const requests = modelRequests();
    expect(requests).toHaveLength(3);
    const gaps = gapsMs(requests);
    console.log(`500, 503, reply: ${requests.length} requests, gaps ${gaps.join(' ms, ')} ms`);
    // Retry policy: 1 s initial interval, backoff coefficient 2.
    expect(gaps[0]).toBeGreaterThanOrEqual(1000);
    expect(gaps[1]).toBeGreaterThanOrEqual(2000);
    for (const request of requests.slice(1)) expect(bodyOf(request)).toEqual(bodyOf(requests[0]!));
    expectWholeTranscript(entries, { assistantMessages: ['Done after two server errors.'] });
    model.assertDone();
  });

  it('retries a stream cut half-way and keeps one assistant message', async () => {
    const repo = await tempRepo();
    const { model } = suite.harness;
    model.enqueue({ kind: 'cut' }).reply('The whole reply, this time.');
    const { result, entries } = await runToEnd('fault-model-stream-cut', {
      task: 'say it',
      workspace: repo.dir,
      approvalPolicy: 'never',
    });
    expect(result).toMatchObject({ status: 'completed', finalMessage: 'The whole reply, this time.' });
    const requests = modelRequests();
    expect(requests).toHaveLength(2);
    expect(bodyOf(requests[1]!)).toEqual(bodyOf(requests[0]!));
    // Nothing of the cut-off reply reached the transcript.
    expect(JSON.stringify(entries)).not.toContain('cut off');
    expectWholeTranscript(entries, { assistantMessages: ['The whole reply, this time.'] });
    model.assertDone();
  });

  it('abandons a stream that stalls and retries it', async () => {
    const repo = await tempRepo();
    const { model } = suite.harness;
    model.enqueue({ kind: 'hang' }).reply('Answered on the second try.');
    const { result, entries } = await runToEnd('fault-model-stream-stall', {
      task: 'say it',
      workspace: repo.dir,
      approvalPolicy: 'never',
      limits: { modelStreamIdleTimeoutMs: 1500 },
    });
    expect(result).toMatchObject({ status: 'completed', finalMessage: 'Answered on the second try.' });
    const requests = modelRequests();
    expect(requests).toHaveLength(2);
    const [gap] = gapsMs(requests);
    console.log(`stalled stream (idle timeout 1.5 s): the retry came ${gap} ms after the stalled request`);
    expect(gap).toBeGreaterThanOrEqual(1500);
    // The stalled connection was dropped by the client, not left open.
    expect(model.hanging).toBe(0);
    expect(bodyOf(requests[1]!)).toEqual(bodyOf(requests[0]!));
    expectWholeTranscript(entries, { assistantMessages: ['Answered on the second try.'] });
    model.assertDone();
  });

  it('fails fast on 401, once, saying the API key was rejected', async () => {
    const repo = await tempRepo();
    const { model } = suite.harness;
    model.enqueue({ kind: 'error', status: 401 });
    const { worker } = await suite.harness.worker();
    const started = Date.now();
    const { failure, failedAfterMs, view, description, entries } = await worker.runUntil(async () => {
      const handle = await suite.harness.start({
        task: 'anything',
        workspace: repo.dir,
        approvalPolicy: 'never',
      });
      const failure = await failureOf(handle);
      const failedAfterMs = Date.now() - started;
      const view = await suite.harness.ratchet.status(handle.workflowId);
      const description = await handle.describe();
      const entries = await transcriptOf(handle);
      await recordHistory(handle, 'fault-model-401');
      return { failure, failedAfterMs, view, description, entries };
    });
    console.log(
      `401: the workflow failed ${failedAfterMs} ms after it started, after ${model.requests.length} request(s)`,
    );
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect(description.status.name).toBe('FAILED');
    const message = (failure as WorkflowFailedError).cause?.message ?? '';
    expect(message).toMatch(/rejected the API key \(401\)/);
    expect(message).toContain('OPENAI_API_KEY');
    // What `ratchet status` shows.
    expect(view.status).toBe('failed');
    expect(view.notice).toMatch(/rejected the API key \(401\).*OPENAI_API_KEY/);
    // No retry loop: one request, and the session is over.
    expect(model.requests).toHaveLength(1);
    expect(entries.map((e) => e.item.type)).toEqual(['message', 'message']);
    expect(bodyOf(model.requests[0]!).input).toEqual(entries.map((e) => e.item));
    model.assertDone();
  });

  it('returns malformed arguments and an unknown tool to the model as errors it can correct', async () => {
    const repo = await tempRepo();
    const { model } = suite.harness;
    model
      .enqueue({
        kind: 'reply',
        output: [
          { type: 'function_call', name: 'shell', arguments: '{not json' },
          { type: 'function_call', name: 'open_file', arguments: { path: 'a.txt' } },
        ],
      })
      .call('read_file', { file_path: 'a.txt' })
      .reply('a.txt says alpha.');
    const { result, entries } = await runToEnd('fault-model-bad-tool-calls', {
      task: 'read a.txt',
      workspace: repo.dir,
      approvalPolicy: 'never',
    });
    expect(result).toMatchObject({ status: 'completed', finalMessage: 'a.txt says alpha.', turns: 3 });
    const requests = modelRequests();
    expect(requests).toHaveLength(3);
    const [malformed, unknown] = outputsOf(requests[1]!);
    expect(malformed!.callId).toBe('call_1');
    expect(malformed!.output).toMatch(
      /^The arguments for shell are not valid JSON \(.+\)\. Send a JSON object\.$/,
    );
    expect(unknown!.callId).toBe('call_2');
    expect(unknown!.output).toBe(`Unknown tool "open_file". Available tools: ${TOOL_NAMES}.`);
    // The corrected call ran.
    expect(outputsOf(requests[2]!)[2]!.output).toContain('L1: alpha');
    expectWholeTranscript(entries, { assistantMessages: ['a.txt says alpha.'] });
    model.assertDone();
  });

  it.each([
    { fault: 'empty' as const, what: 'an empty response', fixture: 'fault-model-empty-response' },
    { fault: 'garbage' as const, what: 'a body that does not parse', fixture: 'fault-model-garbage' },
  ])('retries $what, then completes', async ({ fault, fixture }) => {
    const repo = await tempRepo();
    const { model } = suite.harness;
    model.enqueue({ kind: fault }).reply('Something, at last.');
    const { result, entries } = await runToEnd(fixture, {
      task: 'say it',
      workspace: repo.dir,
      approvalPolicy: 'never',
    });
    expect(result).toMatchObject({ status: 'completed', finalMessage: 'Something, at last.', turns: 1 });
    const requests = modelRequests();
    expect(requests).toHaveLength(2);
    expect(bodyOf(requests[1]!)).toEqual(bodyOf(requests[0]!));
    expectWholeTranscript(entries, { assistantMessages: ['Something, at last.'] });
    model.assertDone();
  });

  it('stops in idle with a notice when retries run out, and a message resumes it', async () => {
    const repo = await tempRepo();
    const { model } = suite.harness;
    model
      .enqueue({ kind: 'error', status: 500 }, { kind: 'error', status: 500 })
      .reply('Back on track after your message.');
    const { worker } = await suite.harness.worker();
    const { result, entries, idle } = await worker.runUntil(async () => {
      const handle = await suite.harness.start({
        task: 'say it',
        workspace: repo.dir,
        approvalPolicy: 'never',
        limits: { modelMaxAttempts: 2 },
      });
      const idle = await waitForStatus(handle, (s) => s.status === 'idle');
      // Idle means waiting: no third attempt is made on its own.
      expect(model.requests).toHaveLength(2);
      await suite.harness.ratchet.send(handle.workflowId, 'Please try again.');
      const result = (await handle.result()) as SessionResult;
      const entries = await transcriptOf(handle);
      await recordHistory(handle, 'fault-model-retries-exhausted');
      return { result, entries, idle };
    });
    expect(idle.notice).toMatch(/the model call failed \(ModelUnavailable\).*\(500\)/);
    expect(idle.notice).toMatch(/send a message to try again/);
    expect(result).toMatchObject({
      status: 'completed',
      finalMessage: 'Back on track after your message.',
      turns: 1,
    });
    const requests = modelRequests();
    expect(requests).toHaveLength(3);
    expect(bodyOf(requests[1]!)).toEqual(bodyOf(requests[0]!));
    // The resumed request is the failed one plus the person's message.
    const resumed = bodyOf(requests[2]!).input;
    expect(resumed.slice(0, -1)).toEqual(bodyOf(requests[0]!).input);
    expect(JSON.stringify(resumed.at(-1))).toContain('Please try again.');
    expectWholeTranscript(entries, { assistantMessages: ['Back on track after your message.'] });
    model.assertDone();
  });
});

describe('tool faults', () => {
  it('kills a command that times out, with everything it started', async () => {
    const repo = await tempRepo();
    const { model } = suite.harness;
    // A marker no other process has: both sleeps, and the shell running them, carry it.
    const marker = `sleep 30.${process.pid}`;
    model
      .call('shell', { command: ['bash', '-lc', `${marker} & ${marker}`], timeout_ms: 1000 })
      .reply('It timed out, as expected.');
    const { worker } = await suite.harness.worker();
    const { result, entries, seenRunning } = await worker.runUntil(async () => {
      const handle = await suite.harness.start({
        task: 'sleep',
        workspace: repo.dir,
        approvalPolicy: 'never',
      });
      // While it runs, the marker finds the command's processes (so the check below means something).
      let seenRunning = '';
      const done = handle.result();
      const deadline = Date.now() + 20_000;
      while (seenRunning === '' && modelRequests().length < 2 && Date.now() < deadline) {
        seenRunning = await processesMatching(marker);
        if (seenRunning === '') await new Promise((resolve) => setTimeout(resolve, 25));
      }
      const result = (await done) as SessionResult;
      const entries = await transcriptOf(handle);
      await recordHistory(handle, 'fault-tool-timeout');
      return { result, entries, seenRunning };
    });
    expect(seenRunning).toContain(marker);
    expect(result).toMatchObject({ status: 'completed', finalMessage: 'It timed out, as expected.' });
    const requests = modelRequests();
    expect(requests).toHaveLength(2);
    const shell = shellOutput(outputsOf(requests[1]!)[0]!.output);
    expect(shell.output).toContain('[command timed out after 1,000 ms and was killed]');
    expect(shell.metadata).toMatchObject({ exit_code: 124, timed_out: true });
    expect(shell.metadata.duration_seconds).toBeGreaterThanOrEqual(1);
    // The whole process group went: neither sleep is left behind.
    expect(await processesMatching(marker)).toBe('');
    expectWholeTranscript(entries, { assistantMessages: ['It timed out, as expected.'] });
    model.assertDone();
  });

  it('cuts 50 MB of output down to its head and tail, with no large payload in history', async () => {
    const repo = await tempRepo();
    const { model } = suite.harness;
    model.call('shell', { command: ['bash', '-lc', 'yes | head -c 50000000'] }).reply('That was a lot of y.');
    const { worker } = await suite.harness.worker();
    const { result, entries, handle } = await worker.runUntil(async () => {
      const handle = await suite.harness.start({
        task: 'print a lot',
        workspace: repo.dir,
        approvalPolicy: 'never',
      });
      const result = (await handle.result()) as SessionResult;
      const entries = await transcriptOf(handle);
      await recordHistory(handle, 'fault-tool-huge-output');
      return { result, entries, handle };
    });
    expect(result).toMatchObject({ status: 'completed', finalMessage: 'That was a lot of y.' });
    const requests = modelRequests();
    expect(requests).toHaveLength(2);
    const raw = outputsOf(requests[1]!)[0]!.output;
    expect(Buffer.byteLength(raw)).toBeLessThan(30 * 1024);
    const shell = shellOutput(raw);
    // (A login shell's profile may print a line first, e.g. pyenv in a read-only home.)
    expect(shell.output).toMatch(/(^|\n)y\ny\n/);
    expect(shell.output).toMatch(/\n\[… [\d,]+ bytes \([\d,]+ lines\) omitted …\]\ny\n/);
    expect(shell.metadata.exit_code).toBe(0);
    expect(shell.metadata.truncated_bytes).toBeGreaterThan(49_900_000);

    const history = await handle.fetchHistory();
    const found: Array<{ where: string; bytes: number }> = [];
    (history.events ?? []).forEach((event, i) => payloadSizes(event, found, `events[${i}]`));
    // The walk saw the activity results, the shell's (its output, encoded) among them.
    expect(found.some((f) => f.where.includes('activityTaskCompletedEventAttributes.result'))).toBe(true);
    expect(found.some((f) => f.where.includes('activityTaskScheduledEventAttributes.input'))).toBe(true);
    const largest = found.reduce((a, b) => (b.bytes > a.bytes ? b : a));
    console.log(
      `50 MB of output: the model got ${Buffer.byteLength(raw)} bytes; largest history payload ` +
        `${largest.bytes} bytes at ${largest.where} (${found.length} payloads, ${history.events?.length} events)`,
    );
    expect(largest.bytes).toBeGreaterThan(16 * 1024);
    expect(largest.bytes).toBeLessThan(64 * 1024);
    expectWholeTranscript(entries, { assistantMessages: ['That was a lot of y.'] });
    model.assertDone();
  });

  // The budget holds for the output as the model receives it, JSON-encoded: a control character
  // such as \x01 takes six bytes there. Output made of control characters counts as binary.
  it('keeps output of control characters under the same budget once encoded', async () => {
    const repo = await tempRepo();
    const { model } = suite.harness;
    model
      .call('shell', { command: ['bash', '-lc', "head -c 50000000 /dev/zero | tr '\\0' '\\1'"] })
      .reply('Control characters.');
    const { worker } = await suite.harness.worker();
    const result = await worker.runUntil(async () => {
      const handle = await suite.harness.start({
        task: 'print noise',
        workspace: repo.dir,
        approvalPolicy: 'never',
      });
      return (await handle.result()) as SessionResult;
    });
    expect(result).toMatchObject({ status: 'completed', finalMessage: 'Control characters.' });
    const raw = outputsOf(modelRequests()[1]!)[0]!.output;
    console.log(`50 MB of \\x01: the model got ${Buffer.byteLength(raw)} bytes`);
    expect(Buffer.byteLength(raw)).toBeLessThan(30 * 1024);
    model.assertDone();
  });

  it('shows binary output as a note, not as garbage', async () => {
    const repo = await tempRepo();
    const { model } = suite.harness;
    model.call('shell', { command: ['head', '-c', '100000', '/dev/urandom'] }).reply('That was binary.');
    const { result, entries } = await runToEnd('fault-tool-binary-output', {
      task: 'read noise',
      workspace: repo.dir,
      approvalPolicy: 'never',
    });
    expect(result).toMatchObject({ status: 'completed', finalMessage: 'That was binary.' });
    const raw = outputsOf(modelRequests()[1]!)[0]!.output;
    const shell = shellOutput(raw);
    expect(shell.output).toBe('[binary output: 100,000 bytes]');
    expect(shell.metadata.exit_code).toBe(0);
    expect(raw).not.toContain('\uFFFD');
    expectWholeTranscript(entries, { assistantMessages: ['That was binary.'] });
    model.assertDone();
  });

  it('gives a command that reads stdin an immediate end of file', async () => {
    const repo = await tempRepo();
    const { model } = suite.harness;
    // Had stdin stayed open, each would run into its timeout (and say so) instead of ending.
    model
      .enqueue({
        kind: 'reply',
        output: [
          { type: 'function_call', name: 'shell', arguments: { command: ['cat'], timeout_ms: 20_000 } },
          {
            type: 'function_call',
            name: 'shell',
            arguments: { command: ['bash', '-lc', 'read x; echo got:$x'], timeout_ms: 20_000 },
          },
        ],
      })
      .reply('Nothing to read.');
    const { result, entries } = await runToEnd('fault-tool-stdin', {
      task: 'read stdin',
      workspace: repo.dir,
      approvalPolicy: 'never',
    });
    expect(result).toMatchObject({ status: 'completed', finalMessage: 'Nothing to read.' });
    const [cat, read] = outputsOf(modelRequests()[1]!).map((o) => shellOutput(o.output));
    expect(cat).toMatchObject({ output: '', metadata: { exit_code: 0 } });
    expect(cat!.metadata.timed_out).toBeUndefined();
    expect(read).toMatchObject({ metadata: { exit_code: 0 } });
    expect(read!.output).toMatch(/(^|\n)got:\n$/);
    expect(read!.metadata.timed_out).toBeUndefined();
    expectWholeTranscript(entries, { assistantMessages: ['Nothing to read.'] });
    model.assertDone();
  });

  it('tells the model clearly when the workspace was deleted under the session', async () => {
    const repo = await tempRepo();
    const { model } = suite.harness;
    model
      // The first reply is held until the test has deleted the workspace.
      .enqueue({
        kind: 'hang',
        output: [{ type: 'function_call', name: 'read_file', arguments: { file_path: 'a.txt' } }],
      })
      .reply('The workspace is gone; I cannot go on.');
    const { worker } = await suite.harness.worker();
    const { result, view, entries } = await worker.runUntil(async () => {
      const handle = await suite.harness.start({
        task: 'read a.txt',
        workspace: repo.dir,
        approvalPolicy: 'never',
      });
      await model.waitForRequest(1);
      // The baseline checkpoint runs beside the first model call and writes into .git; the
      // workspace goes once it has settled, while the model call is still held.
      await untilActivityCompleted(handle, 'checkpoint');
      await repo.remove();
      expect(model.release()).toBe(1);
      const result = (await handle.result()) as SessionResult;
      const view = await suite.harness.ratchet.status(handle.workflowId);
      const entries = await transcriptOf(handle);
      await recordHistory(handle, 'fault-tool-workspace-deleted');
      return { result, view, entries };
    });
    const requests = modelRequests();
    expect(requests).toHaveLength(2);
    const [output] = outputsOf(requests[1]!);
    expect(output!.output).toBe(
      `The workspace ${repo.dir} no longer exists on the worker (it was moved or deleted). ` +
        'Nothing was run. Tell the user; the task cannot continue without it.',
    );
    // The model is told and gives its final answer; the session completes, and only the list of
    // changed files is missing, with a notice that says why.
    expect(result).toMatchObject({
      status: 'completed',
      finalMessage: 'The workspace is gone; I cannot go on.',
      filesChanged: [],
    });
    expect(view.status).toBe('completed');
    expect(view.notice).toBe(`could not list the changed files: workspace ${repo.dir} no longer exists`);
    expectWholeTranscript(entries, { assistantMessages: ['The workspace is gone; I cannot go on.'] });
    model.assertDone();
  });
});
