/** `ratchet watch`: follows a running session until it ends or the user leaves (Ctrl-C). */
import type { Command } from 'commander';
import { followSession } from '../follow.js';
import type { Io } from '../io.js';
import { waitForSignal, withClient } from '../io.js';

export function registerWatch(program: Command, io: Io): void {
  program
    .command('watch')
    .description('follow a session as it works')
    .argument('<id>', 'session id')
    .option('--json', 'JSON lines')
    .action(async (id: string, opts: { json?: boolean }) =>
      withClient(async (ratchet) => {
        await ratchet.session(id);
        const stop = waitForSignal();
        try {
          const result = await followSession(ratchet, id, {
            json: Boolean(opts.json),
            interactive: Boolean(process.stdin.isTTY) && !opts.json,
            out: io.out,
            signal: stop.signal,
          });
          if (result.status === 'detached') {
            io.err.write(`\nStopped watching ${id}; the session goes on (ratchet status ${id}).\n`);
          } else if (result.status === 'failed' || result.status === 'cancelled') process.exitCode = 1;
        } finally {
          stop.dispose();
        }
      }),
    );
}
