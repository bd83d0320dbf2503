/**
 * How sessions look in a terminal: transcript entries, statuses, approvals, the live step line.
 * Every function takes the colours to use, so that a pipe gets plain text and tests can switch
 * colours on or off (`colorsFor`). Everything that came from the model, a command or the
 * repository goes through `escapeControl` first: only Ratchet's own colours reach the terminal.
 */
import pc from 'picocolors';
import { messageText } from '../shared/prompt/items.js';
import { escapeControl } from '../shared/util/escape.js';
import { displayCommand } from '../shared/policy/shell-unwrap.js';
import type { AgentView, CurrentStep, PendingApproval, StatusView } from '../shared/api/session-api.js';
import type { TranscriptEntry } from '../shared/api/session-config.js';
import { summarizeRawCall } from '../shared/tools/summary.js';
import type { ActivityProgress } from '../client.js';

export type Colors = ReturnType<typeof pc.createColors>;

/** Colours off, for pipes, files and JSON. */
export const plain: Colors = pc.createColors(false);

/**
 * The colours for one output stream: on for a terminal, off for a pipe or file (CI included),
 * `NO_COLOR` turns them off and `FORCE_COLOR` on.
 */
export function colorsFor(
  stream: NodeJS.WritableStream | { isTTY?: boolean },
  env: Record<string, string | undefined> = process.env,
): Colors {
  if (env.NO_COLOR) return plain;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false')
    return pc.createColors(true);
  return pc.createColors('isTTY' in stream && stream.isTTY === true && env.TERM !== 'dumb');
}

function isContextMessage(text: string): boolean {
  return text.startsWith('<environment_context>') || text.startsWith('# AGENTS.md instructions');
}

function indent(text: string, prefix = '  '): string {
  return text
    .split('\n')
    .map((line) => prefix + line)
    .join('\n');
}

/** One transcript entry as terminal lines; null for entries a person need not see. */
export function renderEntry(entry: TranscriptEntry, c: Colors = pc): string | null {
  const item = entry.item;
  switch (item.type) {
    case 'message': {
      const text = escapeControl(messageText(item).trim());
      if (!text) return null;
      if (item.role === 'assistant') return `${c.bold(c.magenta('ratchet'))} ${text}`;
      if (isContextMessage(text)) return null;
      if (text.startsWith('Summary of the session so far'))
        return c.dim('[earlier turns compacted into a summary]');
      return `${c.bold(c.cyan('you'))} ${text}`;
    }
    case 'function_call':
      return c.yellow(`▸ ${summarizeRawCall(item.name, item.arguments)}`);
    case 'function_call_output': {
      const display = escapeControl(entry.display ?? 'done', { newlines: false });
      return entry.success === false ? c.red(`✗ ${display}`) : c.green(`✓ ${display}`);
    }
    case 'reasoning': {
      const summary = Array.isArray(item.summary)
        ? (item.summary as Array<{ text?: string }>)
            .map((part) => part.text ?? '')
            .join('\n')
            .trim()
        : '';
      return summary ? c.dim(indent(escapeControl(summary), '  … ')) : null;
    }
    case 'compaction':
      return c.dim('[earlier turns compacted]');
    default:
      return null;
  }
}

export function statusColor(status: string, c: Colors = pc): (text: string) => string {
  switch (status) {
    case 'completed':
      return c.green;
    case 'failed':
    case 'cancelled':
      return c.red;
    case 'awaiting_approval':
    case 'awaiting_budget':
      return c.yellow;
    case 'idle':
      return c.blue;
    default:
      return c.cyan;
  }
}

/** The status as one line: status, turn, current step, notice. */
export function renderStatusLine(view: StatusView, c: Colors = pc): string {
  const color = statusColor(view.status, c);
  const parts = [color(view.status.replace('_', ' ')), `turn ${view.turn}`];
  if (view.current) parts.push(escapeControl(view.current.label, { newlines: false }));
  if (view.notice) parts.push(escapeControl(view.notice, { newlines: false }));
  return c.dim('· ') + parts.join(c.dim(' · '));
}

/** What the server knows of the activity under the current step (see RatchetClient.status). */
export type StepProgress = ActivityProgress;

/**
 * The current step's label with what the server knows of its activity: the attempt and why the
 * last one failed ("model · turn 3 · attempt 4/10 · the model endpoint failed (500): …"), and, with
 * `tokens` (the live line, which redraws in place), the tokens streamed so far or that the reply
 * comes whole. The failure is one line.
 */
export function stepLabel(
  current: Pick<CurrentStep, 'label'>,
  progress: StepProgress | null | undefined,
  options: { tokens: boolean },
): string {
  const parts = [current.label];
  if (progress && progress.attempt > 1) {
    parts.push(`attempt ${progress.attempt}/${progress.maximumAttempts || '∞'}`);
    if (progress.lastFailure) parts.push(progress.lastFailure.split('\n')[0]!.trim());
  }
  if (options.tokens && progress?.type === 'model') {
    if (progress.streamed === false) parts.push('whole reply (the endpoint does not stream)');
    else if (progress.tokens) parts.push(`${progress.tokens} tokens`);
  }
  return parts.join(' · ');
}

/** One child of a session that fans out: "agent-1 · completed · 2 files changed · ratchet/…/agent-1". */
export function renderAgentLine(agent: AgentView, c: Colors = pc): string {
  const parts = [
    c.bold(agent.name),
    statusColor(
      agent.status === 'errored' ? 'failed' : agent.status,
      c,
    )(escapeControl(agent.detail, { newlines: false })),
  ];
  if (agent.merged) parts.push('merged');
  if (agent.closed && agent.status !== 'shutdown') parts.push('closed');
  if (agent.branch) parts.push(c.dim(agent.branch));
  return `${c.dim('└')} ${parts.join(c.dim(' · '))}`;
}

/** The status without the current step (which the live line shows on a terminal). */
export function renderStatusChange(view: StatusView, c: Colors = pc): string {
  return renderStatusLine({ ...view, current: null }, c);
}

/** An apply_patch body with + green, - red, file headers bold; at most `maxLines` lines. */
export function renderPatchPreview(patch: string, c: Colors = pc, maxLines = 40): string {
  const lines = escapeControl(patch.replace(/\n$/, '')).split('\n');
  const shown = lines.slice(0, maxLines).map((line) => {
    if (line.startsWith('***')) return c.bold(line);
    if (line.startsWith('+')) return c.green(line);
    if (line.startsWith('-')) return c.red(line);
    if (line.startsWith('@@')) return c.cyan(line);
    return c.dim(line);
  });
  if (lines.length > maxLines) shown.push(c.dim(`… ${lines.length - maxLines} more lines`));
  return indent(shown.join('\n'), '    ');
}

/** A pending call, highlighted: what asks and why, the command in full or the patch's preview. */
export function renderApproval(approval: PendingApproval, c: Colors = pc): string {
  const line = (text: string): string => escapeControl(text, { newlines: false });
  const lines = [
    `${c.bold(c.yellow('approval needed'))} ${c.bold(line(approval.summary))} ${c.dim(`(${line(approval.callId)})`)}`,
    c.dim(`  ${line(approval.reason)}`),
  ];
  const args = (approval.arguments ?? {}) as { input?: unknown; command?: unknown; workdir?: unknown };
  if (approval.tool === 'apply_patch' && typeof args.input === 'string')
    lines.push(renderPatchPreview(args.input, c));
  if (approval.tool === 'shell' && Array.isArray(args.command)) {
    const [first = '', ...rest] = displayCommand(args.command.map(String)).split('\n');
    lines.push(`    ${c.yellow('$')} ${c.bold(first)}`, ...rest.map((line) => `      ${c.bold(line)}`));
    if (typeof args.workdir === 'string') lines.push(c.dim(`    in ${line(args.workdir)}`));
  }
  return lines.join('\n');
}

export const SPINNER_FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'] as const;

export function spinnerFrame(tick: number): string {
  const n = SPINNER_FRAMES.length;
  return SPINNER_FRAMES[((tick % n) + n) % n]!;
}

/** "0s", "42s", "3m 05s", "2h 04m"; negative (a clock behind the server's) counts as 0. */
export function formatElapsed(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m`;
}

/**
 * The live line under the scrollback: spinner, current step, time since it started. Fits in
 * `width` columns (the step's label is cut with "…"), so that redrawing in place never wraps.
 */
export function renderLiveLine(
  step: Pick<CurrentStep, 'label' | 'since'>,
  now: number,
  tick: number,
  c: Colors = pc,
  width = 80,
): string {
  const since = Date.parse(step.since);
  const elapsed = Number.isNaN(since) ? '' : formatElapsed(now - since);
  const room = Math.max(10, width - 1 - 2 - (elapsed ? elapsed.length + 2 : 0));
  const text = escapeControl(step.label, { newlines: false });
  const label = text.length <= room ? text : `${text.slice(0, room - 1)}…`;
  return `${c.cyan(spinnerFrame(tick))} ${label}${elapsed ? `  ${c.dim(elapsed)}` : ''}`;
}
