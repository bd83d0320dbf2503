/**
 * The tool activities' own checks, around the tools: a read run as a local activity refuses on a
 * worker that does not hold the session's workspace, so the workflow sends it to the holder.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { activityContext, toolCall } from '../helpers/tool-calls.js';
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_TOOL_OUTPUT_BYTES, createToolActivities } from '../../src/activities/tool-activities.js';
import { createTranscriptSource } from '../../src/activities/transcript-source.js';
import type { ToolOutcome } from '../../src/shared/tools/specs.js';
import { toolOutcome } from '../../src/shared/tools/shell-output.js';

let workspace: string;
let journals: string;
let activities: ReturnType<typeof createToolActivities>;

beforeEach(async () => {
  workspace = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-tool-activities-')));
  journals = await mkdtemp(path.join(tmpdir(), 'ratchet-journals-'));
  await writeFile(path.join(workspace, 'a.txt'), 'alpha\n');
  activities = createToolActivities({
    transcript: createTranscriptSource(() => Promise.reject(new Error('no transcript in this test'))),
    commandEnv: {},
    sandbox: { available: false, kind: 'none', detail: 'not needed here' },
    toolQueue: 'ratchet@box-a',
    patchJournalDir: journals,
  });
});

afterEach(async () => {
  await rm(workspace, { recursive: true, force: true });
  await rm(journals, { recursive: true, force: true });
});

async function readA(holder?: string): Promise<ToolOutcome> {
  const input = toolCall(workspace, { file_path: 'a.txt' }, holder ? { holder } : {});
  const env = activityContext();
  return toolOutcome(await env.run(activities.read_file, input));
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

describe('apply_patch', () => {
  const body = ['*** Begin Patch', '*** Update File: a.txt', '@@', '-alpha', '+beta', '*** End Patch'].join(
    '\n',
  );

  async function patchCall(args: unknown, attempt = 1): Promise<ToolOutcome> {
    const input = toolCall(workspace, args, { callId: 'call_7' });
    const env = activityContext({ attempt });
    return toolOutcome(await env.run(activities.apply_patch, input));
  }

  it('takes a patch sent through the shell, relative to its directory', async () => {
    await mkdir(path.join(workspace, 'pkg'));
    await writeFile(path.join(workspace, 'pkg', 'a.txt'), 'alpha\n');
    const outcome = await patchCall({
      command: ['bash', '-lc', `cd pkg && apply_patch <<'EOF'\n${body}\nEOF\n`],
    });
    expect(outcome).toMatchObject({
      success: true,
      output: 'Success. Updated the following files:\nM pkg/a.txt',
    });
    expect(await readFile(path.join(workspace, 'pkg', 'a.txt'), 'utf8')).toBe('beta\n');
  });

  it('refuses shell arguments that do not apply a patch', async () => {
    const outcome = await patchCall({ command: ['rm', '-rf', '.'] });
    expect(outcome).toMatchObject({ success: false, display: 'apply_patch · invalid arguments' });
  });

  it('journals each call, so a retry after the write reports "already applied" and writes nothing twice', async () => {
    expect((await patchCall({ input: body })).success).toBe(true);
    expect(await readdir(journals)).toHaveLength(1);
    const retried = await patchCall({ input: body }, 2);
    expect(retried.output).toContain('M a.txt (already applied by an earlier attempt of this call)');
    expect(await readFile(path.join(workspace, 'a.txt'), 'utf8')).toBe('beta\n');
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
    const input = toolCall(workspace, { dir_path: 'many', limit: 100_000 });
    const env = activityContext();
    const outcome: ToolOutcome = toolOutcome(await env.run(activities.list_dir, input));
    expect(Buffer.byteLength(outcome.output)).toBeLessThanOrEqual(MAX_TOOL_OUTPUT_BYTES);
    expect(outcome.output).toMatch(/bytes \(.* lines\) omitted/);
  });
});
