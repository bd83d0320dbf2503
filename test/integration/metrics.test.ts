/**
 * `ratchet worker --metrics-port` serves Prometheus metrics: Temporal's runtime metrics and
 * Ratchet's own (model tokens, tool calls by tool and outcome, approval wait time).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { createTempRepo } from '../helpers/git-repo.js';
import type { TempRepo } from '../helpers/git-repo.js';
import { Harness, waitForStatus } from '../helpers/harness.js';
import { startWorkerCommand } from '../helpers/worker-command.js';
import { until } from '../helpers/waiting.js';

let harness: Harness;
let home: string;
let repo: TempRepo;

beforeAll(async () => {
  harness = await Harness.create();
  home = await mkdtemp(path.join(os.tmpdir(), 'ratchet-home-'));
  repo = await createTempRepo({ 'a.txt': 'alpha\n' });
});

afterAll(async () => {
  await harness?.close();
  await repo?.remove();
  if (home) await rm(home, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Value of the sample `name{…}` whose labels include all of `labels` (summed over the rest). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const set = match[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) {
      total += Number(match[3]);
      found = true;
    }
  }
  if (!found) throw new Error(`no sample ${name} ${JSON.stringify(labels)} in:\n${text.slice(0, 4000)}`);
  return total;
}

describe('ratchet worker --metrics-port', () => {
  it("serves Temporal's and Ratchet's metrics for Prometheus", async () => {
    const port = await freePort();
    const model = await harness.freshModel();
    model
      .enqueue({
        kind: 'reply',
        output: [{ type: 'function_call', name: 'read_file', arguments: { file_path: 'a.txt' } }],
        usage: { inputTokens: 1000, outputTokens: 50, cachedTokens: 200 },
      })
      .call('shell', { command: ['touch', 'b.txt'] })
      .reply('done');
    const { child, output } = await startWorkerCommand(harness, home, ['--metrics-port', String(port)]);
    try {
      // The line follows the polling line the helper waits for, maybe in a later chunk of output.
      await until(() => output().includes(`metrics at http://127.0.0.1:${port}/metrics`), 10_000);
      const handle = await harness.start({
        task: 'touch b',
        workspace: repo.dir,
        sandbox: 'danger-full-access',
      });
      await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      await new Promise((resolve) => setTimeout(resolve, 700));
      await harness.ratchet.decide(handle.workflowId, 'approve');
      const result = (await handle.result()) as SessionResult;
      expect(result.finalMessage).toBe('done');

      // Metrics are exported on a short interval; wait until Ratchet's show.
      let text = '';
      for (let i = 0; i < 50; i++) {
        text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        if (text.includes('ratchet_approval_wait') && text.includes('ratchet_model_tokens')) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      // Temporal's own.
      expect(text).toMatch(/^temporal_\w+/m);
      expect(sample(text, 'temporal_activity_execution_latency_count')).toBeGreaterThanOrEqual(4);
      // Model tokens: the first reply's scripted usage, plus the estimated usage of two more.
      expect(sample(text, 'ratchet_model_tokens_total', { kind: 'input' })).toBeGreaterThan(1000);
      expect(sample(text, 'ratchet_model_tokens_total', { kind: 'cached_input' })).toBeGreaterThanOrEqual(
        200,
      );
      expect(sample(text, 'ratchet_model_tokens_total', { kind: 'output' })).toBeGreaterThanOrEqual(50);
      // Tool calls by tool and outcome.
      expect(sample(text, 'ratchet_tool_calls_total', { tool: 'read_file', outcome: 'success' })).toBe(1);
      expect(sample(text, 'ratchet_tool_calls_total', { tool: 'shell', outcome: 'success' })).toBe(1);
      // One approval, waited for at least the 700 ms above.
      expect(sample(text, 'ratchet_approval_wait_count', { tool: 'shell', decision: 'approve' })).toBe(1);
      expect(sample(text, 'ratchet_approval_wait_sum', { tool: 'shell' })).toBeGreaterThanOrEqual(700);
    } finally {
      child.kill('SIGTERM');
      await child;
    }
  });
});
