/**
 * Recorded event histories: the replay suite replays every file in test/fixtures/histories/ with
 * the current workflow code, so an incompatible change to the workflow fails a test instead of
 * breaking running sessions. `npm run fixtures:record` re-records them (RATCHET_RECORD_HISTORIES=1).
 */
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const historiesDir = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  'fixtures',
  'histories',
);

/** Saves every run of the session's history when recording is switched on. */
export async function recordHistory(handle: WorkflowHandle, name: string): Promise<void> {
  if (process.env.RATCHET_RECORD_HISTORIES !== '1') return;
  await mkdir(historiesDir, { recursive: true });
  const description = await handle.describe();
  let runId: string | undefined = description.raw.workflowExecutionInfo?.firstRunId ?? description.runId;
  let run = 1;
  while (runId) {
    const history = await handle.client.getHandle(handle.workflowId, runId).fetchHistory();
    const file = path.join(historiesDir, `${name}${run > 1 ? `.run${run}` : ''}.json`);
    await writeFile(file, `${historyToJSON(history)}\n`);
    const last = history.events?.at(-1);
    runId = last?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
    run += 1;
  }
}
