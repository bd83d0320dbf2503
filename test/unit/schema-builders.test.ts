/**
 * The schemas the workflow validates with are built when used, not when their modules load (a
 * worker loads the modules again for every session it caches), and answer exactly as they did
 * when each was built once at module load: the same data (defaults included) for good input, the
 * same issues for bad input, for the session input of every recorded history and for hand-made
 * inputs (test/helpers/schema-cases.ts; the answers in test/fixtures/schema-results.json).
 */
import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { schemaResults } from '../helpers/schema-cases.js';

/** zod's own hook, called with every schema it constructs. */
const zodConfig = (globalThis as { __zod_globalConfig?: { postProcessor?: (schema: unknown) => void } })
  .__zod_globalConfig;

const fixture = new URL('../fixtures/schema-results.json', import.meta.url);

describe('workflow schemas', () => {
  afterEach(() => {
    if (zodConfig) delete zodConfig.postProcessor;
  });

  it('are not built when their modules load, and are built anew on every use', async () => {
    z.string(); // zod's own set-up
    expect(zodConfig).toBeDefined();
    let built = 0;
    zodConfig!.postProcessor = () => void (built += 1);
    vi.resetModules();
    const api = await import('../../src/shared/api/session-api.js');
    const config = await import('../../src/shared/api/session-config.js');
    const { toolSpecs } = await import('../../src/shared/tools/specs.js');
    const { agentToolSpecs } = await import('../../src/shared/tools/agent-tools.js');
    expect(built).toBe(0);

    // The hook itself counts: a use builds.
    expect(config.sessionInputSchema().safeParse({}).success).toBe(false);
    expect(built).toBeGreaterThan(300);
    const afterInput = built;
    expect(toolSpecs.shell.parameters.safeParse({ command: ['ls'] }).success).toBe(true);
    expect(agentToolSpecs.wait.parameters.safeParse({ ids: [] }).success).toBe(false);
    expect(built).toBeGreaterThan(afterInput);

    // Nothing is kept between uses.
    expect(config.sessionInputSchema()).not.toBe(config.sessionInputSchema());
    expect(api.approvalSchema()).not.toBe(api.approvalSchema());
    expect(toolSpecs.shell.parameters).not.toBe(toolSpecs.shell.parameters);
  });

  it('answer every recorded and hand-made input as the schemas built at load did', async () => {
    const expected = JSON.parse(await readFile(fixture, 'utf8')) as Record<string, Record<string, unknown>>;
    const actual = schemaResults();
    // Histories recorded after the change are cases the schemas built at load never answered:
    // every answer recorded then must still be given, and new recordings may add cases.
    expect(Object.keys(actual)).toEqual(expect.arrayContaining(Object.keys(expected)));
    for (const [name, answers] of Object.entries(expected)) {
      expect(Object.keys(actual[name] ?? {}), name).toEqual(expect.arrayContaining(Object.keys(answers)));
      for (const [label, answer] of Object.entries(answers)) {
        expect(actual[name]?.[label], `${name}: ${label}`).toEqual(answer);
      }
    }
  });
});
