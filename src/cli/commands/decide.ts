/**
 * `ratchet approve`, `deny` and `abort`: one decision on a pending tool call (the only pending one
 * when no call id is given).
 */
import type { Command } from 'commander';
import type { Io } from '../io.js';
import { json, print, withClient } from '../io.js';

export function registerDecisions(program: Command, io: Io): void {
  const decision = (name: string, kind: 'approve' | 'deny' | 'abort', description: string) => {
    const command = program
      .command(name)
      .description(description)
      .argument('<id>', 'session id')
      .argument('[callId]', 'the pending call (optional when only one is pending)')
      .option('--reason <text>', 'why (the model reads it)')
      .option('--json', 'machine-readable output');
    if (kind === 'approve')
      command.option('--for-session', 'also approve the same command for the rest of the session');
    command.action(
      async (
        id: string,
        callId: string | undefined,
        opts: { reason?: string; forSession?: boolean; json?: boolean },
      ) =>
        withClient(async (ratchet) => {
          const decided = kind === 'approve' && opts.forSession ? 'approve_for_session' : kind;
          const ack = await ratchet.decide(id, decided, {
            callId,
            reason: opts.reason,
            by: process.env.USER ?? 'cli',
          });
          if (opts.json) return json(io, ack);
          print(
            io,
            `${ack.decision.replace(/_/g, ' ')}: ${ack.callId}${ack.alsoApproved.length ? ` (also approved ${ack.alsoApproved.join(', ')})` : ''}`,
          );
        }),
    );
  };
  decision('approve', 'approve', 'approve a pending tool call');
  decision('deny', 'deny', 'deny a pending tool call (the model is told, with your reason)');
  decision('abort', 'abort', 'deny a pending call and stop the turn; the session waits for your message');
}
