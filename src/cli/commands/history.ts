/** `ratchet history`: a session's recorded steps, read from Temporal's event history. */
import type { Command } from 'commander';
import pc from 'picocolors';
import type { Io } from '../io.js';
import { json, print, withClient } from '../io.js';

export function registerHistory(program: Command, io: Io): void {
  program
    .command('history')
    .description("a session's recorded steps, from Temporal's event history")
    .argument('<id>', 'session id')
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: { json?: boolean }) =>
      withClient(async (ratchet) => {
        const lines = await ratchet.history(id);
        if (opts.json) return json(io, lines);
        for (const line of lines)
          print(io, `${pc.dim(line.time.replace('T', ' ').slice(0, 19))}  ${line.text}`);
      }),
    );
}
