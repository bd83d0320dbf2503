/**
 * What a person sees in the Temporal Web UI, checked in headless Chromium (Debian's `chromium`,
 * driven by playwright-core) against a dev server of this file's own with the UI on:
 *
 * - a finished session is found through `RatchetStatus = "completed"`, and its timeline and
 *   event history show the activity summaries; the screenshots go to docs/ for the README;
 * - a waiting session is found through `RatchetStatus = "awaiting_approval"` and approved with the
 *   UI's "Send a Signal" form, typing the JSON the README shows;
 * - a session parked on its token budget is found through `RatchetStatus = "awaiting_budget"`;
 *   the `budget` signal with a malformed payload is ignored with the reason in its notice, and
 *   README's `{"add": N}` lets it go on;
 * - payloads are plain JSON (no codec), so the UI can show them;
 * - after `ratchet rewind`, the session's current run shows the turn it went back to and the
 *   restored checkpoint, and the run it replaced shows Terminated, with the server's reason and
 *   the new run's id.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Frame, Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { SessionResult, StatusView } from '../../src/shared/api/session-api.js';
import type { ReplyStep } from '../../src/testing/scripted-model.js';
import { rewindSession } from '../../src/cli/checkpoints.js';
import { DevServer } from '../../src/temporal/dev-server.js';
import { createTempRepo } from '../helpers/git-repo.js';
import type { TempRepo } from '../helpers/git-repo.js';
import { Harness, waitForStatus } from '../helpers/harness.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
// The screenshots in docs/ are refreshed on request (RATCHET_UPDATE_SCREENSHOTS=1); an ordinary
// run writes them to a temporary folder, so that running the tests leaves the checkout clean.
const docsDir =
  process.env.RATCHET_UPDATE_SCREENSHOTS === '1'
    ? path.join(root, 'docs')
    : path.join(os.tmpdir(), `ratchet-web-ui-shots-${process.pid}`);
const chromiumPath = process.env.RATCHET_CHROMIUM_PATH ?? '/usr/bin/chromium';

const PATCH = [
  '*** Begin Patch',
  '*** Add File: NOTES.md',
  '+# Notes',
  '*** Update File: README.md',
  '@@',
  '-# x',
  '+# x, with notes',
  '*** End Patch',
].join('\n');

let server: DevServer;
let harness: Harness;
let browser: Browser;
let page: Page;
const repos: TempRepo[] = [];

beforeAll(async () => {
  if (!existsSync(chromiumPath)) {
    throw new Error(
      `headless Chromium is missing (${chromiumPath}): install Debian's package with ` +
        '`apt-get install chromium` (.ci/run does), or point RATCHET_CHROMIUM_PATH at a Chromium binary',
    );
  }
  server = await DevServer.start({ cliPath: inject('temporalCliPath') });
  harness = await Harness.create({ address: server.address });
  // --no-sandbox: CI runs as root, where Chromium refuses its own sandbox.
  browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(20_000);
  await mkdir(docsDir, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await harness?.close();
  await server?.stop();
  await Promise.all(repos.map((repo) => repo.remove()));
  if (process.env.RATCHET_UPDATE_SCREENSHOTS !== '1') await rm(docsDir, { recursive: true, force: true });
});

async function tempRepo(): Promise<TempRepo> {
  const repo = await createTempRepo({ 'README.md': '# x\n' });
  repos.push(repo);
  return repo;
}

/** The UI's workflow list filtered by a visibility query, then the session's page. */
async function openThroughQuery(query: string, sessionId: string, screenshot?: string): Promise<void> {
  const url = `${server.uiUrl}/namespaces/default/workflows?query=${encodeURIComponent(query)}`;
  // Visibility is eventually consistent: reload until the session is listed.
  await expect
    .poll(
      async () => {
        await page.goto(url);
        try {
          await page.getByRole('link', { name: sessionId }).waitFor({ timeout: 3000 });
          return true;
        } catch {
          return false;
        }
      },
      { timeout: 30_000, interval: 500 },
    )
    .toBe(true);
  if (screenshot) await page.screenshot({ path: path.join(docsDir, screenshot) });
  await page.getByRole('link', { name: sessionId }).click();
  await page.getByRole('heading', { name: sessionId }).waitFor();
}

/** Waits until some visible element on the page shows `text`. */
async function seen(text: string): Promise<void> {
  // The UI renders summaries and details (Markdown) inside sandboxed iframes: look in every frame.
  const visibleIn = async (frame: Frame) =>
    (await frame
      .getByText(text)
      .filter({ visible: true })
      .count()
      .catch(() => 0)) > 0;
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    for (const frame of page.frames()) if (await visibleIn(frame)) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  {
    const shot = path.join(os.tmpdir(), `ratchet-web-ui-${Date.now()}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    throw new Error(`the Web UI does not show "${text}" at ${page.url()} (screenshot: ${shot})`);
  }
}

/** The visible text of the page and its frames (for a failure's message). */
async function pageText(): Promise<string> {
  const texts = await Promise.all(
    page.frames().map((frame) =>
      frame
        .locator('body')
        .innerText()
        .catch(() => ''),
    ),
  );
  return texts.join('\n---\n');
}

/** Every payload encoding in the session's history. */
async function payloadEncodings(handle: WorkflowHandle): Promise<Set<string>> {
  const history = await handle.fetchHistory();
  const encodings = new Set<string>();
  const visit = (value: unknown): void => {
    if (!value || typeof value !== 'object') return;
    if (ArrayBuffer.isView(value)) return;
    const metadata = (value as { metadata?: Record<string, Uint8Array> }).metadata;
    if (metadata?.encoding && 'data' in value) encodings.add(Buffer.from(metadata.encoding).toString('utf8'));
    for (const child of Object.values(value)) visit(child);
  };
  visit(history.events);
  return encodings;
}

/** The JSON that README's "Approving from the Web UI" tells a person to type. */
async function readmeSignalJson(): Promise<string> {
  const readme = await readFile(path.join(root, 'README.md'), 'utf8');
  const section = readme.split('### Approving from the Web UI')[1] ?? '';
  const block = /```json\n([\s\S]*?)\n```/.exec(section);
  if (!block) throw new Error('README.md has no ```json block under "### Approving from the Web UI"');
  return block[1]!;
}

/** More Actions → Send a Signal on the open session page: the signal's name, its JSON, Submit. */
async function sendSignal(name: string, json: string, screenshot?: string): Promise<void> {
  await page.getByRole('button', { name: 'More Actions' }).click();
  await page.getByRole('menuitem', { name: 'Send a Signal' }).click();
  await page.getByTestId('signal-select-button').filter({ visible: true }).click();
  await page.getByRole('option', { name, exact: true }).click();
  const data = page.getByRole('textbox', { name: 'Data' });
  await data.fill(json);
  // Leaving the editor makes the UI check and reformat the JSON (the dialog grows), and only
  // then enables Submit: click it after that, not while it moves.
  await data.evaluate((element) => (element as unknown as { blur(): void }).blur());
  const submit = page.getByRole('button', { name: 'Submit' });
  await expect.poll(() => submit.isEnabled(), { timeout: 10_000 }).toBe(true);
  await page.waitForTimeout(500);
  if (screenshot) await page.screenshot({ path: path.join(docsDir, screenshot) });
  await submit.click();
}

/** The signals in a session's history: name and payload, in order. */
async function signalsOf(handle: WorkflowHandle): Promise<Array<{ name: string; input: unknown }>> {
  const history = await handle.fetchHistory();
  return (history.events ?? []).flatMap((e) => {
    const signaled = e.workflowExecutionSignaledEventAttributes;
    if (!signaled) return [];
    const payload = signaled.input?.payloads?.[0];
    return [
      {
        name: signaled.signalName ?? '',
        input: payload ? (JSON.parse(Buffer.from(payload.data!).toString('utf8')) as unknown) : undefined,
      },
    ];
  });
}

/** The JSON README's token budget section tells a person to send from the Web UI to continue. */
async function readmeBudgetJson(): Promise<string> {
  const readme = await readFile(path.join(root, 'README.md'), 'utf8');
  const section = readme.split('#### A token budget for the tree')[1] ?? '';
  const line = /\*\*From the Web UI\*\*[\s\S]*?`(\{"add": \d+\})`/.exec(section);
  if (!line) throw new Error('README.md\'s token budget section shows no {"add": N} payload for the Web UI');
  return line[1]!;
}

describe('the Temporal Web UI', () => {
  it('finds a finished session by RatchetStatus and shows its activity summaries', async () => {
    const repo = await tempRepo();
    const { model } = harness;
    model
      .call('read_file', { file_path: 'README.md' })
      .call('shell', { command: ['git', 'status', '--short'] })
      .call('apply_patch', { input: PATCH })
      .reply('Added NOTES.md and retitled the README.');
    const { worker } = await harness.worker();
    // The worker keeps running while the UI is read: it answers the UI's metadata query (the
    // current details), as `ratchet server`'s worker would.
    const handle = await worker.runUntil(async () => {
      const started = await harness.start({
        task: 'Add a NOTES.md and mention it in the README\n\nKeep it short.',
        workspace: repo.dir,
        approvalPolicy: 'never',
      });
      await started.result();

      await openThroughQuery(`RatchetStatus = "completed"`, started.workflowId, 'web-ui-list.png');

      // The timeline labels each activity with its type and summary.
      for (const text of [
        'workspace · prepare',
        'model · turn 1 · 2 items in context',
        'shell · git status --short',
        'apply_patch · 2 files',
        'model · turn 4',
        'workspace · changed files',
      ]) {
        await seen(text);
      }
      await page.screenshot({ path: path.join(docsDir, 'web-ui-history.png') });

      // The event history shows the same summaries; User Metadata the workflow's summary, its
      // details and the current details.
      await page.getByRole('tab', { name: /Event History/ }).click();
      await seen('shell · git status --short');
      await page.getByRole('tab', { name: 'User Metadata' }).click();
      for (const text of [
        'Add a NOTES.md and mention it in the README',
        repo.dir,
        'scripted-model',
        'last turn: turn 4 · answered',
      ]) {
        await seen(text);
      }
      return started;
    });
    model.assertDone();

    // A reply whose calls are all reads brings their results (reads-with-reply): the read is no
    // event of its own. Its summary leads the first model call's result, as the event history
    // shows that result when its row is opened.
    const events = (await handle.fetchHistory()).events ?? [];
    const firstModel = events.find(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'model',
    );
    const data = events.find(
      (e) =>
        Number(e.activityTaskCompletedEventAttributes?.scheduledEventId ?? 0) === Number(firstModel?.eventId),
    )?.activityTaskCompletedEventAttributes?.result?.payloads?.[0]?.data;
    const shown = JSON.parse(Buffer.from(data ?? new Uint8Array()).toString('utf8') || '{}') as {
      reads?: Array<{ result: Record<string, unknown> }>;
    };
    expect(Object.keys(shown)[0]).toBe('reads');
    expect(Object.keys(shown.reads?.[0]?.result ?? {})[0]).toBe('display');
    expect(shown.reads?.[0]?.result.display).toMatch(/^read_file · README\.md/);

    // Plain JSON throughout: no codec, so nothing in the UI is an opaque blob.
    const encodings = await payloadEncodings(handle);
    expect([...encodings].filter((e) => e !== 'json/plain' && e !== 'binary/null')).toEqual([]);
    expect(encodings.has('json/plain')).toBe(true);
  });

  it("approves a waiting session with the Send a Signal form and the README's JSON", async () => {
    const repo = await tempRepo();
    const { model } = harness;
    model.call('shell', { command: ['touch', 'approved-in-the-ui'] }).reply('Created the file.');
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({ task: 'Create approved-in-the-ui', workspace: repo.dir });
      const waiting: StatusView = await waitForStatus(handle, (s) => s.status === 'awaiting_approval');
      const callId = waiting.pendingApprovals[0]!.callId;

      await openThroughQuery(
        `RatchetStatus = "awaiting_approval"`,
        handle.workflowId,
        'web-ui-awaiting-approval.png',
      );
      // The current details name the call id that the signal needs.
      await page.getByRole('tab', { name: 'User Metadata' }).click();
      await seen(callId);

      const json = (await readmeSignalJson()).replace(/<[^>]*>/, callId);
      await sendSignal('approve', json, 'web-ui-signal.png');

      await waitForStatus(handle, (s) => s.status === 'completed', 20_000);
      const result = (await handle.result()) as SessionResult;
      expect(result.finalMessage).toBe('Created the file.');
      expect(existsSync(path.join(repo.dir, 'approved-in-the-ui'))).toBe(true);
      // The decision is in history as the UI sent it: the approve signal, by web-ui.
      const history = await handle.fetchHistory();
      const signals = (history.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes);
      expect(signals.map((e) => e.workflowExecutionSignaledEventAttributes!.signalName)).toEqual(['approve']);
      const payload = signals[0]!.workflowExecutionSignaledEventAttributes!.input!.payloads![0]!;
      expect(JSON.parse(Buffer.from(payload.data!).toString('utf8'))).toEqual({
        callId,
        decision: 'approve',
        by: 'web-ui',
      });
    });
    model.assertDone();
  });

  it("lets a session parked on its budget go on with the budget signal, and shows a malformed one's reason", async () => {
    const repo = await tempRepo();
    // Each reply costs 15 tokens: with a budget of 40 the session parks after its third.
    const read = (): ReplyStep => ({
      kind: 'reply',
      output: [{ type: 'function_call', name: 'read_file', arguments: { file_path: 'README.md' } }],
      usage: { inputTokens: 10, outputTokens: 5 },
    });
    const steps: ReplyStep[] = [
      read(),
      read(),
      read(),
      {
        kind: 'reply',
        output: [{ type: 'message', text: 'Read it thrice.' }],
        usage: { inputTokens: 10, outputTokens: 5 },
      },
    ];
    const model = await harness.freshModel({ responder: () => steps.shift() });
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Read the README under a budget',
        workspace: repo.dir,
        approvalPolicy: 'auto-edit',
        budget: { tokens: 40 },
      });
      await waitForStatus(handle, (s) => s.status === 'awaiting_budget', 30_000);
      const parkedAt = model.requests.length;
      await openThroughQuery(`RatchetStatus = "awaiting_budget"`, handle.workflowId);

      // A malformed payload: ignored, the reason in the session's notice, the session still parked.
      await sendSignal('budget', '{"add": "lots"}');
      const ignored = await waitForStatus(handle, (s) =>
        (s.notice ?? '').startsWith('ignored a budget signal'),
      );
      expect(ignored.status).toBe('awaiting_budget');
      expect(ignored.notice).toBe(
        'ignored a budget signal: malformed (expected {"add": <tokens>} or {"stop": true}): add: add must be a number of tokens',
      );
      expect(ignored.budget).toMatchObject({ limit: 40, parked: true });
      expect(model.requests.length).toBe(parkedAt);

      // README's payload: the session goes on and finishes; the notice is gone.
      const json = await readmeBudgetJson();
      await page.reload();
      await page.getByRole('heading', { name: handle.workflowId }).waitFor();
      await sendSignal('budget', json);
      await waitForStatus(handle, (s) => s.status === 'completed', 30_000);
      const done = await harness.ratchet.status(handle.workflowId);
      expect(done.notice).toBeNull();
      expect(done.budget).toMatchObject({
        limit: 40 + (JSON.parse(json) as { add: number }).add,
        parked: false,
      });
      expect(((await handle.result()) as SessionResult).finalMessage).toBe('Read it thrice.');
      // Both signals are in history as the UI sent them.
      expect(await signalsOf(handle)).toEqual([
        { name: 'budget', input: { add: 'lots' } },
        { name: 'budget', input: JSON.parse(json) as unknown },
      ]);
    });
    expect(steps).toEqual([]);
  });

  it('shows a rewound session: the new run at the turn it went back to, the old one terminated with a reason', async () => {
    const repo = await tempRepo();
    const { model } = harness;
    // Turn 1 patches (auto-edit); turn 2's command waits for a person when the session is rewound.
    model.call('apply_patch', { input: PATCH }).call('shell', { command: ['touch', 'never-run'] });
    const { worker } = await harness.worker();
    await worker.runUntil(async () => {
      const handle = await harness.start({
        task: 'Add notes, then more',
        workspace: repo.dir,
        approvalPolicy: 'auto-edit',
      });
      await waitForStatus(handle, (s) => s.status === 'awaiting_approval' && s.turn === 2);
      const id = handle.workflowId;
      const oldRunId = (await handle.describe()).runId;
      const done = await rewindSession(harness.ratchet, id, 1, {
        force: false,
        by: 'web-ui-test',
        workflowBundle: { codePath: inject('workflowBundlePath') },
      });
      await waitForStatus(handle, (s) => s.status === 'idle' && (s.notice ?? '').includes('end of turn 1'));

      // The list finds the session idle at turn 1 (its search attributes are the new run's).
      await openThroughQuery(`RatchetStatus = "idle" AND RatchetTurn = 1`, id, 'web-ui-rewound-list.png');
      try {
        // Its page is the new run's: the summary says it was rewound, the current details say
        // where it is and what the restore did.
        await seen('rewound to the end of turn 1 by web-ui-test');
        await page.getByRole('tab', { name: 'User Metadata' }).click();
        await seen('status: idle · turn 1 · run 2');
        await seen(`the workspace is back at checkpoint ${done.commit.slice(0, 12)}`);
        await page.screenshot({ path: path.join(docsDir, 'web-ui-rewound.png') });

        // The run it replaced: Terminated, by the start of the new run.
        await page.goto(`${server.uiUrl}/namespaces/default/workflows/${id}/${oldRunId}/history`);
        await page.getByRole('heading', { name: id }).waitFor();
        await seen('Terminated');
        await page.getByText('Workflow Execution Terminated').first().click();
        await seen('TerminateIfRunning WorkflowIdReusePolicy');
        await seen(`terminated by new runID: ${done.runId}`);
        await page.screenshot({ path: path.join(docsDir, 'web-ui-rewound-old-run.png') });
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- the page shows:\n${await pageText()}`);
      }
      expect((await harness.client.workflow.getHandle(id, oldRunId).describe()).status.name).toBe(
        'TERMINATED',
      );
      await handle.terminate('test over');
    });
  });
});
