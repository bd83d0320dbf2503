/**
 * `ratchet run --json` and `ratchet demo --json`: the session as JSON lines shaped like
 * `codex exec --json`'s events (openai/codex `codex-rs/exec/src/exec_events.rs`), so that tools
 * that read Codex's stream read Ratchet's. This module owns the mapping; README "Commands" lists it.
 *
 * - `thread.started` (`thread_id`: the session id) first;
 * - `turn.started` when the session starts working on the task or on a message it was sent;
 *   `turn.completed` (with the turn's `usage`) when it completes or waits for a message without a
 *   notice; `turn.failed` (`error.message`) when it fails, is cancelled, or stops with a notice;
 * - transcript entries as items, `id` `item_<transcript index>`: an assistant message is an
 *   `agent_message`, a reasoning summary a `reasoning`, a `shell` call a `command_execution`
 *   (`item.started` at the call, `item.completed` with its output and exit code), an `apply_patch`
 *   a `file_change` (completed only, as in Codex), `update_plan` a `todo_list`, and the other tools
 *   (`read_file`, `list_dir`, `grep_files`) an `mcp_tool_call` with `server: "ratchet"`;
 * - additions: `approval.requested` (`item_id`, `call_id`, `tool`, `summary`, `reason`) when a call
 *   starts waiting for a person — Codex's `exec` never waits for one.
 */
import type { PendingApproval, StatusView } from '../shared/api/session-api.js';
import type { TranscriptEntry, Usage } from '../shared/api/session-config.js';
import { emptyUsage } from '../shared/api/session-config.js';
import { messageText } from '../shared/prompt/items.js';

export type ExecEvent = { type: string } & Record<string, unknown>;

interface OpenCall {
  itemId: string;
  name: string;
  args: Record<string, unknown>;
}

function parseObject(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}

function commandText(args: Record<string, unknown>): string {
  const command = args.command;
  if (Array.isArray(command)) return command.map(String).join(' ');
  return typeof command === 'string' ? command : '';
}

/** The files an apply_patch body names, with Codex's change kinds. */
function patchChanges(input: unknown): Array<{ path: string; kind: 'add' | 'delete' | 'update' }> {
  if (typeof input !== 'string') return [];
  const changes: Array<{ path: string; kind: 'add' | 'delete' | 'update' }> = [];
  for (const line of input.split('\n')) {
    const match = /^\*\*\* (Add|Delete|Update) File: (.+)$/.exec(line.trim());
    if (match) changes.push({ path: match[2]!.trim(), kind: match[1]!.toLowerCase() as 'add' });
  }
  return changes;
}

/** A shell output's text and exit code (the shell tool answers `{ output, metadata: { exit_code } }`). */
function shellResult(output: string): { text: string; exitCode: number | null } {
  const parsed = parseObject(output);
  const metadata = parsed.metadata as { exit_code?: unknown } | undefined;
  if (typeof parsed.output === 'string') {
    return {
      text: parsed.output,
      exitCode: typeof metadata?.exit_code === 'number' ? metadata.exit_code : null,
    };
  }
  return { text: output, exitCode: null };
}

function usageDelta(now: Usage, then: Usage): Record<string, number> {
  return {
    input_tokens: now.inputTokens - then.inputTokens,
    cached_input_tokens: now.cachedInputTokens - then.cachedInputTokens,
    output_tokens: now.outputTokens - then.outputTokens,
  };
}

/** Turns what `followSession` reads (entries, statuses, approvals) into exec events. */
export class ExecEventMapper {
  private readonly calls = new Map<string, OpenCall>();
  private inTurn = false;
  private turnUsage: Usage | undefined;
  private lastStatus: string | undefined;
  private lastUsage: Usage = emptyUsage;

  constructor(private readonly sessionId: string) {}

  started(): ExecEvent[] {
    return [{ type: 'thread.started', thread_id: this.sessionId }];
  }

  /** An entry's events, after `turn.started` if this is the first sign of a new turn. */
  entry(index: number, entry: TranscriptEntry): ExecEvent[] {
    const events = this.itemEvents(index, entry);
    return events.length > 0 && !this.inTurn ? [...this.beginTurn(this.lastUsage), ...events] : events;
  }

  private beginTurn(usage: Usage): ExecEvent[] {
    this.inTurn = true;
    this.turnUsage = usage;
    return [{ type: 'turn.started' }];
  }

  private itemEvents(index: number, entry: TranscriptEntry): ExecEvent[] {
    const item = entry.item;
    const id = `item_${index}`;
    switch (item.type) {
      case 'message': {
        if (item.role !== 'assistant') return [];
        const text = messageText(item);
        return text ? [{ type: 'item.completed', item: { id, type: 'agent_message', text } }] : [];
      }
      case 'reasoning': {
        const summary = Array.isArray(item.summary)
          ? (item.summary as Array<{ text?: string }>).map((part) => part.text ?? '').join('\n')
          : '';
        return summary ? [{ type: 'item.completed', item: { id, type: 'reasoning', text: summary } }] : [];
      }
      case 'function_call': {
        const args = parseObject(item.arguments);
        this.calls.set(item.call_id, { itemId: id, name: item.name, args });
        if (item.name === 'shell') {
          return [
            {
              type: 'item.started',
              item: {
                id,
                type: 'command_execution',
                command: commandText(args),
                aggregated_output: '',
                exit_code: null,
                status: 'in_progress',
              },
            },
          ];
        }
        if (item.name === 'apply_patch' || item.name === 'update_plan') return [];
        return [{ type: 'item.started', item: this.toolItem(id, item.name, args, null, 'in_progress') }];
      }
      case 'function_call_output': {
        const call = this.calls.get(item.call_id);
        if (!call) return [];
        this.calls.delete(item.call_id);
        const ok = entry.success !== false;
        const declined = /\b(denied|declined)\b/i.test(entry.display ?? '');
        if (call.name === 'shell') {
          const { text, exitCode } = shellResult(item.output);
          return [
            {
              type: 'item.completed',
              item: {
                id: call.itemId,
                type: 'command_execution',
                command: commandText(call.args),
                aggregated_output: text,
                exit_code: exitCode,
                status: declined ? 'declined' : ok ? 'completed' : 'failed',
              },
            },
          ];
        }
        if (call.name === 'apply_patch') {
          return [
            {
              type: 'item.completed',
              item: {
                id: call.itemId,
                type: 'file_change',
                changes: patchChanges(call.args.input),
                status: ok ? 'completed' : 'failed',
              },
            },
          ];
        }
        if (call.name === 'update_plan') {
          const plan = Array.isArray(call.args.plan)
            ? (call.args.plan as Array<Record<string, unknown>>)
            : [];
          return [
            {
              type: 'item.completed',
              item: {
                id: call.itemId,
                type: 'todo_list',
                items: plan.map((step) => ({
                  text: typeof step.step === 'string' ? step.step : '',
                  completed: step.status === 'completed',
                })),
              },
            },
          ];
        }
        return [
          {
            type: 'item.completed',
            item: this.toolItem(call.itemId, call.name, call.args, item.output, ok ? 'completed' : 'failed'),
          },
        ];
      }
      default:
        return [];
    }
  }

  private toolItem(
    id: string,
    tool: string,
    args: Record<string, unknown>,
    output: string | null,
    status: string,
  ): Record<string, unknown> {
    return {
      id,
      type: 'mcp_tool_call',
      server: 'ratchet',
      tool,
      arguments: args,
      result:
        output !== null && status === 'completed'
          ? { content: [{ type: 'text', text: output }], structured_content: null }
          : null,
      error: output !== null && status === 'failed' ? { message: output } : null,
      status,
    };
  }

  approval(approval: PendingApproval): ExecEvent[] {
    return [
      {
        type: 'approval.requested',
        item_id: this.calls.get(approval.callId)?.itemId ?? null,
        call_id: approval.callId,
        tool: approval.tool,
        summary: approval.summary,
        reason: approval.reason,
      },
    ];
  }

  /** Turn boundaries from a status change. */
  status(view: StatusView): ExecEvent[] {
    const events: ExecEvent[] = [];
    const previous = this.lastStatus;
    const usageBefore = this.lastUsage;
    this.lastStatus = view.status;
    this.lastUsage = view.usage;
    if (previous === view.status) return events;
    const working = view.status === 'running' || view.status === 'awaiting_approval';
    const ended = ['completed', 'idle', 'failed', 'cancelled'].includes(view.status);
    // A session first seen at rest still had its turn (the first poll came after it).
    if ((working || (ended && previous === undefined)) && !this.inTurn) {
      events.push(...this.beginTurn(working ? view.usage : usageBefore));
    }
    if (ended && this.inTurn) {
      this.inTurn = false;
      const failed = view.status === 'failed' || view.status === 'cancelled' || view.notice !== null;
      if (failed) {
        events.push({ type: 'turn.failed', error: { message: view.notice ?? `the session ${view.status}` } });
      } else {
        events.push({ type: 'turn.completed', usage: usageDelta(view.usage, this.turnUsage ?? view.usage) });
      }
    } else if (ended && (view.status === 'failed' || view.status === 'cancelled')) {
      events.push({ type: 'error', message: view.notice ?? `the session ${view.status}` });
    }
    return events;
  }
}
