/**
 * `ratchet budget ID [--add N | --stop]`: the token budget of a session's tree (`--budget-tokens`).
 * Without a decision it shows what the tree spent; `--add N` lets a tree parked at its budget
 * continue with N more tokens (or raises the limit ahead of time); `--stop` brings every session
 * of a parked tree to rest. Any session of the tree may be named: the decision goes to its root.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import pc from 'picocolors';
import { RatchetError } from '../client.js';
import type { BudgetDecision } from '../shared/api/session-api.js';
import { connect } from './services.js';

interface Io {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

/** A number of tokens to add: a whole number above 0 ("50000", "50_000" and "50k" are not guessed at). */
export function parseTokens(value: string): number {
  const text = value.trim();
  if (!/^\d+$/.test(text)) {
    throw new InvalidArgumentError(`expected a whole number of tokens above 0, got "${value}"`);
  }
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new InvalidArgumentError(`expected a whole number of tokens above 0, got "${value}"`);
  }
  return n;
}

export function registerBudgetCommand(program: Command, io: Io): void {
  program
    .command('budget')
    .description("show or decide the token budget of a session's tree (--budget-tokens)")
    .argument('<id>', 'session id (any session of the tree: the decision goes to its root)')
    .option('--add <tokens>', 'continue with this many more tokens', parseTokens)
    .option('--stop', 'stop: every session of the parked tree comes to rest (a message resumes it)')
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: { add?: number; stop?: boolean; json?: boolean }) => {
      if (opts.add !== undefined && opts.stop)
        throw new RatchetError('give either --add or --stop, not both');
      const decision: BudgetDecision | undefined =
        opts.add !== undefined
          ? { add: opts.add, by: process.env.USER ?? 'cli' }
          : opts.stop
            ? { stop: true, by: process.env.USER ?? 'cli' }
            : undefined;
      const services = await connect();
      try {
        const view = await services.ratchet.budget(id, decision);
        if (opts.json) {
          io.out.write(`${JSON.stringify(view, null, 2)}\n`);
          return;
        }
        const root = view.sessionId === id ? '' : pc.dim(` (the root of ${id}'s tree)`);
        io.out.write(
          `${view.sessionId}${root}  ${view.status.replace('_', ' ')} · ${view.spent} of ${view.limit} tokens spent` +
            (view.parked ? pc.yellow(' · parked: ratchet budget ID --add N, or --stop') : '') +
            '\n',
        );
      } finally {
        await services.close();
      }
    });
}
