/**
 * Entry point of the `ratchet` command: runs the program and turns every error into one line on
 * stderr and a non-zero exit, never a stack trace (set RATCHET_DEBUG=1 to see one).
 */
import { CommanderError } from 'commander';
import { buildProgram } from './cli/program.js';

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version print and exit 0; usage errors were already written by commander.
      return err.exitCode;
    }
    if (process.env.RATCHET_DEBUG) console.error(err);
    else console.error(`ratchet: ${oneLine(err instanceof Error ? err.message : String(err))}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
// Open handles (gRPC channels of a closed connection) must not keep the process alive.
setTimeout(() => process.exit(), 200).unref();
