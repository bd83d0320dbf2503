/** `ratchet list`: sessions, newest first, a child indented under its parent when both are listed. */
import { Option } from 'commander';
import type { Command } from 'commander';
import pc from 'picocolors';
import type { SessionStatus } from '../../shared/api/session-api.js';
import { sessionStatuses } from '../../shared/api/session-api.js';
import { escapeControl } from '../../shared/util/escape.js';
import type { Io } from '../io.js';
import { json, print, withClient } from '../io.js';
import { parsePositiveInt, parseStatus } from '../parse.js';
import { statusColor } from '../render.js';

export function registerList(program: Command, io: Io): void {
  program
    .command('list')
    .description('list sessions')
    .addOption(
      new Option('--status <status>', `only sessions in this state: ${sessionStatuses.join(', ')}`).argParser(
        parseStatus,
      ),
    )
    .option('--limit <n>', 'most sessions to show', parsePositiveInt, 50)
    .option('--json', 'machine-readable output')
    .action(async (opts: { status?: SessionStatus; limit: number; json?: boolean }) =>
      withClient(async (ratchet) => {
        const sessions = await ratchet.list({ status: opts.status, limit: opts.limit });
        if (opts.json) return json(io, sessions);
        if (sessions.length === 0) return print(io, pc.dim('no sessions'));
        // Trees: a child follows its parent, indented, when both are listed.
        const listed = new Set(sessions.map((s) => s.sessionId));
        const childrenOf = new Map<string, typeof sessions>();
        for (const s of sessions) {
          if (s.parent && listed.has(s.parent))
            childrenOf.set(s.parent, [...(childrenOf.get(s.parent) ?? []), s]);
        }
        const show = (s: (typeof sessions)[number], depth: number): void => {
          const indent = depth === 0 ? '' : `${'  '.repeat(depth - 1)}${pc.dim('└ ')}`;
          print(
            io,
            `${indent}${s.sessionId}  ${statusColor(s.status)(s.status.padEnd(17))} turn ${String(s.turn ?? '-').padStart(3)}  ` +
              `${s.pendingApprovals ? pc.yellow(`${s.pendingApprovals} pending  `) : ''}${pc.dim(escapeControl(s.task || s.repo || '', { newlines: false }))}`,
          );
          for (const child of (childrenOf.get(s.sessionId) ?? []).slice().reverse()) show(child, depth + 1);
        };
        for (const s of sessions) if (!s.parent || !listed.has(s.parent)) show(s, 0);
      }),
    );
}
