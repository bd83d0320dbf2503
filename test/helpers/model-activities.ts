/**
 * What the unit tests of the model-facing activities (model, compaction, the chat adapter) share:
 * a scripted model per test, checked and closed after it, a transcript served as the workflow's
 * `transcript` query would serve it, and model settings.
 */
import { afterEach } from 'vitest';
import { createTranscriptSource } from '../../src/activities/transcript-source.js';
import type { TranscriptSource } from '../../src/activities/transcript-source.js';
import type { TranscriptItem } from '../../src/shared/prompt/items.js';
import type { ModelSettings } from '../../src/shared/api/session-config.js';
import { ScriptedModel } from '../../src/testing/scripted-model.js';
import type { ScriptedModelOptions } from '../../src/testing/scripted-model.js';

/**
 * Registers an afterEach that checks the test's scripted model was asked for everything it was
 * scripted with, and closes it. Returns the function that starts one.
 */
export function useScriptedModel(): (options?: ScriptedModelOptions) => Promise<ScriptedModel> {
  let model: ScriptedModel | undefined;
  afterEach(async () => {
    const current = model;
    model = undefined;
    if (!current) return;
    try {
      current.assertDone();
    } finally {
      await current.close();
    }
  });
  return async (options) => {
    model = await ScriptedModel.start(options);
    return model;
  };
}

/** A transcript source over fixed items, as the workflow's `transcript` query would serve them. */
export function staticTranscript(items: readonly TranscriptItem[], epoch = 0): TranscriptSource {
  return createTranscriptSource((_sessionId, request) => {
    const fromIndex = request.fromIndex ?? 0;
    return Promise.resolve({
      epoch,
      fromIndex,
      entries: items.slice(fromIndex).map((item) => ({ item, turn: 1 })),
      nextIndex: items.length,
      total: items.length,
    });
  });
}

export function scriptedSettings(overrides: Partial<ModelSettings> = {}): ModelSettings {
  return {
    name: 'scripted-x',
    contextWindow: 200_000,
    compactAtRatio: 0.8,
    compaction: 'auto',
    providerState: false,
    ...overrides,
  };
}
