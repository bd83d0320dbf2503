/**
 * A model call carries only the settings the model activity reads (modelCallSettings): every
 * request it builds from them is the one it built from the whole ModelSettings, which calls
 * scheduled by earlier workflow code still carry; and the settings left out are those a request
 * never depends on.
 */
import { describe, expect, it } from 'vitest';
import { buildChatRequest } from '../../src/activities/chat-completions.js';
import { buildRequest } from '../../src/activities/model-request.js';
import type { ModelSettings } from '../../src/shared/api/session-config.js';
import { modelSettingsSchema } from '../../src/shared/api/session-settings.js';
import { modelCallSettings } from '../../src/shared/boundary/activity-types.js';
import type { TranscriptItem } from '../../src/shared/prompt/items.js';

const items: TranscriptItem[] = [
  { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] },
];

const SETTINGS: ModelSettings[] = [
  modelSettingsSchema().parse({ name: 'gpt-5' }),
  modelSettingsSchema().parse({ name: 'm', reasoningEffort: 'high', providerState: true, background: true }),
  modelSettingsSchema().parse({
    name: 'm',
    reasoningEffort: 'minimal',
    background: false,
    compaction: 'local',
  }),
  modelSettingsSchema().parse({ name: 'x'.repeat(300), contextWindow: 8_000, compactAtRatio: 0.05 }),
];

function requests(settings: Parameters<typeof buildRequest>[0]) {
  return [
    buildRequest(settings, 'session-1', items),
    buildRequest(settings, 'session-1', items, 1000, true),
    buildChatRequest(settings, items),
    buildChatRequest(settings, items, { stream: false, maxOutputTokens: 5, agents: true }),
  ];
}

describe('the settings a model call carries', () => {
  for (const settings of SETTINGS) {
    it(`build the same requests as the whole settings: ${JSON.stringify(settings).slice(0, 80)}`, () => {
      const carried = modelCallSettings(settings);
      expect(JSON.stringify(requests(carried))).toBe(JSON.stringify(requests(settings)));
      // What history records: smaller, and read back as it was written.
      expect(JSON.stringify(carried).length).toBeLessThan(JSON.stringify(settings).length);
      expect(JSON.parse(JSON.stringify(carried))).toEqual(carried);
    });
  }

  it('keep what changes a request and leave out what the workflow alone uses', () => {
    expect(modelCallSettings(modelSettingsSchema().parse({ name: 'gpt-5' }))).toEqual({ name: 'gpt-5' });
    expect(
      modelCallSettings(
        modelSettingsSchema().parse({
          name: 'm',
          reasoningEffort: 'low',
          providerState: true,
          background: false,
        }),
      ),
    ).toEqual({ name: 'm', reasoningEffort: 'low', providerState: true, background: false });
  });

  it('change the request when a setting the call carries changes (the comparison can fail)', () => {
    const base = modelSettingsSchema().parse({ name: 'm' });
    for (const changed of [
      { ...base, name: 'n' },
      { ...base, reasoningEffort: 'high' as const },
      { ...base, providerState: true },
    ]) {
      expect(JSON.stringify(requests(modelCallSettings(changed)))).not.toBe(JSON.stringify(requests(base)));
    }
  });
});
