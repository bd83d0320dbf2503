/** `ratchet inbox`: the approvals inbox alone, for the configured cluster, in the foreground. */
import type { Command } from 'commander';
import type { InboxFlags } from '../inbox-command.js';
import { inboxOptions, serveInbox } from '../inbox-command.js';
import type { Io } from '../io.js';
import { print, waitForSignal, withClient } from '../io.js';

export function registerInbox(program: Command, io: Io): void {
  inboxOptions(
    program
      .command('inbox')
      .description('serve the approvals inbox for the configured cluster, in the foreground'),
  ).action(async (opts: InboxFlags) =>
    withClient(async (ratchet) => {
      const inbox = await serveInbox(ratchet, opts, (line) => print(io, line));
      const stop = waitForSignal();
      await new Promise<void>((resolve) =>
        stop.signal.addEventListener('abort', () => resolve(), { once: true }),
      );
      stop.dispose();
      await inbox.close();
    }),
  );
}
