/**
 * How sessions look in a terminal: transcript entries, statuses, approvals.
 */
import pc from 'picocolors';
import { messageText } from '../shared/items.js';
import type { PendingApproval, StatusView } from '../shared/session-api.js';
import type { TranscriptEntry } from '../shared/session-config.js';
import { summarizeRawCall } from '../shared/tool-summary.js';

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
export function renderEntry(entry: TranscriptEntry): string | null {
  const item = entry.item;
  switch (item.type) {
    case 'message': {
      const text = messageText(item).trim();
      if (!text) return null;
      if (item.role === 'assistant') return `${pc.bold(pc.magenta('ratchet'))} ${text}`;
      if (isContextMessage(text)) return null;
      if (text.startsWith('Summary of the session so far'))
        return pc.dim('[earlier turns compacted into a summary]');
      return `${pc.bold(pc.cyan('you'))} ${text}`;
    }
    case 'function_call':
      return pc.yellow(`▸ ${summarizeRawCall(item.name, item.arguments)}`);
    case 'function_call_output': {
      const display = entry.display ?? 'done';
      return entry.success === false ? pc.red(`✗ ${display}`) : pc.green(`✓ ${display}`);
    }
    case 'reasoning': {
      const summary = Array.isArray(item.summary)
        ? (item.summary as Array<{ text?: string }>)
            .map((part) => part.text ?? '')
            .join('\n')
            .trim()
        : '';
      return summary ? pc.dim(indent(summary, '  … ')) : null;
    }
    case 'compaction':
      return pc.dim('[earlier turns compacted]');
    default:
      return null;
  }
}

export function statusColor(status: string): (text: string) => string {
  switch (status) {
    case 'completed':
      return pc.green;
    case 'failed':
    case 'cancelled':
      return pc.red;
    case 'awaiting_approval':
      return pc.yellow;
    case 'idle':
      return pc.blue;
    default:
      return pc.cyan;
  }
}

export function renderStatusLine(view: StatusView): string {
  const color = statusColor(view.status);
  const parts = [color(view.status.replace('_', ' ')), `turn ${view.turn}`];
  if (view.current) parts.push(view.current.label);
  if (view.notice) parts.push(view.notice);
  return pc.dim('· ') + parts.join(pc.dim(' · '));
}

function renderPatchPreview(patch: string, maxLines = 40): string {
  const lines = patch.split('\n');
  const shown = lines.slice(0, maxLines).map((line) => {
    if (line.startsWith('***')) return pc.bold(line);
    if (line.startsWith('+')) return pc.green(line);
    if (line.startsWith('-')) return pc.red(line);
    if (line.startsWith('@@')) return pc.cyan(line);
    return pc.dim(line);
  });
  if (lines.length > maxLines) shown.push(pc.dim(`… ${lines.length - maxLines} more lines`));
  return indent(shown.join('\n'), '    ');
}

export function renderApproval(approval: PendingApproval): string {
  const lines = [
    `${pc.bold(pc.yellow('approval needed'))} ${approval.summary} ${pc.dim(`(${approval.callId})`)}`,
    pc.dim(`  ${approval.reason}`),
  ];
  const args = approval.arguments as { input?: unknown; command?: unknown; workdir?: unknown };
  if (approval.tool === 'apply_patch' && typeof args.input === 'string')
    lines.push(renderPatchPreview(args.input));
  if (approval.tool === 'shell' && Array.isArray(args.command)) {
    const workdir = typeof args.workdir === 'string' ? `  in ${args.workdir}` : '';
    lines.push(pc.dim(`    argv: ${JSON.stringify(args.command)}${workdir}`));
  }
  return lines.join('\n');
}
