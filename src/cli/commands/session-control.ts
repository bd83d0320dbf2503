/**
 * `ratchet send`, `interrupt`, `move` and `cancel`: steering a session that is already running.
 */
import type { Command } from 'commander';
import type { Io } from '../io.js';
import { print, withClient } from '../io.js';

export function registerSessionControl(program: Command, io: Io): void {
  program
    .command('send')
    .description('send a message to a session (delivered at the next turn boundary)')
    .argument('<id>', 'session id')
    .argument('<text...>', 'the message')
    .action(async (id: string, words: string[]) =>
      withClient(async (ratchet) => {
        await ratchet.send(id, words.join(' '));
        print(io, 'sent');
      }),
    );

  program
    .command('interrupt')
    .description('stop what the session is doing now; it waits for your message')
    .argument('<id>', 'session id')
    .option('--reason <text>', 'why')
    .action(async (id: string, opts: { reason?: string }) =>
      withClient(async (ratchet) => {
        await ratchet.interrupt(id, opts.reason);
        print(io, 'interrupt sent');
      }),
    );

  program
    .command('move')
    .description(
      'hand a session to another worker (its RATCHET_WORKER_ID) that has the repository at the same path',
    )
    .argument('<id>', 'session id')
    .requiredOption('--worker <id>', "the worker's RATCHET_WORKER_ID")
    .action(async (id: string, opts: { worker: string }) =>
      withClient(async (ratchet) => {
        const queue = await ratchet.moveToWorker(id, opts.worker);
        print(io, `moved: tool calls now go to ${queue}; send a message (ratchet send ${id} …) to continue`);
      }),
    );

  program
    .command('cancel')
    .description('end a session (running commands are stopped)')
    .argument('<id>', 'session id')
    .action(async (id: string) =>
      withClient(async (ratchet) => {
        await ratchet.cancel(id);
        print(io, 'cancellation requested');
      }),
    );
}
