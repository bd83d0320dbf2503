/**
 * A command outlives an attempt the server gave up on, and a retry collects it; at most once
 * holds across attempts and processes (src/activities/tools/command-runs.ts). Each command
 * appends to a file as it starts, so every test counts how many times it really ran.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import { ActivityCancellationDetails } from '@temporalio/common';
import type { MockActivityEnvironment } from '@temporalio/testing';
import { activityContext, toolCall } from '../helpers/tool-calls.js';
import { mkdtemp, readdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createToolActivities } from '../../src/activities/tool-activities.js';
import { createTranscriptSource } from '../../src/activities/transcript-source.js';
import type { ToolCallInput } from '../../src/shared/boundary/activity-types.js';
import { toolOutcome } from '../../src/shared/tools/shell-output.js';

const HOLDER = 'ratchet@box-a';
let workspace: string;
let journals: string;

/** One worker process's tool activities; a second call is another process on the same disk. */
function worker(commandOrphanGraceMs?: number) {
  return createToolActivities({
    ...(commandOrphanGraceMs === undefined ? {} : { commandOrphanGraceMs }),
    transcript: createTranscriptSource(() => Promise.reject(new Error('no transcript in this test'))),
    commandEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    sandbox: { available: false, kind: 'none', detail: 'not needed here' },
    toolQueue: HOLDER,
    commandJournalDir: journals,
  });
}

beforeEach(async () => {
  workspace = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-command-runs-')));
  journals = await mkdtemp(path.join(tmpdir(), 'ratchet-command-journal-'));
});

afterEach(async () => {
  await rm(workspace, { recursive: true, force: true });
  await rm(journals, { recursive: true, force: true });
});

function shellInput(script: string, callId = 'call_1'): ToolCallInput {
  return toolCall(workspace, { command: ['bash', '-c', script] }, { callId, sandbox: 'danger-full-access' });
}

/** A script that records each run, works for `seconds`, then reports. */
const slow = (seconds: number): string =>
  `echo run >> runs.txt; sleep ${seconds}; echo finished > out.txt; echo all done`;

async function runs(): Promise<number> {
  const text = await readFile(path.join(workspace, 'runs.txt'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).length;
}

async function until(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function attempt(n: number, taskQueue = HOLDER): MockActivityEnvironment {
  return activityContext({ attempt: n, taskQueue });
}

async function shell(env: MockActivityEnvironment, acts: ReturnType<typeof worker>, input: ToolCallInput) {
  return toolOutcome(await env.run(acts.shell, input));
}

/** The server no longer knows the attempt (it timed it out while it was down). */
const abandoned = (env: MockActivityEnvironment): void =>
  env.cancel('NOT_FOUND', new ActivityCancellationDetails({ notFound: true }));
const timedOut = (env: MockActivityEnvironment): void =>
  env.cancel('TIMED_OUT', new ActivityCancellationDetails({ timedOut: true }));
/** The workflow asked for the cancel (an interrupt, a cancelled session). */
const interrupted = (env: MockActivityEnvironment): void =>
  env.cancel('CANCELLED', new ActivityCancellationDetails({ cancelRequested: true }));

/** Attempt 1 of the call, once its command has started; `ended` settles with what it returned or threw. */
async function firstAttempt(acts: ReturnType<typeof worker>, input: ToolCallInput) {
  const env = attempt(1);
  const ended = shell(env, acts, input).catch((err: unknown) => err);
  await until(async () => (await runs()) === 1);
  return { env, ended };
}

const outText = (): Promise<string> =>
  readFile(path.join(workspace, 'out.txt'), 'utf8').catch(() => 'never written');
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('an attempt the server gave up on (a server down for longer than the heartbeat timeout)', () => {
  it('leaves its command running; the retry attaches and returns its result, and it ran once', async () => {
    const acts = worker();
    const input = shellInput(slow(1));
    const { env: first, ended: firstRun } = await firstAttempt(acts, input);
    abandoned(first);
    expect(await firstRun).toBeInstanceOf(CancelledFailure);

    const retried = await shell(attempt(2), acts, input);
    expect(retried).toMatchObject({ success: true });
    expect(retried.output).toContain('all done');
    expect(await outText()).toBe('finished\n');
    expect(await runs()).toBe(1);

    // Another process on the same disk (the worker restarted) reads the result from the journal.
    const later = await shell(attempt(3), worker(), input);
    expect(later).toEqual(retried);
    expect(await runs()).toBe(1);
  });

  it('a timed-out attempt is the same: the command goes on', async () => {
    const acts = worker();
    const input = shellInput(slow(0.5));
    const { env: first, ended: firstRun } = await firstAttempt(acts, input);
    timedOut(first);
    await firstRun;
    await until(async () => (await outText()) !== 'never written');
    // The retry arrives after the command ended: its result is kept for it.
    expect(await shell(attempt(2), acts, input)).toMatchObject({ success: true });
    expect(await runs()).toBe(1);
  });

  it('an interrupt still ends the command, whichever attempt it reaches', async () => {
    const acts = worker();
    const input = shellInput(slow(3));
    const { env: first, ended: firstRun } = await firstAttempt(acts, input);
    abandoned(first);
    await firstRun;

    const second = attempt(2);
    const secondRun = shell(second, acts, input).catch((err: unknown) => err);
    await pause(200);
    interrupted(second);
    expect(await secondRun).toBeInstanceOf(CancelledFailure);
    await pause(3500);
    expect(await outText()).toBe('never written');
    expect(await runs()).toBe(1);
  });

  it('ends a command no attempt comes back for (an interrupt that landed between attempts)', async () => {
    const acts = worker(300);
    const input = shellInput(slow(3));
    const { env: first, ended: firstRun } = await firstAttempt(acts, input);
    abandoned(first);
    await firstRun;
    await pause(3500);
    expect(await outText()).toBe('never written');
    // A retry that comes after all finds the call started and never finished: lost, not run.
    const late = await shell(attempt(2), acts, input).catch((err: unknown) => err);
    expect(late).toMatchObject({ type: 'CommandLost' });
    expect(await runs()).toBe(1);
  });

  it('a cancel asked for by the workflow on the first attempt ends it there', async () => {
    const acts = worker();
    const input = shellInput(slow(3));
    const { env: first, ended: firstRun } = await firstAttempt(acts, input);
    interrupted(first);
    expect(await firstRun).toBeInstanceOf(CancelledFailure);
    await pause(3500);
    expect(await outText()).toBe('never written');
  });
});

describe('a retry that finds no live run', () => {
  it('reports a command whose process died lost, and never runs it again', async () => {
    const dying = worker();
    const input = shellInput(slow(1));
    const { env: first, ended: firstRun } = await firstAttempt(dying, input);
    // A new process (the first one's memory is gone): only the journal's "started" is left.
    const lost = await shell(attempt(2), worker(), input).catch((err: unknown) => err);
    expect(lost).toBeInstanceOf(ApplicationFailure);
    expect(lost).toMatchObject({ type: 'CommandLost', nonRetryable: true });
    expect((lost as Error).message).toMatch(
      /^the worker running it stopped before it reported a result \(started /,
    );
    interrupted(first);
    await firstRun;
    expect(await runs()).toBe(1);
  });

  it('reports a call with no record lost, on any queue: only a first attempt starts a command', async () => {
    // A worker sharing this id (and a filesystem) but not this journal may have run it.
    for (const queue of [HOLDER, 'ratchet-session-queue']) {
      const lost = await shell(attempt(2, queue), worker(), shellInput(slow(0))).catch((err: unknown) => err);
      expect(lost).toMatchObject({ type: 'CommandLost', nonRetryable: true });
      expect((lost as Error).message).toBe(
        'attempt 2 found no record of it on this worker (an earlier attempt may have run it elsewhere)',
      );
    }
    expect(await runs()).toBe(0);
  });

  it('runs the command of a first attempt, whatever an earlier run of the session recorded', async () => {
    // A rewound session reuses the call id and the command: the old result must not stand in.
    const input = shellInput(slow(0));
    const acts = worker();
    const inRun = (runId: string, n: number) =>
      activityContext({ attempt: n, taskQueue: HOLDER, workflowExecution: { workflowId: 's', runId } });
    expect(await shell(inRun('run-1', 1), acts, input)).toMatchObject({ success: true });
    expect(await shell(inRun('run-2', 1), acts, input)).toMatchObject({ success: true });
    expect(await runs()).toBe(2);
    // Each run's retry finds its own result.
    expect(await shell(inRun('run-1', 2), worker(), input)).toMatchObject({ success: true });
    expect(await runs()).toBe(2);
  });

  it('does not record a read-only command: a lost attempt of it simply runs again', async () => {
    const input = toolCall(workspace, { command: ['ls'] }, { sandbox: 'danger-full-access' });
    expect(await shell(attempt(1), worker(), input)).toMatchObject({ success: true });
    expect(await readdir(journals).catch(() => [])).toEqual([]);
    const again = await shell(attempt(2, 'ratchet-session-queue'), worker(), input);
    expect(again).toMatchObject({ success: true });
  });

  it('reports a call whose record cannot be read lost (a record cut short counts as started)', async () => {
    const input = shellInput(slow(0));
    await shell(attempt(1), worker(), input);
    const [file] = await readdir(journals);
    await writeFile(path.join(journals, file!), '{"version":1,"state":"do');
    const lost = await shell(attempt(2), worker(), input).catch((err: unknown) => err);
    expect(lost).toMatchObject({ type: 'CommandLost', nonRetryable: true });
    expect(await runs()).toBe(1);
  });

  it('keeps one record per call and command, in files only the worker can read', async () => {
    const acts = worker();
    await shell(attempt(1), acts, shellInput('echo one > one.txt', 'call_1'));
    await shell(attempt(1), acts, shellInput('echo two > two.txt', 'call_2'));
    const files = await readdir(journals);
    expect(files).toHaveLength(2);
    for (const file of files) {
      const record = JSON.parse(await readFile(path.join(journals, file), 'utf8')) as { state: string };
      expect(record.state).toBe('done');
      expect((await stat(path.join(journals, file))).mode & 0o777).toBe(0o600);
    }
  });

  it('does not run a command it cannot record, and says why (a journal directory not writable)', async () => {
    const blocked = path.join(journals, 'not-a-directory');
    await writeFile(blocked, 'a file where the journal directory should be');
    const acts = createToolActivities({
      transcript: createTranscriptSource(() => Promise.reject(new Error('no transcript in this test'))),
      commandEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      sandbox: { available: false, kind: 'none', detail: 'not needed here' },
      toolQueue: HOLDER,
      commandJournalDir: path.join(blocked, 'journal'),
    });
    const outcome = await shell(attempt(1), acts, shellInput(slow(0)));
    expect(outcome.success).toBe(false);
    expect(outcome.output).toMatch(
      /^The command was not run: this worker cannot record it in its command journal \(.*not-a-directory\/journal: .*\).*XDG_STATE_HOME/s,
    );
    expect(await runs()).toBe(0);
    // A retry cannot tell whether the first attempt ran it: lost, not "not run".
    const retried = await shell(attempt(2), acts, shellInput(slow(0))).catch((err: unknown) => err);
    expect(retried).toMatchObject({ type: 'CommandLost' });
    expect(await runs()).toBe(0);
  });

  it('fails a command that cannot be started for a reason other than its own result, without a retry', async () => {
    const acts = worker();
    const input = {
      ...shellInput('true'),
      arguments: JSON.stringify({ command: ['bash', '-c', 'true'], workdir: 'nope' }),
    };
    // A missing workdir is the tool's own failure: a result, recorded like any other.
    expect(await shell(attempt(1), acts, input)).toMatchObject({ success: false });
    expect(await shell(attempt(2), worker(), input)).toMatchObject({ success: false });
  });
});
