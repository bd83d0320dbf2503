/**
 * The shell's result changed shape (src/shared/tools/shell-output.ts): the activity returns the
 * parts of its output and the workflow writes the text the model reads. A recorded session whose
 * shell results are text (every history before the change) replays, through the workflow code, to
 * the transcript it had; the same history with those results rewritten as parts replays to a
 * transcript identical byte for byte. The state is read where `ratchet fork` reads it: from the
 * `ratchetCheckpoints` sink at each checkpoint.
 */
import { defaultPayloadConverter } from '@temporalio/common';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import type { CarriedState } from '../../src/shared/api/session-config.js';
import type { ShellOutcome } from '../../src/shared/tools/shell-output.js';
import type { ToolOutcome } from '../../src/shared/tools/specs.js';
import { historiesDir } from '../helpers/histories.js';

type Json = Record<string, unknown>;
interface EventJson {
  eventId: string;
  activityTaskScheduledEventAttributes?: { activityType: { name: string } };
  activityTaskCompletedEventAttributes?: {
    scheduledEventId: string;
    result: { payloads: Array<{ metadata: Json; data: string }> };
  };
}

const FIXTURE = 'checkpoints-session.json';

/** The state at each checkpoint the replay reaches, as JSON text. */
async function statesOf(history: unknown, workflowId: string): Promise<string[]> {
  const states: string[] = [];
  await Worker.runReplayHistory(
    {
      workflowBundle: { codePath: inject('workflowBundlePath') },
      replayName: 'shell-result-replay',
      sinks: {
        ratchetCheckpoints: {
          reached: {
            fn: (_info, _turn: number, _commit: string, state: CarriedState) => {
              states.push(JSON.stringify(state));
            },
            callDuringReplay: true,
          },
        },
      },
    },
    historyFromJSON(history),
    workflowId,
  );
  return states;
}

/** The shell activities' completed events. */
function shellCompletions(
  events: EventJson[],
): NonNullable<EventJson['activityTaskCompletedEventAttributes']>[] {
  const shells = new Set(
    events
      .filter((e) => e.activityTaskScheduledEventAttributes?.activityType.name === 'shell')
      .map((e) => e.eventId),
  );
  return events
    .map((e) => e.activityTaskCompletedEventAttributes)
    .filter((c): c is NonNullable<typeof c> => c !== undefined && shells.has(c.scheduledEventId));
}

function decode<T>(payload: { metadata: Json; data: string }): T {
  const metadata = Object.fromEntries(
    Object.entries(payload.metadata).map(([k, v]) => [k, Buffer.from(v as string, 'base64')]),
  );
  return defaultPayloadConverter.fromPayload<T>({ metadata, data: Buffer.from(payload.data, 'base64') });
}

function encode(value: unknown): { metadata: Json; data: string } {
  const payload = defaultPayloadConverter.toPayload(value);
  return {
    metadata: Object.fromEntries(
      Object.entries(payload.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
    ),
    data: Buffer.from(payload.data!).toString('base64'),
  };
}

describe('a shell result recorded as text, or as parts', () => {
  it('replays to the same transcript, byte for byte', async () => {
    const text = await readFile(path.join(historiesDir, FIXTURE), 'utf8');
    const old = JSON.parse(text) as { events: EventJson[] };
    const workflowId = (old.events[0] as unknown as { workflowExecutionStartedEventAttributes: Json })
      .workflowExecutionStartedEventAttributes;
    const id = String((workflowId as { workflowId?: string }).workflowId ?? FIXTURE.replace('.json', ''));

    // The recorded texts, and the same results rewritten as parts.
    const recorded = shellCompletions(old.events).map((c) => decode<ToolOutcome>(c.result.payloads[0]!));
    expect(recorded.length).toBeGreaterThanOrEqual(2);
    const rewritten = JSON.parse(text) as { events: EventJson[] };
    for (const completion of shellCompletions(rewritten.events)) {
      const outcome = decode<ToolOutcome>(completion.result.payloads[0]!);
      const parts: ShellOutcome = {
        shell: JSON.parse(outcome.output) as ShellOutcome['shell'],
        display: outcome.display,
        success: outcome.success,
      };
      completion.result.payloads[0] = encode(parts);
    }
    expect(JSON.stringify(rewritten)).not.toBe(JSON.stringify(old));
    expect(
      shellCompletions(rewritten.events).every((c) => 'shell' in decode<Json>(c.result.payloads[0]!)),
    ).toBe(true);

    const before = await statesOf(old, id);
    const after = await statesOf(rewritten, id);
    expect(before.length).toBeGreaterThanOrEqual(2);
    expect(after).toEqual(before);

    // The model read the recorded text: each shell result is in the transcript as it was recorded.
    const last = JSON.parse(before.at(-1)!) as CarriedState;
    const outputs = last.entries
      .map((e) => e.item)
      .filter((item) => item.type === 'function_call_output')
      .map((item) => (item as { output: string }).output);
    for (const { output } of recorded) expect(outputs).toContain(output);
  });
});
