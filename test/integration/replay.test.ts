/**
 * Determinism, guarded twice: every recorded history in test/fixtures/histories/ replays with the
 * current workflow code (an incompatible change fails here instead of breaking running sessions),
 * and a whole session runs on a worker that caches no workflows, so every workflow task replays
 * the history from the start.
 */
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { createTempRepo } from '../helpers/git-repo.js';
import { Harness, waitForStatus } from '../helpers/harness.js';
import { historiesDir } from '../helpers/histories.js';

/**
 * Every recorded session, by name (a fixture's runs after the first are `<name>.runN.json`): a
 * path whose history goes missing fails here, not silently. Sessions of older workflow code live
 * in subfolders and must keep replaying too.
 */
const EXPECTED_FIXTURES = [
  // the scenarios of the fault, durability and session tests
  'compaction-remote',
  'continue-as-new-suggested',
  'fault-model-401',
  'fault-model-429-retry-after',
  'fault-model-5xx-backoff',
  'fault-model-bad-tool-calls',
  'fault-model-empty-response',
  'fault-model-garbage',
  'fault-model-retries-exhausted',
  'fault-model-stream-cut',
  'fault-model-stream-stall',
  'fault-tool-binary-output',
  'fault-tool-huge-output',
  'fault-tool-stdin',
  'fault-tool-timeout',
  'fault-tool-workspace-deleted',
  'server-restarted',
  'session-approvals',
  'session-approve-for-session',
  'session-cancelled',
  'session-deny',
  'session-interrupt-and-message',
  'worker-killed-after-patch',
  'worker-killed-awaiting-approval',
  'worker-killed-during-command',
  'worker-killed-mid-model-call',
  // paths the review of issue 11 found uncovered
  'sandbox-fallback',
  'provider-state',
  'worker-lost-and-moved', // a pinned worker, lost, and the session moved to another
  'path-set-policy',
  'path-abort',
  'path-overflow-compaction',
  'path-turn-limit',
  'interrupt-during-tool-call',
  'path-interrupt-awaiting-approval',
  'path-message-mid-turn',
  'path-large-arguments',
  'path-inline-utf8-bytes',
  // the fixes of issue 11
  'message-during-collection',
  'duplicate-call-ids',
  'compaction-still-over-limit',
  'compaction-failed',
  'interrupt-during-compaction',
  'interrupt-after-last-call',
  'model-reply-too-large',
  // fan-out: parents and children
  'agents-fan-out',
  'agents-fan-out-child',
  'agents-conflict',
  'agents-approval-in-tree',
  'agents-approval-in-tree-child',
  'agents-close',
  'agents-close-child',
  'agents-continue-as-new',
  'agents-parent-cancelled',
  'agents-worker-killed',
  'agents-retired',
  'agents-spawn-together', // four spawns of one reply at once (concurrent-spawns)
  'agents-spawn-together-worker-killed',
  // the token budget: a session parked, stopped and continued; a tree parked and let go
  'budget-single',
  'budget-tree',
  'budget-tree-child',
  // hand-made directives a child ignored (marker budget-directive-checked), one continued as new
  'budget-directives',
  'budget-directives-child',
  // background mode: a model call re-attached to after its worker was killed
  'background-reattached-after-kill',
  // checkpoints: one per writing turn, the baseline taken beside the first model call and a
  // rewind to it, a rewound run that restores first, and one rewound to before a compaction
  'checkpoints-session',
  'checkpoint-baseline-beside-model',
  'checkpoint-rewound',
  'checkpoint-rewound-before-compaction',
  // an all-read reply that brought its reads (reads-with-reply), then a reply that writes
  'reads-with-reply',
  // the first release, and before reads ran locally
  'v0.1/compaction-remote',
  'v0.1/continue-as-new-suggested',
  'v0.1/session-approvals',
  'v0.1/session-cancelled',
  'v0.1/session-deny',
  'v0.1/session-interrupt-and-message',
  'v0.1/worker-killed-mid-model-call',
  'v0.2/session-approvals',
  'v0.2/session-approve-for-session',
  'v0.2/session-cancelled',
  'v0.2/session-deny',
  'v0.2/session-interrupt-and-message',
];

const fixtureName = (file: string) => file.replace(/(\.run\d+)?\.json$/, '');

/**
 * The id to replay a history under: the file's name, except for a session that fanned out, whose
 * children's ids derive from its own (`<id>/agent-N`): its id is read back from its first child's.
 */
function workflowIdOf(file: string, json: unknown): string {
  const events = (json as { events?: Record<string, unknown>[] }).events ?? [];
  for (const event of events) {
    const started = event.startChildWorkflowExecutionInitiatedEventAttributes as
      { workflowId?: string } | undefined;
    const id = started?.workflowId;
    if (id && /\/agent-\d+$/.test(id)) return id.replace(/\/agent-\d+$/, '');
  }
  return file;
}

describe('recorded histories', () => {
  it('all replay with the current workflow code', async () => {
    const files = (await readdir(historiesDir, { recursive: true }))
      .filter((name) => name.endsWith('.json'))
      .sort();
    expect([...new Set(files.map(fixtureName))].sort()).toEqual([...EXPECTED_FIXTURES].sort());
    const histories = await Promise.all(
      files.map(async (file) => {
        const json: unknown = JSON.parse(await readFile(path.join(historiesDir, file), 'utf8'));
        return { workflowId: workflowIdOf(file, json), history: historyFromJSON(json) };
      }),
    );
    const failures: string[] = [];
    for await (const result of Worker.runReplayHistories(
      { workflowBundle: { codePath: inject('workflowBundlePath') } },
      histories,
    )) {
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    expect(failures).toEqual([]);
  });
});

describe('a worker that caches no workflows', () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await Harness.create();
  });
  afterAll(async () => {
    await harness?.close();
  });

  it('runs a session with approvals to the same end', async () => {
    const repo = await createTempRepo({ 'a.txt': 'alpha\n' });
    const { model } = harness;
    model
      .enqueue({
        kind: 'reply',
        output: [
          { type: 'function_call', name: 'read_file', arguments: { file_path: 'a.txt' } },
          { type: 'function_call', name: 'list_dir', arguments: { dir_path: '.' } },
        ],
      })
      .call('shell', { command: ['bash', '-lc', 'echo beta >> a.txt'] })
      .reply('Appended beta.');
    const { worker } = await harness.worker({ workerOptions: { maxCachedWorkflows: 0 } });
    const result = await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'Append beta to a.txt', workspace: repo.dir });
      await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      await harness.ratchet.decide(handle.workflowId, 'approve_for_session');
      return (await handle.result()) as SessionResult;
    });
    expect(result).toMatchObject({ finalMessage: 'Appended beta.', turns: 3 });
    expect(result.filesChanged).toEqual([{ path: 'a.txt', status: 'M' }]);
    expect(await readFile(path.join(repo.dir, 'a.txt'), 'utf8')).toBe('alpha\nbeta\n');
    model.assertDone();
  });
});
