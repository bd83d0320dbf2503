/**
 * Following a session from a terminal: new transcript entries and status changes as they happen,
 * read through the `status` and `transcript` queries (not recorded in history), and, when a person
 * is at the terminal, approval prompts.
 *
 * Three forms: on a terminal, finished steps scroll by while a live line at the bottom shows the
 * current step with a spinner and its elapsed time; on a pipe, the same steps as plain lines (no
 * colour, no control characters) with a status line whenever the status or the step changes; with
 * `json`, one JSON object per line: Ratchet's own (`entry`, `status`, `approval`, `compacted`), or
 * with `format: 'exec'` events shaped like `codex exec --json`'s (exec-events.ts).
 *
 * With `exitAtRest` following ends when the session rests where only someone else can move it:
 * idle (waiting for a message), or waiting for an approval that this terminal cannot give.
 */
import { createInterface } from 'node:readline/promises';
import type { RatchetClient } from '../client.js';
import { RatchetError } from '../client.js';
import type { PendingApproval, StatusView } from '../shared/api/session-api.js';
import { ExecEventMapper } from './exec-events.js';
import { LiveLine } from './live-line.js';
import type { Colors } from './render.js';
import type { StepProgress } from './render.js';
import {
  colorsFor,
  renderApproval,
  renderEntry,
  renderAgentLine,
  renderStatusChange,
  renderStatusLine,
  stepLabel,
} from './render.js';
import { sleep } from '../shared/util/sleep.js';

export interface FollowOptions {
  /** JSON lines instead of text. */
  json: boolean;
  /** With `json`: Ratchet's lines (default) or `codex exec --json`-shaped events. */
  format?: 'ratchet' | 'exec';
  /** Return when the session is idle, or waits for an approval and `interactive` is off. */
  exitAtRest?: boolean;
  /** Prompt for approvals on the terminal. */
  interactive: boolean;
  out?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Live line with a spinner (default: when `out` is a terminal). */
  tty?: boolean;
  /** Colours (default: `colorsFor(out)`; never any with `json`). */
  colors?: Colors;
  pollMs?: number;
  /** Stops following (the session goes on). */
  signal?: AbortSignal;
}

export interface FollowResult {
  status: StatusView['status'] | 'detached';
  view?: StatusView;
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

type Answer =
  | { kind: 'approve' | 'approve_for_session' }
  | { kind: 'deny'; reason?: string }
  | { kind: 'abort'; message?: string };

/**
 * Asks y/a/d/n for one pending call. Resolves undefined when the call was decided elsewhere
 * (Web UI, another terminal) while the question was open.
 */
async function ask(
  ratchet: RatchetClient,
  sessionId: string,
  approval: PendingApproval,
  out: NodeJS.WritableStream,
  pc: Colors,
  signal?: AbortSignal,
): Promise<Answer | undefined> {
  const rl = createInterface({ input: process.stdin, output: out, terminal: Boolean(process.stdin.isTTY) });
  const controller = new AbortController();
  signal?.addEventListener('abort', () => controller.abort(), { once: true });
  const watcher = (async () => {
    while (!controller.signal.aborted) {
      await sleep(1000, controller.signal);
      if (controller.signal.aborted) return;
      try {
        const view = await ratchet.status(sessionId);
        if (!view.pendingApprovals.some((p) => p.callId === approval.callId)) controller.abort();
      } catch {
        // keep asking
      }
    }
  })();
  const question = (text: string) => rl.question(text, { signal: controller.signal });
  try {
    for (;;) {
      const key = (
        await question(
          `${pc.bold('[y]')} approve  ${pc.bold('[a]')} approve for this session  ${pc.bold('[d]')} deny  ` +
            `${pc.bold('[n]')} no, stop and tell Ratchet what to do › `,
        )
      )
        .trim()
        .toLowerCase();
      if (key === 'y' || key === 'yes') return { kind: 'approve' };
      if (key === 'a') return { kind: 'approve_for_session' };
      if (key === 'd') {
        const reason = (await question('reason (optional) › ')).trim();
        return { kind: 'deny', ...(reason ? { reason } : {}) };
      }
      if (key === 'n' || key === 'no') {
        const message = (await question('what should Ratchet do instead? (optional) › ')).trim();
        return { kind: 'abort', ...(message ? { message } : {}) };
      }
      out.write(pc.dim('answer y, a, d or n\n'));
    }
  } catch (err) {
    if (controller.signal.aborted) return undefined;
    throw err;
  } finally {
    controller.abort();
    rl.close();
    await watcher;
  }
}

export async function followSession(
  ratchet: RatchetClient,
  sessionId: string,
  options: FollowOptions,
): Promise<FollowResult> {
  const out = options.out ?? process.stdout;
  const live = !options.json && (options.tty ?? out.isTTY === true);
  const line = live ? new LiveLine(out, options.colors ?? colorsFor(out)) : null;
  try {
    return await follow(ratchet, sessionId, options, out, line);
  } finally {
    line?.stop();
  }
}

async function follow(
  ratchet: RatchetClient,
  sessionId: string,
  options: FollowOptions,
  out: NodeJS.WritableStream & { isTTY?: boolean },
  live: LiveLine | null,
): Promise<FollowResult> {
  const pc = options.colors ?? colorsFor(out);
  const pollMs = options.pollMs ?? 400;
  const write = (event: Record<string, unknown>) => out.write(`${JSON.stringify(event)}\n`);
  const exec = options.json && options.format === 'exec' ? new ExecEventMapper(sessionId) : null;
  // Ratchet's own lines; in exec format they are replaced by the mapper's events.
  const emit = (event: Record<string, unknown>) => {
    if (!exec) write(event);
  };
  if (exec) exec.started().forEach(write);
  const print = (text: string) => (live ? live.print(text) : out.write(`${text}\n`));
  let index = 0;
  let epoch = 0;
  let lastLine = '';
  const agentLines = new Map<string, string>();
  const prompted = new Set<string>();

  for (;;) {
    if (options.signal?.aborted) return { status: 'detached' };
    let view: StatusView & { activity?: StepProgress | null };
    try {
      view = await ratchet.status(sessionId);
    } catch (err) {
      if (err instanceof RatchetError) throw err;
      await sleep(pollMs, options.signal);
      continue;
    }

    if (view.epoch !== epoch) {
      epoch = view.epoch;
      index = 0;
      if (options.json) emit({ type: 'compacted', sessionId, epoch });
      else print(pc.dim('— earlier turns were compacted —'));
      index = view.transcriptLength;
    }
    while (index < view.transcriptLength) {
      const page = await ratchet.transcript(sessionId, index);
      if (page.epoch !== epoch || page.entries.length === 0) break;
      for (const entry of page.entries) {
        if (exec) exec.entry(index, entry).forEach(write);
        else if (options.json) emit({ type: 'entry', sessionId, index, entry });
        else {
          const text = renderEntry(entry, pc);
          if (text) print(text);
        }
        index += 1;
      }
    }

    // What changed enough for a line: on a terminal the live line shows the current step and turn,
    // so only the status (and notice) make a permanent line; on a pipe every step does.
    const key = options.json
      ? JSON.stringify({
          status: view.status,
          turn: view.turn,
          current: view.current?.label,
          notice: view.notice,
        })
      : live
        ? JSON.stringify({ status: view.status, notice: view.notice })
        : renderStatusLine(
            view.current
              ? {
                  ...view,
                  current: {
                    ...view.current,
                    label: stepLabel(view.current, view.activity, { tokens: false }),
                  },
                }
              : view,
            pc,
          );
    if (key !== lastLine) {
      if (exec) exec.status(view).forEach(write);
      else if (options.json) emit({ type: 'status', sessionId, ...view });
      else print(live ? renderStatusChange(view, pc) : key);
      lastLine = key;
    }

    // A session that fans out: a line whenever one of its children changes.
    for (const agent of view.agents ?? []) {
      const line = renderAgentLine(agent, pc);
      if (agentLines.get(agent.name) === line) continue;
      agentLines.set(agent.name, line);
      if (options.json) emit({ type: 'agent', parent: sessionId, ...agent });
      else if (!exec) print(line);
    }

    if (TERMINAL.has(view.status)) return { status: view.status, view };

    const fresh = view.pendingApprovals.filter((p) => !prompted.has(p.callId));
    for (const approval of options.interactive ? fresh.slice(0, 1) : fresh) {
      prompted.add(approval.callId);
      if (options.json) {
        if (exec) exec.approval(approval).forEach(write);
        else emit({ type: 'approval', sessionId, approval });
        continue;
      }
      print(renderApproval(approval, pc));
      if (!options.interactive) {
        print(
          pc.dim(`  decide with: ratchet approve ${sessionId} ${approval.callId}   (or deny, or the Web UI)`),
        );
        continue;
      }
      live?.stop();
      const answer = await ask(ratchet, sessionId, approval, out, pc, options.signal);
      if (!answer) {
        print(pc.dim(`${approval.callId} was decided elsewhere`));
        continue;
      }
      try {
        if (answer.kind === 'deny') {
          await ratchet.decide(sessionId, 'deny', {
            callId: approval.callId,
            reason: answer.reason,
            by: 'terminal',
          });
        } else if (answer.kind === 'abort') {
          await ratchet.decide(sessionId, 'abort', {
            callId: approval.callId,
            reason: answer.message,
            by: 'terminal',
          });
          if (answer.message) await ratchet.send(sessionId, answer.message);
        } else {
          await ratchet.decide(sessionId, answer.kind, { callId: approval.callId, by: 'terminal' });
        }
      } catch (err) {
        print(pc.red(err instanceof Error ? err.message : String(err)));
      }
    }
    if (options.interactive && fresh.length > 0) continue;
    if (
      options.exitAtRest &&
      (view.status === 'idle' ||
        view.status === 'awaiting_budget' ||
        (view.status === 'awaiting_approval' && !options.interactive))
    ) {
      return { status: view.status, view };
    }

    live?.set(
      view.current
        ? { ...view.current, label: stepLabel(view.current, view.activity, { tokens: true }) }
        : null,
    );
    await sleep(pollMs, options.signal);
  }
}
