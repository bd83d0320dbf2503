/**
 * Linear history (DESIGN.md §2): each transcript item enters the event history once. A 60-turn
 * session with 20 KB tool outputs must leave a history under twice the size of its unique items;
 * passing the whole transcript to the model activity each turn would grow it quadratically.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { transcriptQuery } from '../../src/shared/api/session-api.js';
import type { TranscriptEntry } from '../../src/shared/api/session-config.js';
import type { RecordedRequest, ScriptStep } from '../../src/testing/scripted-model.js';
import { createTempRepo } from '../helpers/git-repo.js';
import { Harness } from '../helpers/harness.js';

const TURNS = 60;

function responder(request: RecordedRequest): ScriptStep {
  const input = (request.body as { input: Array<{ type: string }> }).input;
  const done = input.filter((item) => item.type === 'function_call_output').length;
  if (done < TURNS - 1) {
    return {
      kind: 'reply',
      output: [{ type: 'function_call', name: 'read_file', arguments: { file_path: 'big.txt' } }],
    };
  }
  return { kind: 'reply', output: [{ type: 'message', text: `Read big.txt ${done} times.` }] };
}

let harness: Harness;
beforeAll(async () => {
  harness = await Harness.create({ model: { responder } });
});
afterAll(async () => {
  await harness?.close();
});

it('grows linearly: a 60-turn session with 20 KB tool outputs stays under twice its unique content', async () => {
  const repo = await createTempRepo({ 'README.md': '# x\n' });
  // About 20 KB that read_file returns whole: 400 numbered lines of 48 characters.
  const line = 'the quick brown fox jumps over the lazy dog 0123';
  await writeFile(path.join(repo.dir, 'big.txt'), Array.from({ length: 400 }, () => line).join('\n') + '\n');
  const { worker } = await harness.worker();
  const { result, entries, historySize, historyLength } = await worker.runUntil(async () => {
    const handle = await harness.start({
      task: 'Read big.txt many times',
      workspace: repo.dir,
      approvalPolicy: 'never',
      model: { name: 'scripted-model', contextWindow: 100_000_000 },
      limits: { maxTranscriptBytes: 8 * 1024 * 1024 },
    });
    const result = (await handle.result()) as SessionResult;
    const entries: TranscriptEntry[] = [];
    for (let from = 0; ;) {
      const page = await handle.query(transcriptQuery, { fromIndex: from });
      entries.push(...page.entries);
      if (page.nextIndex >= page.total) break;
      from = page.nextIndex;
    }
    const description = await handle.describe();
    // Reads ran as local activities (docs/PERFORMANCE.md): no read_file activity was scheduled.
    const history = await handle.fetchHistory();
    const scheduled = (history.events ?? []).flatMap((e) =>
      e.activityTaskScheduledEventAttributes?.activityType?.name
        ? [e.activityTaskScheduledEventAttributes.activityType.name]
        : [],
    );
    expect(scheduled.filter((name) => name === 'read_file')).toEqual([]);
    expect(scheduled.filter((name) => name === 'model')).toHaveLength(TURNS);
    return {
      result,
      entries,
      historySize: description.historySize ?? 0,
      historyLength: description.historyLength,
    };
  });

  expect(result.turns).toBe(TURNS);
  expect(result.runs).toBe(1);
  const outputs = entries.filter((e) => e.item.type === 'function_call_output');
  expect(outputs).toHaveLength(TURNS - 1);
  expect(String((outputs[0]!.item as { output: string }).output).length).toBeGreaterThan(20_000);

  const unique = entries.reduce((sum, e) => sum + JSON.stringify(e.item).length, 0);
  // What the obvious design would write: the whole transcript as the model activity's input,
  // every turn.
  let quadratic = 0;
  let sofar = 0;
  for (const entry of entries) {
    sofar += JSON.stringify(entry.item).length;
    if (entry.item.type === 'function_call_output') quadratic += sofar;
  }
  console.log(
    `history: ${historySize} bytes in ${historyLength} events; unique transcript items: ${unique} bytes ` +
      `(ratio ${(historySize / unique).toFixed(2)}); passing the whole transcript each turn would add ~${quadratic} bytes`,
  );
  expect(historySize).toBeGreaterThan(unique);
  expect(historySize).toBeLessThan(2 * unique);
});
