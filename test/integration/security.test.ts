/**
 * What a session may reach: secrets stay out of commands, tool output, history and logs; a
 * worker serves only the workspaces it is allowed to; without a sandbox every command asks.
 */
import { mkdir, mkdtemp, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { createTempRepo } from '../helpers/git-repo.js';
import { Harness, waitForStatus } from '../helpers/harness.js';
import { capturedLogs } from '../helpers/runtime-setup.js';
import { recordHistory } from '../helpers/histories.js';

const SECRETS = {
  OPENAI_API_KEY: 'sk-sentinel-openai-5b1d',
  TEMPORAL_API_KEY: 'sentinel-temporal-9c2e',
  MY_SERVICE_TOKEN: 'sentinel-token-77aa',
};

function outputs(body: unknown): string[] {
  return (body as { input: Array<{ type: string; output?: string }> }).input
    .filter((item) => item.type === 'function_call_output')
    .map((item) => item.output ?? '');
}

let harness: Harness;
beforeAll(async () => {
  harness = await Harness.create();
});
beforeEach(async () => {
  await harness.freshModel();
});
afterAll(async () => {
  await harness?.close();
});

describe('secrets', () => {
  it('never reach a command, a tool output, the history or a log line', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, SECRETS);
    try {
      const repo = await createTempRepo({ 'a.txt': 'alpha\n' });
      const { model } = harness;
      model
        .call('shell', { command: ['env'] })
        .call('shell', {
          command: [
            'bash',
            '-lc',
            'cat /proc/*/environ 2>/dev/null | tr "\\0" "\\n" | grep -i sentinel; echo scanned',
          ],
        })
        .call('shell', { command: ['bash', '-lc', 'cat /proc/$PPID/environ | tr "\\0" "\\n"; echo parent'] })
        .reply('Nothing secret here.');
      const { worker, sandbox } = await harness.worker({
        endpoint: { apiKey: SECRETS.OPENAI_API_KEY, baseURL: model.baseUrl },
      });
      expect(sandbox.available).toBe(true);
      const logsBefore = capturedLogs.length;
      const { result, history } = await worker.runUntil(async () => {
        const handle = await harness.start({
          task: 'Look at the environment',
          workspace: repo.dir,
          approvalPolicy: 'never',
        });
        const result = (await handle.result()) as SessionResult;
        return { result, history: JSON.stringify(await handle.fetchHistory()) };
      });
      expect(result.finalMessage).toBe('Nothing secret here.');
      // The key did reach the model endpoint, where it belongs.
      expect(model.requests[0]!.headers.authorization).toBe(`Bearer ${SECRETS.OPENAI_API_KEY}`);

      const seen = outputs(model.requests.at(-1)!.body);
      expect(seen).toHaveLength(3);
      expect(seen[0]).toContain('PATH=');
      expect(seen[1]).toContain('scanned');
      const logged = capturedLogs.slice(logsBefore);
      console.log(`${logged.length} log lines captured during the session`);
      const logs = JSON.stringify(logged, (_key, value: unknown) =>
        typeof value === 'bigint' ? String(value) : value,
      );
      for (const [name, value] of Object.entries(SECRETS)) {
        for (const output of seen) {
          expect(output).not.toContain(value);
          expect(output).not.toContain(`${name}=`);
        }
        expect(history).not.toContain(value);
        expect(logs).not.toContain(value);
      }
      model.assertDone();
    } finally {
      for (const name of Object.keys(SECRETS)) delete process.env[name];
      Object.assign(process.env, saved);
    }
  });
});

describe('workspaces a worker serves', () => {
  let root: string;
  beforeAll(async () => {
    root = await realpath(await mkdtemp(path.join(os.tmpdir(), 'ratchet-roots-')));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('refuses a workspace outside its allowed roots and serves one inside', async () => {
    const outside = await createTempRepo({ 'a.txt': 'alpha\n' });
    const inside = await createTempRepo({ 'a.txt': 'alpha\n' });
    const moved = path.join(root, 'project');
    await mkdir(moved);
    await inside.git('--work-tree', moved, 'checkout', 'HEAD', '--', '.');
    const { execa } = await import('execa');
    await execa('git', ['init', '-q'], { cwd: moved });
    harness.model.reply('Inside, all good.');
    const { worker } = await harness.worker({ allowedRoots: [root] });
    await worker.runUntil(async () => {
      const refused = await harness.start({ task: 'anything', workspace: outside.dir });
      await expect(refused.result()).rejects.toThrow();
      const view = await harness.ratchet.status(refused.workflowId);
      expect(view.status).toBe('failed');
      expect(view.notice).toMatch(/outside the directories this worker serves/);
      expect(view.notice).toContain('RATCHET_WORKSPACE_ROOTS');

      const served = await harness.start({ task: 'anything', workspace: moved });
      expect(((await served.result()) as SessionResult).finalMessage).toBe('Inside, all good.');
    });
    expect(harness.model.requests).toHaveLength(1);
  });
});

describe('a worker that cannot sandbox', () => {
  it('says so, and asks before every command even under the policy "never"', async () => {
    const repo = await createTempRepo({ 'a.txt': 'alpha\n' });
    const { model } = harness;
    model.call('shell', { command: ['ls'] }).reply('Listed.');
    const { worker } = await harness.worker({
      sandbox: { available: false, kind: 'none', detail: 'bubblewrap is not installed' },
    });
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'List files',
        workspace: repo.dir,
        approvalPolicy: 'never',
      });
      const waiting = await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      expect(waiting.sandbox).toMatch(/^none: bubblewrap is not installed; every command asks/);
      expect(waiting.pendingApprovals[0]!.reason).toMatch(/cannot be sandboxed on this worker/);
      await harness.ratchet.decide(handle.workflowId, 'approve');
      const result = (await handle.result()) as SessionResult;
      await recordHistory(handle, 'sandbox-fallback');
      return result;
    });
    expect(result.finalMessage).toBe('Listed.');
    const first = model.requests[0]!.body as { input: Array<{ content?: Array<{ text: string }> }> };
    expect(JSON.stringify(first.input)).toContain('<sandbox_mode>none: bubblewrap is not installed');
    const [ls] = outputs(model.requests.at(-1)!.body);
    expect(ls).toContain('a.txt');
    model.assertDone();
  });

  it('a read-only session asks before every edit', async () => {
    const repo = await createTempRepo({ 'a.txt': 'alpha\n' });
    const { model } = harness;
    const patch = ['*** Begin Patch', '*** Add File: b.txt', '+beta', '*** End Patch'].join('\n');
    model.call('apply_patch', { input: patch }).reply('Asked first.');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Add b',
        workspace: repo.dir,
        approvalPolicy: 'auto-edit',
        sandbox: 'read-only',
      });
      const waiting = await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      expect(waiting.pendingApprovals[0]!.reason).toMatch(/read-only/);
      await harness.ratchet.decide(handle.workflowId, 'deny', { reason: 'read-only session' });
      await handle.result();
    });
    model.assertDone();
  });
});
