/**
 * Recorded event histories: the replay suite replays every file in test/fixtures/histories/ with
 * the current workflow code, so an incompatible change to the workflow fails a test instead of
 * breaking running sessions. `npm run fixtures:record` re-records them (RATCHET_RECORD_HISTORIES=1).
 */
import type { WorkflowHandle } from '@temporalio/client';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';

export const historiesDir = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  'fixtures',
  'histories',
);

const repoRoot = path.resolve(historiesDir, '..', '..', '..');

/**
 * Saves every run of the session's history when recording is switched on, in the JSON format of
 * `temporal workflow show --output json` (the format the Web UI downloads, too). With
 * `currentRunOnly`, the current run and those it continued as new into (a run started by a reset
 * is reached from no earlier run).
 */
export async function recordHistory(
  handle: WorkflowHandle,
  name: string,
  options: { currentRunOnly?: boolean } = {},
  address = inject('temporalAddress'),
): Promise<void> {
  if (process.env.RATCHET_RECORD_HISTORIES !== '1') return;
  await mkdir(historiesDir, { recursive: true });
  const description = await handle.describe();
  let runId: string | undefined = options.currentRunOnly
    ? description.runId
    : (description.raw.workflowExecutionInfo?.firstRunId ?? description.runId);
  let run = 1;
  while (runId) {
    const history = await handle.client.getHandle(handle.workflowId, runId).fetchHistory();
    const file = path.join(historiesDir, `${name}${run > 1 ? `.run${run}` : ''}.json`);
    const shown = await execa(inject('temporalCliPath'), [
      'workflow',
      'show',
      '--address',
      address,
      '--workflow-id',
      handle.workflowId,
      '--run-id',
      runId,
      '--output',
      'json',
    ]);
    // Failure stack traces name files on this machine; keep the fixtures free of its paths.
    const text = shown.stdout.trim().replaceAll(repoRoot, '<repo>');
    await writeFile(file, `${text}\n`);
    const last = history.events?.at(-1);
    runId = last?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
    run += 1;
  }
  // A session that now takes fewer runs leaves no runs of an earlier recording behind.
  for (; ; run += 1) {
    const stale = path.join(historiesDir, `${name}.run${run}.json`);
    if (!existsSync(stale)) break;
    await rm(stale);
  }
}

/**
 * Waits until an activity of the given type has completed in the session's current run: for a
 * test that must not race it (the baseline checkpoint writes into the repository's .git beside the
 * first model call).
 */
export async function untilActivityCompleted(
  handle: WorkflowHandle,
  activityType: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const events = (await handle.fetchHistory()).events ?? [];
    const scheduled = new Set(
      events
        .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === activityType)
        .map((e) => String(e.eventId)),
    );
    const done = events.some((e) => {
      const id = e.activityTaskCompletedEventAttributes?.scheduledEventId;
      return id != null && scheduled.has(String(id));
    });
    if (done) return;
    if (Date.now() > deadline) throw new Error(`no ${activityType} activity completed in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
