/**
 * The `ratchet` command end to end, as a user runs it: `node bin/ratchet.js …` in a process of its
 * own, against the suite's Temporal server, with the scripted model behind OPENAI_BASE_URL.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SessionSummary } from '../../src/client.js';
import type { SessionResult, StatusView } from '../../src/shared/api/session-api.js';
import { runCli, startCli } from '../helpers/cli.js';
import type { CliResult } from '../helpers/cli.js';
import { createTempRepo } from '../helpers/git-repo.js';
import type { TempRepo } from '../helpers/git-repo.js';
import { Harness, waitForStatus } from '../helpers/harness.js';

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

interface RequestBody {
  input: Array<Record<string, unknown>>;
  prompt_cache_key?: string;
}

type JsonLine = { type: string; sessionId?: string } & Record<string, unknown>;

let harness: Harness;
let home: string;
const repos: TempRepo[] = [];

beforeAll(async () => {
  harness = await Harness.create();
  home = await mkdtemp(path.join(os.tmpdir(), 'ratchet-home-'));
});

beforeEach(async () => {
  await harness.freshModel();
});

afterAll(async () => {
  await harness?.close();
  await Promise.all(repos.map((repo) => repo.remove()));
  if (home) await rm(home, { recursive: true, force: true });
});

async function tempRepo(files: Record<string, string> = { 'README.md': '# x\n' }): Promise<TempRepo> {
  const repo = await createTempRepo(files);
  repos.push(repo);
  return repo;
}

interface RatchetOptions {
  taskQueue?: string;
  env?: Record<string, string | undefined>;
}

/** The environment for the suite's server, this file's task queue (or `taskQueue`) and the current scripted model. */
function cliEnv(options: RatchetOptions): Record<string, string | undefined> {
  return {
    TEMPORAL_ADDRESS: harness.address,
    TEMPORAL_NAMESPACE: undefined,
    TEMPORAL_PROFILE: undefined,
    TEMPORAL_API_KEY: undefined,
    RATCHET_TASK_QUEUE: options.taskQueue ?? harness.taskQueue,
    OPENAI_BASE_URL: harness.model.baseUrl,
    OPENAI_API_KEY: 'test',
    RATCHET_HOME: home,
    RATCHET_DEBUG: undefined,
    NO_COLOR: '1',
    ...options.env,
  };
}

/** The command, run to its end with `cliEnv`. */
function ratchet(args: string[], options: RatchetOptions = {}): Promise<CliResult> {
  return runCli(args, { env: cliEnv(options) });
}

function linesOf(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

/** A failed command: non-zero exit, nothing on stdout, one line on stderr matching `pattern`, no stack. */
function expectOneLineError(result: CliResult, pattern: RegExp): void {
  const context = JSON.stringify(result);
  expect(result.timedOut, context).toBe(false);
  expect(result.exitCode, context).not.toBe(0);
  expect(result.exitCode, context).toBeGreaterThan(0);
  expect(result.stdout, context).toBe('');
  expect(
    result.stderr.split('\n').filter((line) => line.startsWith('    at ')),
    context,
  ).toEqual([]);
  expect(linesOf(result.stderr), context).toHaveLength(1);
  expect(result.stderr, context).toMatch(pattern);
}

function expectSuccess(result: CliResult): void {
  expect(result.exitCode, JSON.stringify(result)).toBe(0);
}

/** Sessions on a task queue, straight from visibility (not through the CLI). */
async function sessionsOn(taskQueue: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const info of harness.client.workflow.list({ query: `TaskQueue = '${taskQueue}'` })) {
    ids.push(info.workflowId);
  }
  return ids;
}

function outputsOf(body: RequestBody): string[] {
  return body.input.filter((item) => item.type === 'function_call_output').map((item) => String(item.output));
}

describe('ratchet run (following)', () => {
  it('starts a worker of its own, follows the session as codex exec JSON events and exits 0 when it completes', async () => {
    // A queue no worker has ever polled, so that the CLI must run one itself.
    const taskQueue = `${harness.taskQueue}-inproc`;
    const repo = await tempRepo({ 'src/greet.js': GREET });
    const { model } = harness;
    model.call('apply_patch', { input: PATCH }).reply('greet now says Hi.');

    const result = await ratchet(
      ['run', '--repo', repo.dir, '--approval', 'never', '--json', 'Make greet say Hi'],
      { taskQueue },
    );

    expectSuccess(result);
    // Nothing about the in-process worker (or anything else) in --json mode.
    expect(result.stderr).toBe('');
    const lines = linesOf(result.stdout).map((line) => JSON.parse(line) as JsonLine);
    const started = lines[0]!;
    expect(started.type).toBe('thread.started');
    const sessionId = started.thread_id as string;
    expect(sessionId).toMatch(/^ratchet-make-greet-say-hi-[0-9a-f]{8}$/);
    expect(lines.map((line) => line.type)).toEqual([
      'thread.started',
      'turn.started',
      'item.completed',
      'item.completed',
      'turn.completed',
    ]);
    expect(lines[2]).toMatchObject({
      item: { type: 'file_change', changes: [{ path: 'src/greet.js', kind: 'update' }], status: 'completed' },
    });
    expect(lines[3]).toMatchObject({ item: { type: 'agent_message', text: 'greet now says Hi.' } });
    const usage = lines[4]!.usage as Record<string, number>;
    expect(Object.keys(usage).sort()).toEqual(['cached_input_tokens', 'input_tokens', 'output_tokens']);
    expect(usage.output_tokens).toBeGreaterThan(0);

    expect(await readFile(path.join(repo.dir, 'src/greet.js'), 'utf8')).toContain("'Hi ' + name");
    const bodies = model.requests.map((request) => request.body as RequestBody);
    expect(bodies).toHaveLength(2);
    expect(bodies.map((body) => body.prompt_cache_key)).toEqual([sessionId, sessionId]);
    expect(outputsOf(bodies[1]!)[0]).toMatch(/^Success/);
    model.assertDone();
    expect(await sessionsOn(taskQueue)).toEqual([sessionId]);
  });

  it('without a terminal, exits 2 when the session goes idle and says how to continue (it used to follow it for ever)', async () => {
    const taskQueue = `${harness.taskQueue}-idle`;
    const repo = await tempRepo();
    // A request the endpoint refuses as malformed: the session stops in idle with a notice.
    harness.model.enqueue({
      kind: 'error',
      status: 500,
      message: '7 validation errors for CreateChatCompletionRequest',
    });

    const result = await ratchet(['run', '--repo', repo.dir, 'Say hello'], { taskQueue });

    expect(result.timedOut, JSON.stringify(result)).toBe(false);
    expect(result.exitCode, JSON.stringify(result)).toBe(2);
    expect(result.stderr).toMatch(
      /is idle: .*validation errors.*\. Continue it with: ratchet send ratchet-say-hello-[0-9a-f]{8} "<message>"/,
    );
    // One model call: a request that cannot succeed is not retried.
    expect(harness.model.requests).toHaveLength(1);
  });

  it('with --json, exits 3 when the session waits for an approval nobody here can give, naming the call', async () => {
    const taskQueue = `${harness.taskQueue}-approval`;
    const repo = await tempRepo();
    harness.model.call('shell', { command: ['touch', 'x'] }, 'call_touch');

    const result = await ratchet(['run', '--repo', repo.dir, '--json', 'Touch x'], { taskQueue });

    expect(result.exitCode, JSON.stringify(result)).toBe(3);
    const lines = linesOf(result.stdout).map((line) => JSON.parse(line) as JsonLine);
    expect(lines.map((line) => line.type)).toEqual([
      'thread.started',
      'turn.started',
      'item.started',
      'approval.requested',
    ]);
    expect(lines[2]).toMatchObject({
      item: { type: 'command_execution', command: 'touch x', status: 'in_progress' },
    });
    expect(lines[3]).toMatchObject({ call_id: 'call_touch', tool: 'shell' });
    expect(result.stderr).toMatch(
      /waits for approval of call_touch .*Decide with: ratchet approve ratchet-touch-x-[0-9a-f]{8} call_touch/,
    );
  });

  it("writes the in-process worker's log to a file and shows a failing model call as one line per attempt", async () => {
    const taskQueue = `${harness.taskQueue}-failing`;
    const repo = await tempRepo();
    harness.model
      .enqueue({ kind: 'error', status: 500, message: 'the GPU caught fire' })
      .enqueue({ kind: 'error', status: 500, message: 'the GPU caught fire' })
      .reply('Hello.');

    const result = await ratchet(['run', '--repo', repo.dir, 'Say hello'], { taskQueue });

    expectSuccess(result);
    const all = result.stdout + result.stderr;
    // Before: multi-line "[WARN] Activity failed" blocks with stack traces in the terminal.
    expect(all).not.toMatch(/\[WARN\]|Activity failed|taskToken| {4}at /);
    expect(result.stdout).toMatch(
      /model · turn 1 .*· attempt 2\/10 · the model endpoint failed \(500\): the GPU caught fire$/m,
    );
    const logLine = /^Worker log: (.+)$/m.exec(result.stderr);
    expect(logLine, result.stderr).not.toBeNull();
    expect(result.stderr.match(/Worker log:/g)).toHaveLength(1);
    const log = await readFile(logLine![1]!.trim(), 'utf8');
    expect(log).toMatch(/\[WARN\] Activity failed[\s\S]*the GPU caught fire/);
  });
});

describe('a detached session decided from the command line', () => {
  it('run --detach, status, approve, list and history', async () => {
    const repo = await tempRepo();
    const { model } = harness;
    model.call('shell', { command: ['touch', 'x'] }).reply('Touched x.');
    const { worker } = await harness.worker();
    const id = await worker.runUntil(async () => {
      const detached = await ratchet(['run', '--repo', repo.dir, '--detach', '--json', 'touch', 'x']);
      expectSuccess(detached);
      const doc = JSON.parse(detached.stdout) as { sessionId: string; uiUrl: string | null };
      expect(Object.keys(doc).sort()).toEqual(['sessionId', 'uiUrl']);
      const id = doc.sessionId;
      expect(id).toMatch(/^ratchet-touch-x-[0-9a-f]{8}$/);
      if (doc.uiUrl !== null) expect(doc.uiUrl).toMatch(new RegExp(`/namespaces/default/workflows/${id}$`));
      const handle = harness.client.workflow.getHandle(id);
      await waitForStatus(handle, (s) => s.status === 'awaiting_approval');

      const status = await ratchet(['status', id, '--json']);
      expectSuccess(status);
      const view = JSON.parse(status.stdout) as StatusView & { sessionId: string };
      expect(view).toMatchObject({ sessionId: id, status: 'awaiting_approval', task: 'touch x' });
      expect(view.pendingApprovals).toHaveLength(1);
      const pending = view.pendingApprovals[0]!;
      expect(pending).toMatchObject({ tool: 'shell', summary: 'shell · touch x' });
      expect(pending.callId).toMatch(/\S/);

      const approve = await ratchet(['approve', id]);
      expectSuccess(approve);
      expect(approve.stdout).toBe(`approve: ${pending.callId}\n`);

      const result = (await handle.result()) as SessionResult;
      expect(result.finalMessage).toBe('Touched x.');
      await stat(path.join(repo.dir, 'x'));

      const text = await ratchet(['status', id]);
      expectSuccess(text);
      const textLines = linesOf(text.stdout);
      expect(textLines[0]).toBe(`${id}  completed`);
      expect(textLines).toContain('task       touch x');
      expect(textLines).toContain('sandbox    workspace-write');
      expect(text.stdout).toContain('last message\nTouched x.\n');

      // Visibility is eventually consistent: wait until the closed session is listed, then ask the CLI.
      await expect
        .poll(async () => (await sessionsOn(harness.taskQueue)).includes(id), { timeout: 10_000 })
        .toBe(true);
      const list = await ratchet(['list', '--json', '--limit', '1000']);
      expectSuccess(list);
      const sessions = JSON.parse(list.stdout) as SessionSummary[];
      expect(sessions.find((s) => s.sessionId === id)).toMatchObject({
        status: 'completed',
        workflowStatus: 'COMPLETED',
        task: 'touch x',
      });

      const history = await ratchet(['history', id]);
      expectSuccess(history);
      const events = linesOf(history.stdout).map((line) => line.replace(/^\S+ \S+ {2}/, ''));
      expect(events[0]).toBe('session started');
      expect(events).toContain('▸ shell · touch x');
      expect(events).toContain('✓ shell · touch x');
      expect(events).toContain('update approve');
      expect(events.at(-1)).toBe('session completed');
      return id;
    });
    model.assertDone();

    // With no worker left to answer the query, status says what the server keeps.
    const closed = await ratchet(['status', id, '--json']);
    expectSuccess(closed);
    expect(JSON.parse(closed.stdout)).toMatchObject({
      sessionId: id,
      status: 'completed',
      task: 'touch x',
      approvalPolicy: 'untrusted',
      sandbox: 'workspace-write',
      turn: 2,
      lastMessage: 'Touched x.',
      notice: 'no worker answered the status query; this is what the server keeps',
    });
  });

  it('run --sandbox read-only confines the session and status says so', async () => {
    const repo = await tempRepo();
    const { model } = harness;
    model.call('shell', { command: ['touch', 'x'] }).reply('Could not write: the sandbox is read-only.');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const detached = await ratchet([
        'run',
        '--repo',
        repo.dir,
        '--sandbox',
        'read-only',
        '--approval',
        'never',
        '--detach',
        '--json',
        'touch x',
      ]);
      expectSuccess(detached);
      const { sessionId } = JSON.parse(detached.stdout) as { sessionId: string };
      const handle = harness.client.workflow.getHandle(sessionId);
      await handle.result();
      const status = await ratchet(['status', sessionId, '--json']);
      expectSuccess(status);
      expect(JSON.parse(status.stdout)).toMatchObject({ status: 'completed', sandbox: 'read-only' });
    });
    const output = String(
      (model.requests.at(-1)!.body as { input: Array<{ type: string; output?: string }> }).input.find(
        (item) => item.type === 'function_call_output',
      )?.output,
    );
    expect(output).toMatch(/Read-only file system/);
    await expect(stat(path.join(repo.dir, 'x'))).rejects.toThrow(/ENOENT/);
  });

  it('run --provider-state sends only new items after the first request', async () => {
    const repo = await tempRepo();
    const { model } = harness;
    const before = model.requests.length;
    model.call('read_file', { file_path: 'README.md' }).reply('Read it.');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const detached = await ratchet([
        'run',
        '--repo',
        repo.dir,
        '--provider-state',
        '--approval',
        'never',
        '--detach',
        '--json',
        'read the readme',
      ]);
      expectSuccess(detached);
      const { sessionId } = JSON.parse(detached.stdout) as { sessionId: string };
      await harness.client.workflow.getHandle(sessionId).result();
    });
    const [first, second] = model.requests
      .slice(before)
      .map(
        (r) => r.body as { store?: boolean; previous_response_id?: string; input: Array<{ type: string }> },
      );
    expect(first).toMatchObject({ store: true });
    expect(first!.previous_response_id).toBeUndefined();
    expect(second!.previous_response_id).toEqual(expect.stringMatching(/^resp_/));
    expect(second!.input.map((item) => item.type)).toEqual(['function_call_output']);
  });

  it('lists both pending calls instead of guessing, then denies the one named', async () => {
    const repo = await tempRepo();
    const { model } = harness;
    model
      .enqueue({
        kind: 'reply',
        output: [
          { type: 'function_call', name: 'shell', arguments: { command: ['touch', 'a'] }, callId: 'call_a' },
          { type: 'function_call', name: 'shell', arguments: { command: ['touch', 'b'] }, callId: 'call_b' },
        ],
      })
      .reply('Made b only.');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'touch a and b', workspace: repo.dir });
      await waitForStatus(handle, (s) => s.pendingApprovals.length === 2);

      const ambiguous = await ratchet(['approve', handle.workflowId]);
      expectOneLineError(ambiguous, /2 pending approvals/);
      expect(ambiguous.stderr).toContain('call_a');
      expect(ambiguous.stderr).toContain('call_b');
      const still = await harness.ratchet.status(handle.workflowId);
      expect(still.pendingApprovals.map((p) => p.callId)).toEqual(['call_a', 'call_b']);

      const deny = await ratchet(['deny', handle.workflowId, 'call_a', '--reason', 'not a, please']);
      expectSuccess(deny);
      expect(deny.stdout).toBe('deny: call_a\n');

      await waitForStatus(handle, (s) => s.pendingApprovals.length === 1);
      await harness.ratchet.decide(handle.workflowId, 'approve', { callId: 'call_b' });
      const result = (await handle.result()) as SessionResult;
      expect(result.filesChanged).toEqual([{ path: 'b', status: '??' }]);
    });
    const outputs = outputsOf(model.requests.at(-1)!.body as RequestBody);
    expect(outputs[0]).toContain('The user denied this shell call: not a, please');
    model.assertDone();
  });
});

describe('ratchet watch', () => {
  it('follows a session through a patch approval: plain text on a pipe, and JSON lines', async () => {
    const repo = await tempRepo({ 'src/greet.js': GREET });
    const { model } = harness;
    model.call('apply_patch', { input: PATCH }).reply('greet now says Hi.');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'Make greet say Hi', workspace: repo.dir });
      const id = handle.workflowId;
      // Colours are allowed, and CI is set (picocolors alone would colour then): a pipe still gets none.
      const env = cliEnv({ env: { NO_COLOR: undefined, FORCE_COLOR: undefined, CI: 'true' } });
      const text = startCli(['watch', id], { env });
      const json = startCli(['watch', id, '--json'], { env });
      await text.waitForOutput(/decide with: ratchet approve/);
      await json.waitForOutput(/"type":"approval"/);
      const pending = (await harness.ratchet.status(id)).pendingApprovals;
      expect(pending).toHaveLength(1);
      const callId = pending[0]!.callId;
      await harness.ratchet.decide(id, 'approve', { callId, by: 'test' });
      const [plain, lines] = await Promise.all([text.result, json.result]);

      expectSuccess(plain);
      expect(plain.stderr).toBe('');
      expect(plain.stdout).not.toContain('\x1b');
      expect(plain.stdout).not.toContain('\r');
      const out = linesOf(plain.stdout);
      const approvalAt = out.indexOf(`approval needed apply_patch · src/greet.js (${callId})`);
      expect(approvalAt, plain.stdout).toBeGreaterThan(0);
      expect(out.slice(approvalAt + 2, approvalAt + 10)).toEqual([
        '    *** Begin Patch',
        '    *** Update File: src/greet.js',
        '    @@ export function greet(name) {',
        "    -  return 'Hello ' + name;",
        "    +  return 'Hi ' + name;",
        '     }',
        '    *** End Patch',
        `  decide with: ratchet approve ${id} ${callId}   (or deny, or the Web UI)`,
      ]);
      expect(out).toContain('▸ apply_patch · src/greet.js');
      expect(out.some((line) => line.startsWith('✓ '))).toBe(true);
      expect(out).toContain('ratchet greet now says Hi.');
      expect(out).toContain('· awaiting approval · turn 1 · approval · apply_patch · src/greet.js');
      expect(out.at(-1)).toBe('· completed · turn 2');

      expectSuccess(lines);
      expect(lines.stderr).toBe('');
      expect(lines.stdout).not.toContain('\x1b');
      const events = linesOf(lines.stdout).map((line) => JSON.parse(line) as JsonLine);
      expect(new Set(events.map((event) => event.type))).toEqual(new Set(['entry', 'status', 'approval']));
      expect(events.every((event) => event.sessionId === id)).toBe(true);
      const entries = events.filter((event) => event.type === 'entry');
      expect(entries.map((event) => event.index)).toEqual(entries.map((_, i) => i));
      const approvals = events.filter((event) => event.type === 'approval');
      expect(approvals).toHaveLength(1);
      expect(approvals[0]!.approval).toMatchObject({
        callId,
        tool: 'apply_patch',
        summary: 'apply_patch · src/greet.js',
        arguments: { input: PATCH },
      });
      const statuses = events.filter((event) => event.type === 'status');
      expect(statuses.map((event) => event.status)).toContain('awaiting_approval');
      expect(statuses.at(-1)).toMatchObject({ status: 'completed', lastMessage: 'greet now says Hi.' });
      expect(events.at(-1)!.type).toBe('status');
    });
    model.assertDone();
  });
});

describe('ratchet diff', () => {
  it("shows a finished session's changes to its workspace, new files included", async () => {
    const repo = await tempRepo({ 'src/greet.js': GREET });
    const { model } = harness;
    const addNotes = ['*** Begin Patch', '*** Add File: notes.txt', '+remember to say Hi', '*** End Patch'];
    model
      .call('apply_patch', { input: PATCH })
      .call('apply_patch', { input: addNotes.join('\n') })
      .reply('done');
    const { worker } = await harness.worker();
    const handle = await worker.runUntil(async () => {
      const h = await harness.start({ task: 'say Hi', workspace: repo.dir, approvalPolicy: 'never' });
      await h.result();
      return h;
    });

    const diff = await ratchet(['diff', handle.workflowId]);
    expectSuccess(diff);
    expect(diff.stdout).toContain("-  return 'Hello ' + name;");
    expect(diff.stdout).toContain("+  return 'Hi ' + name;");
    expect(diff.stdout).toContain('+++ b/notes.txt');
    expect(diff.stdout).toContain('+remember to say Hi');
    const stat = await ratchet(['diff', '--stat', handle.workflowId]);
    expectSuccess(stat);
    expect(stat.stdout).toBe('+1 -1 src/greet.js\n+1 -0 notes.txt\n');
    model.assertDone();
  });
});

describe('bad input: one line on stderr, a non-zero exit, nothing started', () => {
  const badQueue = () => `${harness.taskQueue}-bad`;
  let repo: TempRepo;
  let plainDir: string;

  beforeAll(async () => {
    repo = await tempRepo({ 'README.md': '# x\n' });
    plainDir = await mkdtemp(path.join(os.tmpdir(), 'ratchet-not-git-'));
    await writeFile(path.join(plainDir, 'bad.toml'), 'model = "m"\napproval = "sometimes"\n');
  });

  afterAll(async () => {
    if (plainDir) await rm(plainDir, { recursive: true, force: true });
  });

  const cases: Array<{
    name: string;
    args: () => string[];
    error: RegExp;
    env?: Record<string, string>;
  }> = [
    {
      name: 'an unknown flag',
      args: () => ['run', '--repo', repo.dir, '--frobnicate', 'x'],
      error: /^ratchet: error: unknown option '--frobnicate'$/m,
    },
    {
      name: 'an unknown command',
      args: () => ['frobnicate', 'x'],
      error: /^ratchet: error: unknown command 'frobnicate'$/m,
    },
    {
      name: 'an unknown approval policy',
      args: () => ['run', '--repo', repo.dir, '--approval', 'bogus', 'x'],
      error: /'bogus' is invalid. expected one of untrusted, auto-edit, never, always/,
    },
    {
      name: 'an unknown sandbox mode',
      args: () => ['run', '--repo', repo.dir, '--sandbox', 'none', 'x'],
      error: /'none' is invalid. expected one of read-only, workspace-write, danger-full-access/,
    },
    {
      name: 'a config file with a bad value (file and line named)',
      args: () => ['run', '--repo', repo.dir, '--config', path.join(plainDir, 'bad.toml'), 'x'],
      error: /^ratchet: \/.*\/bad\.toml:2: approval: .*expected one of "untrusted"/m,
    },
    {
      name: 'a config file that does not exist',
      args: () => ['run', '--repo', repo.dir, '--config', 'nope.toml', 'x'],
      error: /^ratchet: nope\.toml: no such config file$/m,
    },
    {
      name: 'a bad value in an environment variable',
      args: () => ['run', '--repo', repo.dir, 'x'],
      env: { RATCHET_COMPACT_AT: '2' },
      error: /^ratchet: RATCHET_COMPACT_AT=2: expected at most 1$/m,
    },
    {
      name: 'a bad flag value',
      args: () => ['run', '--repo', repo.dir, '--command-timeout', 'soon', 'x'],
      error: /^ratchet: --command-timeout: .*expected number/m,
    },
    {
      name: 'status of a session that does not exist',
      args: () => ['status', 'no-such-session'],
      error: /^ratchet: no session with id no-such-session$/m,
    },
    {
      name: 'the diff of a session that does not exist',
      args: () => ['diff', 'no-such-session'],
      error: /^ratchet: no session with id no-such-session$/m,
    },
    {
      name: 'approving in a session that does not exist',
      args: () => ['approve', 'no-such-session'],
      error: /^ratchet: no session with id no-such-session$/m,
    },
    {
      name: 'moving a session that does not exist',
      args: () => ['move', 'no-such-session', '--worker', 'box-2'],
      error: /^ratchet: no session with id no-such-session$/m,
    },
    {
      name: 'moving a session without naming the worker',
      args: () => ['move', 'no-such-session'],
      error: /required option '--worker <id>' not specified/,
    },
    {
      name: 'a budget decision for a session that does not exist',
      args: () => ['budget', 'no-such-session', '--add', '5000'],
      error: /^ratchet: no session with id no-such-session$/m,
    },
    {
      name: 'a negative number of tokens to add',
      args: () => ['budget', 'x', '--add', '-5'],
      error: /argument '-5' is invalid\. expected a whole number of tokens above 0, got "-5"/,
    },
    {
      name: 'tokens to add that are not a number',
      args: () => ['budget', 'x', '--add', 'lots'],
      error: /argument 'lots' is invalid\. expected a whole number of tokens above 0/,
    },
    {
      name: 'adding and stopping at once',
      args: () => ['budget', 'x', '--add', '5', '--stop'],
      error: /^ratchet: give either --add or --stop, not both$/m,
    },
    {
      name: 'a budget that is not a positive number',
      args: () => ['run', '--repo', repo.dir, '--budget-tokens', '-100', 'x'],
      error: /^ratchet: --budget-tokens: expected a number of tokens above 0$/m,
    },
    {
      name: 'an inbox port that is not a port',
      args: () => ['inbox', '--port', '99999'],
      error: /expected a port number \(0-65535\)/,
    },
    {
      name: 'a repository that does not exist',
      args: () => ['run', '--repo', '/nonexistent', 'x'],
      error: /^ratchet: --repo \/nonexistent: no such directory$/m,
    },
    {
      name: 'a directory that is not a git working copy',
      args: () => ['run', '--repo', plainDir, 'x'],
      error: /not inside a git working copy/,
    },
    {
      name: 'an unreachable server (named in the message)',
      args: () => ['status', 'x'],
      env: { TEMPORAL_ADDRESS: '127.0.0.1:1' },
      error: /^ratchet: cannot reach Temporal at 127\.0\.0\.1:1\b/m,
    },
    {
      name: 'run with an unreachable server it must not replace with the embedded one',
      args: () => ['run', '--repo', repo.dir, 'x'],
      env: { TEMPORAL_ADDRESS: '127.0.0.1:1' },
      error: /^ratchet: cannot reach Temporal at 127\.0\.0\.1:1 \(check TEMPORAL_ADDRESS/m,
    },
  ];

  it.each(cases)('$name', async ({ args, error, env }) => {
    const result = await ratchet(args(), { taskQueue: badQueue(), env });
    expectOneLineError(result, error);
    expect(harness.model.requests).toEqual([]);
    expect(await repo.git('status', '--porcelain')).toBe('');
    expect(await sessionsOn(badQueue())).toEqual([]);
  });

  it('a mistyped command, with its suggestion on the same line', async () => {
    const result = await ratchet(['stauts', 'x'], { taskQueue: badQueue() });
    expectOneLineError(result, /^ratchet: error: unknown command 'stauts'.*Did you mean status\?/);
  });
});

describe('send, interrupt and cancel', () => {
  it('change a running session and refuse an ended one', async () => {
    const repo = await tempRepo();
    const { model } = harness;
    model.enqueue({ kind: 'hang' }, { kind: 'hang' });
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'refactor everything', workspace: repo.dir });
      const id = handle.workflowId;
      await model.waitForRequest(1);

      const interrupt = await ratchet(['interrupt', id, '--reason', 'wrong direction']);
      expectSuccess(interrupt);
      expect(interrupt.stdout).toBe('interrupt sent\n');
      const idle = await waitForStatus(handle, (s) => s.status === 'idle');
      expect(idle.notice).toMatch(/interrupted by the user \(wrong direction\)/);

      // An empty message is refused and changes nothing.
      const empty = await ratchet(['send', id, '']);
      expectOneLineError(empty, /^ratchet: the message is empty$/m);
      const unchanged = await harness.ratchet.status(id);
      expect(unchanged).toMatchObject({ status: 'idle', queuedMessages: 0 });
      expect(model.requests).toHaveLength(1);

      const send = await ratchet(['send', id, 'only', 'update', 'the', 'docs']);
      expectSuccess(send);
      expect(send.stdout).toBe('sent\n');
      const second = await model.waitForRequest(2);
      expect(JSON.stringify((second.body as RequestBody).input.at(-1))).toContain('only update the docs');
      await waitForStatus(handle, (s) => s.status === 'running');

      const cancel = await ratchet(['cancel', id]);
      expectSuccess(cancel);
      expect(cancel.stdout).toBe('cancellation requested\n');
      await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
      expect((await harness.ratchet.status(id)).status).toBe('cancelled');

      for (const args of [
        ['send', id, 'hello?'],
        ['interrupt', id],
        ['cancel', id],
      ]) {
        const ended = await ratchet(args);
        expectOneLineError(ended, new RegExp(`^ratchet: session ${id} has ended \\(cancelled\\)$`, 'm'));
      }
      expect(model.requests).toHaveLength(2);
    });
    model.assertDone();
  });
});

describe('ratchet --help', () => {
  it('exits 0 and lists the commands', async () => {
    const result = await ratchet(['--help']);
    expectSuccess(result);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^Usage: ratchet /);
    const commands = [...result.stdout.matchAll(/^ {2}([a-z]+)\b/gm)].map((match) => match[1]);
    for (const command of [
      'run',
      'demo',
      'status',
      'list',
      'watch',
      'history',
      'approve',
      'deny',
      'abort',
      'send',
      'interrupt',
      'budget',
      'cancel',
      'server',
      'setup',
      'worker',
    ]) {
      expect(commands).toContain(command);
    }
  });
});
