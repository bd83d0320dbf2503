/**
 * The tool activities' own checks, around the tools: a read run as a local activity refuses on a
 * worker that does not hold the session's workspace, so the workflow sends it to the holder.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_TOOL_OUTPUT_BYTES, createToolActivities } from '../../src/activities/tool-activities.js';
import { createTranscriptSource } from '../../src/activities/transcript-source.js';
import type { ToolCallInput } from '../../src/shared/activity-types.js';
import type { ToolOutcome } from '../../src/shared/tools.js';

let workspace: string;

beforeEach(async () => {
  workspace = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-tool-activities-')));
  await writeFile(path.join(workspace, 'a.txt'), 'alpha\n');
});

afterEach(async () => {
  await rm(workspace, { recursive: true, force: true });
});

const activities = createToolActivities({
  transcript: createTranscriptSource(() => Promise.reject(new Error('no transcript in this test'))),
  commandEnv: {},
  sandbox: { available: false, kind: 'none', detail: 'not needed here' },
  toolQueue: 'ratchet@box-a',
});

function readA(holder?: string): Promise<ToolOutcome> {
  const input: ToolCallInput = {
    sessionId: 's',
    epoch: 0,
    workspace,
    callId: 'call_1',
    itemIndex: 0,
    arguments: JSON.stringify({ file_path: 'a.txt' }),
    ...(holder ? { holder } : {}),
  };
  const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
  return env.run(activities.read_file, input);
}

describe('a read sent to whichever worker runs the workflow', () => {
  it('runs on the worker that holds the workspace', async () => {
    const outcome = await readA('ratchet@box-a');
    expect(outcome).toMatchObject({ success: true, output: 'L1: alpha' });
  });

  it('refuses, without reading, on any other worker', async () => {
    const refused = await readA('ratchet@box-b').catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(ApplicationFailure);
    expect(refused).toMatchObject({ type: 'NotWorkspaceHolder', nonRetryable: true });
    expect((refused as Error).message).toBe(
      'this worker (ratchet@box-a) does not hold the workspace (ratchet@box-b)',
    );
  });

  it('runs anywhere when no holder is named (sessions from before tool queues)', async () => {
    expect(await readA()).toMatchObject({ success: true });
  });
});

describe('any tool output', () => {
  it('is at most MAX_TOOL_OUTPUT_BYTES, so a local read cannot fail its workflow task (issue 11 item 4)', async () => {
    // 3,000 names of 200 bytes: the listing is ~600 KB before the cap.
    const dir = path.join(workspace, 'many');
    await mkdir(dir);
    await Promise.all(
      Array.from({ length: 3000 }, (_, i) =>
        writeFile(path.join(dir, `${String(i).padStart(5, '0')}${'n'.repeat(195)}`), ''),
      ),
    );
    const input: ToolCallInput = {
      sessionId: 's',
      epoch: 0,
      workspace,
      callId: 'call_1',
      itemIndex: 0,
      arguments: JSON.stringify({ dir_path: 'many', limit: 100_000 }),
    };
    const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
    const outcome: ToolOutcome = await env.run(activities.list_dir, input);
    expect(Buffer.byteLength(outcome.output)).toBeLessThanOrEqual(MAX_TOOL_OUTPUT_BYTES);
    expect(outcome.output).toMatch(/bytes \(.* lines\) omitted/);
  });
});
