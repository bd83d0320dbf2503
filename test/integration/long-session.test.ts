/**
 * A long session: 500 scripted turns on a server that suggests continuing as new every 1,500
 * events. The session crosses continue-as-new several times, and no run's history comes near
 * Temporal's warning thresholds (10,240 events, 10 MB).
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { transcriptQuery } from '../../src/shared/api/session-api.js';
import { searchAttributeDefinitions } from '../../src/shared/api/search-attributes.js';
import type { RecordedRequest, ScriptStep } from '../../src/testing/scripted-model.js';
import { createTempRepo } from '../helpers/git-repo.js';
import { Harness } from '../helpers/harness.js';

const TURNS = 500;

function responder(request: RecordedRequest): ScriptStep {
  const input = (request.body as { input: Array<{ type: string }> }).input;
  const done = input.filter((item) => item.type === 'function_call_output').length;
  if (done < TURNS - 1) {
    return {
      kind: 'reply',
      output: [{ type: 'function_call', name: 'read_file', arguments: { file_path: 'a.txt' } }],
    };
  }
  return { kind: 'reply', output: [{ type: 'message', text: `Done after ${done} reads.` }] };
}

let env: TestWorkflowEnvironment;
let harness: Harness;

beforeAll(async () => {
  env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: inject('temporalCliPath') },
      searchAttributes: Object.entries(searchAttributeDefinitions).map(([name, type]) => ({
        name,
        type: type === 'Int' ? 'INT' : 'KEYWORD',
      })),
      extraArgs: ['--dynamic-config-value', 'limit.historyCount.suggestContinueAsNew=1500'],
    },
  });
  harness = await Harness.create({ address: env.address, model: { responder } });
});

afterAll(async () => {
  await harness?.close();
  await env?.teardown();
});

it(
  'completes 500 turns across several runs with every run far below the history limits',
  { timeout: 300_000 },
  async () => {
    const repo = await createTempRepo({ 'a.txt': 'alpha\n' });
    const { worker } = await harness.worker();
    const started = Date.now();
    const { result, runs, outputs } = await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Read a.txt 499 times',
        workspace: repo.dir,
        approvalPolicy: 'never',
        limits: { maxTurns: 1000 },
      });
      const result = (await handle.result()) as SessionResult;
      const description = await handle.describe();
      const runs: Array<{ events: number; bytes: number }> = [];
      let runId: string | undefined = description.raw.workflowExecutionInfo?.firstRunId ?? undefined;
      while (runId) {
        const run = handle.client.getHandle(handle.workflowId, runId);
        const info = await run.describe();
        runs.push({ events: info.historyLength, bytes: info.historySize ?? 0 });
        const history = await run.fetchHistory();
        runId =
          history.events?.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ??
          undefined;
      }
      let outputs = 0;
      for (let from = 0; ;) {
        const page = await handle.query(transcriptQuery, { fromIndex: from });
        outputs += page.entries.filter((e) => e.item.type === 'function_call_output').length;
        if (page.nextIndex >= page.total) break;
        from = page.nextIndex;
      }
      return { result, runs, outputs };
    });
    const seconds = (Date.now() - started) / 1000;
    console.log(
      `500 turns in ${seconds.toFixed(1)} s over ${runs.length} runs; per run: ` +
        runs.map((r) => `${r.events} events/${Math.round(r.bytes / 1024)} KiB`).join(', '),
    );
    expect(result).toMatchObject({
      turns: TURNS,
      finalMessage: `Done after ${TURNS - 1} reads.`,
      compactions: 0,
    });
    expect(result.runs).toBe(runs.length);
    expect(runs.length).toBeGreaterThanOrEqual(3);
    expect(outputs).toBe(TURNS - 1);
    for (const run of runs) {
      expect(run.events).toBeLessThan(10_240);
      expect(run.bytes).toBeLessThan(10 * 1024 * 1024);
    }
  },
);
