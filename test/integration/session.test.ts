/**
 * Whole sessions against the real dev server, the real worker and the real `openai` client
 * talking to the scripted model over HTTP.
 */
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RatchetError } from '../../src/client.js';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import {
  approveSignal,
  approveUpdate,
  interruptSignal,
  userMessageSignal,
} from '../../src/shared/api/session-api.js';
import { createTempRepo } from '../helpers/git-repo.js';
import type { TempRepo } from '../helpers/git-repo.js';
import { Harness, waitForStatus } from '../helpers/harness.js';
import { recordHistory } from '../helpers/histories.js';

const GREET = `export function greet(name) {\n  return 'Hello ' + name;\n}\n`;
const TEST = `import { greet } from './src/greet.js';\nif (greet('Ada') !== 'Hi Ada') { console.error('FAIL', greet('Ada')); process.exit(1); }\nconsole.log('ok');\n`;

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
  tools?: Array<{ name: string }>;
}

function outputsOf(body: RequestBody): string[] {
  return body.input.filter((item) => item.type === 'function_call_output').map((item) => String(item.output));
}

let harness: Harness;
let repo: TempRepo;

beforeAll(async () => {
  harness = await Harness.create();
});

beforeEach(async () => {
  await harness.freshModel();
});

afterAll(async () => {
  await harness?.close();
});

describe('a session', () => {
  it('reads, patches, runs an approved command and finishes with the file changed', async () => {
    repo = await createTempRepo({
      'src/greet.js': GREET,
      'test.js': TEST,
      'package.json': '{"type":"module"}\n',
    });
    const { model } = harness;
    model
      .call('list_dir', { dir_path: '.' })
      .call('read_file', { file_path: 'src/greet.js' })
      .call('apply_patch', { input: PATCH })
      .call('shell', { command: ['bash', '-lc', 'node test.js'] })
      .reply('greet now says Hi; node test.js passes.');

    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'Make greet say Hi instead of Hello', workspace: repo.dir });

      // The patch asks (policy untrusted): approved through the update.
      const patchWait = await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      expect(patchWait.pendingApprovals).toHaveLength(1);
      expect(patchWait.pendingApprovals[0]!.tool).toBe('apply_patch');
      expect(patchWait.pendingApprovals[0]!.summary).toBe('apply_patch · src/greet.js');
      const ack = await handle.executeUpdate(approveUpdate, {
        args: [{ callId: patchWait.pendingApprovals[0]!.callId, decision: 'approve', by: 'test' }],
      });
      expect(ack.decision).toBe('approve');

      // The command asks too: approved through the signal of the same shape.
      const shellWait = await waitForStatus(
        handle,
        (s) => s.status === 'awaiting_approval' && s.pendingApprovals[0]?.tool === 'shell',
      );
      await handle.signal(approveSignal, {
        callId: shellWait.pendingApprovals[0]!.callId,
        decision: 'approve',
      });
      const result = (await handle.result()) as SessionResult;
      await recordHistory(handle, 'session-approvals');
      return result;
    });

    expect(result.status).toBe('completed');
    expect(result.finalMessage).toBe('greet now says Hi; node test.js passes.');
    expect(result.turns).toBe(5);
    expect(result.filesChanged).toEqual([{ path: 'src/greet.js', status: 'M' }]);
    expect(result.usage.inputTokens).toBeGreaterThan(0);
    expect(await readFile(path.join(repo.dir, 'src/greet.js'), 'utf8')).toContain("'Hi ' + name");

    const bodies = model.requests.map((r) => r.body as RequestBody);
    expect(bodies).toHaveLength(5);
    const sessionId = result && bodies[0]!.prompt_cache_key;
    expect(sessionId).toMatch(/^ratchet-make-greet-say-hi/);
    for (const body of bodies) {
      expect(body.prompt_cache_key).toBe(sessionId);
      expect(body.tools?.map((t) => t.name)).toEqual([
        'shell',
        'apply_patch',
        'read_file',
        'list_dir',
        'grep_files',
        'update_plan',
      ]);
    }
    // Each request is the previous one plus new items: a stable, cacheable prefix.
    for (let i = 1; i < bodies.length; i++) {
      expect(bodies[i]!.input.slice(0, bodies[i - 1]!.input.length)).toEqual(bodies[i - 1]!.input);
    }
    const lastOutputs = outputsOf(bodies[4]!);
    expect(lastOutputs[0]).toMatch(/src\/\n\s+greet\.js/); // list_dir
    expect(lastOutputs[1]).toContain("L2:   return 'Hello ' + name;"); // read_file
    expect(lastOutputs[2]).toMatch(/^Success/); // apply_patch
    const shell = JSON.parse(lastOutputs[3]!) as { output: string; metadata: { exit_code: number } };
    expect(shell.metadata.exit_code).toBe(0);
    // A login shell's profile may print first (e.g. pyenv in the sandbox's read-only home).
    expect(shell.output).toMatch(/(^|\n)ok\n$/);
    model.assertDone();
  });

  it('returns a denial with its reason to the model', async () => {
    repo = await createTempRepo({ 'README.md': '# x\n' });
    const { model } = harness;
    model.call('shell', { command: ['rm', '-rf', 'build'] }).reply('Understood, I left build/ alone.');
    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'clean up', workspace: repo.dir });
      await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      const ack = await harness.ratchet.decide(handle.workflowId, 'deny', {
        reason: 'keep build, it is cached',
      });
      expect(ack.decision).toBe('deny');
      const result = (await handle.result()) as SessionResult;
      await recordHistory(handle, 'session-deny');
      return result;
    });
    expect(result.finalMessage).toBe('Understood, I left build/ alone.');
    const outputs = outputsOf(model.requests.at(-1)!.body as RequestBody);
    expect(outputs[0]).toContain('The user denied this shell call: keep build, it is cached');
    model.assertDone();
  });

  it('approves for the session only the command as approved when it begins with an option', async () => {
    repo = await createTempRepo({ 'a.tmp': 'a\n', 'b.tmp': 'b\n', 'keep.txt': 'k\n' });
    const { model } = harness;
    model
      .call('shell', { command: ['rm', '-f', 'a.tmp'] })
      .call('shell', { command: ['rm', '-f', 'a.tmp'] })
      .call('shell', { command: ['rm', '-f', 'keep.txt'] })
      .reply('Removed a.tmp; keep.txt stays.');
    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'remove temporary files', workspace: repo.dir });
      await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      await harness.ratchet.decide(handle.workflowId, 'approve_for_session');
      // The same command runs without asking; `rm -f keep.txt` is not covered by `rm -f a.tmp`.
      const waiting = await waitForStatus(handle, (s) => s.status === 'awaiting_approval' && s.turn >= 3);
      expect(waiting.pendingApprovals.map((p) => p.summary)).toEqual([expect.stringContaining('keep.txt')]);
      await harness.ratchet.decide(handle.workflowId, 'deny', { reason: 'keep it' });
      const result = (await handle.result()) as SessionResult;
      await recordHistory(handle, 'session-approve-for-session');
      return result;
    });
    expect(result.finalMessage).toBe('Removed a.tmp; keep.txt stays.');
    expect(await readFile(path.join(repo.dir, 'keep.txt'), 'utf8')).toBe('k\n');
    model.assertDone();
  });

  it('rejects approvals for unknown, decided or malformed calls and keeps working', async () => {
    repo = await createTempRepo({ 'README.md': '# x\n' });
    const { model } = harness;
    model.call('shell', { command: ['touch', 'made-by-agent'] }).reply('done');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'touch a file', workspace: repo.dir });
      const waiting = await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      const callId = waiting.pendingApprovals[0]!.callId;

      await expect(
        harness.ratchet.decide(handle.workflowId, 'approve', { callId: 'call_nope' }),
      ).rejects.toThrow(/no pending approval for call call_nope \(pending: call_/);
      const malformed = await handle
        .executeUpdate(approveUpdate, { args: [{ callId, decision: 'maybe' } as never] })
        .catch((err: unknown) => err);
      expect(malformed).toBeInstanceOf(WorkflowUpdateFailedError);
      expect((malformed as WorkflowUpdateFailedError).cause?.message).toMatch(/malformed approval: decision/);
      // A malformed signal is ignored (and logged), not fatal.
      await handle.signal(approveSignal, { nonsense: true } as never);
      await expect(harness.ratchet.decide('no-such-session', 'approve')).rejects.toThrow(RatchetError);

      expect(
        (await waitForStatus(handle, (s) => s.status === 'awaiting_approval')).pendingApprovals,
      ).toHaveLength(1);
      const first = await harness.ratchet.decide(handle.workflowId, 'approve');
      // The same decision again is the same update: its first answer (issue 11 item 11).
      expect(await harness.ratchet.decide(handle.workflowId, 'approve', { callId })).toEqual(first);
      await expect(harness.ratchet.decide(handle.workflowId, 'deny', { callId })).rejects.toThrow(
        /already decided|no pending approval/,
      );
      const result = (await handle.result()) as SessionResult;
      expect(result.filesChanged).toEqual([{ path: 'made-by-agent', status: '??' }]);
      // After the end: nothing to decide.
      await expect(harness.ratchet.decide(handle.workflowId, 'deny', { callId })).rejects.toThrow(
        RatchetError,
      );
    });
    model.assertDone();
  });

  it('stops on interrupt and carries on with a follow-up message', async () => {
    repo = await createTempRepo({ 'README.md': '# x\n' });
    const { model } = harness;
    model.enqueue({ kind: 'hang' }).reply('Switched to the docs as you asked.');
    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'refactor everything', workspace: repo.dir });
      await model.waitForRequest(1);
      await handle.signal(interruptSignal, { reason: 'wrong direction' });
      const idle = await waitForStatus(handle, (s) => s.status === 'idle');
      expect(idle.notice).toMatch(/interrupted by the user \(wrong direction\)/);
      await handle.signal(userMessageSignal, { text: 'only update the docs' });
      const result = (await handle.result()) as SessionResult;
      await recordHistory(handle, 'session-interrupt-and-message');
      return result;
    });
    expect(result.finalMessage).toBe('Switched to the docs as you asked.');
    const lastInput = (model.requests.at(-1)!.body as RequestBody).input;
    expect(JSON.stringify(lastInput.at(-1))).toContain('only update the docs');
    model.assertDone();
  });

  it('interrupts a running command by killing it', async () => {
    repo = await createTempRepo({ 'README.md': '# x\n' });
    const { model } = harness;
    model.call('shell', { command: ['bash', '-lc', 'sleep 60'] }).reply('ok, stopped.');
    const { worker } = await harness.worker();
    const started = Date.now();
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'wait', workspace: repo.dir, approvalPolicy: 'never' });
      await waitForStatus(handle, (s) => s.current?.kind === 'tool');
      await new Promise((resolve) => setTimeout(resolve, 500));
      await harness.ratchet.interrupt(handle.workflowId);
      await waitForStatus(handle, (s) => s.status === 'idle');
      await harness.ratchet.send(handle.workflowId, 'never mind');
      return (await handle.result()) as SessionResult;
    });
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(result.finalMessage).toBe('ok, stopped.');
    const outputs = outputsOf(model.requests.at(-1)!.body as RequestBody);
    expect(outputs[0]).toMatch(/interrupted this turn/);
    model.assertDone();
  });

  it('ends as cancelled when the workflow is cancelled', async () => {
    repo = await createTempRepo({ 'README.md': '# x\n' });
    const { model } = harness;
    model.call('shell', { command: ['bash', '-lc', 'sleep 60'] });
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'wait', workspace: repo.dir, approvalPolicy: 'never' });
      await waitForStatus(handle, (s) => s.current?.kind === 'tool');
      await harness.ratchet.cancel(handle.workflowId);
      await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
      const description = await handle.describe();
      expect(description.status.name).toBe('CANCELLED');
      const view = await harness.ratchet.status(handle.workflowId);
      expect(view.status).toBe('cancelled');
      await recordHistory(handle, 'session-cancelled');
    });
    model.assertDone();
  });

  it('fails at once with a clear message when the workspace is not a git working copy', async () => {
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'anything', workspace: '/' });
      await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
      const view = await harness.ratchet.status(handle.workflowId);
      expect(view.status).toBe('failed');
      expect(view.notice).toMatch(/system directory/);
    });
  });
});

describe('parallel calls from one model turn', () => {
  it('run read-only calls concurrently and keep a mutating call between the calls around it', async () => {
    repo = await createTempRepo({ 'README.md': '# x\n' });
    const { model } = harness;
    const read = (file: string) => ({
      type: 'function_call' as const,
      name: 'read_file',
      arguments: { file_path: file },
    });
    model
      .enqueue({ kind: 'reply', output: [read('a'), read('b'), read('c')] })
      .enqueue({
        kind: 'reply',
        output: [
          read('d'),
          { type: 'function_call', name: 'shell', arguments: { command: ['touch', 'x'] } },
          read('e'),
        ],
      })
      .reply('done');

    const events: string[] = [];
    let started = 0;
    const startedAll = new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (started >= 3) {
          clearInterval(check);
          resolve();
        }
      }, 10);
    });
    const outcome = (display: string) => ({ output: display, display, success: true });
    const { worker } = await harness.worker({
      activityOverrides: {
        read_file: async (input) => {
          const file = (JSON.parse(input.arguments!) as { file_path: string }).file_path;
          events.push(`start ${file}`);
          started += 1;
          if ('abc'.includes(file)) {
            // The first three must all be running at once: each waits for the others to start.
            await Promise.race([
              startedAll,
              new Promise((_, reject) =>
                setTimeout(() => reject(new Error('reads ran one at a time')), 10_000),
              ),
            ]);
          } else {
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          events.push(`end ${file}`);
          return outcome(`read ${file}`);
        },
        shell: async () => {
          events.push('start shell');
          await new Promise((resolve) => setTimeout(resolve, 100));
          events.push('end shell');
          return outcome('shell');
        },
      },
    });
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'look around',
        workspace: repo.dir,
        approvalPolicy: 'never',
      });
      return (await handle.result()) as SessionResult;
    });
    expect(result.finalMessage).toBe('done');
    const at = (event: string) => events.indexOf(event);
    expect(at('end d')).toBeLessThan(at('start shell'));
    expect(at('end shell')).toBeLessThan(at('start e'));
    // Outputs go back to the model in the order of the calls.
    const outputs = outputsOf(model.requests[1]!.body as RequestBody);
    expect(outputs).toEqual(['read a', 'read b', 'read c']);
    expect(outputsOf(model.requests[2]!.body as RequestBody).slice(3)).toEqual(['read d', 'shell', 'read e']);
    model.assertDone();
  });
});

describe('a patch sent through the shell, as Codex-trained models send it', () => {
  it('asks as a patch, shows the patch, applies it and answers as apply_patch does', async () => {
    repo = await createTempRepo({ 'src/greet.js': GREET });
    const { model } = harness;
    const heredoc = [
      'bash',
      '-lc',
      `cd src && apply_patch <<'EOF'\n${PATCH.replace('src/greet.js', 'greet.js')}\nEOF\n`,
    ];
    model
      .call('shell', { command: heredoc })
      .call('shell', {
        command: ['apply_patch', PATCH.replace("'Hi '", "'Hey '").replace("'Hello '", "'Hi '")],
      })
      .reply('Patched twice.');
    const { worker } = await harness.worker();
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'Patch through the shell', workspace: repo.dir });
      for (const summary of ['apply_patch · src/greet.js', 'apply_patch · src/greet.js']) {
        const wait = await waitForStatus(
          handle,
          (s) => s.status === 'awaiting_approval' && s.pendingApprovals.length === 1,
        );
        const pending = wait.pendingApprovals[0]!;
        expect(pending).toMatchObject({ tool: 'apply_patch', summary });
        expect(JSON.stringify(pending.arguments)).toContain('*** Begin Patch');
        await handle.executeUpdate(approveUpdate, {
          args: [{ callId: pending.callId, decision: 'approve', by: 'test' }],
        });
      }
      return (await handle.result()) as SessionResult;
    });
    expect(result.status).toBe('completed');
    expect(await readFile(path.join(repo.dir, 'src/greet.js'), 'utf8')).toContain("'Hey ' + name");
    const outputs = outputsOf(model.requests.at(-1)!.body as RequestBody);
    expect(outputs).toEqual([
      'Success. Updated the following files:\nM src/greet.js',
      'Success. Updated the following files:\nM src/greet.js',
    ]);
    model.assertDone();
  });
});
