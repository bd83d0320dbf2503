/**
 * What every command shares: where it writes, how it prints a line or a JSON value, how it talks
 * to the cluster for the length of one action, and how it waits for Ctrl-C.
 */
import type { Command } from 'commander';
import type { RatchetClient } from '../client.js';
import type { Services } from './services.js';
import { connect } from './services.js';

export interface Io {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

/** Adds one command (or a family of commands) to the program; src/cli/program.ts lists them. */
export type RegisterCommand = (program: Command, io: Io) => void;

export function print(io: Io, text: string): void {
  io.out.write(`${text}\n`);
}

export function json(io: Io, value: unknown): void {
  io.out.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Connects, runs `fn`, and closes the connection whatever happens. */
export async function withClient<T>(
  fn: (ratchet: RatchetClient, services: Services) => Promise<T>,
): Promise<T> {
  const services = await connect();
  try {
    return await fn(services.ratchet, services);
  } finally {
    await services.close();
  }
}

/**
 * An abort signal for SIGINT and SIGTERM: the first one aborts it (the command winds down), a
 * second exits at once (130).
 */
export function waitForSignal(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
