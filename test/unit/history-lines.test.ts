import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { HistoryLines } from '../../src/history-lines.js';

async function events(fixture: string) {
  const json: unknown = JSON.parse(await readFile(`test/fixtures/histories/${fixture}.json`, 'utf8'));
  return historyFromJSON(json).events ?? [];
}

describe('HistoryLines', () => {
  it('follows a session across continue-as-new: started, activities, continued, completed', async () => {
    const lines = new HistoryLines();
    const first = await events('continue-as-new-suggested');
    const next = lines.addRun('run-1', first);
    expect(next).toBeTruthy();
    const afterFirst = lines.lines.length;
    let run = 2;
    let runId = lines.addRun('run-2', await events('continue-as-new-suggested.run2'));
    while (runId) {
      run += 1;
      runId = lines.addRun(`run-${run}`, await events(`continue-as-new-suggested.run${run}`));
    }
    const texts = lines.lines.map((line) => line.text);
    expect(texts[0]).toBe('session started');
    expect(texts).toContain('continued as new');
    expect(lines.lines[afterFirst]).toMatchObject({ runId: 'run-2', text: 'run continued' });
    expect(texts.at(-1)).toBe('session completed');
    // An activity is shown by its summary, and its end names the same summary.
    const model = texts.find((text) => text.startsWith('▸ model · turn 1'));
    expect(model).toBeDefined();
    expect(texts).toContain(`✓ ${model!.slice(2)}`);
    // Event ids and times come from the events themselves.
    expect(lines.lines[0]!.eventId).toBe(1);
    expect(lines.lines[0]!.time).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('says why a session failed, and which activity failed how', async () => {
    const lines = new HistoryLines();
    expect(lines.addRun('r', await events('fault-model-401'))).toBeUndefined();
    const last = lines.lines.at(-1)!.text;
    expect(last).toMatch(/^session failed: .*401/);
    expect(lines.lines.some((line) => /^✗ model · turn 1 .*: .*401/.test(line.text))).toBe(true);
  });

  it('shows signals and updates, and skips events a person has no use for', async () => {
    const lines = new HistoryLines();
    lines.addRun('r', await events('path-set-policy'));
    const texts = lines.lines.map((line) => line.text);
    expect(texts).toContain('update setPolicy');
    expect(texts.some((text) => /workflow task/i.test(text))).toBe(false);
  });
});
