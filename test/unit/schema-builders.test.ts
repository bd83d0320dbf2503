/**
 * The schemas the workflow validates with answer exactly as they did when each was built once at
 * module load: the same data (defaults included) for good input, the same issues for bad input,
 * for the session input of every recorded history and for hand-made inputs
 * (test/helpers/schema-cases.ts; the answers in test/fixtures/schema-results.json).
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { schemaResults } from '../helpers/schema-cases.js';

const fixture = new URL('../fixtures/schema-results.json', import.meta.url);

describe('workflow schemas', () => {
  it('answer every recorded and hand-made input as the schemas built at load did', async () => {
    const expected = JSON.parse(await readFile(fixture, 'utf8')) as Record<string, Record<string, unknown>>;
    const actual = schemaResults();
    expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
    for (const [name, answers] of Object.entries(expected)) {
      expect(Object.keys(actual[name] ?? {}), name).toEqual(Object.keys(answers));
      for (const [label, answer] of Object.entries(answers)) {
        expect(actual[name]?.[label], `${name}: ${label}`).toEqual(answer);
      }
    }
  });
});
