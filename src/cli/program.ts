/**
 * The `ratchet` command line: a thin layer over RatchetClient and the worker. This module builds
 * the commander program (one-line errors, output through `io`) and adds the commands; each command
 * lives in src/cli/commands/ under its own name, and adding one is one line in `commands` below.
 */
import { Command } from 'commander';
import { registerBudgetCommand } from './budget.js';
import { registerCheckpoints } from './commands/checkpoints.js';
import { registerDecisions } from './commands/decide.js';
import { registerDemo } from './commands/demo.js';
import { registerDiff } from './commands/diff.js';
import { registerHistory } from './commands/history.js';
import { registerInbox } from './commands/inbox.js';
import { registerList } from './commands/list.js';
import { registerRun } from './commands/run.js';
import { registerServer } from './commands/server.js';
import { registerSessionControl } from './commands/session-control.js';
import { registerSetup } from './commands/setup.js';
import { registerStatus } from './commands/status.js';
import { registerWatch } from './commands/watch.js';
import { registerWorker } from './commands/worker.js';
import type { Io, RegisterCommand } from './io.js';

/** How `ratchet run` turns settings into a session's configuration. */
export { sessionConfig } from './from-settings.js';

/** The commands in the order `ratchet --help` lists them. */
const commands: readonly RegisterCommand[] = [
  registerRun,
  registerDemo,
  registerStatus,
  registerList,
  registerWatch,
  registerDecisions, // approve, deny, abort
  registerBudgetCommand,
  registerSessionControl, // send, interrupt, move, cancel
  registerDiff,
  registerCheckpoints, // checkpoints, rewind, fork
  registerHistory,
  registerServer,
  registerInbox,
  registerSetup,
  registerWorker,
];

export function buildProgram(io: Io = { out: process.stdout, err: process.stderr }): Command {
  const program = new Command('ratchet')
    .description(
      'A durable coding agent: each session is a Temporal workflow that survives crashes and waits for your approval.',
    )
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (text) => io.out.write(text),
      writeErr: (text) => {
        // Errors on one line (commander puts "(Did you mean …?)" on a line of its own); help
        // written to stderr stays as it is.
        if (!text.startsWith('error:')) return void io.err.write(text);
        io.err.write(`ratchet: ${text.trim().replace(/\s*\n\s*/g, ' ')}\n`);
      },
    })
    .exitOverride();

  for (const register of commands) register(program, io);
  return program;
}
